-- dike.rate_limit: 50 calls a second (one turn every 20 ms), a burst of 2, and callers may wait
-- up to 70 ms for their turn. Eight calls at once: two pass at once, the next three wait their
-- turn (in the order they called), the rest are refused with dike.RateLimited, which says when
-- to come back. Then the same budget from code that is not a function (acquire, try), and
-- weighted calls.
local dike = require("dike")

local rl = dike.rate_limit{ rate = 50, burst = 2, max_wait = 0.07, name = "api" }
local t0
local call_api = rl(function(i)
    return ("call %d ran at %3.0f ms"):format(i, (dike.now() - t0) * 1000)
end)

dike.run(function()
    print("== dike.rate_limit: rate = 50 per second, burst = 2, max_wait = 70 ms; 8 calls at once")
    t0 = dike.now()
    local calls = {}
    for i = 1, 8 do calls[i] = function() return call_api(i) end end
    local results = dike.gather(calls, { return_errors = true })
    for i = 1, results.n do
        local r = results[i]
        if dike.RateLimited.is(r) then
            print(("call %d refused: %s (retry after %.0f ms)"):format(i, r.message, r.retry_after * 1000))
        else
            print(r)
        end
    end
    local s = dike.stats(rl)
    print(("-- %d calls: %d admitted (%d after waiting), %d refused, %d waiting now"):format(
        s.calls, s.admitted, s.delayed, s.rejected, s.waiting))

    print("== the same budget without a function: acquire waits like a call, try never waits")
    dike.sleep(0.1) -- let the bucket refill
    rl:acquire()
    local ok, retry_after = rl:try(2)
    print(("try(2) right after acquire: %s, retry after %.0f ms"):format(tostring(ok), retry_after * 1000))

    print("== weighted calls: cost = the number of items")
    local upload = dike.rate_limit{ rate = 100, burst = 10, cost = function(items) return #items end }(
        function(items) return #items .. " items uploaded" end)
    print(upload({ 1, 2, 3, 4, 5, 6 }))
    local refused = select(2, pcall(upload, { 1, 2, 3, 4, 5, 6 }))
    print(("six more at once: %s (retry after %.0f ms)"):format(refused.message, refused.retry_after * 1000))
end)
