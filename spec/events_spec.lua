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
