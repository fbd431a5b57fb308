-- dike.rate_limit: GCRA with reservations, max_wait, burst, weighted costs, acquire/try,
-- dike.RateLimited, stats and cancellation.
--
-- Two kinds of test. Decisions (admitted at once, refused, the exact retry_after) are checked
-- on a fake clock: the limiter reads the runtime's rt.now, which these tests replace with a
-- number they move by hand, so every value is exact. Waits are checked on the real clock with
-- small `per`: a caller never runs before its turn (a hard lower bound: the timer never fires
-- early), and order and counts are exact; upper bounds are generous (valgrind, a loaded
-- machine).
--
-- On LuaJIT the core is called through the FFI (compiled code); the whole file runs a second
-- time with that turned off, through the Lua C API the other interpreters use.
local dike = require("dike")
local rt = require("dike.runtime")
local rate_limit_module = require("dike.rate_limit")
local support = require("spec.support")

local clock -- the fake clock, while installed
local real_now

local function fake_clock(start)
    real_now = rt.now
    clock = { t = start or 1000 }
    rt.now = function() return clock.t end
end

-- A clock that stands still until resume(), then goes on with real time from where it stood:
-- calls made while it stands all see the same instant (however slowly they are made, under
-- valgrind too), and their waits then run in real time.
local function paused_clock()
    real_now = rt.now
    local real = real_now
    local stood, since = real(), nil
    rt.now = function()
        if since == nil then return stood end
        return stood + (real() - since)
    end
    return { resume = function() since = real() end }
end

local function restore_clock()
    if real_now then
        rt.now = real_now
        real_now, clock = nil, nil
    end
end

local function counters(f)
    return dike.stats(f)
end

local function is_rate_limited(e)
    return getmetatable(e) == dike.RateLimited
end

local modes = { { name = "C API", ffi = false } }
if rate_limit_module.ffi then table.insert(modes, 1, { name = "FFI", ffi = true }) end

for _, mode in ipairs(modes) do
describe("dike.rate_limit (core through the " .. mode.name .. ")", function()
    local saved_ffi
    before_each(function()
        saved_ffi = rate_limit_module.ffi
        rate_limit_module.ffi = mode.ffi
    end)
    after_each(function()
        restore_clock()
        rate_limit_module.ffi = saved_ffi
    end)

    it("uses the core the way this run says", function()
        local R = dike.rate_limit{ rate = 1 }._state
        assert.equal(mode.ffi, type(R.G) == "table")
        -- a cost the Lua side would never pass: the binding's own argument error, either way
        local ok, err = pcall(R.reserve, R.G, 0, 2, 0)
        assert.is_false(ok)
        assert.matches("cost must be a number in [0, burst = 1], got 2", err, 1, true)
        assert.same({ 0 }, { R.reserve(R.G, 0, 1, 0) })
        assert.same({ false, 1 }, { R.reserve(R.G, 0, 1, 0) })
        assert.same({ 1 }, { R.reserve(R.G, 0, 1, 1) })
    end)

    describe("decisions (fake clock)", function()
        it("admits burst calls at once after an idle period, then refuses with the exact retry_after", function()
            fake_clock()
            local f = dike.rate_limit{ rate = 4, per = 1, burst = 4, name = "api" }(function(x) return x, "two" end)
            for i = 1, 4 do
                local a, b = f(i)
                assert.equal(i, a)
                assert.equal("two", b)
            end
            local e = support.error_of(f, 5)
            assert.is_true(is_rate_limited(e))
            assert.equal("Rate limit exceeded for function api! rate=4/1s", e.message)
            assert.equal(e.message, tostring(e))
            assert.equal(0.25, e.retry_after)
            clock.t = clock.t + 0.125
            assert.equal(0.125, support.error_of(f, 6).retry_after)
            clock.t = clock.t + 0.125
            assert.equal(7, f(7))
            assert.same({ calls = 7, admitted = 5, delayed = 0, rejected = 2, waiting = 0 }, counters(f))
        end)

        it("a refused call changes nothing", function()
            fake_clock()
            local f = dike.rate_limit{ rate = 2, per = 1, burst = 1 }(function() return "ran" end)
            assert.equal("ran", f())
            clock.t = clock.t + 0.25
            for _ = 1, 10 do assert.equal(0.25, support.error_of(f).retry_after) end
            clock.t = clock.t + 0.25
            assert.equal("ran", f()) -- exactly one interval after the first: ten refusals cost nothing
        end)

        it("a steady caller at the rate always passes; an idle period refills up to burst only", function()
            fake_clock()
            local f = dike.rate_limit{ rate = 10, per = 0.5, burst = 3 }(function() return true end)
            for _ = 1, 50 do
                assert.is_true(f())
                clock.t = clock.t + 0.05
            end
            clock.t = clock.t + 3600
            for _ = 1, 3 do assert.is_true(f()) end
            assert.is_true(is_rate_limited(support.error_of(f)))
        end)

        it("burst defaults to max(1, floor(rate)) and per to 1", function()
            fake_clock()
            local function passes_at_once(opts)
                local f = dike.rate_limit(opts)(function() end)
                local n = 0
                while support.error_of(f) == nil do n = n + 1 end
                return n, support.error_of(f).retry_after
            end
            assert.same({ 3, 1 / 3.7 }, { passes_at_once{ rate = 3.7 } })
            assert.same({ 1, 2 }, { passes_at_once{ rate = 0.5 } })
            assert.same({ 100, 0.6 }, { passes_at_once{ rate = 100, per = 60 } })
            assert.same({ 5, 0.6 }, { passes_at_once{ rate = 100, per = 60, burst = 5 } })
        end)

        it("a number cost weighs every call", function()
            fake_clock()
            local f = dike.rate_limit{ rate = 4, burst = 4, cost = 2 }(function() return "x" end)
            assert.equal("x", f())
            assert.equal("x", f())
            assert.equal(0.5, support.error_of(f).retry_after)
        end)

        it("a cost function gets the call's arguments; a cost equal to burst passes an idle limiter", function()
            fake_clock()
            local seen = {}
            local f = dike.rate_limit{ rate = 8, burst = 8, cost = function(n, tag)
                seen[#seen + 1] = tag
                return n
            end }(function(n) return n end)
            assert.equal(8, f(8, "a"))
            local e = support.error_of(f, 2, "b")
            assert.equal(0.25, e.retry_after)
            clock.t = clock.t + 0.125
            assert.equal(1, f(1, "c"))
            assert.equal(0.0625, support.error_of(f, 0.5, "d").retry_after)
            assert.same({ "a", "b", "c", "d" }, seen)
        end)

        it("a cost above burst, or a bad cost function result, is the caller's error", function()
            fake_clock()
            local results = { 5, 0, -1, 0 / 0, math.huge, "1", nil }
            local i = 0
            local f = dike.rate_limit{ rate = 4, cost = function() i = i + 1 return results[i] end }(function() end)
            local line = debug.getinfo(1, "l").currentline + 1
            local function call() local r = f() return r end
            local at = "spec/rate_limit_spec.lua:" .. line .. ": "
            assert.equal(at .. "dike.rate_limit: cost 5 exceeds burst 4: such a call could never run",
                         support.error_of(call))
            for _, shown in ipairs({ "0", "-1", "nan", "inf", '"1"', "nil" }) do
                assert.equal(at .. "dike.rate_limit: the cost function's result must be a finite number > 0, got "
                             .. shown, support.error_of(call))
            end
            -- none of them took anything: a fresh burst is still there
            local g = dike.rate_limit{ rate = 4, cost = function() error("cost failed", 0) end }(function() end)
            assert.equal("cost failed", support.error_of(g))
            assert.same({ calls = 7, admitted = 0, delayed = 0, rejected = 0, waiting = 0 }, counters(f))
        end)

        it("names the function as short_src:linedefined by default; %g formats rate and per", function()
            fake_clock()
            local line = debug.getinfo(1, "l").currentline + 1
            local f = dike.rate_limit{ rate = 0.5, per = 0.25, max_wait = 0 }(function() end)
            f()
            local e = support.error_of(f)
            assert.equal(("Rate limit exceeded for function spec/rate_limit_spec.lua:%d! rate=0.5/0.25s"):format(line),
                         e.message)
            local g = dike.rate_limit{ rate = 1e6, per = 3600, burst = 1 }(function() end)
            g()
            assert.equal("Rate limit exceeded for function spec/rate_limit_spec.lua:" .. (line + 5)
                         .. "! rate=1e+06/3600s", support.error_of(g).message)
        end)

        it("functions wrapped by one limiter share its budget and counters", function()
            fake_clock()
            local rl = dike.rate_limit{ rate = 2, burst = 2 }
            local a = rl(function() return "a" end)
            local b = rl(function() return "b" end)
            assert.equal("a", a())
            assert.equal("b", b())
            assert.is_true(is_rate_limited(support.error_of(a)))
            assert.is_true(is_rate_limited(support.error_of(b)))
            assert.same({ calls = 4, admitted = 2, delayed = 0, rejected = 2, waiting = 0 }, counters(rl))
            assert.same(counters(rl), counters(a))
            assert.same(counters(rl), counters(b))
        end)

        it("errors of the function pass through unchanged, and its turn is spent", function()
            fake_clock()
            local e = setmetatable({}, { __tostring = function() return "E" end })
            local f = dike.rate_limit{ rate = 1, burst = 1 }(function() error(e) end)
            assert.equal(e, support.error_of(f))
            assert.is_true(is_rate_limited(support.error_of(f)))
        end)

        it("try takes a turn only when it is free now, and never waits", function()
            fake_clock()
            local rl = dike.rate_limit{ rate = 4, burst = 2, max_wait = 10 }
            assert.same({ true, 0 }, { rl:try() })
            assert.same({ true, 0 }, { rl:try(1) })
            assert.same({ false, 0.25 }, { rl:try() })
            assert.same({ false, 0.5 }, { rl:try(2) })
            clock.t = clock.t + 0.5
            assert.same({ true, 0 }, { rl:try(2) })
            assert.same({ calls = 5, admitted = 3, delayed = 0, rejected = 2, waiting = 0 }, counters(rl))
            -- in a task too: it does not wait even though max_wait would allow it
            dike.run(function() assert.same({ false, 0.5 }, { rl:try(2) }) end)
        end)

        it("acquire raises like a call; admitted at once it needs no coroutine", function()
            fake_clock()
            local line = debug.getinfo(1, "l").currentline + 1
            local rl = dike.rate_limit{ rate = 2, burst = 2 }
            assert.is_nil(rl:acquire())
            assert.is_nil(rl:acquire(1))
            local e = support.error_of(rl.acquire, rl, 1.5)
            assert.is_true(is_rate_limited(e))
            assert.equal(0.75, e.retry_after)
            -- acquire has no function to name: the place where the limiter was made
            assert.equal(("Rate limit exceeded for function spec/rate_limit_spec.lua:%d! rate=2/1s"):format(line),
                         e.message)
            local named = dike.rate_limit{ rate = 1, name = "db" }
            named:acquire()
            assert.equal("Rate limit exceeded for function db! rate=1/1s",
                         support.error_of(named.acquire, named).message)
        end)

        it("a call that would wait outside a coroutine raises the contract's error and reserves nothing", function()
            fake_clock()
            local f = dike.rate_limit{ rate = 1, burst = 1, max_wait = 5 }(function() return "ok" end)
            assert.equal("ok", f()) -- admitted at once: no coroutine needed
            local msg = "dike.rate_limit: must be called inside a coroutine (start one with dike.run or dike.spawn)"
            assert.equal(msg, support.error_of(f))
            local rl = dike.rate_limit{ rate = 1, burst = 1, max_wait = 5 }
            rl:acquire()
            assert.equal("limiter:acquire: must be called inside a coroutine (start one with dike.run or dike.spawn)",
                         support.error_of(rl.acquire, rl))
            clock.t = clock.t + 1
            assert.equal("ok", f()) -- the failed calls took no turn
            -- beyond max_wait it is simply refused
            local g = dike.rate_limit{ rate = 1, burst = 1, max_wait = 0.5 }(function() end)
            g()
            assert.is_true(is_rate_limited(support.error_of(g)))
            assert.same({ calls = 3, admitted = 2, delayed = 0, rejected = 0, waiting = 0 }, counters(f))
        end)

        it("a clock that steps back keeps the wait owed", function()
            fake_clock(5000)
            local f = dike.rate_limit{ rate = 4, burst = 1 }(function() end)
            f()
            clock.t = 1000 -- a wall clock stepped back by more than an hour
            assert.equal(0.25, support.error_of(f).retry_after)
            clock.t = 1000.25
            assert.is_nil(support.error_of(f))
        end)
    end)

    describe("waiting (real clock)", function()
        it("callers run in the order they called, each no earlier than its turn", function()
            local T = 0.01
            local t0
            local ran = {}
            local f = dike.rate_limit{ rate = 1, per = T, burst = 2, max_wait = 1 }(function(i)
                ran[#ran + 1] = { i = i, at = support.clock() - t0 }
                return i * 10
            end)
            local results = dike.run(function()
                t0 = support.clock()
                local items = {}
                for i = 1, 8 do items[i] = function() return f(i) end end
                return dike.gather(items)
            end)
            for i = 1, 8 do
                assert.equal(i * 10, results[i])
                assert.equal(i, ran[i].i)
                -- turns: 0, 0, T, 2T, ... (the first two are the burst)
                local turn = math.max(0, i - 2) * T
                assert.is_true(ran[i].at >= turn - 1e-6,
                               ("caller %d ran at %.4f before its turn %.4f"):format(i, ran[i].at, turn))
            end
            assert.is_true(ran[8].at < 6 * T + 0.5, tostring(ran[8].at))
            assert.same({ calls = 8, admitted = 8, delayed = 6, rejected = 0, waiting = 0 }, counters(f))
        end)

        it("max_wait: a turn within it waits, one beyond is refused at once with its retry_after", function()
            local rl = dike.rate_limit{ rate = 1, per = 0.05, burst = 1, max_wait = 0.125 }
            local f = rl(function(i) return i end)
            local clock_control = paused_clock() -- the five calls are made at one instant
            local r = dike.run(function()
                local items = {}
                for i = 1, 5 do items[i] = dike.spawn(f, i) end
                clock_control.resume()
                return dike.gather(items, { return_errors = true })
            end)
            -- turns 0, 0.05, 0.1: within 0.125; the next two would be 0.15 and (refusals reserve
            -- nothing) 0.15 again
            assert.same({ 1, 2, 3 }, { r[1], r[2], r[3] })
            for i = 4, 5 do
                assert.is_true(is_rate_limited(r[i]))
                assert.near(0.15, r[i].retry_after, 1e-9)
            end
            assert.same({ calls = 5, admitted = 3, delayed = 2, rejected = 2, waiting = 0 }, counters(rl))
        end)

        it("max_wait = math.huge always waits; cost weighs the turns", function()
            local T = 0.005
            local t0
            local at = {}
            local f = dike.rate_limit{ rate = 1, per = T, burst = 3, max_wait = math.huge,
                                       cost = function(c) return c end }(function(_, i)
                at[i] = support.clock() - t0
            end)
            dike.run(function()
                t0 = support.clock()
                local items = {}
                local costs = { 3, 1, 3, 2, 1 }
                for i = 1, #costs do items[i] = function() return f(costs[i], i) end end
                dike.gather(items)
            end)
            -- tat after each: 3T, 4T, 7T, 9T, 10T; turn = tat - 3T
            local turns = { 0, 1, 4, 6, 7 }
            for i = 1, 5 do
                assert.is_true(at[i] >= turns[i] * T - 1e-6,
                               ("caller %d at %.4f, turn %.4f"):format(i, at[i], turns[i] * T))
                if i > 1 then assert.is_true(at[i] >= at[i - 1]) end
            end
        end)

        it("the waiting gauge counts queued callers; one timer serves them all", function()
            local rl = dike.rate_limit{ rate = 1, per = 0.005, burst = 1, max_wait = 10 }
            local f = rl(function(i) return i end)
            local clock_control = paused_clock() -- the calls are made at one instant
            dike.run(function()
                local tasks = {}
                for i = 1, 100 do tasks[i] = dike.spawn(f, i) end
                assert.equal(99, counters(rl).waiting)
                assert.equal(1, rt.pending().timers)
                clock_control.resume()
                for i = 1, 100 do assert.equal(i, tasks[i]:join()) end
                assert.equal(0, counters(rl).waiting)
            end)
            assert.same({ calls = 100, admitted = 100, delayed = 99, rejected = 0, waiting = 0 }, counters(rl))
        end)

        it("acquire waits for its turn like a call", function()
            local rl = dike.rate_limit{ rate = 1, per = 0.02, burst = 1, max_wait = 1 }
            local waited = dike.run(function()
                -- (timed from before the first acquire: its turn is what the second one's counts from)
                local t = support.clock()
                rl:acquire()
                rl:acquire()
                return support.clock() - t
            end)
            assert.is_true(waited >= 0.02 - 1e-6 and waited < 0.5, tostring(waited))
            assert.same({ calls = 2, admitted = 2, delayed = 1, rejected = 0, waiting = 0 }, counters(rl))
        end)

        it("the admitted rate over a run stays within rate/per plus burst", function()
            local T = 0.004
            local rl = dike.rate_limit{ rate = 1, per = T, burst = 5, max_wait = math.huge }
            local times = {}
            local f = rl(function() times[#times + 1] = support.clock() end)
            local start = support.clock() -- before the first call read the clock
            dike.run(function()
                local items = {}
                for i = 1, 60 do items[i] = f end
                dike.gather(items)
            end)
            -- By d seconds after the start, at most burst + d / T calls have run.
            for i = 1, #times do
                local allowed = 5 + (times[i] - start) / T
                assert.is_true(i <= allowed + 1e-6,
                               ("call %d at %.4f s: more than %.2f"):format(i, times[i] - start, allowed))
            end
            assert.is_true(times[60] - start >= 55 * T - 1e-6)
        end)
    end)

    describe("order", function()
        it("a newcomer whose turn is free queues behind callers whose turns came but who have not run", function()
            -- Caller 2 waits for its turn 50 ms away; the test task keeps the loop from running
            -- for 200 ms, then calls: by GCRA alone it could run at once, but caller 2, whose
            -- turn came first, has not run yet. It goes after caller 2.
            local rl = dike.rate_limit{ rate = 1, per = 0.05, burst = 1, max_wait = 1 }
            local ran = {}
            local f = rl(function(i) ran[#ran + 1] = i end)
            local clock_control = paused_clock()
            dike.run(function()
                f(1)
                local t2 = dike.spawn(f, 2)
                clock_control.resume()
                local t0 = support.clock()
                while support.clock() - t0 < 0.2 do end
                f(3)
                t2:join()
            end)
            assert.same({ 1, 2, 3 }, ran)
            assert.same({ calls = 3, admitted = 3, delayed = 2, rejected = 0, waiting = 0 }, counters(rl))
        end)

        it("a caller woken but not yet resumed still counts as waiting: a newcomer goes after it", function()
            -- Callers 2 and 3 wait for turns 50 and 100 ms away; the loop is kept from running
            -- for 200 ms, so one firing of the timer wakes both. Caller 2 runs first and calls
            -- again (caller 4): its turn is free by GCRA alone, but caller 3, woken a moment
            -- ago, has not run yet. Caller 4 goes after it.
            local rl = dike.rate_limit{ rate = 1, per = 0.05, burst = 1, max_wait = 1 }
            local ran = {}
            local f
            f = rl(function(i)
                ran[#ran + 1] = i
                if i == 2 then f(4) end
            end)
            local clock_control = paused_clock()
            dike.run(function()
                f(1)
                local t2 = dike.spawn(f, 2)
                local t3 = dike.spawn(f, 3)
                clock_control.resume()
                local t0 = support.clock()
                while support.clock() - t0 < 0.2 do end
                t2:join()
                t3:join()
            end)
            assert.same({ 1, 2, 3, 4 }, ran)
            assert.same({ calls = 4, admitted = 4, delayed = 3, rejected = 0, waiting = 0 }, counters(rl))
        end)
    end)

    describe("cancellation", function()
        it("a cancelled waiter does not run, its turn is not given back, and nothing is left behind", function()
            local T = 0.02
            local ran = {}
            local rl = dike.rate_limit{ rate = 1, per = T, burst = 1, max_wait = 1 }
            local f = rl(function(i) ran[#ran + 1] = i end)
            local t0
            local at3
            local clock_control = paused_clock()
            dike.run(function()
                t0 = support.clock()
                f(1)
                local t2 = dike.spawn(f, 2)
                local t3 = dike.spawn(function() f(3) at3 = support.clock() - t0 end)
                assert.equal(2, counters(rl).waiting)
                t2:cancel()
                assert.equal(1, counters(rl).waiting) -- at once, before cancel() returned
                clock_control.resume()
                assert.equal(dike.CancelledError, getmetatable(support.error_of(t2.join, t2)))
                t3:join()
            end)
            assert.same({ 1, 3 }, ran)
            -- caller 3 keeps its own turn (2T): the cancelled turn (T) is not handed to it
            assert.is_true(at3 >= 2 * T - 1e-6, tostring(at3))
            assert.same({ calls = 3, admitted = 2, delayed = 1, rejected = 0, waiting = 0 }, counters(rl))
        end)

        it("cancelling every waiter stops the timer; the limiter works afterwards", function()
            local rl = dike.rate_limit{ rate = 1, per = 10, burst = 1, max_wait = 100 }
            local f = rl(function(x) return x end)
            dike.run(function()
                f(0)
                local tasks = {}
                for i = 1, 5 do tasks[i] = dike.spawn(f, i) end
                assert.equal(1, rt.pending().timers)
                for i = 5, 1, -1 do tasks[i]:cancel() end
                assert.equal(0, counters(rl).waiting)
                assert.equal(0, rt.pending().timers)
                for i = 1, 5 do
                    assert.equal(dike.CancelledError, getmetatable(support.error_of(tasks[i].join, tasks[i])))
                end
            end)
            -- the five turns are spent: a call now would wait ~60 s
            local ok, retry_after = rl:try()
            assert.is_false(ok)
            assert.is_true(retry_after > 59 and retry_after <= 60, tostring(retry_after))
            assert.same({ calls = 7, admitted = 1, delayed = 0, rejected = 1, waiting = 0 }, counters(rl))
        end)

        it("cancelling the head keeps the others on time", function()
            local T = 0.01
            local rl = dike.rate_limit{ rate = 1, per = T, burst = 1, max_wait = 1 }
            local ran = {}
            local f = rl(function(i) ran[#ran + 1] = i end)
            local clock_control = paused_clock()
            dike.run(function()
                f(0)
                local tasks = {}
                for i = 1, 4 do tasks[i] = dike.spawn(f, i) end
                tasks[1]:cancel()
                tasks[3]:cancel()
                clock_control.resume()
                tasks[2]:join()
                tasks[4]:join()
            end)
            assert.same({ 0, 2, 4 }, ran)
            assert.equal(0, counters(rl).waiting)
        end)

        it("a waiter cancelled after its turn came but before it resumed does not run", function()
            -- Callers 2 and 3 wait for turns 50 ms and 100 ms away; the test task then keeps the
            -- loop from running for 200 ms, so one firing of the timer wakes both, in order.
            -- Caller 2 runs first and cancels caller 3, woken but not yet resumed: it must not run.
            local rl = dike.rate_limit{ rate = 1, per = 0.05, burst = 1, max_wait = 1 }
            local ran = {}
            local victim
            local f = rl(function(i)
                ran[#ran + 1] = i
                if i == 2 then victim:cancel() end
            end)
            local clock_control = paused_clock()
            dike.run(function()
                f(1)
                local t2 = dike.spawn(f, 2)
                victim = dike.spawn(f, 3)
                assert.equal(2, counters(rl).waiting)
                clock_control.resume()
                local t0 = support.clock()
                while support.clock() - t0 < 0.2 do end -- both turns pass while nothing runs
                t2:join()
                assert.equal(dike.CancelledError, getmetatable(support.error_of(victim.join, victim)))
            end)
            assert.same({ 1, 2 }, ran)
            assert.same({ calls = 3, admitted = 2, delayed = 1, rejected = 0, waiting = 0 }, counters(rl))
        end)
    end)

    describe("options and arguments", function()
        it("rejects bad options when the limiter is made, naming them", function()
            local bad = {
                { {}, "dike.rate_limit: rate must be a finite number > 0, got nil" },
                { { rate = 0 }, "rate must be a finite number > 0, got 0" },
                { { rate = math.huge }, "rate must be a finite number > 0, got inf" },
                { { rate = 1, per = 0 }, "per must be a finite number > 0, got 0" },
                { { rate = 1, burst = 0.5 }, "burst must be a finite number >= 1, got 0.5" },
                { { rate = 1, burst = 0 / 0 }, "burst must be a finite number >= 1, got nan" },
                { { rate = 1, max_wait = -1 }, "max_wait must be a number >= 0, got -1" },
                { { rate = 1, cost = 0 }, "cost must be a finite number > 0 or a function, got 0" },
                { { rate = 1, cost = "2" }, "cost must be a finite number > 0 or a function, got \"2\"" },
                { { rate = 3, cost = 4 }, "dike.rate_limit: cost 4 exceeds burst 3: such a call could never run" },
                { { rate = 10, burst = 2, cost = 2.5 }, "cost 2.5 exceeds burst 2" },
                { { rate = 1, name = 5 }, "name must be a string, got 5" },
                { { rate = 1, limit = 5 }, "dike.rate_limit: unknown option \"limit\"" },
                { nil, "dike.rate_limit: options must be a table, got nil" },
            }
            for _, case in ipairs(bad) do
                local err = support.error_of(dike.rate_limit, case[1])
                assert.is_string(err, case[2])
                assert.matches(case[2], err, 1, true)
            end
            assert.matches("dike.rate_limit: expected a function to wrap, got 3",
                           support.error_of(dike.rate_limit{ rate = 1 }, 3), 1, true)
        end)

        it("checks the cost of acquire and try and how they are called", function()
            fake_clock()
            local rl = dike.rate_limit{ rate = 4, burst = 2 }
            local cases = {
                { rl.acquire, rl, 0, "limiter:acquire: cost must be a finite number > 0, got 0" },
                { rl.acquire, rl, "1", "limiter:acquire: cost must be a finite number > 0, got \"1\"" },
                { rl.try, rl, 0 / 0, "limiter:try: cost must be a finite number > 0, got nan" },
                { rl.try, rl, math.huge, "limiter:try: cost must be a finite number > 0, got inf" },
                { rl.try, rl, 3, "limiter:try: cost 3 exceeds burst 2: such a call could never run" },
                { rl.acquire, rl, 2.5, "limiter:acquire: cost 2.5 exceeds burst 2: such a call could never run" },
                { rl.acquire, 5, nil, "limiter:acquire: expected a rate limiter (call it with a colon), got 5" },
                { rl.try, {}, nil, "limiter:try: expected a rate limiter (call it with a colon), got a table" },
            }
            for _, case in ipairs(cases) do
                local err = support.error_of(function() return case[1](case[2], case[3]) end)
                assert.is_string(err)
                assert.equal(case[4], err:gsub("^[^:]+:%d+: ", ""))
            end
            assert.same({ calls = 0, admitted = 0, delayed = 0, rejected = 0, waiting = 0 }, counters(rl))
            assert.equal("dike.rate_limit(rate=4/1s, burst=2)", tostring(rl))
        end)

        it("an admitted call allocates nothing", function()
            fake_clock()
            local rl = dike.rate_limit{ rate = 1e9, burst = 1e9 }
            local f = rl(function(_, _, c) return c end)
            local function loop(n)
                local acc = 0
                for i = 1, n do acc = acc + f(1, 2, i) end
                return acc
            end
            loop(2000) -- warm up (LuaJIT compiles the loop)
            collectgarbage("collect")
            collectgarbage("stop")
            local before = collectgarbage("count")
            loop(2000)
            local grown = (collectgarbage("count") - before) * 1024
            collectgarbage("restart")
            assert.is_true(grown < 1024, ("2000 admitted calls allocated %d bytes"):format(grown))
        end)
    end)
end)
end
