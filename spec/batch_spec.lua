-- dike.batch in list mode (docs/batch.md).
local dike = require("dike")
local support = require("spec.support")

local function assert_idle(f)
    local s = dike.stats(f)
    assert.same({ 0, 0, 0, 0 }, { s.queued_calls, s.queued_rows, s.running_batches, s.waiting })
end

-- A batched "add" that records each batch it receives.
local function recording_add(opts)
    local seen = {}
    local add = dike.batch(opts)(function(a, b)
        seen[#seen + 1] = { a, b }
        local out = {}
        for i = 1, #a do out[i] = a[i] + b[i] end
        return out
    end)
    return add, seen
end

-- Run fns concurrently (each in its own task) and return gather's results with errors in place.
local function concurrently(fns)
    return dike.run(function() return dike.gather(fns, { return_errors = true }) end)
end

describe("dike.batch", function()
    it("the README example: one call with the concatenation, each caller its slice", function()
        local add, seen = recording_add{ target_batch_size = 3, max_waiting_time = 10 }
        local r = concurrently({
            function() return add({ 0 }, { 1 }) end,
            function() return add({ 1 }, { 1 }) end,
            function() return add({ 2, 3 }, { 1, 1 }) end,
        })
        assert.same({ { { 0, 1, 2, 3 }, { 1, 1, 1, 1 } } }, seen)
        assert.same({ 1 }, r[1])
        assert.same({ 2 }, r[2])
        assert.same({ 3, 4 }, r[3])
        assert.same({ calls = 3, batches = 1, queued_calls = 0, queued_rows = 0, running_batches = 0,
                      waiting = 0 }, dike.stats(add))
    end)

    it("sends at once when the target is reached, without waiting for the timer", function()
        local add, seen = recording_add{ target_batch_size = 3, max_waiting_time = 10 }
        local t0 = support.clock()
        concurrently({
            function() return add({ 1 }, { 1 }) end,
            function() return add({ 2 }, { 2 }) end,
            function() return add({ 3 }, { 3 }) end,
        })
        assert.is_true(support.clock() - t0 < 0.5)
        assert.equal(1, #seen)
        assert_idle(add)
    end)

    it("sends a smaller batch max_waiting_time after its first call", function()
        local add, seen = recording_add{ target_batch_size = 10, max_waiting_time = 0.01 }
        local t0 = support.clock()
        local r = concurrently({
            function() return add({ 1 }, { 1 }) end,
            function() return add({ 2 }, { 2 }) end,
            function() return add({ 3 }, { 3 }) end,
        })
        local elapsed = support.clock() - t0
        assert.is_true(elapsed >= 0.0095 and elapsed < 0.3, tostring(elapsed))
        assert.same({ { { 1, 2, 3 }, { 1, 2, 3 } } }, seen)
        assert.same({ { 2 }, { 4 }, { 6 } }, { r[1], r[2], r[3] })
        assert_idle(add)
    end)

    it("runs over the target without splitting: rows 1+3+2 with target 5", function()
        local add, seen = recording_add{ target_batch_size = 5, max_waiting_time = 10 }
        local r = concurrently({
            function() return add({ 1 }, { 0 }) end,
            function() return add({ 2, 3, 4 }, { 0, 0, 0 }) end,
            function() return add({ 5, 6 }, { 0, 0 }) end,
        })
        assert.equal(1, #seen)
        assert.equal(6, #seen[1][1])
        assert.same({ { 1 }, { 2, 3, 4 }, { 5, 6 } }, { r[1], r[2], r[3] })
        assert_idle(add)
    end)

    it("named-sequence calls in any key order give the same as positional ones", function()
        local got = {}
        local f = dike.batch{ target_batch_size = 2, max_waiting_time = 10 }(function(kw)
            got[#got + 1] = kw
            local out = {}
            for i = 1, #kw.a do out[i] = kw.a[i] - kw.b[i] end
            return out
        end)
        local r = concurrently({
            function() return f({ a = { 10 }, b = { 1 } }) end,
            function() return f({ b = { 2, 3 }, a = { 20, 30 } }) end,
        })
        assert.same({ { a = { 10, 20, 30 }, b = { 1, 2, 3 } } }, got)
        assert.same({ 9 }, r[1])
        assert.same({ 18, 27 }, r[2])
        local add = recording_add{ target_batch_size = 2, max_waiting_time = 10 }
        local p = concurrently({
            function() return add({ 10 }, { -1 }) end,
            function() return add({ 20, 30 }, { -2, -3 }) end,
        })
        assert.same({ r[1], r[2] }, { p[1], p[2] })
        assert_idle(f)
    end)

    it("mixes positional and named arguments in one call", function()
        local f = dike.batch{ target_batch_size = 3, max_waiting_time = 10 }(function(xs, opts)
            local out = {}
            for i = 1, #xs do out[i] = xs[i] * opts.k[i] end
            return out
        end)
        local r = concurrently({
            function() return f({ 1, 2 }, { k = { 10, 100 } }) end,
            function() return f({ 3 }, { k = { 1000 } }) end,
        })
        assert.same({ 10, 200 }, r[1])
        assert.same({ 3000 }, r[2])
    end)

    it("call-shape errors reach only the offending caller; the valid calls still succeed", function()
        local add, seen = recording_add{ target_batch_size = 3, max_waiting_time = 0.01 }
        local r = concurrently({
            function() return add({ 1 }, { 1 }) end,
            function() return add({ a = { 1 }, b = { 1 } }) end,   -- named where positional
            function() return add({ 1 }, { 1 }, { 1 }) end,        -- three arguments, not two
            function() return add() end,                           -- an empty call
            function() return add({}, {}) end,                     -- no rows
            function() return add({ 1, 2 }, { 1 }) end,            -- unequal lengths
            function() return add({ 2 }, { 2 }) end,
        })
        assert.same({ 2 }, r[1])
        assert.equal("dike.batch: called with 1 arguments, but the calls queued for this batch pass 2", r[2])
        assert.equal("dike.batch: called with 3 arguments, but the calls queued for this batch pass 2", r[3])
        assert.equal("dike.batch: a call needs at least one argument (its rows)", r[4])
        assert.equal("dike.batch: argument 1 is empty: a call needs at least one row", r[5])
        assert.equal("dike.batch: argument 2 has 1 rows but argument 1 has 2", r[6])
        assert.same({ 4 }, r[7])
        assert.equal(1, #seen)
        assert.same({ { 1, 2 }, { 1, 2 } }, seen[1])
        assert_idle(add)
    end)

    it("refuses sequences with holes wherever # stops, on every interpreter", function()
        local f = dike.batch{ target_batch_size = 1, max_waiting_time = 1 }(function(xs)
            local out = {}
            for i = 1, #xs do out[i] = xs[i] * 10 end
            return out
        end)
        local beyond = { 1 } -- # is 1 everywhere: element 3 lives past the border
        beyond[3] = 3
        local inside = { 1, nil, 3 } -- # is 3 on Lua 5.4 and 1 on LuaJIT
        local cases = {
            { beyond, "dike.batch: argument 1 has a hole at index 2" },
            { inside, "dike.batch: argument 1 has a hole at index 2" },
            { { nil, 2 }, "dike.batch: argument 1 has a hole at index 1" },
            { { n = 1, 5 }, nil }, -- a non-integer key is not a hole
        }
        dike.run(function()
            for _, case in ipairs(cases) do
                if case[2] then
                    assert.equal(case[2], support.error_of(f, case[1]))
                    assert.equal(case[2]:gsub("argument 1", "argument 1 field \"k\""),
                                 support.error_of(f, { k = case[1] }))
                else
                    assert.same({ 50 }, f(case[1]))
                end
                assert.same({ 70, 80 }, f({ 7, 8 })) -- the same wrapper goes on working
            end
        end)
        assert_idle(f)
    end)

    it("checks kinds and key sets against the batch's first call", function()
        local f = dike.batch{ target_batch_size = 4, max_waiting_time = 0.01 }(function(kw)
            local out = {}
            for i = 1, #kw.a do out[i] = kw.a[i] end
            return out
        end)
        local r = concurrently({
            function() return f({ a = { 1 }, b = { 1 } }) end,
            function() return f({ a = { 2 }, c = { 2 } }) end,
            function() return f({ 5 }) end,
            function() return f({ a = { 1, 2 }, b = { 1 } }) end,
            function() return f({ a = { 3 }, b = { 3 } }) end,
            function() return f({ a = 3 }) end,
            function() return f({ [1.5] = { 3 } }) end,
        })
        assert.same({ 1 }, r[1])
        assert.equal("dike.batch: argument 1 has keys {a, c}, but the calls queued for this batch have {a, b}", r[2])
        assert.equal("dike.batch: argument 1 is a sequence, but the calls queued for this batch pass"
                     .. " named sequences there",
                     r[3])
        assert.matches("dike.batch: argument 1 field \"[ab]\" has %d rows but field \"[ab]\" has %d", r[4])
        assert.same({ 3 }, r[5])
        assert.equal("dike.batch: argument 1 field \"a\" must be a non-empty sequence, got 3", r[6])
        assert.equal("dike.batch: argument 1 mixes named sequences with a non-string key 1.5", r[7])
        assert_idle(f)
    end)

    it("every caller of a batch whose function raises gets the same error value", function()
        local e = { reason = "backend down" }
        local f = dike.batch{ target_batch_size = 3, max_waiting_time = 10 }(function() error(e) end)
        local r = concurrently({
            function() return f({ 1 }) end,
            function() return f({ 2 }) end,
            function() return f({ 3 }) end,
        })
        assert.equal(e, r[1])
        assert.equal(e, r[2])
        assert.equal(e, r[3])
        assert_idle(f)
    end)

    it("checks the result length and type", function()
        local short = dike.batch{ target_batch_size = 2, max_waiting_time = 10 }(function() return { 1 } end)
        local r = concurrently({ function() return short({ 1 }) end, function() return short({ 2 }) end })
        assert.matches("returned 1 results for a batch of 2 rows %(expected a sequence of 2 results, one per row%)",
                       r[1])
        assert.equal(r[1], r[2])
        local notable = dike.batch{ target_batch_size = 1, max_waiting_time = 10 }(function() return 42 end)
        assert.matches("returned a number for a batch of 1 rows",
                       dike.run(function() return support.error_of(notable, { 1 }) end))
        assert_idle(short)
        assert_idle(notable)
    end)

    it("dike.fail marks rows that failed; only their callers raise", function()
        local f = dike.batch{ target_batch_size = 5, max_waiting_time = 10 }(function(xs)
            local out = {}
            for i = 1, #xs do
                out[i] = xs[i] < 0 and dike.fail("negative: " .. xs[i]) or xs[i] * 10
            end
            return out
        end)
        local r = concurrently({
            function() return f({ 1 }) end,
            function() return f({ 2, -1, -2 }) end,
            function() return f({ 3 }) end,
        })
        assert.same({ 10 }, r[1])
        assert.equal("negative: -1", r[2])
        assert.same({ 30 }, r[3])
        assert_idle(f)
    end)

    it("max_processing_time: every caller raises TimeoutError and nothing is left", function()
        local cancelled = false
        local f = dike.batch{ target_batch_size = 2, max_waiting_time = 10, max_processing_time = 0.02 }(
            function(xs)
                local ok, err = pcall(dike.sleep, 10)
                cancelled = not ok and getmetatable(err) == dike.CancelledError
                return xs
            end)
        local t0 = support.clock()
        local r = concurrently({ function() return f({ 1 }) end, function() return f({ 2 }) end })
        local elapsed = support.clock() - t0
        assert.equal(dike.TimeoutError, getmetatable(r[1]))
        assert.equal(r[1], r[2])
        assert.matches("did not return within max_processing_time %(0.02s%)", r[1].message)
        assert.is_true(elapsed >= 0.019 and elapsed < 0.5, tostring(elapsed))
        assert.is_true(cancelled)
        assert_idle(f)
    end)

    it("a caller cancelled before its batch is sent is taken out of it", function()
        local add, seen = recording_add{ target_batch_size = 3, max_waiting_time = 0.02 }
        dike.run(function()
            local t1 = dike.spawn(add, { 1 }, { 1 })
            local t2 = dike.spawn(add, { 2 }, { 2 })
            assert.equal(2, dike.stats(add).queued_calls)
            t1:cancel()
            assert.equal(1, dike.stats(add).queued_calls) -- before cancel() returned
            assert.equal(1, dike.stats(add).queued_rows)
            local t3 = dike.spawn(add, { 3 }, { 3 })
            assert.same({ 4 }, t2:join())
            assert.same({ 6 }, t3:join())
            assert.equal(dike.CancelledError, getmetatable(support.error_of(t1.join, t1)))
        end)
        assert.same({ { { 2, 3 }, { 2, 3 } } }, seen)
        assert_idle(add)
    end)

    it("cancelling every queued caller leaves nothing behind, timer included", function()
        local add, seen = recording_add{ target_batch_size = 3, max_waiting_time = 10 }
        dike.run(function()
            local t1 = dike.spawn(add, { 1 }, { 1 })
            local t2 = dike.spawn(add, { 2 }, { 2 })
            t1:cancel()
            t2:cancel()
            support.error_of(t1.join, t1)
            support.error_of(t2.join, t2)
        end)
        assert.same({}, seen)
        assert_idle(add)
    end)

    it("cancelling every caller of a sent batch cancels its task: nothing is left once the calls ended", function()
        local started, stopped = 0
        local f = dike.batch{ target_batch_size = 2, max_waiting_time = 10, max_processing_time = 30 }(function(xs)
            started = started + 1
            local ok, e = pcall(dike.sleep, 20)
            stopped = not ok and getmetatable(e)
            if not ok then error(e, 0) end
            return xs
        end)
        -- cancelled while the function runs, and cancelled after the send, before it started
        for _, wait_first in ipairs({ true, false }) do
            stopped = nil
            dike.run(function()
                local t1 = dike.spawn(f, { 1 })
                local t2 = dike.spawn(f, { 2 }) -- the batch is full: sent
                if wait_first then dike.sleep(0.01) end
                t1:cancel()
                assert.equal(1, dike.stats(f).waiting)
                t2:cancel()
                local s = dike.stats(f) -- at once, as the calls have ended
                assert.same({ 0, 0 }, { s.running_batches, s.waiting })
                support.error_of(t1.join, t1)
                support.error_of(t2.join, t2)
                dike.sleep(0) -- let the batch's task see its cancellation
            end)
            assert.equal(wait_first and dike.CancelledError or nil, stopped)
        end
        assert.equal(1, started) -- the second batch's function never started
        assert.equal(2, dike.stats(f).batches)
        assert_idle(f)
    end)

    it("a caller cancelled after its batch was sent does not get its result; the others do", function()
        local f = dike.batch{ target_batch_size = 2, max_waiting_time = 10 }(function(xs)
            dike.sleep(0.01)
            return xs
        end)
        dike.run(function()
            local t1 = dike.spawn(f, { 1 })
            local t2 = dike.spawn(f, { 2 }) -- fills the batch
            dike.sleep(0.001)
            assert.equal(2, dike.stats(f).waiting)
            t2:cancel()
            assert.equal(1, dike.stats(f).waiting)
            assert.same({ 1 }, t1:join())
            assert.equal(dike.CancelledError, getmetatable(support.error_of(t2.join, t2)))
        end)
        assert_idle(f)
    end)

    it("cancelling the caller that filled a batch does not strand the others", function()
        local f = dike.batch{ target_batch_size = 2, max_waiting_time = 10 }(function(xs) return xs end)
        dike.run(function()
            local t1 = dike.spawn(f, { 1 })
            local t2 = dike.spawn(f, { 2 })
            t2:cancel() -- before the batch's task has even started
            assert.same({ 1 }, t1:join())
            support.error_of(t2.join, t2)
        end)
        assert_idle(f)
    end)

    it("max_batch_size: a call that would pass the cap starts the next batch", function()
        local add, seen = recording_add{ target_batch_size = 4, max_batch_size = 4, max_waiting_time = 0.01 }
        local r = concurrently({
            function() return add({ 1, 1 }, { 0, 0 }) end,
            function() return add({ 2, 2, 2 }, { 0, 0, 0 }) end,  -- 5 > 4: the open batch goes first
            function() return add({ 3 }, { 0 }) end,
            function() return add({ 4, 4, 4, 4, 4 }, { 0, 0, 0, 0, 0 }) end, -- larger than the cap: alone
        })
        assert.same({ { 1, 1 }, { 2, 2, 2 }, { 3 }, { 4, 4, 4, 4, 4 } }, { r[1], r[2], r[3], r[4] })
        assert.same({ { 1, 1 }, { 2, 2, 2, 3 }, { 4, 4, 4, 4, 4 } }, { seen[1][1], seen[2][1], seen[3][1] })
        assert.equal(3, #seen)
        assert_idle(add)
    end)

    it("several batches may run at the same time", function()
        local running, peak = 0, 0
        local f = dike.batch{ target_batch_size = 1, max_waiting_time = 10 }(function(xs)
            running = running + 1
            peak = math.max(peak, running)
            dike.sleep(0.01)
            running = running - 1
            return xs
        end)
        concurrently({ function() return f({ 1 }) end, function() return f({ 2 }) end, function() return f({ 3 }) end })
        assert.equal(3, peak)
        assert.equal(3, dike.stats(f).batches)
        assert_idle(f)
    end)

    it("random concurrency: 5 tasks x 20 sequential calls each get their own value doubled", function()
        math.randomseed(7)
        local f = dike.batch{ target_batch_size = 4, max_waiting_time = 0.002 }(function(xs)
            local out = {}
            for i = 1, #xs do out[i] = xs[i] * 2 end
            return out
        end)
        local wrong = 0
        local items = {}
        for w = 1, 5 do
            items[w] = function()
                for i = 1, 20 do
                    local v = w * 1000 + i
                    dike.sleep(math.random() * 0.003)
                    local r = f({ v })
                    if #r ~= 1 or r[1] ~= 2 * v then wrong = wrong + 1 end
                end
                return true
            end
        end
        local r = concurrently(items)
        for w = 1, 5 do assert.is_true(r[w]) end
        assert.equal(0, wrong)
        assert.equal(100, dike.stats(f).calls)
        assert.is_true(dike.stats(f).batches < 100)
        assert_idle(f)
    end)

    it("must be called inside a coroutine", function()
        local add = recording_add{ target_batch_size = 1, max_waiting_time = 1 }
        assert.equal("dike.batch: must be called inside a coroutine (start one with dike.run or dike.spawn)",
                     support.error_of(add, { 1 }, { 1 }))
        assert_idle(add)
    end)

    it("rejects invalid options when the decorator is made", function()
        local ABOVE_2_53 = " (integers above 2^53 are not exact)"
        local ok = { target_batch_size = 2, max_waiting_time = 1 }
        local function with(k, v)
            local o = { target_batch_size = 2, max_waiting_time = 1 }
            o[k] = v
            return o
        end
        assert.is_function(dike.batch(ok))
        local bad = {
            { with("target_batch_size", 0), "dike.batch: target_batch_size must be an integer >= 1, got 0" },
            { with("target_batch_size", nil), "dike.batch: target_batch_size must be an integer >= 1, got nil" },
            { with("target_batch_size", 2.5), "target_batch_size must be an integer >= 1, got 2.5" },
            { with("target_batch_size", math.huge), "target_batch_size must be an integer >= 1, got inf" },
            { with("max_waiting_time", 0), "max_waiting_time must be a finite number > 0, got 0" },
            { with("max_waiting_time", nil), "max_waiting_time must be a finite number > 0, got nil" },
            { with("max_waiting_time", 0 / 0), "max_waiting_time must be a finite number > 0" },
            { with("max_processing_time", -1), "max_processing_time must be a finite number > 0, got -1" },
            { with("argument_type", "numpy"), 'argument_type must be one of "list" or "array", got "numpy"' },
            { with("max_batch_size", 1), "max_batch_size must be >= target_batch_size (2), got 1" },
            { with("max_batch_size", 0), "max_batch_size must be an integer >= 1" },
            { with("target_batch_size", 1e300), "target_batch_size must be an integer >= 1, got 1e+300" .. ABOVE_2_53 },
            { with("max_batch_size", 1e300),
              "max_batch_size must be an integer >= 1 or math.huge, got 1e+300" .. ABOVE_2_53 },
            { with("size", 1), "dike.batch: unknown option \"size\"" },
            { "x", "dike.batch: options must be a table, got \"x\"" },
        }
        for _, case in ipairs(bad) do
            local err = support.error_of(dike.batch, case[1])
            assert.is_string(err, case[2])
            assert.matches(case[2], err, 1, true)
        end
        assert.matches("dike.batch: expected a function to wrap, got a table",
                       support.error_of(dike.batch(ok), {}), 1, true)
    end)
end)
