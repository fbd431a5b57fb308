-- dike.circuit_breaker: windows, rates, minimum_calls, open / half-open / closed / isolated,
-- open_backoff, exception_types, cancellation, messages, log lines, events and statistics.
-- State changes are driven by an injected clock (the `clock` option), so no timing is
-- involved; one test checks the real clock with short times and wide margins.
local dike = require("dike")
local support = require("spec.support")

local huge = math.huge

-- A clock the test moves by hand.
local function fake_clock(start)
    local c = { t = start or 100 }
    function c.now() return c.t end
    return c
end

-- A function whose outcome the test picks per call: f("ok", v) returns v, f("fail", e) raises e,
-- f("slow", v, c, d) moves clock c by d seconds and returns v.
local function backend()
    local ran = 0
    local f = function(what, v, clock, d)
        ran = ran + 1
        if what == "fail" then error(v or "down", 0) end
        if what == "slow" then clock.t = clock.t + d end
        return v
    end
    return f, function() return ran end
end

local function messages(logs)
    local out = {}
    for i, l in ipairs(logs) do out[i] = l.level .. ": " .. l.message end
    return out
end

describe("dike.circuit_breaker", function()
    local logs, restore_logs
    before_each(function() logs, restore_logs = support.capture_logs(dike) end)
    after_each(function() restore_logs() end)

    it("defaults: window 20, minimum_calls 10, failure_rate 0.5, open_for 30", function()
        local c = fake_clock()
        local cb = dike.circuit_breaker{ clock = c.now, name = "db" }
        local f = cb((backend()))
        for _ = 1, 9 do assert.equal("down", support.error_of(f, "fail")) end
        assert.equal("closed", cb:state()) -- 9 calls: below minimum_calls
        assert.equal("down", support.error_of(f, "fail"))
        assert.equal("open", cb:state())
        assert.same({ "warning: Circuit db opened: failure rate 1 over 10 calls" }, messages(logs))
        local e = support.error_of(f, "ok", 1)
        assert.equal(dike.CircuitOpen, getmetatable(e))
        assert.equal(30, e.retry_after)
        c.t = c.t + 29.999
        assert.equal("open", cb:state())
        c.t = c.t + 0.001
        assert.equal("half_open", cb:state())
    end)

    it("opens when failures / calls over the last `window` calls reach failure_rate", function()
        local c = fake_clock()
        local cb = dike.circuit_breaker{ window = 4, minimum_calls = 4, failure_rate = 0.5, clock = c.now,
                                         name = "w" }
        local f = cb((backend()))
        -- ok ok fail ok: 1/4; then fail: the window is ok fail ok fail = 2/4
        assert.equal(1, f("ok", 1))
        assert.equal(2, f("ok", 2))
        assert.equal("down", support.error_of(f, "fail"))
        assert.equal(3, f("ok", 3))
        assert.equal("closed", cb:state())
        assert.equal("down", support.error_of(f, "fail"))
        assert.equal("open", cb:state())
        assert.same({ "warning: Circuit w opened: failure rate 0.5 over 4 calls" }, messages(logs))
    end)

    it("slides the count window: failures older than `window` calls no longer count", function()
        local c = fake_clock()
        local cb = dike.circuit_breaker{ window = 4, minimum_calls = 4, failure_rate = 0.75, clock = c.now }
        local f = cb((backend()))
        local seq = { "fail", "fail", "ok", "ok", "ok", "fail", "fail" } -- windows: .5 .25 .25 .5
        for _, what in ipairs(seq) do pcall(f, what) end
        assert.equal("closed", cb:state())
        pcall(f, "fail") -- ok fail fail fail: 0.75
        assert.equal("open", cb:state())
        assert.matches("opened: failure rate 0.75 over 4 calls$", logs[1].message)
    end)

    it("decides once the window holds minimum_calls, even on a success", function()
        local c = fake_clock()
        local cb = dike.circuit_breaker{ window = 10, minimum_calls = 4, clock = c.now, name = "m" }
        local f = cb((backend()))
        pcall(f, "fail")
        pcall(f, "fail")
        assert.equal(1, f("ok", 1))
        assert.equal("closed", cb:state()) -- 3 calls
        assert.equal(2, f("ok", 2)) -- the 4th call, a success, makes 2/4
        assert.equal("open", cb:state())
        assert.same({ "warning: Circuit m opened: failure rate 0.5 over 4 calls" }, messages(logs))
    end)

    it("minimum_calls defaults to the window when the window is smaller than 10", function()
        local c = fake_clock()
        local cb = dike.circuit_breaker{ window = 3, clock = c.now }
        local f = cb((backend()))
        pcall(f, "fail")
        pcall(f, "fail")
        assert.equal("closed", cb:state())
        pcall(f, "fail")
        assert.equal("open", cb:state())
    end)

    it("window_seconds: the calls of the last window_seconds seconds", function()
        local c = fake_clock(1000)
        local cb = dike.circuit_breaker{ window_seconds = 10, minimum_calls = 2, clock = c.now, name = "t" }
        local f = cb((backend()))
        pcall(f, "fail")
        c.t = c.t + 9.9
        pcall(f, "fail") -- both within 10 s: 2/2
        assert.equal("open", cb:state())
        assert.same({ "warning: Circuit t opened: failure rate 1 over 2 calls" }, messages(logs))

        local c2 = fake_clock(1000)
        local cb2 = dike.circuit_breaker{ window_seconds = 10, minimum_calls = 2, clock = c2.now }
        local g = cb2((backend()))
        pcall(g, "fail")
        -- a bucket is 10/20 s, and calls stay up to one bucket longer: 11 s later it is gone
        c2.t = c2.t + 11
        assert.equal(1, g("ok", 1))
        assert.equal(2, g("ok", 2))
        pcall(g, "fail")
        assert.equal("closed", cb2:state()) -- 1/3
        pcall(g, "fail")
        assert.equal("open", cb2:state()) -- 2/4
        assert.matches("failure rate 0.5 over 4 calls$", logs[2].message)
    end)

    it("slow calls: counted, still returning their values; open at slow_call_rate", function()
        local c = fake_clock()
        local cb = dike.circuit_breaker{ window = 2, minimum_calls = 2, slow_call_seconds = 1,
                                         slow_call_rate = 0.5, clock = c.now, name = "s" }
        local f = cb((backend()))
        assert.equal("v", f("slow", "v", c, 1.5))
        assert.equal("closed", cb:state())
        assert.equal("w", f("slow", "w", c, 1)) -- exactly 1 s is not longer than 1 s
        assert.equal("open", cb:state())
        assert.same({ "warning: Circuit s opened: slow call rate 0.5 over 2 calls" }, messages(logs))
        local s = dike.stats(f)
        assert.equal(1, s.slow)
        assert.equal(0, s.failures)
    end)

    it("slow_call_rate defaults to 1: only a window of slow calls opens it", function()
        local c = fake_clock()
        local cb = dike.circuit_breaker{ window = 3, minimum_calls = 3, slow_call_seconds = 0.5, clock = c.now }
        local f = cb((backend()))
        f("slow", 1, c, 1)
        f("slow", 1, c, 1)
        f("ok", 1)
        assert.equal("closed", cb:state())
        f("slow", 1, c, 1) -- slow ok slow
        f("slow", 1, c, 1) -- ok slow slow
        assert.equal("closed", cb:state())
        f("slow", 1, c, 1)
        assert.equal("open", cb:state())
        assert.matches("opened: slow call rate 1 over 3 calls$", logs[1].message)
    end)

    it("checks the failure rate before the slow call rate", function()
        local c = fake_clock()
        local cb = dike.circuit_breaker{ window = 1, minimum_calls = 1, slow_call_seconds = 1,
                                         slow_call_rate = 1, clock = c.now, name = "both" }
        local f = cb(function() c.t = c.t + 2; error("slow and failed", 0) end)
        assert.equal("slow and failed", support.error_of(f))
        assert.same({ "warning: Circuit both opened: failure rate 1 over 1 calls" }, messages(logs))
        assert.same({ 1, 1 }, { dike.stats(f).failures, dike.stats(f).slow })
    end)

    it("open: CircuitOpen without calling fn, with retry_after and the exact message", function()
        local c = fake_clock()
        local cb = dike.circuit_breaker{ window = 1, minimum_calls = 1, open_for = 30, clock = c.now, name = "api" }
        local f, ran = backend()
        local g = cb(f)
        pcall(g, "fail")
        c.t = c.t + 0.5
        local e = support.error_of(g, "ok", 1)
        assert.equal(1, ran())
        assert.equal(dike.CircuitOpen, getmetatable(e))
        assert.equal("Circuit open for function api! retry after 29.5s", e.message)
        assert.equal(e.message, tostring(e))
        assert.equal(29.5, e.retry_after)
        c.t = c.t + 29.5 - 1 / 3
        assert.equal("Circuit open for function api! retry after 0.333s", support.error_of(g, "ok").message)
        assert.same({ calls = 3, failures = 1, slow = 0, rejected = 2, opened = 1, state = "open" }, dike.stats(g))
    end)

    it("half-open with no call needed; one trial; success closes with an empty window", function()
        local c = fake_clock()
        local events = {}
        local previous = dike.on_event(function(e) events[#events + 1] = e.from .. ">" .. e.to end)
        local cb = dike.circuit_breaker{ window = 2, minimum_calls = 2, open_for = 10, clock = c.now, name = "h" }
        local g = cb((backend()))
        pcall(g, "fail")
        pcall(g, "fail")
        c.t = c.t + 10
        assert.equal("half_open", dike.stats(g).state)
        assert.equal(7, g("ok", 7)) -- the trial
        assert.equal("closed", cb:state())
        -- the window is empty: one failure is below minimum_calls again
        pcall(g, "fail")
        assert.equal("closed", cb:state())
        dike.on_event(previous)
        assert.same({ "warning: Circuit h opened: failure rate 1 over 2 calls", "warning: Circuit h half-open",
                      "warning: Circuit h closed" }, messages(logs))
        assert.same({ "closed>open", "open>half_open", "half_open>closed" }, events)
    end)

    it("half_open_calls trials run; the rest raise CircuitOpen; all must succeed", function()
        local c = fake_clock()
        local cb = dike.circuit_breaker{ window = 1, minimum_calls = 1, open_for = 5, half_open_calls = 2,
                                         clock = c.now, name = "ho" }
        local f = cb(function(what, d)
            if d then dike.sleep(d) end
            if what == "fail" then error("down", 0) end
            return what
        end)
        pcall(f, "fail")
        c.t = c.t + 5
        local r = dike.run(function()
            return dike.gather({
                function() return f("ok", 0.01) end,
                function() return f("ok", 0.01) end,
                function() return f("ok") end,
            }, { return_errors = true })
        end)
        assert.equal("ok", r[1])
        assert.equal("ok", r[2])
        assert.equal(dike.CircuitOpen, getmetatable(r[3]))
        assert.equal("Circuit open for function ho! retry after 0s", r[3].message)
        assert.equal(0, r[3].retry_after)
        assert.equal("closed", cb:state())
        -- a failing trial among two reopens at once; the other trial's outcome no longer counts
        pcall(f, "fail")
        c.t = c.t + 5
        r = dike.run(function()
            return dike.gather({ function() return f("ok", 0.02) end, function() return f("fail", 0.01) end },
                               { return_errors = true })
        end)
        assert.equal("ok", r[1])
        assert.equal("down", r[2])
        assert.equal("open", cb:state())
        assert.equal("warning: Circuit ho opened: trial call failed", messages(logs)[#logs])
    end)

    it("open_backoff multiplies open_for on each reopening from half-open, up to max_open_for", function()
        local c = fake_clock()
        local cb = dike.circuit_breaker{ window = 1, minimum_calls = 1, open_for = 30, open_backoff = 2,
                                         max_open_for = 100, clock = c.now }
        local f = cb((backend()))
        local function retry_after()
            local e = support.error_of(f, "ok")
            return e.retry_after
        end
        pcall(f, "fail")
        assert.equal(30, retry_after())
        for _, want in ipairs({ 60, 100, 100 }) do
            c.t = c.t + 1000
            pcall(f, "fail") -- the trial fails
            assert.equal(want, retry_after())
        end
        c.t = c.t + 100
        assert.equal(1, f("ok", 1)) -- the trial succeeds: closed, backoff reset
        pcall(f, "fail")
        assert.equal(30, retry_after())
        assert.equal(5, dike.stats(f).opened)
    end)

    it("a slow trial reopens it when the trials' slow call rate reaches slow_call_rate", function()
        local c = fake_clock()
        local cb = dike.circuit_breaker{ window = 1, minimum_calls = 1, open_for = 1, slow_call_seconds = 1,
                                         clock = c.now, name = "st" }
        local f = cb((backend()))
        pcall(f, "fail")
        c.t = c.t + 1
        assert.equal("v", f("slow", "v", c, 2))
        assert.equal("open", cb:state())
        assert.equal("warning: Circuit st opened: slow call rate 1 over 1 calls", messages(logs)[#logs])
    end)

    it("isolate() forces it open until reset(), which closes it with an empty window", function()
        local c = fake_clock()
        local events = {}
        local previous = dike.on_event(function(e) events[#events + 1] = e.from .. ">" .. e.to end)
        local cb = dike.circuit_breaker{ window = 2, minimum_calls = 2, clock = c.now, name = "iso" }
        local f, ran = backend()
        local g = cb(f)
        pcall(g, "fail")
        cb:isolate()
        cb:isolate() -- already isolated: nothing more
        assert.equal("isolated", cb:state())
        c.t = c.t + 1e6
        local e = support.error_of(g, "ok")
        assert.equal(dike.CircuitOpen, getmetatable(e))
        assert.equal("Circuit open for function iso! isolated", e.message)
        assert.equal(huge, e.retry_after)
        assert.equal(1, ran())
        cb:reset()
        assert.equal("closed", cb:state())
        pcall(g, "fail") -- the earlier failure is gone: 1 call
        assert.equal("closed", cb:state())
        dike.on_event(previous)
        assert.same({ "warning: Circuit iso isolated", "warning: Circuit iso closed" }, messages(logs))
        assert.same({ "closed>isolated", "isolated>closed" }, events)
        assert.same({ calls = 3, failures = 2, slow = 0, rejected = 1, opened = 0, state = "closed" }, dike.stats(cb))
    end)

    it("reset() of a closed breaker empties the window without a log line", function()
        local c = fake_clock()
        local cb = dike.circuit_breaker{ window = 2, minimum_calls = 2, clock = c.now }
        local g = cb((backend()))
        pcall(g, "fail")
        cb:reset()
        pcall(g, "fail")
        assert.equal("closed", cb:state())
        cb:isolate()
        c.t = c.t + 1
        cb:reset()
        assert.equal(2, #logs)
    end)

    it("reset() from open and half-open; the next opening uses open_for again", function()
        local c = fake_clock()
        local cb = dike.circuit_breaker{ window = 1, minimum_calls = 1, open_for = 2, open_backoff = 3, clock = c.now }
        local g = cb((backend()))
        pcall(g, "fail")
        c.t = c.t + 2
        pcall(g, "fail") -- reopened for 6
        cb:reset()
        assert.equal("closed", cb:state())
        pcall(g, "fail")
        assert.equal(2, support.error_of(g, "ok").retry_after)
        c.t = c.t + 2
        assert.equal("half_open", cb:state())
        cb:reset()
        assert.equal(1, g("ok", 1))
        assert.equal("closed", cb:state())
    end)

    it("exception_types: only matching errors count; the others pass through as successes", function()
        local c = fake_clock()
        local Mine = { __tostring = function(e) return "mine " .. e.code end }
        local function mine(code) return setmetatable({ code = code }, Mine) end
        local specs = {
            Mine,
            "^mine 5",
            function(e) return getmetatable(e) == Mine and e.code == 5 end,
            { "nothing", Mine },
        }
        for _, spec in ipairs(specs) do
            local cb = dike.circuit_breaker{ window = 2, minimum_calls = 2, failure_rate = 1, exception_types = spec,
                                             clock = c.now }
            local g = cb(function(e) error(e, 0) end)
            local other = "plain string"
            assert.equal(other, support.error_of(g, other))
            assert.equal(other, support.error_of(g, other))
            assert.equal("closed", cb:state())
            local e5 = mine(5)
            assert.equal(e5, support.error_of(g, e5)) -- the same value, unchanged
            assert.equal("closed", cb:state()) -- plain, mine: 1/2
            assert.equal(e5, support.error_of(g, e5))
            assert.equal("open", cb:state())
            assert.equal(2, dike.stats(g).failures)
        end
    end)

    it("a predicate that raises: its error is the call's, counted as a failure", function()
        local c = fake_clock()
        local cb = dike.circuit_breaker{ window = 1, minimum_calls = 1, clock = c.now, name = "p",
                                         exception_types = function() error("bad predicate", 0) end }
        local g = cb(function() error("x", 0) end)
        assert.equal("bad predicate", support.error_of(g))
        assert.equal("open", cb:state())
        assert.equal(1, dike.stats(g).failures)
        assert.same({ "warning: Circuit p opened: failure rate 1 over 1 calls" }, messages(logs))
    end)

    it("cancelled calls count neither way, even with CancelledError in exception_types", function()
        for _, spec in ipairs({ false, dike.CancelledError }) do
            local c = fake_clock()
            local cb = dike.circuit_breaker{ window = 1, minimum_calls = 1, clock = c.now,
                                             exception_types = spec or nil }
            local g = cb(function() dike.sleep(10) end)
            dike.run(function()
                local t = dike.spawn(g)
                dike.sleep(0)
                t:cancel()
                assert.equal(dike.CancelledError, getmetatable(support.error_of(t.join, t)))
            end)
            assert.equal("closed", cb:state())
            assert.same({ calls = 1, failures = 0, slow = 0, rejected = 0, opened = 0, state = "closed" },
                        dike.stats(cb))
        end
    end)

    it("a cancelled trial gives its place to the next caller", function()
        local c = fake_clock()
        local cb = dike.circuit_breaker{ window = 1, minimum_calls = 1, open_for = 1, clock = c.now }
        local g = cb(function(d) dike.sleep(d) return d end)
        local fail = cb(function() error("down", 0) end)
        pcall(fail)
        c.t = c.t + 1
        dike.run(function()
            local trial = dike.spawn(g, 10)
            assert.equal(dike.CircuitOpen, getmetatable(support.error_of(g, 0)))
            trial:cancel()
            -- the trial's place is given back when CancelledError has left the call
            assert.equal(dike.CancelledError, getmetatable(support.error_of(trial.join, trial)))
            assert.equal(0.001, g(0.001)) -- the new trial
        end)
        assert.equal("closed", cb:state())
    end)

    it("calls admitted before a state change do not count after it", function()
        local c = fake_clock()
        local cb = dike.circuit_breaker{ window = 1, minimum_calls = 1, open_for = 1, clock = c.now }
        local slow = cb(function() dike.sleep(0.01) error("late failure", 0) end)
        dike.run(function()
            local t = dike.spawn(slow)
            cb:isolate()
            cb:reset()
            assert.equal("late failure", support.error_of(t.join, t))
        end)
        assert.equal("closed", cb:state()) -- the late failure was admitted before reset()
        assert.equal(1, dike.stats(cb).failures) -- but it is counted as a failure
    end)

    it("all functions wrapped by one breaker share it; its name is the first one's", function()
        local c = fake_clock()
        local cb = dike.circuit_breaker{ window = 2, minimum_calls = 2, clock = c.now }
        local line = debug.getinfo(1, "l").currentline + 1
        local a = cb(function() error("a", 0) end)
        local b = cb(function() error("b", 0) end)
        pcall(a)
        pcall(b)
        assert.equal("open", cb:state())
        local e = support.error_of(b)
        assert.equal(("Circuit open for function spec/circuit_breaker_spec.lua:%d! retry after 30s"):format(line),
                     e.message)
        assert.same(dike.stats(a), dike.stats(b))
        assert.same(dike.stats(cb), dike.stats(a))
        assert.equal(3, dike.stats(cb).calls)
    end)

    it("returns every value, passes errors through unchanged, and works outside coroutines", function()
        local cb = dike.circuit_breaker{}
        local g = cb(function(...) return ... end)
        assert.same({ 1, nil, 3, nil }, { g(1, nil, 3, nil) })
        assert.equal(4, select("#", g(1, nil, 3, nil)))
        assert.equal(0, select("#", g()))
        local e = {}
        assert.equal(e, support.error_of(cb(function() error(e) end)))
        local callable = setmetatable({}, { __call = function(_, x) return x * 2 end })
        assert.equal(8, cb(callable)(4))
        assert.equal(6, dike.run(g, 6))
    end)

    it("the fast path, slow-call timing and the time window agree with a plain model", function()
        -- A pseudo-random run of successes and failures (35% failures) until the breaker opens,
        -- against a model that keeps every outcome: the window is the last W calls (a time
        -- window of 20 s with one call a second holds the last 21: its calls stay up to one
        -- bucket of 1 s longer).
        local configs = { { {}, 20 }, { { slow_call_seconds = 100 }, 20 }, { { window_seconds = 20 }, 21 } }
        for seed = 1, 20 do
            local opened_at = {}
            for k, config in ipairs(configs) do
                local c = fake_clock(0)
                local opts = { minimum_calls = 5, clock = c.now }
                for key, v in pairs(config[1]) do opts[key] = v end
                local cb = dike.circuit_breaker(opts)
                local g = cb((backend()))
                local state, outcomes = seed * 7919, {}
                local model_at
                for i = 1, 400 do
                    state = state * 16807 % 2147483647
                    local fail = state % 100 < 35
                    outcomes[i] = fail
                    c.t = i
                    if fail then pcall(g, "fail") else g("ok") end
                    if model_at == nil then
                        local n, fails = 0, 0
                        for j = math.max(1, i - config[2] + 1), i do
                            n = n + 1
                            if outcomes[j] then fails = fails + 1 end
                        end
                        if n >= 5 and fails / n >= 0.5 then model_at = i end
                    end
                    if cb:state() ~= "closed" then
                        opened_at[k] = i
                        break
                    end
                end
                assert.equal(model_at, opened_at[k])
            end
            assert.equal(opened_at[1], opened_at[2])
        end
    end)

    it("the real clock: half-open open_for seconds after opening (short times, wide margins)", function()
        local cb = dike.circuit_breaker{ window = 1, minimum_calls = 1, open_for = 0.5 }
        local g = cb(function(ok) if not ok then error("down", 0) end return "up" end)
        pcall(g, false)
        local e = support.error_of(g, true)
        assert.equal(dike.CircuitOpen, getmetatable(e))
        assert.is_true(e.retry_after > 0 and e.retry_after <= 0.5)
        dike.run(function() dike.sleep(0.51) end)
        assert.equal("half_open", cb:state())
        assert.equal("up", g(true))
        assert.equal("closed", cb:state())
    end)

    it("methods called without a breaker as self raise a clear error", function()
        local cb = dike.circuit_breaker{}
        for _, m in ipairs({ "state", "isolate", "reset" }) do
            local ok, err = pcall(cb[m])
            assert.is_false(ok)
            assert.matches("dike.circuit_breaker: call " .. m .. " as breaker:" .. m .. "%(%), got nil as self$", err)
        end
    end)

    it("keeps nothing on the loop: an open breaker has no timer", function()
        local cb = dike.circuit_breaker{ window = 1, minimum_calls = 1, open_for = 3600 }
        pcall(cb(function() error("x", 0) end))
        assert.equal("open", cb:state())
        assert.equal(0, require("dike.runtime").pending().timers)
    end)
end)
