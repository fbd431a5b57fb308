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
        assert.same({ calls = 1, retries = 2, failures = 1, budget_refused = 0 }, dike.stats(g))
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
        assert.same({ calls = 1, retries = 1, failures = 1, budget_refused = 0 }, dike.stats(g))
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

    describe("retry_if_result", function()
        -- Returns (nil, "busy") `n` times, then its arguments.
        local function busy(n)
            local calls = 0
            return function(...)
                calls = calls + 1
                if calls <= n then return nil, "busy" end
                return ...
            end, function() return calls end
        end
        local function is_busy(v, why) return v == nil and why == "busy" end

        it("retries a return it refuses, with every value passed to it, and logs the first value", function()
            local f, calls = busy(2)
            local seen = {}
            local g = dike.retry{ attempts = 5, delay = 0.01, backoff = 2, retry_if_result = function(...)
                seen[#seen + 1] = { n = select("#", ...), ... }
                return is_busy(...)
            end }(f)
            assert.same({ "ok", 2 }, { dike.run(g, "ok", 2) })
            assert.equal(3, calls())
            assert.same({ { n = 2, nil, "busy" }, { n = 2, nil, "busy" }, { n = 2, "ok", 2 } }, seen)
            assert.same({ 0.01, 0.02 }, asked)
            -- a result has no traceback, whatever log_exception_info says
            assert.same({ "Caught result nil. Retrying in 0.01s ...", "Caught result nil. Retrying in 0.02s ..." },
                        { logs[1].message, logs[2].message })
            assert.equal("warning", logs[1].level)
            assert.same({ calls = 1, retries = 2, failures = 0, budget_refused = 0 }, dike.stats(g))
        end)

        it("returns the last values, not an error, when no attempt is left", function()
            local f, calls = busy(10)
            local g = dike.retry{ attempts = 3, retry_if_result = is_busy }(f)
            local r = { n = 0 }
            dike.run(function()
                r = { n = 0 }
                local function pack(...) return { n = select("#", ...), ... } end
                r = pack(g("never"))
            end)
            assert.same({ n = 2, nil, "busy" }, r)
            assert.equal(3, calls())
            assert.equal(2, #logs) -- the last return is not logged
            assert.same({ calls = 1, retries = 2, failures = 0, budget_refused = 0 }, dike.stats(g))
        end)

        it("returns the last values when the next delay would pass max_elapsed", function()
            local f, calls = busy(10)
            local g = dike.retry{ delay = 1, max_elapsed = 0.5, retry_if_result = is_busy }(f)
            assert.same({ nil, "busy" }, { dike.run(g) })
            assert.equal(1, calls())
            assert.same({}, asked)
            assert.same({}, logs)
        end)

        it("shows the first value with tostring, or says when its __tostring fails", function()
            local shown = setmetatable({}, { __tostring = function() return "<HTTP 503>" end })
            local broken = setmetatable({}, { __tostring = function() error("no text") end })
            local values = { shown, broken, "done" }
            local i = 0
            local g = dike.retry{ attempts = 3, retry_if_result = function(v) return v ~= "done" end }(function()
                i = i + 1
                return values[i]
            end)
            assert.equal("done", dike.run(g))
            assert.equal("Caught result <HTTP 503>. Retrying in 0s ...", logs[1].message)
            assert.matches("^Caught result <table> %(its __tostring failed: .*no text%)%. Retrying in 0s %.%.%.$",
                           logs[2].message)
        end)

        it("errors are still retried as before, and their values go through it once returned", function()
            local f, calls = flaky(1, "down")
            local results = { false }
            local g = dike.retry{ attempts = 3, retry_if_result = function(x)
                results[#results + 1] = x
                return false
            end }(f)
            assert.equal(7, dike.run(g, 7))
            assert.equal(2, calls())
            assert.same({ false, 7 }, results)
            assert.matches("^Caught exception down%. Retrying in 0s %.%.%.", logs[1].message)
        end)

        it("a predicate that raises gives the caller its error, and nothing is retried", function()
            local e = { "predicate broke" }
            local f, calls = busy(5)
            local g = dike.retry{ attempts = 5, retry_if_result = function() error(e) end }(f)
            assert.equal(e, support.error_of(dike.run, g))
            assert.equal(1, calls())
            assert.same({ calls = 1, retries = 0, failures = 1, budget_refused = 0 }, dike.stats(g))
        end)

        it("needs a coroutine only to wait", function()
            local g = dike.retry{ attempts = 2, retry_if_result = is_busy }((busy(1)))
            assert.equal("dike.retry: must be called inside a coroutine (start one with dike.run or dike.spawn)",
                         support.error_of(g))
            local h = dike.retry{ attempts = 2, retry_if_result = is_busy }((busy(0)))
            assert.equal("fine", h("fine"))
        end)
    end)

    describe("delay_from", function()
        local function failing(errs)
            local i = 0
            return function()
                i = i + 1
                if errs[i] ~= nil then error(errs[i], 0) end
                return "ok"
            end
        end
        local function retry_after(e) return type(e) == "table" and e.retry_after or nil end

        it("a number replaces this retry's delay; nil keeps the computed one; backoff goes on", function()
            local g = dike.retry{ delay = 1, backoff = 2, delay_from = retry_after }(
                failing({ { retry_after = 5 }, "plain", { retry_after = 0.25 }, { retry_after = nil } }))
            assert.equal("ok", dike.run(g))
            assert.same({ 5, 2, 0.25, 8 }, asked)
            assert.equal("Caught exception table: ", logs[1].message:match("^Caught exception table: "))
            assert.matches("Retrying in 5s ...", logs[1].message, 1, true)
            assert.matches("Retrying in 0.25s ...", logs[3].message, 1, true)
        end)

        it("is capped by max_delay (or the core's limit) and checked against max_elapsed", function()
            dike.run(dike.retry{ delay = 1, max_delay = 10, delay_from = retry_after }(
                failing({ { retry_after = 100 }, { retry_after = math.huge } })))
            assert.same({ 10, 10 }, asked)
            for i = #asked, 1, -1 do asked[i] = nil end
            dike.run(dike.retry{ delay = 1, delay_from = retry_after }(failing({ { retry_after = math.huge } })))
            assert.same({ require("dike.core").BACKOFF_MAX_DELAY }, asked)
            for i = #asked, 1, -1 do asked[i] = nil end
            local e = { retry_after = 30 }
            local g = dike.retry{ delay = 0.01, max_elapsed = 10, delay_from = retry_after }(failing({ e }))
            assert.equal(e, support.error_of(dike.run, g)) -- 30 s would pass max_elapsed: raised at once
            assert.same({}, asked)
        end)

        it("0 still yields to the loop once", function()
            dike.run(dike.retry{ delay = 5, delay_from = function() return 0 end }(failing({ "x" })))
            assert.same({ 0 }, asked)
        end)

        it("gets the first value of a result that retry_if_result refuses", function()
            local responses = { { status = 429, retry_after = 0.5 }, { status = 503 }, { status = 200 } }
            local i = 0
            local seen = {}
            local g = dike.retry{ delay = 0.1, backoff = 3,
                                  retry_if_result = function(r) return r.status ~= 200 end,
                                  delay_from = function(r) seen[#seen + 1] = r.status return r.retry_after end }(
                function() i = i + 1 return responses[i] end)
            assert.equal(200, dike.run(g).status)
            assert.same({ 429, 503 }, seen)
            assert.same({ 0.5, 0.1 * 3 }, asked)
        end)

        it("with jitter, the delays after an override are those the schedule gave anyway", function()
            local function delays(override)
                for i = #asked, 1, -1 do asked[i] = nil end
                local k = 0
                dike.run(dike.retry{ attempts = 6, delay = 0.5, max_delay = 20, jitter = "decorrelated", seed = 7,
                                     delay_from = function() k = k + 1 return k == 2 and override or nil end }(
                    failing({ 1, 2, 3, 4, 5 })))
                return { (table.unpack or unpack)(asked) } -- luacheck: ignore 143
            end
            local plain, pushed = delays(nil), delays(9)
            assert.equal(5, #plain)
            assert.equal(9, pushed[2])
            pushed[2] = plain[2]
            assert.same(plain, pushed)
        end)

        it("a value that is not a number >= 0 or nil is the caller's error; so is what it raises", function()
            for _, v in ipairs({ -1, 0 / 0, "5", {}, true }) do
                local g = dike.retry{ attempts = 3, delay_from = function() return v end }(failing({ "x" }))
                local shown = type(v) == "table" and "a table" or (v ~= v and "nan")
                    or (type(v) == "string" and '"5"') or tostring(v)
                assert.equal("dike.retry: delay_from must return a number >= 0 or nil, got " .. shown,
                             support.error_of(dike.run, g))
                assert.same({ calls = 1, retries = 0, failures = 1, budget_refused = 0 }, dike.stats(g))
            end
            local e = { "delay_from broke" }
            local g = dike.retry{ attempts = 3, delay_from = function() error(e) end }(failing({ "x" }))
            assert.equal(e, support.error_of(dike.run, g))
            assert.same({}, asked)
        end)
    end)

    describe("budget", function()
        local function always(err)
            return function() error(err or "down", 0) end
        end

        it("a new budget is full; dike.stats gives tokens and refused", function()
            local b = dike.retry_budget()
            assert.same({ tokens = 10, refused = 0 }, dike.stats(b))
            assert.same({ tokens = 4, refused = 0 }, dike.stats(dike.retry_budget{ max_tokens = 4 }))
            assert.are_not.equal(dike.stats(b), dike.stats(b)) -- a fresh table each time
            assert.equal("dike.retry_budget(tokens=10/10)", tostring(b))
        end)

        it("each retryable failure takes a token; retries stop at half, raising the last error unlogged", function()
            local b = dike.retry_budget{ max_tokens = 4, token_ratio = 0.5 }
            local g = dike.retry{ attempts = 10, budget = b }(always("down"))
            -- 4 -> 3 (retry) -> 2 (not > 2: refused)
            assert.equal("down", support.error_of(dike.run, g))
            assert.same({ calls = 1, retries = 1, failures = 1, budget_refused = 1 }, dike.stats(g))
            assert.same({ tokens = 2, refused = 1 }, dike.stats(b))
            assert.equal(1, #logs)
            -- now every failure is refused at once, and tokens go down to 0, never below
            for _ = 1, 3 do assert.equal("down", support.error_of(dike.run, g)) end
            assert.same({ tokens = 0, refused = 4 }, dike.stats(b))
            assert.same({ calls = 4, retries = 1, failures = 4, budget_refused = 4 }, dike.stats(g))
            assert.equal(1, #logs)
        end)

        it("successes refill it by token_ratio, up to max_tokens; wrappers share it", function()
            local b = dike.retry_budget{ max_tokens = 4, token_ratio = 0.5 }
            local bad = dike.retry{ attempts = 2, budget = b }(always())
            local good = dike.retry{ budget = b }(function() return "ok" end)
            for _ = 1, 4 do support.error_of(dike.run, bad) end
            assert.equal(0, dike.stats(b).tokens)
            for _ = 1, 5 do assert.equal("ok", dike.run(good)) end
            assert.equal(2.5, dike.stats(b).tokens)
            -- a failure now would leave 1.5, not above 2: refused
            local f, calls = flaky(1)
            assert.equal("failure 1", support.error_of(dike.run, dike.retry{ budget = b }(f), "back"))
            assert.same({ tokens = 1.5, refused = 4 }, dike.stats(b))
            -- at 3.5 a failure leaves 2.5: retried, and its success gives 0.5 back
            for _ = 1, 4 do dike.run(good) end
            local f2, calls2 = flaky(1)
            assert.equal("back", dike.run(dike.retry{ budget = b }(f2), "back"))
            assert.same({ 1, 2 }, { calls(), calls2() })
            assert.same({ tokens = 3, refused = 4 }, dike.stats(b))
            for _ = 1, 20 do dike.run(good) end
            assert.equal(4, dike.stats(b).tokens)
        end)

        it("errors that are not retried take no token", function()
            local b = dike.retry_budget{ max_tokens = 2 }
            local g = dike.retry{ exception_types = "^retry", budget = b }(always("fatal"))
            for _ = 1, 5 do assert.equal("fatal", support.error_of(dike.run, g)) end
            assert.same({ tokens = 2, refused = 0 }, dike.stats(b))
        end)

        it("refused with retry_if_result: the last values are returned", function()
            local b = dike.retry_budget{ max_tokens = 2, token_ratio = 1 }
            local g = dike.retry{ budget = b, retry_if_result = function(v) return v == "busy" end }(
                function() return "busy", 1 end)
            assert.same({ "busy", 1 }, { dike.run(g) })
            assert.same({ tokens = 1, refused = 1 }, dike.stats(b))
            assert.same({ calls = 1, retries = 0, failures = 0, budget_refused = 1 }, dike.stats(g))
            assert.same({}, logs)
        end)

        it("attempts and max_elapsed end a call before the budget is asked", function()
            local b = dike.retry_budget{ max_tokens = 10 }
            support.error_of(dike.run, dike.retry{ attempts = 1, budget = b }(always()))
            support.error_of(dike.run, dike.retry{ delay = 5, max_elapsed = 1, budget = b }(always()))
            assert.same({ tokens = 8, refused = 0 }, dike.stats(b))
        end)

        it("rejects bad options", function()
            local bad = {
                { dike.retry_budget, { max_tokens = 0 },
                  "dike.retry_budget: max_tokens must be a finite number > 0, got 0" },
                { dike.retry_budget, { max_tokens = math.huge }, "max_tokens must be a finite number > 0, got inf" },
                { dike.retry_budget, { token_ratio = -1 }, "token_ratio must be a finite number > 0, got -1" },
                { dike.retry_budget, { token_ratio = 0 / 0 }, "token_ratio must be a finite number > 0, got nan" },
                { dike.retry_budget, { tokens = 3 }, "dike.retry_budget: unknown option \"tokens\"" },
                { dike.retry_budget, 5, "dike.retry_budget: options must be a table, got 5" },
                { dike.retry, { budget = {} }, "dike.retry: budget must be a dike.retry_budget, got a table" },
                { dike.retry, { budget = 10 }, "dike.retry: budget must be a dike.retry_budget, got 10" },
                { dike.retry, { retry_if_result = true }, "dike.retry: retry_if_result must be a function, got true" },
                { dike.retry, { delay_from = 3 }, "dike.retry: delay_from must be a function, got 3" },
            }
            for _, case in ipairs(bad) do
                local err = support.error_of(case[1], case[2])
                assert.is_string(err, case[3])
                assert.matches(case[3], err, 1, true)
            end
        end)
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
