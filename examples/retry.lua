-- dike.retry: a flaky backend fails twice, then answers. Delays grow 10 ms, 20 ms, ...
-- and every retry is logged with the delay about to be slept. Then the v2 options: retry on a
-- result, the server's Retry-After, and a retry budget.
local dike = require("dike")

dike.set_logger(function(level, message)
    print(("[%s] %s"):format(level, message))
end)

local failures_left = 2
local fetch = dike.retry{ attempts = 5, delay = 0.01, backoff = 2, log_exception_info = false }(function(key)
    if failures_left > 0 then
        failures_left = failures_left - 1
        error("backend busy", 0)
    end
    return "value of " .. key
end)

local strict = dike.retry{ attempts = 3, exception_types = "busy" }(function()
    error("permission denied", 0)
end)

dike.run(function()
    print("== dike.retry: attempts = 5, delay = 10 ms, backoff = 2")
    local t0 = dike.now()
    print(("fetch -> %s after %.0f ms"):format(fetch("answer"), (dike.now() - t0) * 1000))
    local s = dike.stats(fetch)
    print(("-- %d call, %d retries, %d failures"):format(s.calls, s.retries, s.failures))
    print("== an error that exception_types does not match is raised at once, unlogged")
    print("strict ->", pcall(strict))
end)

-- v2: a server answers 429 with "Retry-After: 0.03" once: the response is a failure to retry
-- (retry_if_result), and the retry waits what the server asked (delay_from).
local Response = { __tostring = function(r) return "HTTP " .. r.status end }
local responses = { setmetatable({ status = 429, retry_after = 0.03 }, Response),
                    setmetatable({ status = 200, body = "hello" }, Response) }
local get = dike.retry{ attempts = 3, delay = 0.5,
                        retry_if_result = function(res) return res.status == 429 end,
                        delay_from = function(res) return res.retry_after end }(function()
    return table.remove(responses, 1)
end)

-- v2: a retry budget shared by wrappers stops a retry storm: once most attempts fail, the
-- wrappers stop retrying (until successes refill it) instead of multiplying the load.
local budget = dike.retry_budget{ max_tokens = 4, token_ratio = 0.5 }
local down = dike.retry{ attempts = 5, budget = budget, log_exception_info = false }(function()
    error("backend down", 0)
end)

dike.run(function()
    print("== retry_if_result + delay_from: a 429 with Retry-After 30 ms, then a 200")
    local t0 = dike.now()
    local res = get()
    print(("get -> %d %s after %.0f ms"):format(res.status, res.body, (dike.now() - t0) * 1000))
    print("== a retry budget of 4 tokens: retries stop when it drops to 2")
    for i = 1, 3 do
        local _, err = pcall(down)
        local s = dike.stats(down)
        print(("call %d -> %s; retries so far %d, refused by the budget %d, tokens left %g"):format(
            i, err, s.retries, s.budget_refused, dike.stats(budget).tokens))
    end
end)
dike.set_logger(nil)
