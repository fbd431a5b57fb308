-- Tasks on the loop (docs/tasks.md): spawn, join, cancel, done, run, sleep, gather, wrap.
local dike = require("dike")
local support = require("spec.support")
local uv = require("luv")

describe("dike.run", function()
    it("returns every value of the task", function()
        local a, b, c = dike.run(function(x, y) return x, y, nil end, 1, "two")
        assert.same({ 1, "two" }, { a, b })
        assert.is_nil(c)
        assert.equal(3, select("#", dike.run(function() return 1, 2, nil end)))
        assert.equal(0, select("#", dike.run(function() end)))
    end)

    it("runs a callable table like a function", function()
        local callable = setmetatable({}, { __call = function(_, a) dike.sleep(0); return a * 2 end })
        assert.equal(42, dike.run(callable, 21))
        assert.equal(8, dike.run(function() return dike.spawn(callable, 4):join() end))
    end)

    it("raises the task's error value unchanged", function()
        local e = { code = 7 }
        assert.equal(e, support.error_of(dike.run, function() error(e) end))
        assert.equal("plain", support.error_of(dike.run, function() error("plain", 0) end))
    end)

    it("refuses to run inside a task", function()
        local err = dike.run(function() return support.error_of(dike.run, function() end) end)
        assert.matches("dike.run: cannot be called inside a task", err, 1, true)
    end)

    it("refuses to run while the loop is already running", function()
        local err
        local t = uv.new_timer()
        t:start(0, 0, function()
            err = support.error_of(dike.run, function() end)
            t:close()
        end)
        uv.run()
        assert.matches("dike.run: the loop is already running", err, 1, true)
    end)

    it("returns as soon as its task ends, leaving other handles alone", function()
        local fired = false
        local other = uv.new_timer()
        other:start(200, 0, function() fired = true end)
        local t0 = support.clock()
        dike.run(function() dike.sleep(0.01) end)
        assert.is_true(support.clock() - t0 < 0.15)
        assert.is_false(fired)
        assert.is_true(other:is_active())
        other:close()
        uv.run("nowait")
    end)

    it("raises instead of hanging when nothing can wake the task", function()
        local err = support.error_of(dike.run, function()
            dike.spawn(function() end)
            -- wait on a wrapped callback that is never called
            dike.wrap(function(_) end)()
        end)
        assert.matches("nothing is left that could wake it", err, 1, true)
    end)
end)

describe("dike.sleep", function()
    it("sleeps about the time asked", function()
        local elapsed = dike.run(function()
            local t0 = support.clock()
            dike.sleep(0.05)
            return support.clock() - t0
        end)
        assert.is_true(elapsed >= 0.049, tostring(elapsed))
        assert.is_true(elapsed < 0.5, tostring(elapsed))
    end)

    it("sleep(0) lets other tasks run", function()
        local order = {}
        dike.run(function()
            dike.spawn(function() order[#order + 1] = "b1"; dike.sleep(0); order[#order + 1] = "b2" end)
            order[#order + 1] = "a1"
            dike.sleep(0)
            order[#order + 1] = "a2"
            dike.sleep(0)
        end)
        assert.same({ "b1", "a1", "b2", "a2" }, order)
    end)

    it("sleeps for math.huge or 1e300 seconds until cancelled, next to short timers", function()
        for _, long in ipairs({ math.huge, 1e300, 1e10 }) do
            local r = dike.run(function()
                local sleeper = dike.spawn(function() dike.sleep(long) end)
                local t0 = support.clock()
                dike.sleep(0.02) -- a short timer armed while the far one is pending
                local slept = support.clock() - t0
                local done_early = sleeper:done()
                sleeper:cancel()
                return { slept, done_early, support.error_of(sleeper.join, sleeper) }
            end)
            assert.is_true(r[1] >= 0.019, tostring(r[1]))
            assert.is_false(r[2])
            assert.equal(dike.CancelledError, getmetatable(r[3]))
        end
    end)

    it("rejects bad durations and calls outside a coroutine", function()
        assert.equal("dike.sleep: must be called inside a coroutine (start one with dike.run or dike.spawn)",
                     support.error_of(dike.sleep, 1))
        -- NaN shows as "nan" on every interpreter (Lua 5.4 alone would print 0/0 as "-nan")
        local bad = { { -1, "-1" }, { 0 / 0, "nan" }, { -(0 / 0), "nan" }, { -math.huge, "-inf" },
                      { "1", '"1"' }, { true, "true" }, { {}, "a table" } }
        for _, case in ipairs(bad) do
            local err = dike.run(function() return support.error_of(dike.sleep, case[1]) end)
            assert.equal("dike.sleep: seconds must be a number >= 0, got " .. case[2], err)
        end
    end)
end)

describe("tasks", function()
    it("spawn runs the task at once until its first wait", function()
        local steps = {}
        dike.run(function()
            local t = dike.spawn(function(x)
                steps[#steps + 1] = x
                dike.sleep(0)
                steps[#steps + 1] = "after"
            end, "start")
            assert.same({ "start" }, steps)
            assert.is_false(t:done())
            t:join()
            assert.is_true(t:done())
        end)
        assert.same({ "start", "after" }, steps)
    end)

    it("join returns the values or raises the same error", function()
        local e = setmetatable({}, { __tostring = function() return "custom" end })
        dike.run(function()
            local ok_task = dike.spawn(function() dike.sleep(0.001) return 1, nil, 3 end)
            local bad_task = dike.spawn(function() dike.sleep(0.001) error(e) end)
            assert.equal(e, support.error_of(bad_task.join, bad_task))
            assert.same({ 1, nil, 3, n = 3 }, table.pack and table.pack(ok_task:join())
                        or { n = select("#", ok_task:join()), ok_task:join() })
            assert.equal(e, support.error_of(bad_task.join, bad_task))
            -- joining a finished task again gives the same outcome
            assert.equal(e, support.error_of(bad_task.join, bad_task))
            assert.equal(1, (ok_task:join()))
        end)
    end)

    it("cancel raises CancelledError where the task waits, and it ends", function()
        dike.run(function()
            local reached = false
            local t = dike.spawn(function() dike.sleep(10); reached = true end)
            t:cancel()
            local err = support.error_of(t.join, t)
            assert.equal(dike.CancelledError, getmetatable(err))
            assert.equal("Task was cancelled", err.message)
            assert.equal(err.message, tostring(err))
            assert.is_true(t:done())
            assert.is_false(reached)
            t:cancel() -- no effect on a finished task
        end)
    end)

    it("a task cancelled while running gets CancelledError at its next wait", function()
        local log = {}
        dike.run(function()
            local t
            t = dike.spawn(function()
                dike.sleep(0)
                t:cancel()
                log[#log + 1] = "still running"
                local err = support.error_of(dike.sleep, 0.01)
                log[#log + 1] = getmetatable(err) == dike.CancelledError and "cancelled" or "?"
            end)
            t:join()
        end)
        assert.same({ "still running", "cancelled" }, log)
    end)

    it("a task may catch CancelledError and go on", function()
        local v = dike.run(function()
            local t = dike.spawn(function()
                pcall(dike.sleep, 10)
                return "recovered"
            end)
            t:cancel()
            return t:join()
        end)
        assert.equal("recovered", v)
    end)

    it("logs an error nobody joins, with its traceback, before run returns", function()
        local logs, restore = support.capture_logs(dike)
        dike.run(function()
            dike.spawn(function() dike.sleep(0.001); error("lost error", 0) end)
            dike.spawn(function() error("immediate", 0) end)
            dike.spawn(function() dike.sleep(10) end):cancel() -- cancellations are not reported
            dike.sleep(0.01)
        end)
        restore()
        assert.equal(2, #logs)
        local text = logs[1].message .. logs[2].message
        assert.equal("error", logs[1].level)
        assert.equal("error", logs[2].level)
        assert.matches("lost error", text, 1, true)
        assert.matches("immediate", text, 1, true)
        assert.matches("stack traceback:", logs[1].message, 1, true)
    end)

    it("logs where the error was raised, and a finished task keeps nothing of its stack", function()
        local logs, restore = support.capture_logs(dike)
        local held = setmetatable({}, { __mode = "v" })
        local t
        dike.run(function()
            local function raise_here()
                local big = { "only this task's stack refers to me" }
                held[1] = big
                error("raised deep", 0)
            end
            t = dike.spawn(function() dike.sleep(0); raise_here() end)
            dike.sleep(0.01)
        end)
        restore()
        assert.equal(1, #logs)
        assert.matches("raised deep\n", logs[1].message, 1, true)
        assert.matches("'raise_here'", logs[1].message, 1, true) -- the function that raised
        assert.is_true(t:done())
        collectgarbage()
        collectgarbage()
        assert.is_nil(held[1]) -- the task is still referenced here, its dead stack is not
    end)

    it("does not log an error that is joined", function()
        local logs, restore = support.capture_logs(dike)
        dike.run(function()
            local t = dike.spawn(function() error("seen", 0) end)
            assert.equal("seen", support.error_of(t.join, t))
        end)
        restore()
        assert.same({}, logs)
    end)

    it("task:join outside a coroutine raises the contract's error", function()
        local t
        dike.run(function() t = dike.spawn(function() dike.sleep(0.01) end) end)
        assert.matches("task:join: must be called inside a coroutine", support.error_of(t.join, t), 1, true)
        dike.run(function() t:join() end)
    end)

    it("works when the loop is driven by user code with uv.run()", function()
        local result
        dike.spawn(function()
            dike.sleep(0.01)
            result = "done"
        end)
        uv.run()
        assert.equal("done", result)
    end)
end)

describe("dike.gather", function()
    it("returns the first value of each item in order, with holes for nil", function()
        local r = dike.run(function()
            return dike.gather({
                function() dike.sleep(0.02) return "slow", "ignored" end,
                function() return nil end,
                dike.spawn(function() dike.sleep(0.001) return 3 end),
            })
        end)
        assert.equal(3, r.n)
        assert.equal("slow", r[1])
        assert.is_nil(r[2])
        assert.equal(3, r[3])
    end)

    it("raises the first error at once; the others keep running", function()
        -- No timing: the other item waits for a gate that opens only after gather raised.
        local finished, gate = false, false
        dike.run(function()
            local err = support.error_of(dike.gather, {
                function()
                    while not gate do dike.sleep(0.001) end
                    finished = true
                end,
                function() dike.sleep(0.001) error("first", 0) end,
            })
            assert.equal("first", err)
            assert.is_false(finished) -- raised before the other item ended
            gate = true
            for _ = 1, 1000 do
                if finished then break end
                dike.sleep(0.001)
            end
        end)
        assert.is_true(finished) -- and that item went on to its end
    end)

    it("with return_errors puts the error values in place", function()
        local e = {}
        local r = dike.run(function()
            return dike.gather({ function() error(e) end, function() return 2 end }, { return_errors = true })
        end)
        assert.equal(e, r[1])
        assert.equal(2, r[2])
        assert.equal(2, r.n)
    end)

    it("handles an empty list", function()
        assert.same({ n = 0 }, dike.run(function() return dike.gather({}) end))
    end)

    it("cancelling the gathering task cancels its unfinished items", function()
        dike.run(function()
            local finished = dike.spawn(function() return "early" end)
            local slow1 = dike.spawn(function() dike.sleep(10) end)
            local slow2 = dike.spawn(function() dike.sleep(10) end)
            local g = dike.spawn(function() return dike.gather({ finished, slow1, slow2 }) end)
            dike.sleep(0.001)
            g:cancel()
            assert.equal(dike.CancelledError, getmetatable(support.error_of(g.join, g)))
            assert.equal(dike.CancelledError, getmetatable(support.error_of(slow1.join, slow1)))
            assert.equal(dike.CancelledError, getmetatable(support.error_of(slow2.join, slow2)))
            assert.equal("early", finished:join())
        end)
    end)

    it("rejects bad items and options", function()
        dike.run(function()
            assert.matches("dike.gather: item 2 must be a task or a function, got 5",
                           support.error_of(dike.gather, { function() end, 5 }), 1, true)
            assert.matches("dike.gather: unknown option \"x\"",
                           support.error_of(dike.gather, {}, { x = 1 }), 1, true)
            assert.matches("dike.gather: items must be a list",
                           support.error_of(dike.gather, 5), 1, true)
        end)
    end)

    it("refuses a list with a hole wherever # stops, and runs none of its items", function()
        local ran = 0
        local function item() ran = ran + 1 return ran end
        local beyond = { item } -- # is 1 everywhere
        beyond[3] = item
        local lists = { beyond, { item, nil, item }, { nil, item } }
        local where = { 2, 2, 1 }
        dike.run(function()
            for i, items in ipairs(lists) do
                assert.matches("dike.gather: item " .. where[i] .. " must be a task or a function, got nil",
                               support.error_of(dike.gather, items), 1, true)
                assert.equal(0, ran)
            end
            assert.same({ 1, 2, n = 2 }, dike.gather({ item, item })) -- gather goes on working
        end)
    end)
end)

describe("dike.wrap", function()
    it("waits for a luv callback and returns its values", function()
        local timer = uv.new_timer()
        local after = dike.wrap(function(ms, cb) timer:start(ms, 0, function() cb("fired", ms) end) end)
        local a, b = dike.run(function() return after(5) end)
        timer:close()
        assert.same({ "fired", 5 }, { a, b })
    end)

    it("returns at once when the callback is called synchronously, and ignores a second call", function()
        local sync = dike.wrap(function(x, cb) cb(x * 2); cb("again") end)
        assert.equal(42, dike.run(function() return sync(21) end))
    end)

    it("a cancelled waiter ignores a late callback", function()
        local saved
        local f = dike.wrap(function(cb) saved = cb end)
        dike.run(function()
            local t = dike.spawn(f)
            t:cancel()
            assert.equal(dike.CancelledError, getmetatable(support.error_of(t.join, t)))
            saved("late")
        end)
    end)

    it("needs a function and a coroutine", function()
        assert.matches("dike.wrap: expected a function", support.error_of(dike.wrap, 1), 1, true)
        assert.equal("dike.wrap: must be called inside a coroutine (start one with dike.run or dike.spawn)",
                     support.error_of(dike.wrap(function() end)))
    end)
end)
