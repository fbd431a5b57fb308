-- The module surface: errors, logging and statistics (docs/errors-logging-stats.md), runtime
-- choice (docs/tasks.md).
local dike = require("dike")
local support = require("spec.support")

describe("dike", function()
    it("exposes the whole contract", function()
        for _, name in ipairs({ "retry", "limit_jobs", "batch", "fail", "array", "spawn", "run", "sleep",
                                "gather", "wrap", "set_logger", "stats", "set_runtime" }) do
            assert.is_function(dike[name], name)
        end
        for _, name in ipairs({ "TooManyCalls", "TimeoutError", "CancelledError" }) do
            assert.is_table(dike[name], name)
        end
    end)

    it("runs this suite under LuaJIT in the default run", function()
        local major, minor = (os.getenv("DIKE_TEST_INTERP") or ""):match("^lua(%d)(%d)$")
        if major then
            assert.equal("Lua " .. major .. "." .. minor, _VERSION)
        else
            assert.is_table(jit)
        end
    end)
end)

describe("errors", function()
    for _, name in ipairs({ "TooManyCalls", "TimeoutError", "CancelledError" }) do
        it(name .. " values have the class as metatable, a message, and tostring == message", function()
            local C = dike[name]
            local e = C.new("something went wrong")
            assert.equal(C, getmetatable(e))
            assert.equal("something went wrong", e.message)
            assert.equal("something went wrong", tostring(e))
            assert.is_true(C.is(e))
            assert.is_false(C.is("something went wrong"))
        end)
    end

    it("error classes are distinct", function()
        assert.are_not.equal(dike.TooManyCalls, dike.TimeoutError)
        assert.is_false(dike.TimeoutError.is(dike.CancelledError.new("x")))
    end)
end)

describe("logging", function()
    it("the built-in logger writes LEVEL:dike:<message> to stderr", function()
        local real = io.stderr
        local written = {}
        local fake = { write = function(_, ...) for _, s in ipairs({ ... }) do written[#written + 1] = s end end }
        -- The built-in logger looks io.stderr up per message.
        local log = require("dike.log")
        io.stderr = fake -- luacheck: ignore 122
        local ok, err = pcall(function()
            log.log("warning", "hello")
            log.log("error", "bad")
        end)
        io.stderr = real -- luacheck: ignore 122
        assert(ok, err)
        assert.equal("WARNING:dike:hello\nERROR:dike:bad\n", table.concat(written))
    end)

    it("set_logger returns the previous logger and nil restores the built-in one", function()
        local seen = {}
        local mine = function(level, message) seen[#seen + 1] = level .. ":" .. message end
        local builtin = dike.set_logger(mine)
        assert.is_function(builtin)
        assert.equal(mine, dike.set_logger(nil))
        assert.equal(builtin, dike.set_logger(nil))
        assert.matches("dike.set_logger: logger must be a function or nil, got number",
                       support.error_of(dike.set_logger, 5), 1, true)
    end)

    it("wrappers made earlier use the logger installed later", function()
        local f = dike.retry{ attempts = 2, log_exception_info = false }(function(first)
            if first.v then first.v = false error("x", 0) end
            return "ok"
        end)
        local logs, restore = support.capture_logs(dike)
        dike.run(f, { v = true })
        restore()
        assert.same({ { level = "warning", message = "Caught exception x. Retrying in 0s ..." } }, logs)
    end)
end)

describe("dike.stats", function()
    it("returns a fresh table each time", function()
        local f = dike.retry{}(function() end)
        local a, b = dike.stats(f), dike.stats(f)
        assert.are_not.equal(a, b)
        a.calls = 99
        assert.equal(0, dike.stats(f).calls)
    end)

    it("rejects values that dike did not make", function()
        assert.matches("dike.stats: expected a function wrapped by dike or a limiter, got a function",
                       support.error_of(dike.stats, print), 1, true)
        assert.matches("dike.stats: expected a function wrapped by dike or a limiter, got nil",
                       support.error_of(dike.stats, nil), 1, true)
    end)

    it("holds wrappers, limiters and batchers weakly", function()
        local weak = setmetatable({}, { __mode = "v" })
        do
            local lim = dike.limit_jobs{ limit = 1 }
            weak[1] = dike.retry{}(function() end)
            weak[2] = lim
            weak[3] = lim(function() end)
            weak[4] = dike.batch{ target_batch_size = 1, max_waiting_time = 1 }(function(x) return x end)
            dike.run(weak[4], { 1 })
            lim = nil -- luacheck: ignore 311
        end
        -- LuaJIT's compiled traces keep the functions they were specialised on until flushed
        -- (LuaJIT's reference, not dike's; see gc_spec.lua).
        if jit then jit.flush() end
        collectgarbage()
        collectgarbage()
        assert.is_nil(next(weak))
    end)
end)

describe("runtime", function()
    local rt = require("dike.runtime")

    it("set_runtime takes a runtime by name, and nil restores the default of this place", function()
        assert.equal("luv", rt.name)
        dike.set_runtime("luv")
        assert.equal("luv", rt.name)
        assert.equal(42, dike.run(function() dike.sleep(0.001); return 42 end))
        dike.set_runtime(nil)
        assert.equal("luv", rt.name)
    end)

    it("set_runtime takes a host table: dike uses its clock and its alarm", function()
        local host = require("dike.runtime.luv").new()
        local arms = {}
        local arm = host.arm
        host.arm = function(at)
            arms[#arms + 1] = at
            return arm(at)
        end
        finally(function() dike.set_runtime(nil) end)
        dike.set_runtime(host)
        local t0 = support.clock()
        dike.run(function() dike.sleep(0.01) end)
        assert.is_true(support.clock() - t0 >= 0.0095)
        -- armed for the sleep's deadline, on the host's clock (margins for valgrind); libuv counts
        -- whole milliseconds on its own cached clock, so the alarm may go off a little early:
        -- then nothing is due and it is armed again for the same deadline
        assert.is_true(#arms >= 1 and #arms <= 3, #arms)
        assert.is_true(arms[1] - t0 >= 0.01 and arms[1] - t0 < 0.5, tostring(arms[1] - t0))
        for i = 2, #arms do assert.equal(arms[1], arms[i]) end
    end)

    it("set_runtime refuses what is not a runtime and keeps the current one", function()
        local f = dike.retry{ attempts = 2 }(function(box)
            box.n = box.n + 1
            if box.n == 1 then error("once", 0) end
            return box.n
        end)
        local partial = require("dike.runtime.luv").new()
        partial.pump = nil
        local bad = {
            { 5, "dike.set_runtime: expected a runtime name, a host table or nil, got 5" },
            { "uv", 'dike.set_runtime: unknown runtime "uv" (expected "luv", "nvim" or "ngx")' },
            { "ngx", "dike.set_runtime: the ngx runtime is not available here" },
            { "nvim", "dike.set_runtime: the nvim runtime is not available here" },
            { {}, 'dike.set_runtime: the host has no function "now"' },
            { partial, 'dike.set_runtime: the host has no function "pump"' },
        }
        local _, restore = support.capture_logs(dike)
        for _, case in ipairs(bad) do
            local ok, err = pcall(dike.set_runtime, case[1])
            assert.is_false(ok)
            assert.equal(case[2], err)
            -- dike still works, on the runtime it had
            assert.equal("luv", rt.name)
            assert.equal(2, dike.run(f, { n = 0 }))
        end
        restore()
    end)

    it("set_runtime refuses to switch while dike has work in hand", function()
        local t = dike.spawn(function() dike.sleep(10) end)
        local ok, err = pcall(dike.set_runtime, "luv")
        assert.is_false(ok)
        assert.equal("dike.set_runtime: cannot switch while dike has work in hand (1 timers, 0 ready)", err)
        t:cancel()
        dike.run(function() return pcall(t.join, t) end)
        dike.set_runtime("luv")
    end)
end)
