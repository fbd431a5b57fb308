-- dike.timeout: the deadline ends the wait with TimeoutError and releases what it held;
-- late returns still raise; composition with retry, limit_jobs, batch; cancellation; what it
-- needs of the runtime's interrupt. Times are short, and only lower bounds are tight (a loaded
-- machine or valgrind makes everything later, never earlier).
local dike = require("dike")
local support = require("spec.support")
local rt = require("dike.runtime")

local clock = support.clock

local function sleeper(seconds)
    return function(...)
        dike.sleep(seconds)
        return ...
    end
end

local function name_of(fn)
    local info = debug.getinfo(fn, "S")
    return info.short_src .. ":" .. info.linedefined
end

describe("dike.timeout", function()
    it("returns every value of a call that ends in time", function()
        local g = dike.timeout{ seconds = 1 }(sleeper(0.001))
        local r = { dike.run(g, 1, nil, "three", nil) }
        assert.same({ 1, nil, "three" }, r)
        assert.equal(4, select("#", dike.run(g, 1, nil, "three", nil)))
        assert.same({ calls = 2, timeouts = 0 }, dike.stats(g))
    end)

    it("ends the wait at the deadline with TimeoutError and the exact message", function()
        local fn = sleeper(10)
        local g = dike.timeout{ seconds = 0.05 }(fn)
        local t0 = clock()
        local e = support.error_of(dike.run, g)
        local elapsed = clock() - t0
        assert.equal(dike.TimeoutError, getmetatable(e))
        assert.equal("Call to function " .. name_of(fn) .. " timed out after 0.05s", e.message)
        assert.equal(e.message, tostring(e))
        assert.is_true(elapsed >= 0.049, tostring(elapsed))
        assert.is_true(elapsed < 5, tostring(elapsed))
        assert.same({ calls = 1, timeouts = 1 }, dike.stats(g))
    end)

    it("names the function by the name option; %.3g seconds", function()
        local e = support.error_of(dike.run, dike.timeout{ seconds = 1 / 300, name = "fetch" }(sleeper(1)))
        assert.equal("Call to function fetch timed out after 0.00333s", e.message)
    end)

    it("a call that returns after its deadline anyway raises TimeoutError; its results are dropped", function()
        -- it does not wait at all: busy for 0.03 s
        local busy = dike.timeout{ seconds = 0.01, name = "busy" }(function()
            local t0 = clock()
            while clock() - t0 < 0.03 do end
            return "late"
        end)
        assert.equal("Call to function busy timed out after 0.01s", support.error_of(busy).message)
        assert.equal("Call to function busy timed out after 0.01s", support.error_of(dike.run, busy).message)
        -- it catches the TimeoutError and returns
        local caught
        local stubborn = dike.timeout{ seconds = 0.02, name = "stubborn" }(function()
            local ok, e = pcall(dike.sleep, 10)
            caught = not ok and e
            return "late"
        end)
        local e = support.error_of(dike.run, stubborn)
        assert.equal(dike.TimeoutError, getmetatable(caught))
        assert.equal(caught, e) -- the same error value reaches the caller
        assert.same({ calls = 1, timeouts = 1 }, dike.stats(stubborn))
        assert.same({ calls = 2, timeouts = 2 }, dike.stats(busy))
    end)

    it("an error raised in time passes through unchanged; one raised after the deadline becomes a timeout", function()
        local e = {}
        local g = dike.timeout{ seconds = 1 }(function() error(e) end)
        assert.equal(e, support.error_of(dike.run, g))
        local late = dike.timeout{ seconds = 0.01, name = "late" }(function()
            pcall(dike.sleep, 1) -- interrupted
            error("after the deadline", 0)
        end)
        assert.equal("Call to function late timed out after 0.01s", support.error_of(dike.run, late).message)
        assert.same({ calls = 1, timeouts = 1 }, dike.stats(late))
    end)

    it("works outside coroutines (nothing to interrupt: the time is measured)", function()
        local g = dike.timeout{ seconds = 1 }(function(x) return x + 1 end)
        assert.equal(2, g(1))
        local slow = dike.timeout{ seconds = 0.001, name = "cpu" }(function()
            local t0 = clock()
            while clock() - t0 < 0.01 do end
        end)
        assert.equal("Call to function cpu timed out after 0.001s", support.error_of(slow).message)
    end)

    it("concurrent calls each time out at their own deadline, in order", function()
        local order = {}
        local g = dike.timeout{ seconds = 0.2 }(function(i, d)
            dike.sleep(d)
            return i
        end)
        local r = dike.run(function()
            local items = {}
            for i = 1, 6 do
                items[i] = function()
                    dike.sleep(0.01 * i)
                    local ok, v = pcall(g, i, i % 2 == 0 and 0.001 or 10)
                    order[#order + 1] = i
                    return ok and v or getmetatable(v)
                end
            end
            return dike.gather(items)
        end)
        for i = 1, 6 do
            if i % 2 == 0 then assert.equal(i, r[i]) else assert.equal(dike.TimeoutError, r[i]) end
        end
        assert.same({ 2, 4, 6, 1, 3, 5 }, order)
        assert.same({ calls = 6, timeouts = 3 }, dike.stats(g))
    end)

    it("retry(timeout(fn)) retries each timed-out attempt", function()
        local logs, restore = support.capture_logs(dike)
        local attempts = 0
        local g = dike.retry{ attempts = 4, log_exception_info = false }(dike.timeout{ seconds = 0.2, name = "t" }(
            function()
                attempts = attempts + 1
                dike.sleep(attempts < 3 and 10 or 0.001)
                return attempts
            end))
        local ok, r = pcall(dike.run, g)
        restore()
        assert.is_true(ok, tostring(r))
        assert.equal(3, r)
        assert.equal(2, #logs)
        assert.equal("Caught exception Call to function t timed out after 0.2s. Retrying in 0s ...", logs[1].message)
    end)

    it("releases a queued limit_jobs place; the queue goes on in order", function()
        local order = {}
        local lim = dike.limit_jobs{ limit = 1, queue = 5 }
        local work = lim(function(i, d)
            dike.sleep(d)
            order[#order + 1] = i
            return i
        end)
        local bounded = dike.timeout{ seconds = 0.02 }(work)
        dike.run(function()
            local first = dike.spawn(work, 1, 0.5)
            local second = dike.spawn(bounded, 2, 0) -- queued behind first: times out there
            local third = dike.spawn(work, 3, 0)     -- queued behind second
            assert.equal(dike.TimeoutError, getmetatable(support.error_of(second.join, second)))
            assert.same({ 1, 0 }, { dike.stats(lim).queued, #order }) -- only third waits now
            assert.equal(1, first:join())
            assert.equal(3, third:join())
        end)
        assert.same({ 1, 3 }, order)
        assert.same({ calls = 3, running = 0, queued = 0, rejected = 0, limit = 1 }, dike.stats(lim))
    end)

    it("withdraws a caller's rows from a batch not yet sent", function()
        local seen = {}
        local double = dike.batch{ target_batch_size = 10, max_waiting_time = 0.05 }(function(xs)
            seen[#seen + 1] = table.concat(xs, ",")
            local out = {}
            for i = 1, #xs do out[i] = 2 * xs[i] end
            return out
        end)
        local bounded = dike.timeout{ seconds = 0.01 }(double)
        dike.run(function()
            local a = dike.spawn(double, { 1 })
            local b = dike.spawn(bounded, { 2, 3 })
            local c = dike.spawn(double, { 4 })
            assert.equal(dike.TimeoutError, getmetatable(support.error_of(b.join, b)))
            assert.same({ 2 }, a:join())
            assert.same({ 8 }, c:join())
        end)
        assert.same({ "1,4" }, seen)
        local s = dike.stats(double)
        assert.same({ 0, 0, 0, 0 }, { s.queued_calls, s.queued_rows, s.running_batches, s.waiting })
    end)

    it("stops waiting for a batch already sent; the other callers get their results", function()
        local slow = dike.batch{ target_batch_size = 2, max_waiting_time = 1 }(function(xs)
            dike.sleep(0.05)
            return xs
        end)
        local bounded = dike.timeout{ seconds = 0.01 }(slow)
        dike.run(function()
            local a = dike.spawn(bounded, { 1 })
            local b = dike.spawn(slow, { 2 })
            assert.equal(dike.TimeoutError, getmetatable(support.error_of(a.join, a)))
            assert.same({ 2 }, b:join())
        end)
        local s = dike.stats(slow)
        assert.same({ 1, 0, 0 }, { s.batches, s.running_batches, s.waiting })
    end)

    it("a cancelled caller gets CancelledError; nothing is left (no timer, no place)", function()
        local g = dike.timeout{ seconds = 10 }(sleeper(10))
        dike.run(function()
            local t = dike.spawn(g)
            dike.sleep(0)
            t:cancel()
            assert.equal(dike.CancelledError, getmetatable(support.error_of(t.join, t)))
        end)
        assert.same({ calls = 1, timeouts = 0 }, dike.stats(g))
        assert.equal(0, require("dike.runtime").pending().timers)
    end)

    it("nested timeouts: each raises its own TimeoutError", function()
        local inner_fn = sleeper(10)
        local inner = dike.timeout{ seconds = 0.02, name = "inner" }(inner_fn)
        local outer = dike.timeout{ seconds = 5, name = "outer" }(inner)
        assert.equal("Call to function inner timed out after 0.02s", support.error_of(dike.run, outer).message)
        assert.same({ calls = 1, timeouts = 0 }, dike.stats(outer))
        local inner2 = dike.timeout{ seconds = 5, name = "inner2" }(inner_fn)
        local outer2 = dike.timeout{ seconds = 0.02, name = "outer2" }(inner2)
        assert.equal("Call to function outer2 timed out after 0.02s", support.error_of(dike.run, outer2).message)
        assert.same({ calls = 1, timeouts = 0 }, dike.stats(inner2))
    end)

    it("seconds = math.huge never times out", function()
        local g = dike.timeout{ seconds = math.huge }(sleeper(0.001))
        assert.equal(7, dike.run(g, 7))
        assert.same({ calls = 1, timeouts = 0 }, dike.stats(g))
    end)

    it("a wrapper used again after its calls ended starts afresh (no timer between calls)", function()
        local g = dike.timeout{ seconds = 0.2 }(function(d) dike.sleep(d) return d end)
        dike.run(function()
            for _ = 1, 3 do
                assert.equal(0.001, g(0.001))
                assert.equal(0, require("dike.runtime").pending().timers)
                assert.equal(dike.TimeoutError, getmetatable(support.error_of(g, 1)))
            end
        end)
        assert.same({ calls = 6, timeouts = 3 }, dike.stats(g))
    end)
end)

describe("the runtime's interrupt, as timeout uses it", function()
    local function interrupt(w, err) return rt.interrupt(w, err) end

    it("ends a wait with the error and runs its hook; false for a task that has ended", function()
        dike.run(function()
            local t = dike.spawn(dike.sleep, 10)
            assert.is_true(interrupt(t, "stop"))
            assert.equal("stop", support.error_of(t.join, t))
            assert.is_false(interrupt(t, "done"))
        end)
        assert.equal(0, rt.pending().timers) -- the sleep's timer went with it
    end)

    it("replaces a value woken but not taken yet", function()
        dike.run(function()
            local resume
            local wait = dike.wrap(function(cb) resume = cb end)
            local t = dike.spawn(wait)
            resume("value") -- woken: it resumes from the loop, later
            assert.is_true(interrupt(t, "instead"))
            assert.equal("instead", support.error_of(t.join, t))
        end)
    end)

    it("gives back a limit_jobs slot handed over but not yet taken", function()
        local lim = dike.limit_jobs{ limit = 1, queue = 5 }
        local ran = {}
        local work = lim(function(i) ran[#ran + 1] = i return i end)
        dike.run(function()
            local waiting, after
            -- This task holds the only slot while two callers queue; when it returns, the slot
            -- is handed to `waiting`, which has not run yet when this task goes on.
            lim(function()
                waiting = dike.spawn(work, 1)
                after = dike.spawn(work, 2)
                assert.equal(2, dike.stats(lim).queued)
            end)()
            assert.same({ 1, 1 }, { dike.stats(lim).running, dike.stats(lim).queued })
            assert.is_true(interrupt(waiting, "timed out")) -- it gives the slot back, to `after`
            assert.equal("timed out", support.error_of(waiting.join, waiting))
            assert.equal(2, after:join())
        end)
        assert.same({ 2 }, ran)
        assert.same({ calls = 3, running = 0, queued = 0, rejected = 0, limit = 1 }, dike.stats(lim))
    end)
end)
