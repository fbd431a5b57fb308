-- The runtime: any coroutine can wait, resumes only by dike, tasks that yield on their own,
-- several copies of dike, closed loop handles, and user code that cannot break the loop.
local dike = require("dike")
local rt = require("dike.runtime")
local support = require("spec.support")
local uv = require("luv")

-- Run the loop (in a task) until `done()` or `seconds` pass.
local function drive(done, seconds)
    local deadline = support.clock() + (seconds or 5)
    dike.run(function()
        while not done() and support.clock() < deadline do dike.sleep(0.001) end
    end)
    assert.is_true(done(), "timed out")
end

describe("any coroutine can wait", function()
    it("a coroutine made with coroutine.wrap waits in every tool and gets its values", function()
        local batched = dike.batch{ target_batch_size = 2, max_waiting_time = 0.01 }(function(xs)
            local out = {}
            for i = 1, #xs do out[i] = xs[i] * 10 end
            return out
        end)
        local limited = dike.limit_jobs{ limit = 1, queue = 1 }(function(x) dike.sleep(0.005); return x end)
        local n = 0
        local retried = dike.retry{ attempts = 3, delay = 0.002, logger = function() end }(function()
            n = n + 1
            if n < 3 then error("again", 0) end
            return "third"
        end)
        local stat = dike.wrap(uv.fs_stat)
        local results, finished = {}, 0
        local function plain(i, fn)
            coroutine.wrap(function()
                results[i] = { fn() }
                finished = finished + 1
            end)()
        end
        local t = dike.spawn(function() dike.sleep(0.003); return "joined" end)
        plain(1, function() dike.sleep(0.002); return "slept" end)
        plain(2, function() return batched({ 1 })[1] end)
        plain(3, function() return batched({ 2 })[1] end)
        plain(4, function() return limited("first") end)
        plain(5, function() return limited("queued") end)
        plain(6, retried)
        plain(7, function() local err, st = stat(".") return err, st and st.type end)
        plain(8, function() return t:join() end)
        plain(9, function()
            local r = dike.gather({ function() dike.sleep(0.001); return "a" end, t })
            return r[1], r[2], r.n
        end)
        assert.equal(0, finished) -- every one of them is waiting
        drive(function() return finished == 9 end)
        assert.same({ "slept" }, results[1])
        assert.same({ 10 }, results[2])
        assert.same({ 20 }, results[3])
        assert.same({ "first" }, results[4])
        assert.same({ "queued" }, results[5])
        assert.same({ "third" }, results[6])
        assert.same({ nil, "directory" }, results[7])
        assert.same({ "joined" }, results[8])
        assert.same({ "a", "joined", 2 }, results[9])
        local s = dike.stats(limited)
        assert.same({ 0, 0 }, { s.running, s.queued })
    end)

    it("works when the loop is driven by user code with uv.run()", function()
        local got
        coroutine.wrap(function()
            dike.sleep(0.005)
            got = "after the wait"
        end)()
        uv.run()
        assert.equal("after the wait", got)
    end)

    it("an error a coroutine raises after dike resumed it is logged, with its traceback", function()
        local logs, restore = support.capture_logs(dike)
        coroutine.wrap(function()
            dike.sleep(0.001)
            error("late failure", 0)
        end)()
        drive(function() return #logs > 0 end)
        restore()
        assert.equal(1, #logs)
        assert.equal("error", logs[1].level)
        assert.matches("^Unhandled error in a coroutine: late failure\n", logs[1].message)
        assert.matches("runtime_spec.lua", logs[1].message, 1, true)
    end)

    it("a coroutine that dike resumed and that then yields on its own is reported and left", function()
        local logs, restore = support.capture_logs(dike)
        local co = coroutine.create(function()
            dike.sleep(0.001)
            local v = coroutine.yield("mine")
            return "resumed by its owner with " .. v
        end)
        assert.is_true(coroutine.resume(co))
        drive(function() return #logs > 0 end)
        restore()
        assert.equal("error", logs[1].level)
        assert.matches("yielded with coroutine.yield", logs[1].message, 1, true)
        assert.equal("suspended", coroutine.status(co))
        assert.same({ true, "resumed by its owner with x" }, { coroutine.resume(co, "x") })
    end)
end)

describe("a resume by anyone but dike", function()
    local function message(fname)
        return fname .. ": the coroutine was resumed by someone other than dike while it waited"
            .. " (only dike may resume a coroutine waiting in dike)"
    end

    it("raises where the coroutine waits, after undoing the wait: a queue place, a batch row, a timer", function()
        local hold = dike.limit_jobs{ limit = 1, queue = 5, name = "hold" }(function() dike.sleep(0.02) end)
        local batched = dike.batch{ target_batch_size = 10, max_waiting_time = 5 }(function(xs) return xs end)
        local holder = dike.spawn(hold)
        local cases = {
            { function() hold() end, "dike.limit_jobs",
              function() return dike.stats(hold).queued end },
            { function() batched({ 1 }) end, "dike.batch",
              function() return dike.stats(batched).queued_rows end },
            { function() dike.sleep(5) end, "dike.sleep",
              function() return rt.pending().timers end },
        }
        for _, case in ipairs(cases) do
            local before = case[3]()
            local co = coroutine.create(function() return pcall(case[1]) end)
            assert.is_true(coroutine.resume(co)) -- waits in dike
            assert.equal("suspended", coroutine.status(co))
            assert.equal(before + 1, case[3]())
            local ok, caught, err = coroutine.resume(co, "not dike")
            assert.is_true(ok)
            assert.is_false(caught)
            assert.equal(message(case[2]), err)
            assert.equal(before, case[3]()) -- undone
        end
        dike.run(function() holder:join() end)
        assert.same({ 0, 0 }, { dike.stats(hold).running, dike.stats(hold).queued })
    end)

    it("a task resumed by a stranger ends with that error, for its joiners", function()
        local co
        local t = dike.spawn(function()
            co = coroutine.running()
            dike.sleep(5)
        end)
        local ok, err = coroutine.resume(co)
        assert.is_false(ok)
        assert.equal(message("dike.sleep"), err)
        assert.is_true(t:done())
        assert.equal(message("dike.sleep"), dike.run(function() return select(2, pcall(t.join, t)) end))
    end)
end)

describe("a task whose own code yields with coroutine.yield", function()
    it("fails with a clear error and gives back its limit_jobs slot (every interpreter)", function()
        local f = dike.limit_jobs{ limit = 1 }(function() coroutine.yield() end)
        local g = dike.limit_jobs{ limit = 1 }(function(x) return x end)
        local nested = dike.limit_jobs{ limit = 1 }(function() return f() end)
        local err = dike.run(function()
            local t = dike.spawn(function() return nested() end)
            return select(2, pcall(t.join, t))
        end)
        assert.equal("dike: a task yielded with coroutine.yield; wait with dike's functions instead", err)
        assert.equal(0, dike.stats(f).running)
        assert.equal(0, dike.stats(nested).running)
        -- the slots are usable again
        assert.equal(0, dike.run(function()
            local t = dike.spawn(f) -- fails again, the same way
            pcall(t.join, t)
            return dike.stats(f).running
        end))
        assert.equal(7, dike.run(g, 7))
    end)
end)

describe("dike.gather", function()
    it("refuses to gather the task that gathers (it would wait for itself)", function()
        local err = dike.run(function()
            local me
            me = dike.spawn(function()
                dike.sleep(0)
                return select(2, pcall(dike.gather, { function() end, me }))
            end)
            return me:join()
        end)
        assert.equal("dike.gather: item 2 is the task that gathers (it would wait for itself)", err)
    end)
end)

describe("several copies of dike", function()
    -- every module of dike but the C core (which a second copy shares, as Lua's require does)
    local names = {}
    for name in pairs(package.loaded) do
        if name == "dike" or name:match("^dike%.") and name ~= "dike.core" then names[#names + 1] = name end
    end

    -- A fresh copy of dike (as a plugin reloader makes it), and the first copy put back.
    local function second_copy()
        local saved = {}
        for _, name in ipairs(names) do
            saved[name] = package.loaded[name]
            package.loaded[name] = nil
        end
        local d2 = require("dike")
        local rt2 = package.loaded["dike.runtime"]
        for _, name in ipairs(names) do package.loaded[name] = saved[name] end
        return d2, rt2
    end

    it("each keeps working: the old copy's tasks still wake, under dike.run and uv.run", function()
        local d1 = dike
        local d2, rt2 = second_copy()
        assert.are_not.equal(d1, d2)
        finally(function() rt2.host.close(); uv.run("nowait") end)
        assert.equal("one", d1.run(function() d1.sleep(0.005); return "one" end))
        assert.equal("two", d2.run(function() d2.sleep(0.005); return "two" end))
        local got = {}
        d1.spawn(function() d1.sleep(0.01); got[#got + 1] = "d1" end)
        d2.spawn(function() d2.sleep(0.005); got[#got + 1] = "d2" end)
        coroutine.wrap(function() d1.sleep(0.015); got[#got + 1] = "plain in d1" end)()
        uv.run()
        table.sort(got) -- (the order of the wakes is not the point: valgrind can reorder them)
        assert.same({ "d1", "d2", "plain in d1" }, got)
        assert.same({ timers = 0, ready = 0, unreported = 0 }, rt2.pending())
    end)
end)

describe("closed loop handles", function()
    local function close_all()
        uv.walk(function(h) if not h:is_closing() then h:close() end end)
    end

    it("after uv.walk closes every handle, dike makes new ones: sleep works, sleep(0) does not spin", function()
        dike.run(function() dike.sleep(0.001) end) -- dike's handles exist
        close_all()
        local t0 = support.clock()
        assert.equal("slept", dike.run(function() dike.sleep(0.01); return "slept" end))
        assert.is_true(support.clock() - t0 >= 0.0095)
        close_all()
        t0 = support.clock()
        assert.equal("yielded", dike.run(function() dike.sleep(0); return "yielded" end))
        assert.is_true(support.clock() - t0 < 1)
        -- and with the handles closed while work was queued, under the user's uv.run
        dike.spawn(function() dike.sleep(0) end)
        close_all()
        local done = false
        dike.spawn(function() dike.sleep(0.005); done = true end)
        uv.run()
        assert.is_true(done)
    end)
end)

describe("the alarm", function()
    -- dike's timer handle, if it is armed (host.handles(): { timer, idle })
    local function armed()
        local timer = rt.host.handles()[1]
        return timer ~= nil and timer:is_active()
    end

    it("stays armed while a task adds and cancels timers, and is disarmed at the end of its turn", function()
        local f = dike.timeout{ seconds = 30 }(function(x) return x + 1 end)
        local during
        local t = dike.spawn(function()
            local s = 0
            for i = 1, 100 do s = s + f(i) end
            during = armed() -- the last timer went, the alarm waits for the turn's end
            return s
        end)
        local t0 = support.clock()
        uv.run() -- returns at once: nothing keeps the loop alive after the task's turn
        assert.is_true(support.clock() - t0 < 5, "uv.run waited for the alarm")
        assert.is_true(during)
        assert.is_false(armed())
        assert.same({ true, 5150 }, { rt.outcome(t) })
        -- the same inside dike.run, which returns with the alarm disarmed
        assert.equal(5150, dike.run(function()
            local s = 0
            for i = 1, 100 do s = s + f(i) end
            return s
        end))
        assert.is_false(armed())
    end)

    it("is disarmed at once when the last timer goes outside any task", function()
        local e = rt.timer(30, function() end)
        assert.is_true(armed())
        rt.cancel_timer(e)
        assert.is_false(armed())
        local f = dike.timeout{ seconds = 30 }(function() return "plain" end)
        local co = coroutine.create(function() return f() end) -- a plain coroutine, resumed by us
        assert.same({ true, "plain" }, { coroutine.resume(co) })
        assert.is_false(armed())
    end)
end)

describe("user code cannot break the loop", function()
    it("a failing timer callback is logged; the loop and dike go on", function()
        local logs, restore = support.capture_logs(dike)
        rt.timer(0, function() error("boom", 0) end)
        assert.equal("after", dike.run(function() dike.sleep(0.005); return "after" end))
        restore()
        assert.equal(1, #logs)
        assert.equal("error", logs[1].level)
        assert.matches("^dike: internal error in a timer callback: boom", logs[1].message)
    end)
end)

describe("the luv host's clock", function()
    it("is uv.hrtime's clock in seconds (read through the FFI on LuaJIT), and never goes back", function()
        local now = require("dike.runtime.luv").monotonic_clock(uv)
        local before = uv.hrtime() * 1e-9
        local t = now()
        local after = uv.hrtime() * 1e-9
        assert.is_true(t >= before - 1e-6 and t <= after + 1e-6, ("%.9f not in [%.9f, %.9f]"):format(t, before, after))
        local last = now()
        for _ = 1, 1000 do
            local x = now()
            assert.is_true(x >= last)
            last = x
        end
        assert.equal(rt.now, rt.host.now)
    end)
end)
