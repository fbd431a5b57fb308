-- dike.retry (docs/retry.md).
local dike = require("dike")
local support = require("spec.support")

-- A function failing `n` times with `err` (default: a string), then returning its arguments.
local function flaky(n, err)
    local calls = 0
    local f = function(...)
        calls = calls + 1
        if calls <= n then error(err or ("failure " .. calls), 0) end
        return ...
    end
    return f, function() return calls end
end

describe("dike.retry", function()
    local logs, restore_logs, asked, restore_sleeps
    before_each(function()
        logs, restore_logs = support.capture_logs(dike)
        asked, restore_sleeps = support.record_sleeps()
    end)
    after_each(function()
        restore_sleeps()
        restore_logs()
    end)

    it("returns every value and passes the arguments again on each attempt", function()
        local f, calls = flaky(2)
        local g = dike.retry{ attempts = 3 }(f)
        local r = { dike.run(g, 1, nil, "three", nil) }
        assert.equal(3, calls())
        assert.same({ 1, nil, "three" }, r)
        assert.equal(4, select("#", dike.run(g, 1, nil, "three", nil)))
        local five = { dike.run(dike.retry{ attempts = 2 }((flaky(1))), 1, 2, 3, 4, 5) }
        assert.same({ 1, 2, 3, 4, 5 }, five)
    end)

    it("counts attempts as total calls and re-raises the last error unchanged, unlogged", function()
        local e = setmetatable({}, { __tostring = function() return "E" end })
        local f, calls = flaky(10, e)
        local g = dike.retry{ attempts = 3, delay = 0.01 }(f)
        assert.equal(e, support.error_of(dike.run, g))
        assert.equal(3, calls())
        assert.equal(2, #logs)
        assert.same({ 0.01, 0.01 }, asked)
        assert.same({ calls = 1, retries = 2, failures = 1 }, dike.stats(g))
    end)

    it("attempts = 1 calls once; nil and math.huge retry until success", function()
        local f, calls = flaky(5)
        assert.equal("failure 1", support.error_of(dike.run, dike.retry{ attempts = 1 }(f)))
        assert.equal(1, calls())
        local g, gcalls = flaky(5)
        assert.equal("ok", dike.run(dike.retry()(g), "ok"))
        assert.equal(6, gcalls())
        local h, hcalls = flaky(7)
        assert.equal("ok", dike.run(dike.retry{ attempts = math.huge }(h), "ok"))
        assert.equal(8, hcalls())
    end)

    it("logs the exact warning with the delay about to be slept", function()
        local g = dike.retry{ attempts = 2, delay = 0.01, log_exception_info = false }((flaky(1, "boom")))
        dike.run(g)
        assert.equal(1, #logs)
        assert.equal("warning", logs[1].level)
        assert.equal("Caught exception boom. Retrying in 0.01s ...", logs[1].message)
    end)

    it("log_exception_info adds the traceback of the caught error below the first line", function()
        local g = dike.retry{ attempts = 2, delay = 0.25 }((flaky(1, "boom")))
        dike.run(g)
        local first, rest = logs[1].message:match("^([^\n]*)\n(.*)$")
        assert.equal("Caught exception boom. Retrying in 0.25s ...", first)
        assert.matches("^stack traceback:", rest)
        assert.matches("retry_spec.lua", rest, 1, true)
    end)

    it("formats the delay with %.3g", function()
        dike.run(dike.retry{ attempts = 3, delay = 1 / 3, backoff = 1000, log_exception_info = false }((flaky(2, "x"))))
        assert.equal("Caught exception x. Retrying in 0.333s ...", logs[1].message)
        assert.equal("Caught exception x. Retrying in 333s ...", logs[2].message)
    end)

    it("uses a per-wrapper logger when given", function()
        local mine = {}
        local g = dike.retry{ attempts = 2, logger = function(level, m) mine[#mine + 1] = level .. " " .. m end,
                              log_exception_info = false }((flaky(1, "e")))
        dike.run(g)
        assert.same({ "warning Caught exception e. Retrying in 0s ..." }, mine)
        assert.same({}, logs)
    end)

    it("sleeps exactly delay * backoff^(k-1), computed by repeated multiplication", function()
        local g = dike.retry{ attempts = 6, delay = 0.1, backoff = 3 }((flaky(5)))
        dike.run(g)
        local d, expected = 0.1, {}
        for k = 1, 5 do
            expected[k] = d
            d = d * 3
        end
        assert.same(expected, asked)
    end)

    it("a delay of 0 still yields to the loop once per retry", function()
        restore_sleeps()
        local ticks = 0
        local g = dike.retry{ attempts = 3 }((flaky(2)))
        dike.run(function()
            local ticker = dike.spawn(function()
                for _ = 1, 10 do
                    ticks = ticks + 1
                    dike.sleep(0)
                end
            end)
            local before = ticks
            g()
            assert.equal(before + 2, ticks)
            ticker:cancel()
            support.error_of(ticker.join, ticker)
        end)
    end)

    it("caps each delay at max_delay", function()
        dike.run(dike.retry{ attempts = 6, delay = 1, backoff = 2, max_delay = 5 }((flaky(5))))
        assert.same({ 1, 2, 4, 5, 5 }, asked)
    end)

    it("never sleeps inf or NaN with a huge backoff", function()
        dike.run(dike.retry{ attempts = 8, delay = 1, backoff = 1e300, max_delay = 60 }((flaky(7))))
        assert.same({ 1, 60, 60, 60, 60, 60, 60 }, asked)
        for _ = 1, #asked do asked[#asked] = nil end
        dike.run(dike.retry{ attempts = 5, delay = 1, backoff = 1e300 }((flaky(4))))
        for _, d in ipairs(asked) do
            assert.is_true(d == d and d < math.huge, tostring(d))
        end
    end)

    for _, case in ipairs({
        { "full", function(d, b) return d >= 0 and d <= b end },
        { "equal", function(d, b) return d >= b / 2 and d <= b end },
    }) do
        it("jitter " .. case[1] .. " stays within its bounds", function()
            local opts = { attempts = 41, delay = 0.5, backoff = 2, max_delay = 20, jitter = case[1] }
            dike.run(dike.retry(opts)((flaky(40))))
            assert.equal(40, #asked)
            local distinct = {}
            for k, d in ipairs(asked) do
                local b = math.min(0.5 * 2 ^ (k - 1), 20)
                assert.is_true(case[2](d, b), ("delay %d = %s outside bounds for %s"):format(k, d, b))
                distinct[d] = true
            end
            assert.is_true(next(distinct, next(distinct)) ~= nil, "jitter produced one value only")
        end)
    end

    it("jitter decorrelated stays in [delay, min(max_delay, 3 * previous)]", function()
        dike.run(dike.retry{ attempts = 41, delay = 0.5, max_delay = 20, jitter = "decorrelated" }((flaky(40))))
        local prev = 0.5
        for k, d in ipairs(asked) do
            assert.is_true(d >= 0.5 and d <= math.min(20, 3 * prev), ("delay %d = %s (previous %s)"):format(k, d, prev))
            prev = d
        end
    end)

    it("a seed makes jittered delays reproducible", function()
        local function delays(seed)
            for i = #asked, 1, -1 do asked[i] = nil end
            dike.run(dike.retry{ attempts = 6, delay = 1, jitter = "full", seed = seed }((flaky(5))))
            return { (table.unpack or unpack)(asked) } -- luacheck: ignore 143
        end
        assert.same(delays(42), delays(42))
        assert.are_not.same(delays(42), delays(43))
    end)

    it("max_elapsed raises the last error without sleeping when the next delay would pass it", function()
        restore_sleeps()
        local f, calls = flaky(10)
        local g = dike.retry{ delay = 0.01, backoff = 10, max_elapsed = 0.5 }(f)
        local t0 = support.clock()
        local err = support.error_of(dike.run, g)
        local elapsed = support.clock() - t0
        -- The retries after ~0 s (0.01 s delay) and ~0.01 s (0.1 s) fit; the third would sleep
        -- 1 s from ~0.11 s. Wide margins on both sides: this also runs under valgrind.
        assert.equal("failure 3", err)
        assert.equal(3, calls())
        assert.equal(2, #logs)
        assert.is_true(elapsed >= 0.105 and elapsed < 0.5, tostring(elapsed))
    end)

    describe("exception_types", function()
        local MyError = { __tostring = function(e) return "MyError: " .. e.why end }
        local function my_error(why) return setmetatable({ why = why }, MyError) end

        local cases = {
            { "a class", MyError },
            { "a pattern", "^MyError: tr" },
            { "a predicate", function(e) return type(e) == "table" and e.why == "transient" end },
            { "a list", { "nomatch", MyError } },
        }
        for _, case in ipairs(cases) do
            it("by " .. case[1] .. ": retries matching errors, raises others at once, unlogged", function()
                local f, calls = flaky(2, my_error("transient"))
                assert.equal("ok", dike.run(dike.retry{ exception_types = case[2] }(f), "ok"))
                assert.equal(3, calls())
                assert.equal(2, #logs)
                local other = { "other" }
                local h, hcalls = flaky(2, other)
                assert.equal(other, support.error_of(dike.run, dike.retry{ exception_types = case[2] }(h)))
                assert.equal(1, hcalls())
                assert.equal(2, #logs)
            end)
        end

        it("never retries CancelledError unless it is named", function()
            local cancelled = dike.CancelledError.new("stop")
            for _, types in ipairs({ false, ".*", function() return true end }) do
                local f, calls = flaky(1, cancelled)
                local g = dike.retry{ exception_types = types or nil }(f)
                assert.equal(cancelled, support.error_of(dike.run, g))
                assert.equal(1, calls())
            end
            local f, calls = flaky(1, cancelled)
            dike.run(dike.retry{ exception_types = dike.CancelledError }(f))
            assert.equal(2, calls())
        end)
    end)

    it("a caller cancelled during the delay stops at once and counts as a failure", function()
        restore_sleeps()
        local f, calls = flaky(100)
        local g = dike.retry{ delay = 10 }(f)
        dike.run(function()
            local t = dike.spawn(g)
            dike.sleep(0.001)
            t:cancel()
            assert.equal(dike.CancelledError, getmetatable(support.error_of(t.join, t)))
        end)
        assert.equal(1, calls())
        assert.same({ calls = 1, retries = 1, failures = 1 }, dike.stats(g))
    end)

    it("works outside a coroutine while no retry is needed", function()
        local g = dike.retry{ attempts = 3 }(function(x) return x + 1 end)
        assert.equal(2, g(1))
        local h = dike.retry{ attempts = 3 }((flaky(1)))
        assert.equal("dike.retry: must be called inside a coroutine (start one with dike.run or dike.spawn)",
                     support.error_of(h))
    end)

    it("rejects invalid options when the wrapper is made", function()
        local ABOVE_2_53 = " (integers above 2^53 are not exact)"
        local bad = {
            { { attempts = 0 }, "dike.retry: attempts must be an integer >= 1 or math.huge, got 0" },
            { { attempts = 1.5 }, "attempts must be an integer >= 1 or math.huge, got 1.5" },
            { { attempts = -1 }, "attempts must be an integer >= 1" },
            { { attempts = 0 / 0 }, "attempts must be an integer >= 1" },
            { { attempts = "3" }, "attempts must be an integer >= 1 or math.huge, got \"3\"" },
            { { attempts = 1e300 }, "attempts must be an integer >= 1 or math.huge, got 1e+300" .. ABOVE_2_53 },
            { { seed = 1e300 }, "dike.retry: seed must be an integer >= 0, got 1e+300" .. ABOVE_2_53 },
            { { seed = 2 ^ 63 }, "dike.retry: seed must be an integer >= 0, got 9.2233720368548e+18" .. ABOVE_2_53 },
            { { delay = -1 }, "delay must be a finite number >= 0, got -1" },
            { { delay = 0 / 0 }, "delay must be a finite number >= 0, got nan" },
            { { backoff = -(0 / 0) }, "backoff must be a finite number > 0, got nan" },
            { { delay = math.huge }, "delay must be a finite number >= 0" },
            { { backoff = 0 }, "backoff must be a finite number > 0, got 0" },
            { { max_delay = 0 }, "max_delay must be a number > 0, got 0" },
            { { max_elapsed = -2 }, "max_elapsed must be a number > 0, got -2" },
            { { jitter = "random" }, 'jitter must be one of "none", "full", "equal" or "decorrelated"' },
            { { log_exception_info = 1 }, "log_exception_info must be a boolean, got 1" },
            { { logger = "x" }, "logger must be a function" },
            { { exception_types = 5 }, "exception_types must be an error class, a pattern string" },
            { { exception_types = "[" }, "exception_types pattern \"[\" is invalid" },
            { { tries = 3 }, "dike.retry: unknown option \"tries\"" },
            { 5, "dike.retry: options must be a table, got 5" },
        }
        for _, case in ipairs(bad) do
            local err = support.error_of(dike.retry, case[1])
            assert.is_string(err, case[2])
            assert.matches(case[2], err, 1, true)
        end
        assert.matches("dike.retry: expected a function to wrap, got nil", support.error_of(dike.retry{}, nil), 1, true)
    end)

    it("blames the caller's line for a bad exception_types, alone or in a list", function()
        local bad = { "[", { "[" }, 5, { 5 }, { "x", 5 }, { dike.TimeoutError, true } }
        for _, spec in ipairs(bad) do
            local f = function() return (dike.retry{ exception_types = spec }) end
            local ok, err = pcall(f)
            assert.is_false(ok)
            local where = debug.getinfo(f, "S")
            assert.equal(where.short_src .. ":" .. where.linedefined .. ": dike.retry: exception_types",
                         err:match("^[^:]+:%d+: dike%.retry: exception_types"))
        end
    end)
end)
