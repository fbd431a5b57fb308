-- User code cannot break dike (README: Errors, Logging, dike.batch): error values whose
-- tostring fails, loggers that raise or yield, batch results and arguments that misbehave,
-- odd errors in retry. Every case checks the gauges of the wrappers it used; spec/helper.lua
-- then checks that no timer, task or handle is left; and the process is alive to check it.
-- Groups: the tool side first (description, logging, batch, retry); the runtime's cases
-- (foreign yields, several copies of dike, closed handles, gather of itself) at the end.
local dike = require("dike")
local errors = require("dike.errors")
local support = require("spec.support")
local uv = require("luv")

local unpack = table.unpack or unpack -- luacheck: ignore 143
local format = string.format

-- Lua's # honours __len on PUC Lua 5.2+, not on LuaJIT (5.1 semantics).
local HONOURS_LEN = #setmetatable({}, { __len = function() return 1 end }) == 1

local function raising_tostring(msg)
    return setmetatable({}, { __tostring = function() error(msg or "x", 0) end })
end

local BAD_TOSTRING = {
    -- name, __tostring, what describe says
    { "raises", function() error("x", 0) end, "<table> (its __tostring failed: x)" },
    { "returns nil", function() return nil end, "<table> (its __tostring failed: it returned nil, not a string)" },
    { "returns a table", function() return {} end,
      "<table> (its __tostring failed: it returned a table, not a string)" },
}

local NOTE_RAISED = "\n(written by dike's built-in logger: the logger raised an error: "
local NOTE_YIELDED = "\n(written by dike's built-in logger: the logger yielded)"

-- What the built-in logger writes to io.stderr while fn runs (it looks io.stderr up per
-- message); io.stderr is restored even if fn fails.
local function stderr_of(fn)
    local real, written = io.stderr, {}
    io.stderr = { write = function(self, ...) -- luacheck: ignore 122
        for i = 1, select("#", ...) do written[#written + 1] = select(i, ...) end
        return self
    end }
    local ok, err = pcall(fn)
    io.stderr = real -- luacheck: ignore 122
    if not ok then error(err, 0) end
    return table.concat(written)
end

-- Install `logger` as the default one for the rest of the test.
local function default_logger(logger)
    local previous = dike.set_logger(logger)
    finally(function() dike.set_logger(previous) end)
end

local function batch_gauges(f)
    local s = dike.stats(f)
    return { queued_calls = s.queued_calls, queued_rows = s.queued_rows, running_batches = s.running_batches,
             waiting = s.waiting }
end
local BATCH_IDLE = { queued_calls = 0, queued_rows = 0, running_batches = 0, waiting = 0 }

local function name_of(fn)
    local info = debug.getinfo(fn, "S")
    return info.short_src .. ":" .. info.linedefined
end

-- Each caller in a task of its own (each reaches its wait), then `between()` in the driving
-- task while they wait; returns between's result and, per caller, {true, result} or {false, error}.
local function callers(f, calls, between)
    return dike.run(function()
        local tasks = {}
        for i, args in ipairs(calls) do
            -- the call's outcome is the task's value: nothing is reported as unhandled
            tasks[i] = dike.spawn(function() return { pcall(f, unpack(args, 1, args.n or #args)) } end)
        end
        local extra = between and { pcall(between) }
        local out = {}
        for i, t in ipairs(tasks) do out[i] = t:join() end
        return extra, out
    end)
end

describe("errors.describe", function()
    it("is tostring for values whose tostring works", function()
        assert.equal("boom", errors.describe("boom"))
        assert.equal(tostring(1.5), errors.describe(1.5))
        assert.equal("nil", errors.describe(nil))
        assert.equal("false", errors.describe(false))
        local t = {}
        assert.equal(tostring(t), errors.describe(t))
        assert.equal(tostring(print), errors.describe(print))
        assert.equal("E!", errors.describe(setmetatable({}, { __tostring = function() return "E!" end })))
        assert.equal("too many", errors.describe(dike.TooManyCalls.new("too many")))
        local arr = dike.array({ 1 })
        assert.equal(tostring(arr), errors.describe(arr))
        -- a callable table as __tostring, and a metatable hidden behind __metatable
        local callable = setmetatable({}, { __call = function() return "called" end })
        assert.equal("called", errors.describe(setmetatable({}, { __tostring = callable })))
        assert.equal("hidden", errors.describe(setmetatable({}, { __tostring = function() return "hidden" end,
                                                                  __metatable = false })))
        -- a number from __tostring is taken as its text, as PUC Lua's tostring does
        assert.equal("5", errors.describe(setmetatable({}, { __tostring = function() return 5 end })))
    end)

    for _, case in ipairs(BAD_TOSTRING) do
        it("never raises: a __tostring that " .. case[1], function()
            assert.equal(case[3], errors.describe(setmetatable({}, { __tostring = case[2] })))
        end)
    end

    it("names the type and keeps the position of an error raised with one", function()
        local u = setmetatable({}, { __tostring = function() error("bad") end, __metatable = "locked" })
        assert.matches("^<table> %(its __tostring failed: .*reliability_spec%.lua:%d+: bad%)$", errors.describe(u))
        -- the reason is an error object: described once more, then by its type
        local nested = setmetatable({}, { __tostring = function() error(raising_tostring("y")) end })
        assert.equal("<table> (its __tostring failed: <table>)", errors.describe(nested))
        local nested_ok = setmetatable({}, { __tostring = function() error(dike.TimeoutError.new("slow")) end })
        assert.equal("<table> (its __tostring failed: slow)", errors.describe(nested_ok))
    end)

    it("never yields its caller: a __tostring that yields", function()
        local y = setmetatable({}, { __tostring = function() coroutine.yield("leaked"); return "s" end })
        local co = coroutine.wrap(function() return "done", errors.describe(y) end)
        assert.same({ "done", "<table> (its __tostring failed: it yielded)" }, { co() })
        assert.equal("<table> (its __tostring failed: it yielded)", errors.describe(y)) -- outside a coroutine
    end)

    it("is used by dike.fail's tostring and for the names of callable tables", function()
        assert.equal("dike.fail(<table> (its __tostring failed: x))", tostring(dike.fail(raising_tostring())))
        local callable = setmetatable({}, { __call = function() return 1 end,
                                            __tostring = function() error("x", 0) end })
        local f = dike.limit_jobs{ limit = 0 }(callable)
        local err = dike.run(function() return support.error_of(f) end)
        assert.equal("Too many calls to function <table> (its __tostring failed: x)! limit=0 exceeded", err.message)
        assert.same({ calls = 1, running = 0, queued = 0, rejected = 1, limit = 0 }, dike.stats(f))
    end)
end)

describe("loggers that fail", function()
    it("a default logger that raises is bypassed: the built-in logger writes the message, with a note", function()
        default_logger(function() error("logger down", 0) end)
        local out = stderr_of(function() require("dike.log").log("warning", "hello") end)
        assert.equal("WARNING:dike:hello" .. NOTE_RAISED .. "logger down)\n", out)
    end)

    it("its error may be any value: described safely", function()
        default_logger(function() error(raising_tostring("y")) end)
        local out = stderr_of(function() require("dike.log").log("error", "hello") end)
        assert.equal("ERROR:dike:hello" .. NOTE_RAISED .. "<table> (its __tostring failed: y))\n", out)
    end)

    it("a default logger that yields is bypassed, and its caller is not yielded", function()
        default_logger(function() coroutine.yield("leaked") end)
        local co = coroutine.wrap(function()
            local out = stderr_of(function() require("dike.log").log("warning", "hello") end)
            return "done", out
        end)
        assert.same({ "done", "WARNING:dike:hello" .. NOTE_YIELDED .. "\n" }, { co() })
        -- outside any coroutine too
        local out = stderr_of(function() require("dike.log").log("info", "hi") end)
        assert.equal("INFO:dike:hi" .. NOTE_YIELDED .. "\n", out)
    end)

    it("a logger that failed once gets the next message again; a logger may log through dike", function()
        local log = require("dike.log")
        local seen, mode = {}, "yield"
        default_logger(function(level, message)
            if mode == "yield" then mode = "raise"; coroutine.yield() end
            if mode == "raise" then mode = "nested"; error("once", 0) end
            if mode == "nested" then
                mode = "plain"
                log.log("info", "inner " .. message)
            end
            seen[#seen + 1] = level .. ":" .. message
        end)
        local out = stderr_of(function()
            for i = 1, 4 do log.log("warning", "m" .. i) end
        end)
        assert.equal("WARNING:dike:m1" .. NOTE_YIELDED .. "\nWARNING:dike:m2" .. NOTE_RAISED .. "once)\n", out)
        assert.same({ "info:inner m3", "warning:m3", "warning:m4" }, seen)
    end)

    it("a logger that works still gets every message, in the caller's order", function()
        local logs, restore = support.capture_logs(dike)
        finally(restore)
        local out = stderr_of(function()
            require("dike.log").log("warning", "one")
            require("dike.log").log("error", "two")
        end)
        assert.equal("", out)
        assert.same({ { level = "warning", message = "one" }, { level = "error", message = "two" } }, logs)
    end)
end)

describe("an error nobody joins", function()
    local function failing_task(tostring_fn)
        return dike.spawn(function()
            dike.sleep(0.001)
            error(setmetatable({}, { __tostring = tostring_fn }))
        end)
    end

    for _, case in ipairs(BAD_TOSTRING) do
        it("whose __tostring " .. case[1] .. " is reported with the <table> wording (loop driven by uv.run)",
           function()
            local logs, restore = support.capture_logs(dike)
            finally(restore)
            local t = failing_task(case[2])
            uv.run()
            assert.is_true(t:done())
            assert.equal(1, #logs)
            assert.equal("error", logs[1].level)
            local first, rest = logs[1].message:match("^([^\n]*)\n(.*)$")
            assert.equal("Unhandled error in task: " .. case[3], first)
            assert.matches("^stack traceback:\n", rest)
        end)
    end

    it("is reported before dike.run returns, the task driving the loop unaffected", function()
        local logs, restore = support.capture_logs(dike)
        finally(restore)
        local r = dike.run(function()
            failing_task(BAD_TOSTRING[1][2])
            dike.sleep(0.01)
            return "still here"
        end)
        assert.equal("still here", r)
        assert.equal(1, #logs)
        assert.equal("Unhandled error in task: <table> (its __tostring failed: x)", logs[1].message:match("^[^\n]*"))
    end)

    it("is written by the built-in logger when the default logger raises", function()
        default_logger(function() error("logger down", 0) end)
        local out = stderr_of(function()
            failing_task(BAD_TOSTRING[1][2])
            uv.run()
        end)
        local head = "ERROR:dike:Unhandled error in task: <table> (its __tostring failed: x)\nstack traceback:\n"
        assert.equal(head, out:sub(1, #head))
        assert.equal(NOTE_RAISED .. "logger down)\n", out:sub(-#NOTE_RAISED - 13))
    end)

    it("is written by the built-in logger when the default logger yields", function()
        default_logger(function() coroutine.yield() end)
        local out = stderr_of(function()
            failing_task(function() return nil end)
            uv.run()
        end)
        assert.equal("ERROR:dike:Unhandled error in task: <table> (its __tostring failed: it returned nil, not a"
                     .. " string)\n", out:match("^[^\n]*\n"))
        assert.equal(NOTE_YIELDED .. "\n", out:sub(-#NOTE_YIELDED - 1))
    end)
end)

describe("batch results that misbehave", function()
    -- Two callers of one batch; the function returns what make_result() gives.
    local function two_callers(make_result, opts)
        local fn = function() return make_result() end
        local f = dike.batch(opts or { target_batch_size = 2, max_waiting_time = 1 })(fn)
        local _, out = callers(f, { { { 1 } }, { { 2 } } })
        assert.same(BATCH_IDLE, batch_gauges(f))
        return out, fn, f
    end

    local function mismatch(fn, got)
        return format("dike.batch: %s returned %s for a batch of 2 rows (expected a sequence of 2 results, one"
                      .. " per row)", name_of(fn), got)
    end

    it("a result whose __len raises: every caller raises, nothing is left", function()
        local out, fn = two_callers(function()
            return setmetatable({}, { __len = function() error("len failed", 0) end })
        end)
        local expected = HONOURS_LEN and "len failed" or mismatch(fn, "0 results")
        assert.same({ { false, expected }, { false, expected } }, out)
    end)

    it("a result whose __len returns a non-number, or a huge number", function()
        local out, fn = two_callers(function() return setmetatable({}, { __len = function() return "two" end }) end)
        local expected = HONOURS_LEN and mismatch(fn, 'a table whose length (#) is "two"') or mismatch(fn, "0 results")
        assert.same({ { false, expected }, { false, expected } }, out)
        local out2, fn2 = two_callers(function() return setmetatable({}, { __len = function() return 1000 end }) end)
        local expected2 = mismatch(fn2, HONOURS_LEN and "1000 results" or "0 results")
        assert.same({ { false, expected2 }, { false, expected2 } }, out2)
    end)

    it("a result whose __index raises for a missing row: every caller raises, nothing is left", function()
        local function result()
            -- a batch of three rows whose row 2 is missing: PUC Lua's # of this is 3, LuaJIT's 1
            return setmetatable({ 10, nil, 30 }, { __index = function(_, k) error("no row " .. k, 0) end })
        end
        local fn = function() return result() end
        local f = dike.batch{ target_batch_size = 3, max_waiting_time = 1 }(fn)
        local _, out = callers(f, { { { 1 } }, { { 2 } }, { { 3 } } })
        assert.same(BATCH_IDLE, batch_gauges(f))
        local n = #result() -- where this interpreter's # stops decides what goes wrong
        local expected = n == 3 and "no row 2" or format(
            "dike.batch: %s returned %d results for a batch of 3 rows (expected a sequence of 3 results, one"
            .. " per row)", name_of(fn), n)
        assert.same({ { false, expected }, { false, expected }, { false, expected } }, out)
    end)

    it("a result whose metamethods work is read through them", function()
        local out = two_callers(function()
            local rows = { "a", "b" }
            return setmetatable({}, { __len = function() return 2 end, __index = rows })
        end)
        if HONOURS_LEN then
            assert.same({ { true, { "a" } }, { true, { "b" } } }, out)
        else
            assert.equal(false, out[1][1])
        end
        local out2 = two_callers(function() return setmetatable({ "a", dike.fail("row 2") }, { __index = {} }) end)
        assert.same({ { true, { "a" } }, { false, "row 2" } }, out2)
    end)

    it("a row whose metatable's __eq raises does not disturb delivery", function()
        local meta = setmetatable({}, { __eq = function() error("eq", 0) end })
        local odd = setmetatable({}, { __metatable = meta })
        local out = two_callers(function() return { odd, "b" } end)
        assert.is_true(out[1][1])
        assert.equal(odd, out[1][2][1])
        assert.same({ true, { "b" } }, out[2])
    end)

    it("a result whose __index yields: the callers time out, nothing is left", function()
        local _, restore = support.capture_logs(dike) -- the runtime reports the yield
        finally(restore)
        local out = two_callers(function()
            -- PUC Lua reads row 1 (missing: __index yields); LuaJIT's # ignores __len (0 results)
            local r = setmetatable({}, { __index = function() coroutine.yield() end, __len = function() return 2 end })
            r[2] = "b"
            return r
        end, { target_batch_size = 2, max_waiting_time = 1, max_processing_time = 0.05 })
        for i = 1, 2 do
            assert.is_false(out[i][1])
            local e = out[i][2]
            assert.is_true(dike.TimeoutError.is(e) or (type(e) == "string" and e:find("returned 0 results", 1, true)
                                                       ~= nil), tostring(e))
        end
    end)
end)

describe("batch arguments changed while queued", function()
    -- f sums the rows of kw.x (named) or of its one sequence.
    local function named_sum(opts)
        local fn = function(kw)
            local out = {}
            for i = 1, #kw.x do out[i] = kw.x[i] * 10 end
            return out
        end
        return dike.batch(opts)(fn), fn
    end
    local function seq_sum(opts)
        local fn = function(a, b)
            local out = {}
            for i = 1, #a do out[i] = a[i] * 10 + (b and b[i] or 0) end
            return out
        end
        return dike.batch(opts)(fn), fn
    end

    local function changed(fn, what, detail)
        return format("dike.batch: %s: %s of a queued call changed before its batch was sent (%s); argument tables"
                      .. " belong to dike until the call returns", name_of(fn), what, detail)
    end

    local function all_raise(out, msg)
        for i = 1, #out do assert.same({ false, msg }, out[i]) end
    end

    it("the README case, sent by the timer: every caller of the batch raises, gauges are 0", function()
        local f, fn = named_sum{ target_batch_size = 3, max_waiting_time = 0.01 }
        local req = { x = { 1 } }
        local _, out = callers(f, { { { x = { 1 } } }, { req } }, function() req.x = nil end)
        all_raise(out, changed(fn, 'argument 1 field "x"', "it had 1 rows, now nil"))
        assert.same(BATCH_IDLE, batch_gauges(f))
        assert.same({ 2, 0 }, { dike.stats(f).calls, dike.stats(f).batches })
        -- the wrapper goes on working
        assert.same({ 20 }, dike.run(f, { x = { 2 } }))
    end)

    it("sent by size: the filling call gets the same error as the callers waiting", function()
        local f, fn = named_sum{ target_batch_size = 3, max_waiting_time = 10 }
        local req = { x = { 1 } }
        local msg = changed(fn, 'argument 1 field "x"', "it had 1 rows, now nil")
        local extra, out = callers(f, { { { x = { 1 } } }, { req } }, function()
            req.x = nil
            return f({ x = { 2 } })
        end)
        assert.same({ false, msg }, extra)
        all_raise(out, msg)
        assert.same(BATCH_IDLE, batch_gauges(f))
        assert.same({ 3, 0 }, { dike.stats(f).calls, dike.stats(f).batches })
    end)

    it("each kind of change, sent by the timer and by size", function()
        local setups = {
            -- what the caller passes, how it changes it, the message's argument and detail
            { { 1 }, function(r) r.x = "ab" end, 'argument 1 field "x"', 'it had 1 rows, now "ab"' },
            { { 1 }, function(r) r.x = { 1, 2 } end, 'argument 1 field "x"', "it had 1 rows, now 2" },
            { { 1 }, function(r) r.x[2] = 2 end, 'argument 1 field "x"', "it had 1 rows, now 2" },
            { { 1, 2 }, function(r) r.x[1] = nil end, 'argument 1 field "x"', "it had 2 rows, row 1 is now nil" },
            { { 1 }, function(r) r.y = { 1 } end, "argument 1", "it had keys {x}, now {x, y}" },
            { { 1 }, function(r) r.x, r.y = nil, { 1 } end, 'argument 1 field "x"', "it had 1 rows, now nil" },
            { { 1 }, function(r) setmetatable(r.x, { __index = function() error("no", 0) end }) end,
              'argument 1 field "x"', "it is now a proxy table (its metatable has __index)" },
            { { 1 }, function(r) setmetatable(r, { __len = function() error("no", 0) end }) end,
              "argument 1", "it is now a proxy table (its metatable has __len)" },
        }
        for _, by in ipairs({ "timer", "size" }) do
            for _, s in ipairs(setups) do
                local rows = #s[1]
                local f, fn = named_sum{ target_batch_size = by == "size" and rows + 2 or 10, max_waiting_time = 0.01 }
                local req = { x = { unpack(s[1]) } }
                local msg = changed(fn, s[3], s[4])
                local extra, out = callers(f, { { { x = { 1 } } }, { req } }, function()
                    s[2](req)
                    if by == "size" then return f({ x = { 2 } }) end
                end)
                all_raise(out, msg)
                if by == "size" then assert.same({ false, msg }, extra) end
                assert.same(BATCH_IDLE, batch_gauges(f))
                assert.equal(0, dike.stats(f).batches)
            end
        end
    end)

    it("one sequence per call (the fast path) and several arguments", function()
        for _, by in ipairs({ "timer", "size" }) do
            local f, fn = seq_sum{ target_batch_size = by == "size" and 4 or 10, max_waiting_time = 0.01 }
            local req = { 1, 2 }
            local extra, out = callers(f, { { { 5 } }, { req } }, function()
                req[2] = nil
                if by == "size" then return f({ 7 }) end
            end)
            local msg = changed(fn, "argument 1", "it had 2 rows, row 2 is now nil")
            all_raise(out, msg)
            if by == "size" then assert.same({ false, msg }, extra) end
            local grow = { 1 }
            local _, out2 = callers(f, { { { 5 } }, { grow } }, function() grow[2] = 2 end)
            all_raise(out2, changed(fn, "argument 1", "it had 1 rows, now 2"))
            local proxy = { 1 }
            local _, out3 = callers(f, { { { 5 } }, { proxy } }, function()
                setmetatable(proxy, { __index = function() coroutine.yield() end })
                proxy[1] = nil
            end)
            all_raise(out3, changed(fn, "argument 1", "it is now a proxy table (its metatable has __index)"))
            local second = { 3 }
            local _, out4 = callers(f, { { { 5 }, { 6 } }, { { 1 }, second } }, function() second[1] = nil end)
            all_raise(out4, changed(fn, "argument 2", "it had 1 rows, row 1 is now nil"))
            assert.same(BATCH_IDLE, batch_gauges(f))
            assert.equal(0, dike.stats(f).batches)
            assert.same({ 50 }, dike.run(f, { 5 }))
        end
    end)

    it("sent to make room under max_batch_size: its callers raise, the new call goes on into the next batch",
       function()
        local f, fn = seq_sum{ target_batch_size = 10, max_batch_size = 10, max_waiting_time = 0.01 }
        local req = { 1, 2 }
        local extra, out = callers(f, { { { 5 } }, { req } }, function()
            req[3] = 3
            return f({ 1, 2, 3, 4, 5, 6, 7, 8 }) -- 3 + 8 > 10: the open batch is sent first
        end)
        all_raise(out, changed(fn, "argument 1", "it had 2 rows, now 3"))
        assert.same({ true, { 10, 20, 30, 40, 50, 60, 70, 80 } }, extra)
        assert.same(BATCH_IDLE, batch_gauges(f))
        assert.same({ 3, 1 }, { dike.stats(f).calls, dike.stats(f).batches })
    end)

    it("the first queued call changed: later calls are checked against its shape when it was queued", function()
        local f, fn = named_sum{ target_batch_size = 3, max_waiting_time = 10 }
        local first = { x = { 1 } }
        local extra, out = callers(f, { { first }, { { x = { 2 } } } }, function()
            first.x, first.z = nil, { 1 }
            return f({ x = { 3 } }) -- same shape as first had: accepted, then the batch fails
        end)
        local msg = changed(fn, 'argument 1 field "x"', "it had 1 rows, now nil")
        assert.same({ false, msg }, extra)
        all_raise(out, msg)
        assert.same(BATCH_IDLE, batch_gauges(f))
    end)

    it("in array mode", function()
        local fn = function(kw) return kw.x end
        local f = dike.batch{ target_batch_size = 3, max_waiting_time = 0.01, argument_type = "array" }(fn)
        local cases = {
            { function(r) r.x = dike.array({ 1, 2 }) end, "it had 1 rows, now 2" },
            { function(r) r.x = dike.array({ 1 }, "int32") end,
              "it was a dike.array of double x1, now a dike.array of int32 x1" },
            { function(r) r.x = { 1 } end, "it had 1 rows, now a table" },
        }
        for _, c in ipairs(cases) do
            local req = { x = dike.array({ 1 }) }
            local _, out = callers(f, { { { x = dike.array({ 5 }) } }, { req } }, function() c[1](req) end)
            all_raise(out, changed(fn, 'argument 1 field "x"', c[2]))
            assert.same(BATCH_IDLE, batch_gauges(f))
        end
        assert.same({ 4 }, dike.run(f, { x = dike.array({ 4 }) }):totable())
    end)

    it("changing the values of rows is not a change of shape: the batch sees the new values", function()
        local f = seq_sum{ target_batch_size = 3, max_waiting_time = 0.01 }
        local req = { 1 }
        local _, out = callers(f, { { req }, { { 2 } } }, function() req[1] = 9 end)
        assert.same({ { true, { 90 } }, { true, { 20 } } }, out)
        assert.same(BATCH_IDLE, batch_gauges(f))
    end)
end)

describe("dike.retry with odd errors", function()
    local asked, restore_sleeps
    before_each(function() asked, restore_sleeps = support.record_sleeps() end)
    after_each(function() restore_sleeps() end)

    local function failing(n, err)
        local calls = 0
        return function()
            calls = calls + 1
            if calls <= n then error(err, 0) end
            return "ok", calls
        end
    end

    it("an error whose __tostring raises is retried, logged safely and re-raised as the same value", function()
        local logs, restore = support.capture_logs(dike)
        finally(restore)
        local e = raising_tostring("x")
        local g = dike.retry{ attempts = 3, log_exception_info = false }(failing(10, e))
        assert.is_true(rawequal(e, support.error_of(dike.run, g)))
        assert.same({ calls = 1, retries = 2, failures = 1 }, dike.stats(g))
        local line = "Caught exception <table> (its __tostring failed: x). Retrying in 0s ..."
        assert.same({ { level = "warning", message = line }, { level = "warning", message = line } }, logs)
        -- with the traceback, the first line is the same
        local logs2, restore2 = support.capture_logs(dike)
        finally(restore2)
        local g2 = dike.retry{ attempts = 2 }(failing(10, e))
        assert.is_true(rawequal(e, support.error_of(dike.run, g2)))
        assert.equal(line, logs2[1].message:match("^[^\n]*"))
        assert.same({ calls = 1, retries = 1, failures = 1 }, dike.stats(g2))
    end)

    it("a pattern is matched against the safe description", function()
        local logs, restore = support.capture_logs(dike)
        finally(restore)
        local e = raising_tostring("x")
        local g = dike.retry{ attempts = 3, exception_types = "boom" }(failing(10, e))
        assert.is_true(rawequal(e, support.error_of(dike.run, g)))
        assert.same({ calls = 1, retries = 0, failures = 1 }, dike.stats(g))
        local h = dike.retry{ attempts = 3, exception_types = "__tostring failed" }(failing(1, e))
        assert.same({ "ok", 2 }, { dike.run(h) })
        assert.same({ calls = 1, retries = 1, failures = 0 }, dike.stats(h))
        assert.equal(1, #logs)
    end)

    it("a predicate that raises: its error reaches the caller, counted as a failure, no retry", function()
        local logs, restore = support.capture_logs(dike)
        finally(restore)
        local g = dike.retry{ attempts = 3, exception_types = function() error("predicate failed", 0) end }(
            failing(10, "boom"))
        assert.equal("predicate failed", support.error_of(dike.run, g))
        assert.same({ calls = 1, retries = 0, failures = 1 }, dike.stats(g))
        local odd = raising_tostring("z")
        local h = dike.retry{ attempts = 3, exception_types = { "nothing", function() error(odd) end } }(
            failing(10, "boom"))
        assert.is_true(rawequal(odd, support.error_of(dike.run, h)))
        assert.same({ calls = 1, retries = 0, failures = 1 }, dike.stats(h))
        assert.same({}, logs)
        assert.same({}, asked)
    end)

    it("an error class compared with a metatable whose __eq raises", function()
        local meta = setmetatable({}, { __eq = function() error("eq", 0) end })
        local odd = setmetatable({}, { __metatable = meta })
        local logs, restore = support.capture_logs(dike)
        finally(restore)
        local g = dike.retry{ attempts = 2, exception_types = dike.TimeoutError }(failing(10, odd))
        -- (caught inside the task: this checks retry, not how a task's end compares its error)
        assert.is_true(rawequal(odd, dike.run(function() return support.error_of(g) end)))
        assert.same({ calls = 1, retries = 0, failures = 1 }, dike.stats(g))
        local h = dike.retry{ attempts = 2 }(failing(1, odd)) -- the default: all but CancelledError
        assert.same({ "ok", 2 }, { dike.run(h) })
        assert.equal(1, #logs)
    end)

    it("a per-wrapper logger that raises or yields is bypassed, and retry goes on", function()
        local loggers = {
            { function() error("logger down", 0) end, NOTE_RAISED .. "logger down)\n" },
            { function() coroutine.yield() end, NOTE_YIELDED .. "\n" },
        }
        for _, l in ipairs(loggers) do
            local g = dike.retry{ attempts = 3, logger = l[1], log_exception_info = false }(failing(2, "boom"))
            local r
            local out = stderr_of(function() r = { dike.run(g) } end)
            assert.same({ "ok", 3 }, r)
            assert.same({ calls = 1, retries = 2, failures = 0 }, dike.stats(g))
            assert.equal(("WARNING:dike:Caught exception boom. Retrying in 0s ..." .. l[2]):rep(2), out)
        end
    end)

    it("the default logger that raises is bypassed the same way", function()
        default_logger(function() error("logger down", 0) end)
        local g = dike.retry{ attempts = 2, log_exception_info = false }(failing(1, "boom"))
        local r
        local out = stderr_of(function() r = { dike.run(g) } end)
        assert.same({ "ok", 2 }, r)
        assert.equal("WARNING:dike:Caught exception boom. Retrying in 0s ..." .. NOTE_RAISED .. "logger down)\n", out)
        assert.same({ calls = 1, retries = 1, failures = 0 }, dike.stats(g))
    end)
end)

describe("batch arguments with metatables", function()
    local function sum_fn(a)
        local out = {}
        for i = 1, #a do out[i] = a[i] end
        return out
    end

    local function proxy(what, j_field)
        return format("dike.batch: %s is a proxy table (its metatable has %s): batch reads argument tables raw;"
                      .. " pass a plain table", j_field or "argument 1", what)
    end

    it("the proxy of the report gets a dike.batch message, not 'invalid key to next'", function()
        local f = dike.batch{ target_batch_size = 2, max_waiting_time = 0.01 }(sum_fn)
        local p = setmetatable({}, { __index = function(_, k) if k == 1 then return 1 end end })
        assert.equal(proxy("__index"), dike.run(function() return support.error_of(f, p) end))
        assert.same(BATCH_IDLE, batch_gauges(f))
        assert.same({ calls = 0, batches = 0 }, { calls = dike.stats(f).calls, batches = dike.stats(f).batches })
    end)

    it("refused to that caller alone, with a good call queued or not; other metatables are fine", function()
        local f = dike.batch{ target_batch_size = 2, max_waiting_time = 0.01 }(sum_fn)
        local g = dike.batch{ target_batch_size = 2, max_waiting_time = 0.01 }(function(kw) return sum_fn(kw.x) end)
        local refused = {
            { f, setmetatable({}, { __index = function(_, k) if k == 1 then return 1 end end }), proxy("__index") },
            { f, setmetatable({ 1 }, { __index = {} }), proxy("__index") },
            { f, setmetatable({ 1, 2 }, { __len = function() return 1 end }), proxy("__len") },
            { f, setmetatable({ 1 }, { __len = function() error("len", 0) end }), proxy("__len") },
            { f, setmetatable({ 1 }, { __index = function() error("idx", 0) end, __metatable = false }),
              proxy("__index") },
            { g, setmetatable({ x = { 1 } }, { __index = function() error("idx", 0) end }), proxy("__index") },
            { g, { x = setmetatable({ 1 }, { __len = function() return 3 end }) },
              proxy("__len", 'argument 1 field "x"') },
        }
        for _, c in ipairs(refused) do
            local w = c[1]
            local good = w == f and { 7 } or { x = { 7 } }
            -- alone
            assert.equal(c[3], dike.run(function() return support.error_of(w, c[2]) end))
            -- with a good call queued, which is unaffected
            local extra, out = callers(w, { { good } }, function() return w(c[2]) end)
            assert.same({ false, c[3] }, extra)
            assert.same({ { true, { 7 } } }, out)
            assert.same(BATCH_IDLE, batch_gauges(w))
        end
        -- accepted: a metatable without __index or __len, read raw (__pairs is not used)
        local accepted = {
            { f, setmetatable({ 1, 2 }, { __tostring = function() error("x", 0) end }), { 1, 2 } },
            { f, setmetatable({ 3 }, { __pairs = function() error("pairs", 0) end, __name = "Row" }), { 3 } },
            { g, setmetatable({ x = { 4 } }, { __pairs = function() error("pairs", 0) end }), { 4 } },
            { g, { x = setmetatable({ 5 }, { __eq = function() error("eq", 0) end }) }, { 5 } },
        }
        for _, c in ipairs(accepted) do
            assert.same(c[3], dike.run(c[1], c[2]))
        end
        assert.same(BATCH_IDLE, batch_gauges(f))
        assert.same(BATCH_IDLE, batch_gauges(g))
    end)
end)

-- The runtime's cases: a task yielding with coroutine.yield (its slot given back), two copies
-- of dike, closed luv handles, gather of itself. (spec/runtime_spec.lua has their variants.)
describe("the runtime's cases", function()
    local function limiter_gauges(f)
        local st = dike.stats(f)
        return { running = st.running, queued = st.queued }
    end

    it("bug 2: a task that yields with coroutine.yield inside limit_jobs gives its slot back", function()
        local f = dike.limit_jobs{ limit = 1 }(function() coroutine.yield() end)
        local err = dike.run(function()
            local t = dike.spawn(f)
            return select(2, pcall(t.join, t))
        end)
        assert.equal("dike: a task yielded with coroutine.yield; wait with dike's functions instead", err)
        assert.same({ running = 0, queued = 0 }, limiter_gauges(f))
        -- the next call gets the slot (and fails the same way), it is not rejected
        local again = dike.run(function()
            local t = dike.spawn(f)
            return select(2, pcall(t.join, t))
        end)
        assert.equal(err, again)
        assert.equal(0, dike.stats(f).rejected)
    end)

    it("bug 5: two copies of dike each keep working; the old copy's tasks still wake", function()
        local names = {}
        for name in pairs(package.loaded) do
            if name == "dike" or name:match("^dike%.") and name ~= "dike.core" then names[#names + 1] = name end
        end
        local saved = {}
        for _, name in ipairs(names) do saved[name], package.loaded[name] = package.loaded[name], nil end
        local d2 = require("dike")
        local rt2 = package.loaded["dike.runtime"]
        for _, name in ipairs(names) do package.loaded[name] = saved[name] end
        finally(function() rt2.host.close(); uv.run("nowait") end)
        local d1 = dike
        assert.equal("old", d1.run(function() d1.sleep(0.01); return "old" end))
        local woke = {}
        d1.spawn(function() d1.sleep(0.005); woke[#woke + 1] = "d1" end)
        d2.spawn(function() d2.sleep(0.002); woke[#woke + 1] = "d2" end)
        uv.run() -- silently hung here before: the new copy had taken the old one's callbacks
        table.sort(woke)
        assert.same({ "d1", "d2" }, woke)
    end)

    it("bug 6: after uv.walk closes every handle, sleep works and sleep(0) does not spin", function()
        dike.run(function() dike.sleep(0) end)
        uv.walk(function(h) if not h:is_closing() then h:close() end end)
        assert.equal("slept", dike.run(function() dike.sleep(0.01); return "slept" end))
        uv.walk(function(h) if not h:is_closing() then h:close() end end)
        local t0 = support.clock()
        assert.equal("yielded", dike.run(function() dike.sleep(0); return "yielded" end))
        assert.is_true(support.clock() - t0 < 1)
    end)

    it("bug 8: gather of the current task raises instead of deadlocking", function()
        local err = dike.run(function()
            local me
            me = dike.spawn(function()
                dike.sleep(0)
                return select(2, pcall(dike.gather, { me }))
            end)
            return me:join()
        end)
        assert.equal("dike.gather: item 1 is the task that gathers (it would wait for itself)", err)
    end)
end)
