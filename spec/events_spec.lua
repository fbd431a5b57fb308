-- dike.on_event: one observer for every wrapper; the events' fields; an observer's errors,
-- waits and yields are contained; no observer costs no table and no clock read.
local dike = require("dike")
local support = require("spec.support")
local events = require("dike.events")
local rt = require("dike.runtime")

-- Install an observer that records every event; returns the list and a restore function.
local function record()
    local seen = {}
    local previous = dike.on_event(function(e) seen[#seen + 1] = e end)
    return seen, function() dike.on_event(previous) end
end

-- A breaker that opens on its first failure, and a function through it that fails on demand.
local function tripwire(name)
    local cb = dike.circuit_breaker{ window = 1, minimum_calls = 1, name = name }
    return cb, cb(function(fail) if fail then error("down", 0) end return "up" end)
end

describe("dike.on_event", function()
    local logs, restore_logs
    before_each(function() logs, restore_logs = support.capture_logs(dike) end)
    after_each(function()
        dike.on_event(nil)
        restore_logs()
    end)

    it("installs one observer, returns the previous one, nil removes it", function()
        local a, b = function() end, function() end
        assert.is_nil(dike.on_event(a))
        assert.equal(a, dike.on_event(b))
        assert.equal(b, dike.on_event(nil))
        assert.is_nil(dike.on_event(nil))
        for _, v in ipairs({ 5, "f", {}, true }) do
            local ok, err = pcall(dike.on_event, v)
            assert.is_false(ok)
            assert.matches("dike.on_event: observer must be a function or nil, got ", err, 1, true)
        end
    end)

    it("passes tool, name, event and time (dike.now()), synchronously where it happens", function()
        local seen, restore = record()
        local cb, f = tripwire("db")
        local t0 = dike.now()
        pcall(f, true)
        local t1 = dike.now()
        assert.equal(1, #seen) -- before the call returned
        cb:isolate()
        restore()
        local e = seen[1]
        assert.same({ "circuit_breaker", "db", "state", "closed", "open" }, { e.tool, e.name, e.event, e.from, e.to })
        assert.is_true(e.time >= t0 and e.time <= t1)
        assert.same({ "open", "isolated" }, { seen[2].from, seen[2].to })
    end)

    it("timeout events carry the seconds, from the timer or from a late return", function()
        local seen, restore = record()
        local waits = dike.timeout{ seconds = 0.01, name = "w" }(function() dike.sleep(1) end)
        local busy = dike.timeout{ seconds = 0.001, name = "b" }(function()
            local t0 = support.clock()
            while support.clock() - t0 < 0.01 do end
        end)
        dike.run(function()
            pcall(waits)
            pcall(busy)
        end)
        restore()
        assert.equal(2, #seen)
        assert.same({ "timeout", "w", "timeout", 0.01 }, { seen[1].tool, seen[1].name, seen[1].event, seen[1].seconds })
        assert.same({ "timeout", "b", "timeout", 0.001 },
                    { seen[2].tool, seen[2].name, seen[2].event, seen[2].seconds })
    end)

    it("retry: retry before each retry, give_up when no retry is left; nothing for other errors", function()
        local seen, restore = record()
        local restore_sleeps = select(2, support.record_sleeps())
        local fn = function(e) error(e, 0) end
        local line = debug.getinfo(fn, "S").linedefined
        local g = dike.retry{ attempts = 3, delay = 0.5, backoff = 2, exception_types = "^again" }(fn)
        dike.run(function()
            assert.equal("again", support.error_of(g, "again"))
            assert.equal("other", support.error_of(g, "other"))
        end)
        local budget = dike.retry{ delay = 1, max_elapsed = 0.5, logger = function() end }(fn)
        dike.run(function() support.error_of(budget, "late") end)
        restore_sleeps()
        restore()
        local name = "spec/events_spec.lua:" .. line
        local got = {}
        for i, e in ipairs(seen) do
            assert.equal("retry", e.tool)
            assert.equal(name, e.name)
            got[i] = { e.event, e.attempt, e.delay, e.error }
        end
        assert.same({ { "retry", 1, 0.5, "again" }, { "retry", 2, 1, "again" }, { "give_up", 3, nil, "again" },
                      { "give_up", 1, nil, "late" } }, got)
    end)

    it("limit_jobs: queued, rejected because the queue is full or its time ran out", function()
        local seen, restore = record()
        local lim = dike.limit_jobs{ limit = 1, queue = 1, queue_timeout = 0.01 }
        local hold = lim(function() dike.sleep(0.05) end)
        local quick = dike.limit_jobs{ limit = 0, name = "zero" }(function() end)
        dike.run(function()
            local holder = dike.spawn(hold)
            local waiter = dike.spawn(hold)                        -- queued, then its time runs out
            assert.equal(dike.TooManyCalls, getmetatable(support.error_of(hold))) -- the queue is full
            assert.equal(dike.TooManyCalls, getmetatable(support.error_of(waiter.join, waiter)))
            holder:join()
            assert.equal(dike.TooManyCalls, getmetatable(support.error_of(quick)))
        end)
        restore()
        local got = {}
        for i, e in ipairs(seen) do got[i] = { e.tool, e.event, e.reason } end
        assert.same({ { "limit_jobs", "queued" }, { "limit_jobs", "rejected", "full" },
                      { "limit_jobs", "rejected", "queue_timeout" }, { "limit_jobs", "rejected", "full" } }, got)
        assert.matches("^spec/events_spec.lua:%d+$", seen[1].name)
        assert.equal("zero", seen[4].name)
    end)

    it("batch: sent (by size, time or cap), done, timeout", function()
        local seen, restore = record()
        local double = dike.batch{ target_batch_size = 2, max_waiting_time = 0.01, max_batch_size = 3 }(
            function(xs)
                if xs[1] == 0 then error("zero", 0) end
                local out = {}
                for i = 1, #xs do out[i] = 2 * xs[i] end
                return out
            end)
        local stuck = dike.batch{ target_batch_size = 1, max_waiting_time = 1, max_processing_time = 0.01 }(
            function(xs) dike.sleep(1) return xs end)
        dike.run(function()
            dike.gather({ function() return double({ 1 }) end, function() return double({ 2 }) end }) -- size
            double({ 3 })                                                                           -- time
            dike.gather({ function() return double({ 4 }) end,
                          function() return double({ 5, 6, 7 }) end }, { return_errors = true })      -- cap
            support.error_of(double, { 0, 1 })                                                      -- raises
            support.error_of(stuck, { 9 })                                                          -- timeout
        end)
        restore()
        local got = {}
        for i, e in ipairs(seen) do
            got[i] = e.event .. " " .. e.rows .. (e.calls and " " .. e.calls or "")
                .. (e.reason and " " .. e.reason or "") .. (e.ok ~= nil and " " .. tostring(e.ok) or "")
            if e.event == "done" then assert.is_true(e.seconds >= 0 and e.seconds < 5) end
        end
        assert.same({ "sent 2 2 size", "done 2 true", "sent 1 1 time", "done 1 true", "sent 1 1 cap",
                      "sent 3 1 size", "done 1 true", "done 3 true", "sent 2 1 size", "done 2 false",
                      "sent 1 1 size", "timeout 1" }, got)
    end)

    it("a wrapper of a dike wrapper is named as the function it wraps", function()
        local seen, restore = record()
        local fn = function() error("down", 0) end
        local line = debug.getinfo(fn, "S").linedefined
        local inner = dike.timeout{ seconds = 1, name = "backend" }(fn)
        local cb = dike.circuit_breaker{ window = 1, minimum_calls = 1 }
        local g = dike.limit_jobs{ limit = 0 }(dike.retry{ attempts = 1 }(cb(inner)))
        local plain = dike.retry{ attempts = 2, logger = function() end }(cb(dike.batch{ target_batch_size = 1,
            max_waiting_time = 1 }(fn)))
        assert.equal("Too many calls to function backend! limit=0 exceeded", support.error_of(g).message)
        -- the batch raises "down", the breaker opens, the retry gets CircuitOpen
        assert.equal(dike.CircuitOpen, getmetatable(support.error_of(dike.run, plain, { 1 })))
        restore()
        local names = {}
        for i, e in ipairs(seen) do names[i] = e.tool .. " " .. e.event .. " " .. e.name end
        local at = "spec/events_spec.lua:" .. line
        -- the breaker is named by the first function it wrapped (inner: "backend")
        assert.same({ "limit_jobs rejected backend", "batch sent " .. at, "batch done " .. at,
                      "circuit_breaker state backend", "retry retry backend", "retry give_up backend" }, names)
    end)

    it("with no observer, emitting builds no table and reads no clock", function()
        local now, reads = rt.now, 0
        rt.now = function() reads = reads + 1 return now() end
        collectgarbage("collect")
        collectgarbage("stop")
        local before = collectgarbage("count")
        for i = 1, 10000 do events.emit("retry", "f", "retry", "attempt", i, "delay", 0.5, "error", "x") end
        local grew = collectgarbage("count") - before
        collectgarbage("restart")
        rt.now = now
        assert.equal(0, reads)
        assert.is_true(grew < 1, grew .. " KiB") -- 10,000 event tables would be hundreds of KiB
        assert.is_false(events.observed())
        dike.on_event(function() end)
        assert.is_true(events.observed())
    end)

    it("keeps up to four extra fields", function()
        local seen, restore = record()
        events.emit("batch", "n", "sent", "rows", 3, "calls", 2, "reason", "size", "x", false)
        events.emit("batch", "n", "done")
        restore()
        assert.same({ tool = "batch", name = "n", event = "sent", time = seen[1].time, rows = 3, calls = 2,
                      reason = "size", x = false }, seen[1])
        assert.same({ tool = "batch", name = "n", event = "done", time = seen[2].time }, seen[2])
    end)

    it("an observer that raises is bypassed for that event, logged once per occurrence", function()
        local n = 0
        dike.on_event(function()
            n = n + 1
            error("observer broke " .. n, 0)
        end)
        local cb, f = tripwire("raising")
        assert.equal("down", support.error_of(f, true)) -- the call's own error, unchanged
        cb:reset()
        assert.equal("up", f(false))
        assert.equal("closed", cb:state())
        assert.equal(2, n)
        local errs = {}
        for _, l in ipairs(logs) do if l.level == "error" then errs[#errs + 1] = l.message end end
        assert.same({
            "event observer raised (bypassed for event state of circuit_breaker raising): observer broke 1",
            "event observer raised (bypassed for event state of circuit_breaker raising): observer broke 2",
        }, errs)
    end)

    it("an error whose __tostring fails is shown by its type", function()
        dike.on_event(function() error(setmetatable({}, { __tostring = function() error("no", 0) end })) end)
        local cb = dike.circuit_breaker{ name = "ts" }
        cb:isolate()
        assert.equal("event observer raised (bypassed for event state of circuit_breaker ts): <table> (its"
                     .. " __tostring failed: no)", logs[2].message)
    end)

    it("an observer that waits gets a raise where it waits; nothing is left behind", function()
        local caught
        dike.on_event(function(e)
            local ok, err = pcall(dike.sleep, 0.01)
            caught = { ok, err, e.event }
        end)
        local _, f = tripwire("waits")
        dike.run(function()
            assert.equal("down", support.error_of(f, true))
            assert.equal(dike.CircuitOpen, getmetatable(support.error_of(f, false)))
        end)
        assert.is_false(caught[1])
        assert.matches("^dike.sleep: ", caught[2])
        assert.equal("state", caught[3])
        -- and one that does not catch it: logged, bypassed
        dike.on_event(function() dike.sleep(0.01) end)
        dike.circuit_breaker{ name = "w2" }:isolate()
        assert.matches("^event observer raised %(bypassed for event state of circuit_breaker w2%): dike.sleep: ",
                       logs[#logs].message)
    end)

    it("an observer that yields is resumed, then reported; one that keeps yielding is dropped", function()
        local steps = {}
        dike.on_event(function()
            steps[#steps + 1] = "before"
            coroutine.yield("x")
            steps[#steps + 1] = "after"
        end)
        local cb = dike.circuit_breaker{ name = "y" }
        dike.run(function() cb:isolate() end) -- emitted where it could yield: in a coroutine
        assert.same({ "before", "after" }, steps)
        assert.equal("event observer yielded (bypassed for event state of circuit_breaker y): observers must not"
                     .. " wait", logs[#logs].message)
        dike.on_event(function() while true do coroutine.yield() end end)
        dike.run(function() cb:reset() end)
        assert.equal("event observer yielded (bypassed for event state of circuit_breaker y): observers must not"
                     .. " wait; it was dropped after 8 resumes", logs[#logs].message)
        assert.equal("closed", cb:state())
        -- the next observer runs normally, in a coroutine and on the main thread
        local seen, restore = record()
        dike.run(function() cb:isolate() end)
        cb:reset()
        restore()
        assert.same({ "isolated", "closed" }, { seen[1].to, seen[2].to })
    end)

    it("on the main thread (a loop callback), a yield raises there and is reported like an error", function()
        local after = false
        dike.on_event(function()
            coroutine.yield()
            after = true
        end)
        dike.circuit_breaker{ name = "m" }:isolate()
        assert.is_false(after)
        assert.matches("^event observer raised %(bypassed for event state of circuit_breaker m%): .*yield",
                       logs[#logs].message)
    end)

    it("events emitted by an observer reach it too, in order", function()
        local order = {}
        local inner = dike.circuit_breaker{ name = "inner" }
        dike.on_event(function(e)
            order[#order + 1] = e.name .. " " .. e.to
            if e.name == "outer" then inner:isolate() end
        end)
        dike.circuit_breaker{ name = "outer" }:isolate()
        assert.same({ "outer isolated", "inner isolated" }, order)
    end)

    it("a logger that raises while an observer's failure is reported: stderr takes the message", function()
        local written = {}
        local real = io.stderr
        local fake = { write = function(_, ...) for _, s in ipairs({ ... }) do written[#written + 1] = s end end }
        io.stderr = fake -- luacheck: ignore 122
        local previous = dike.set_logger(function() error("logger broke", 0) end)
        dike.on_event(function() error("observer broke", 0) end)
        local ok, err = pcall(events.emit, "retry", "r", "give_up")
        dike.set_logger(previous)
        io.stderr = real -- luacheck: ignore 122
        assert.is_true(ok, tostring(err))
        assert.equal("ERROR:dike:event observer raised (bypassed for event give_up of retry r): observer broke"
                     .. "\n(written by dike's built-in logger: the logger raised an error: logger broke)\n",
                     table.concat(written))
    end)
end)
