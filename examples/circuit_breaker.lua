-- dike.circuit_breaker, dike.timeout and dike.on_event: a backend is down for its first
-- 0.3 s. A caller asks it every 10 ms through retry(breaker(timeout(backend))); the breaker
-- opens after 5 failures, lets one trial call through every 0.1 s, and closes once a trial
-- succeeds. An observer prints every state change as it happens.
local dike = require("dike")

dike.set_logger(function(level, message) print(("[%s] %s"):format(level, message)) end)

local started = dike.now()
local reached = 0 -- calls that reached the backend
local backend = function(x)
    reached = reached + 1
    if dike.now() - started < 0.3 then
        dike.sleep(1) -- down: it hangs...
    end
    return x * 2
end

local breaker = dike.circuit_breaker{ window = 10, minimum_calls = 5, open_for = 0.1, name = "backend" }
local call = dike.retry{ attempts = 2, exception_types = dike.TimeoutError, log_exception_info = false }(
    breaker(dike.timeout{ seconds = 0.02, name = "backend" }(backend)))     -- ... so each attempt times out

local previous = dike.on_event(function(e)
    if e.tool == "circuit_breaker" then
        print(("   event at %3.0f ms: circuit %s %s -> %s"):format((e.time - started) * 1000, e.name, e.from, e.to))
    end
end)

dike.run(function()
    print("== dike.circuit_breaker in front of a backend that hangs for its first 0.3 s (timeout 20 ms)")
    local outcomes = {}
    for i = 1, 40 do
        local ok, r = pcall(call, i)
        local kind = ok and "ok" or (dike.CircuitOpen.is(r) and "open" or (dike.TimeoutError.is(r) and "timeout"
                                                                              or tostring(r)))
        outcomes[kind] = (outcomes[kind] or 0) + 1
        dike.sleep(0.01)
    end
    local s = dike.stats(breaker)
    print(("-- 40 calls: %d ok, %d timed out, %d rejected at once by the open breaker; %d reached the backend")
        :format(outcomes.ok or 0, outcomes.timeout or 0, outcomes.open or 0, reached))
    print(("-- breaker: state %s, opened %d times, %d failures, %d rejected"):format(s.state, s.opened, s.failures,
                                                                                       s.rejected))
end)
dike.on_event(previous)
dike.set_logger(nil)
