-- dike.retry: a flaky backend fails twice, then answers. Delays grow 10 ms, 20 ms, ...
-- and every retry is logged with the delay about to be slept.
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
dike.set_logger(nil)
