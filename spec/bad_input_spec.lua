-- Bad input, as a table: every option of every tool with a wrong type, NaN, +-inf, a negative,
-- zero, a fraction, a huge value and unknown keys; every call-shape error of batch (counts,
-- kinds, key sets, unequal lengths, empty, holes, nested tables), alone and next to a queued
-- good call; arrays with bad types, widths, values and indices; waiting outside a coroutine.
-- Each must raise exactly the message that names the problem (blaming the caller's line where
-- the error is the caller's), and the tool, or the very same wrapper, must work afterwards.
local dike = require("dike")

local NAN, INF = 0 / 0, math.huge
local floor, format = math.floor, string.format

-- The values every option is tried with.
local PROBES = { "x", "1", {}, true, print, NAN, INF, -INF, -1, -0.0, 0, 0.5, 1, 1e300, 2 ^ 53 + 2 }

-- How a value is shown in messages (the rule docs/errors-logging-stats.md gives, written out again).
local function show(v)
    if type(v) == "string" then return format("%q", v) end
    if v ~= v then return "nan" end
    if type(v) == "number" or type(v) == "boolean" or v == nil then return tostring(v) end
    return "a " .. type(v)
end

-- Call fn(...) from a closure of its own: returns the error (nil if none) and the "file:line: "
-- prefix an error blaming that caller carries.
local function raised(fn, ...)
    local caller = function(...) local r = fn(...) return r end
    local ok, err = pcall(caller, ...)
    local info = debug.getinfo(caller, "S")
    return (not ok) and err or nil, info.short_src .. ":" .. info.linedefined .. ": "
end

-- The message an option rule gives for v, or nil when v is valid.
local RULES = {}
function RULES.count(min, inf_ok)
    return function(v)
        if type(v) == "number" and v >= min and (v == floor(v) and v <= 2 ^ 53 or (inf_ok and v == INF)) then
            return nil
        end
        local why = (type(v) == "number" and v > 2 ^ 53 and v < INF and v == floor(v))
            and " (integers above 2^53 are not exact)" or ""
        return "must be an integer >= " .. min .. (inf_ok and " or math.huge" or "") .. ", got " .. show(v) .. why
    end
end
function RULES.number(strict, inf_ok)
    return function(v)
        if type(v) == "number" and v == v and (v > 0 or (not strict and v == 0)) and (v < INF or inf_ok) then
            return nil
        end
        return "must be a " .. (inf_ok and "" or "finite ") .. "number " .. (strict and "> 0" or ">= 0")
            .. ", got " .. show(v)
    end
end
function RULES.choice(set, listed)
    return function(v)
        if set[v] then return nil end
        return "must be one of " .. listed .. ", got " .. show(v)
    end
end
function RULES.type(t, what)
    return function(v)
        if type(v) == t then return nil end
        return "must be " .. what .. ", got " .. show(v)
    end
end

function RULES.rate(v)
    if type(v) == "number" and v > 0 and v <= 1 then return nil end
    return "must be a number > 0 and <= 1, got " .. show(v)
end
-- A store option: nothing but a store (dike.store.redis{...}, dike.store.shared_dict(name)) is one.
function RULES.store(v)
    return "must be a store (dike.store.redis{...} or dike.store.shared_dict(name)), got " .. show(v)
end

-- A rule, then a bound against another option's value (`other` names it, as the message does).
local function bounded(rule, ok, other)
    return function(v)
        local why = rule(v)
        if why or ok(v) then return why end
        return other .. ", got " .. show(v)
    end
end

local function add_one(xs) -- a batch function (lists and width-1 arrays index alike)
    local out = {}
    for i = 1, #xs do out[i] = xs[i] + 1 end
    return out
end

-- Each tool: its options with the rule each follows, the options every probe is added to,
-- and `use`, a good call through a wrapper made with some options (asserting its result).

local TOOLS = {
    {
        name = "dike.retry", make = dike.retry, base = {},
        options = {
            attempts = RULES.count(1, true),
            exception_types = function(v)
                if type(v) == "string" or type(v) == "function" or type(v) == "table" then return nil end
                return "must be an error class, a pattern string, a predicate or a list of these, got " .. show(v)
            end,
            delay = RULES.number(false, false),
            backoff = RULES.number(true, false),
            max_delay = RULES.number(true, true),
            jitter = RULES.choice({ none = true, full = true, equal = true, decorrelated = true },
                                  '"none", "full", "equal" or "decorrelated"'),
            max_elapsed = RULES.number(true, true),
            log_exception_info = RULES.type("boolean", "a boolean"),
            logger = RULES.type("function", "a function"),
            seed = RULES.count(0, false),
            retry_if_result = RULES.type("function", "a function"),
            delay_from = RULES.type("function", "a function"),
            budget = function(v) -- no probe is a budget
                return "must be a dike.retry_budget, got " .. show(v)
            end,
        },
        use = function(opts)
            local g = dike.retry(opts)(function(x) return x + 1 end)
            assert.equal(42, dike.run(g, 41))
        end,
    },
    {
        name = "dike.limit_jobs", make = dike.limit_jobs, base = { limit = 1 },
        options = {
            limit = RULES.count(0, true),
            queue = RULES.count(0, true),
            queue_timeout = RULES.number(true, true),
            name = RULES.type("string", "a string"),
            store = RULES.store,
        },
        use = function(opts)
            local g = dike.limit_jobs(opts)(function(x) return x + 1 end)
            local err = raised(g, 41)
            if opts.limit == 0 then
                assert.equal(dike.TooManyCalls, getmetatable(err))
            else
                assert.is_nil(err)
                assert.equal(42, dike.run(g, 41))
            end
        end,
    },
    {
        name = "dike.retry_budget", make = dike.retry_budget, base = {}, optional = true, not_a_decorator = true,
        options = {
            max_tokens = RULES.number(true, false),
            token_ratio = RULES.number(true, false),
        },
        use = function(opts)
            local b = dike.retry_budget(opts)
            assert.same({ tokens = opts.max_tokens or 10, refused = 0 }, dike.stats(b))
            local n = 0
            local g = dike.retry{ budget = b }(function() n = n + 1 if n == 1 then error("once", 0) end return n end)
            local max = opts.max_tokens or 10
            local retried = max - 1 > max / 2 -- the one failure leaves enough tokens for a retry
            assert.same({ retried, retried and 2 or "once" }, { pcall(dike.run, g) })
        end,
    },
    {
        -- rate 1e300: burst (floor(rate)) is above every cost probed, and every call passes.
        name = "dike.rate_limit", make = dike.rate_limit, base = { rate = 1e300 },
        options = {
            rate = RULES.number(true, false),
            per = RULES.number(true, false),
            burst = function(v)
                if type(v) == "number" and v >= 1 and v < INF then return nil end
                return "must be a finite number >= 1, got " .. show(v)
            end,
            max_wait = RULES.number(false, true),
            cost = function(v)
                if type(v) == "function" or (type(v) == "number" and v > 0 and v < INF) then return nil end
                return "must be a finite number > 0 or a function, got " .. show(v)
            end,
            name = RULES.type("string", "a string"),
            store = RULES.store,
        },
        use = function(opts)
            if opts.cost == print then -- print the probe, silenced: a cost function returning nothing
                opts.cost = function() end
            end
            local g = dike.rate_limit(opts)(function(x) return x + 1 end)
            if type(opts.cost) == "function" then -- its result is the call's error
                local err, at = raised(g, 41)
                assert.equal(at .. "dike.rate_limit: the cost function's result must be a finite number > 0, got nil",
                             err)
            else
                assert.equal(42, g(41))
            end
        end,
    },
    {
        name = "dike.batch", make = dike.batch, base = { target_batch_size = 1, max_waiting_time = 1 },
        options = {
            target_batch_size = RULES.count(1, false),
            max_waiting_time = RULES.number(true, false),
            max_processing_time = RULES.number(true, false),
            argument_type = RULES.choice({ list = true, array = true }, '"list" or "array"'),
            max_batch_size = RULES.count(1, true),
            max_concurrent_batches = RULES.count(1, true),
        },
        use = function(opts)
            local f = dike.batch(opts)(add_one)
            local arg = opts.argument_type == "array" and dike.array({ 41 }) or { 41 }
            assert.same({ 42 }, dike.run(f, arg))
        end,
    },
}

-- The v2 tools whose options are checked like the others (the circuit breaker's defaults:
-- window 20, open_for 30).
TOOLS[#TOOLS + 1] = {
    name = "dike.circuit_breaker", make = dike.circuit_breaker, base = {}, optional = true,
    options = {
        failure_rate = RULES.rate,
        window = RULES.count(1, false),
        window_seconds = RULES.number(true, false),
        minimum_calls = bounded(RULES.count(1, false), function(v) return v <= 20 end, "must be <= window (20)"),
        slow_call_seconds = RULES.number(true, true),
        slow_call_rate = RULES.rate,
        open_for = RULES.number(true, false),
        open_backoff = function(v)
            if type(v) == "number" and v >= 1 and v < INF then return nil end
            return "must be a finite number >= 1, got " .. show(v)
        end,
        max_open_for = bounded(RULES.number(true, true), function(v) return v >= 30 end, "must be >= open_for (30)"),
        half_open_calls = RULES.count(1, false),
        exception_types = TOOLS[1].options.exception_types,
        name = RULES.type("string", "a string"),
        clock = RULES.type("function", "a function"),
        store = RULES.store,
    },
    use = function(opts)
        local g = dike.circuit_breaker(opts)(function(x) return x + 1 end)
        assert.equal(42, g(41))
        assert.equal(42, dike.run(g, 41))
    end,
}
TOOLS[#TOOLS + 1] = {
    name = "dike.timeout", make = dike.timeout, base = { seconds = 1 },
    options = {
        seconds = RULES.number(true, true),
        name = RULES.type("string", "a string"),
    },
    use = function(opts)
        local g = dike.timeout(opts)(function(x) return x + 1 end)
        assert.equal(42, g(41))
        assert.equal(42, dike.run(g, 41))
    end,
}

local tried = 0

describe("bad input", function()
    describe("options", function()
        for _, tool in ipairs(TOOLS) do
            for key, rule in pairs(tool.options) do
                it(tool.name .. " " .. key .. ": wrong types, NaN, +-inf, negative, zero, huge", function()
                    for _, v in ipairs(PROBES) do
                        local opts = {}
                        for k, x in pairs(tool.base) do opts[k] = x end
                        opts[key] = v
                        local want = rule(v)
                        local err, at = raised(tool.make, opts)
                        tried = tried + 1
                        if want then
                            assert.equal(at .. tool.name .. ": " .. key .. " " .. want, err)
                            tool.use(tool.base) -- the tool goes on working
                        else
                            assert.is_nil(err, key .. " = " .. show(v))
                            tool.use(opts) -- a valid value works
                        end
                    end
                end)
            end

            it(tool.name .. ": options that are not a table, unknown keys, a non-function to wrap", function()
                local bad = {
                    { { nope = 1 }, 'unknown option "nope"' },
                    { { [1] = 2 }, "unknown option 1" },
                    { { [{}] = 2 }, "unknown option a table" },
                    { { [true] = 2 }, "unknown option true" },
                    { 5, "options must be a table, got 5" },
                    { "x", 'options must be a table, got "x"' },
                    { true, "options must be a table, got true" },
                }
                if tool.name ~= "dike.retry" and not tool.optional then
                    bad[#bad + 1] = { nil, "options must be a table, got nil" }
                end
                for _, case in ipairs(bad) do
                    local opts = case[1]
                    if type(opts) == "table" then
                        for k, x in pairs(tool.base) do opts[k] = x end
                    end
                    local err, at = raised(tool.make, opts)
                    tried = tried + 1
                    assert.equal(at .. tool.name .. ": " .. case[2], err)
                    tool.use(tool.base)
                end
                if tool.not_a_decorator then return end
                local decorate = tool.make(tool.base)
                for _, v in ipairs({ 5, "f", {}, true, NAN }) do
                    local err, at = raised(decorate, v)
                    tried = tried + 1
                    assert.equal(at .. tool.name .. ": expected a function to wrap, got " .. show(v), err)
                end
                -- the same decorator then wraps a function, and a callable table
                local callable = setmetatable({}, { __call = function(_, x) return x end })
                assert.is_function(decorate(print))
                assert.is_function(decorate(callable))
            end)
        end

        it("required options and option pairs", function()
            local idle_store = dike.store.redis{ path = "/nonexistent/dike-bad-input.sock" }
            local cases = {
                { dike.limit_jobs, {}, "dike.limit_jobs: limit must be an integer >= 0 or math.huge, got nil" },
                { dike.batch, { max_waiting_time = 1 },
                  "dike.batch: target_batch_size must be an integer >= 1, got nil" },
                { dike.batch, { target_batch_size = 1 },
                  "dike.batch: max_waiting_time must be a finite number > 0, got nil" },
                { dike.batch, { target_batch_size = 3, max_waiting_time = 1, max_batch_size = 2 },
                  "dike.batch: max_batch_size must be >= target_batch_size (3), got 2" },
                { dike.retry, { exception_types = "[" },
                  "dike.retry: exception_types pattern \"[\" is invalid: malformed pattern (missing ']')" },
                { dike.retry, { exception_types = { "x", 5 } }, "dike.retry: exception_types must be an error class,"
                  .. " a pattern string, a predicate or a list of these, got 5" },
                { dike.timeout, {}, "dike.timeout: seconds must be a number > 0, got nil" },
                { dike.circuit_breaker, { window = 5, window_seconds = 5 }, "dike.circuit_breaker: window and"
                  .. " window_seconds cannot both be given (the window is the last `window` calls, or the calls of"
                  .. " the last `window_seconds` seconds)" },
                { dike.circuit_breaker, { window = 5, minimum_calls = 6 },
                  "dike.circuit_breaker: minimum_calls must be <= window (5), got 6" },
                { dike.circuit_breaker, { open_for = 10, max_open_for = 5 },
                  "dike.circuit_breaker: max_open_for must be >= open_for (10), got 5" },
                { dike.circuit_breaker, { exception_types = "[" },
                  "dike.circuit_breaker: exception_types pattern \"[\" is invalid: malformed pattern (missing ']')" },
                { dike.circuit_breaker, { exception_types = { dike.CircuitOpen, true } }, "dike.circuit_breaker:"
                  .. " exception_types must be an error class, a pattern string, a predicate or a list of these,"
                  .. " got true" },
                { dike.rate_limit, {}, "dike.rate_limit: rate must be a finite number > 0, got nil" },
                { dike.rate_limit, { rate = 2, cost = 3 },
                  "dike.rate_limit: cost 3 exceeds burst 2: such a call could never run" },
                { dike.rate_limit, { rate = 100, burst = 2.5, cost = 2.75 },
                  "dike.rate_limit: cost 2.75 exceeds burst 2.5: such a call could never run" },
                -- with a store (made, never used: it connects at its first command)
                { dike.rate_limit, { rate = 1, store = idle_store },
                  "dike.rate_limit: name is required with a store (it is the key the processes share)" },
                { dike.rate_limit, { rate = 1, name = 5, store = idle_store }, "dike.rate_limit: name must be a"
                  .. " string, got 5" },
                { dike.rate_limit, { rate = 1, cost = 2, name = "x", store = idle_store },
                  "dike.rate_limit: cost 2 exceeds burst 1: such a call could never run" },
                { dike.circuit_breaker, { store = idle_store },
                  "dike.circuit_breaker: name is required with a store (it is the key the processes share)" },
                { dike.circuit_breaker, { name = "x", store = idle_store, clock = os.clock },
                  "dike.circuit_breaker: clock cannot be given with a store (the store's clock times the breaker)" },
                { dike.circuit_breaker, { name = "x", store = idle_store, window = 2, minimum_calls = 3 },
                  "dike.circuit_breaker: minimum_calls must be <= window (2), got 3" },
                { dike.circuit_breaker, { name = "x", store = { breaker = 1 } }, "dike.circuit_breaker: store must be"
                  .. " a store (dike.store.redis{...} or dike.store.shared_dict(name)), got a table" },
                { dike.rate_limit, { rate = 1, name = "x", store = idle_store.client }, "dike.rate_limit: store"
                  .. " must be a store (dike.store.redis{...} or dike.store.shared_dict(name)), got a table" },
                { dike.limit_jobs, { limit = 1, store = idle_store },
                  "dike.limit_jobs: name is required with a store (it is the key the processes share)" },
            }
            for _, case in ipairs(cases) do
                local err, at = raised(case[1], case[2])
                tried = tried + 1
                assert.equal(at .. case[3], err)
            end
            for _, tool in ipairs(TOOLS) do tool.use(tool.base) end
        end)

        it("gather's options", function()
            dike.run(function()
                for _, v in ipairs(PROBES) do
                    local err, at = raised(dike.gather, { function() return 1 end }, { return_errors = v })
                    tried = tried + 1
                    if type(v) == "boolean" then
                        assert.is_nil(err)
                    else
                        assert.equal(at .. "dike.gather: return_errors must be a boolean, got " .. show(v), err)
                    end
                end
                for _, case in ipairs({ { 5, "options must be a table, got 5" },
                                        { { nope = true }, 'unknown option "nope"' } }) do
                    local err, at = raised(dike.gather, {}, case[1])
                    tried = tried + 1
                    assert.equal(at .. "dike.gather: " .. case[2], err)
                end
                assert.same({ 1, n = 1 }, dike.gather({ function() return 1 end }, { return_errors = true }))
            end)
        end)
    end)

    describe("arguments of the other functions", function()
        it("sleep, set_logger, stats, spawn, run, wrap, gather, fail, set_runtime", function()
            local good = dike.retry{}(function() return "good" end)
            local cases = {
                -- { fn, arg, message, in a task?, blames the caller? }
                { dike.sleep, "x", 'dike.sleep: seconds must be a number >= 0, got "x"', true, true },
                { dike.sleep, NAN, "dike.sleep: seconds must be a number >= 0, got nan", true, true },
                { dike.sleep, -INF, "dike.sleep: seconds must be a number >= 0, got -inf", true, true },
                { dike.sleep, -1, "dike.sleep: seconds must be a number >= 0, got -1", true, true },
                { dike.sleep, {}, "dike.sleep: seconds must be a number >= 0, got a table", true, true },
                { dike.sleep, nil, "dike.sleep: seconds must be a number >= 0, got nil", true, true },
                { dike.set_logger, 5, "dike.set_logger: logger must be a function or nil, got number", false, true },
                { dike.set_logger, "f", "dike.set_logger: logger must be a function or nil, got string", false, true },
                { dike.set_logger, {}, "dike.set_logger: logger must be a function or nil, got table", false, true },
                { dike.stats, 5, "dike.stats: expected a function wrapped by dike or a limiter, got 5", false, true },
                { dike.stats, print, "dike.stats: expected a function wrapped by dike or a limiter, got a function",
                  false, true },
                { dike.stats, nil, "dike.stats: expected a function wrapped by dike or a limiter, got nil",
                  false, true },
                { dike.spawn, 5, "dike.spawn: fn must be a function, got number", false, true },
                { dike.spawn, nil, "dike.spawn: fn must be a function, got nil", false, true },
                { dike.run, {}, "dike.run: fn must be a function, got table", false, true },
                { dike.run, good, "dike.run: cannot be called inside a task; use dike.spawn (or just call fn)",
                  true, true },
                { dike.wrap, 5, "dike.wrap: expected a function to wrap, got 5", false, true },
                { dike.wrap, nil, "dike.wrap: expected a function to wrap, got nil", false, true },
                { dike.gather, 5, "dike.gather: items must be a list of tasks or functions, got 5", true, true },
                { dike.gather, { print, 5 }, "dike.gather: item 2 must be a task or a function, got 5", true, true },
                { dike.gather, { print, {} }, "dike.gather: item 2 must be a task or a function, got a table",
                  true, true },
                { dike.gather, { nil, print }, "dike.gather: item 1 must be a task or a function, got nil",
                  true, true },
                { dike.fail, nil, "dike.fail: err must not be nil (the value its row's caller raises)",
                  false, true },
                { dike.on_event, 5, "dike.on_event: observer must be a function or nil, got 5", false, true },
                { dike.on_event, "f", 'dike.on_event: observer must be a function or nil, got "f"', false, true },
                { dike.on_event, {}, "dike.on_event: observer must be a function or nil, got a table", false, true },
                { dike.set_runtime, 5,
                  "dike.set_runtime: expected a runtime name, a host table or nil, got 5",
                  false, true },
            }
            for _, case in ipairs(cases) do
                local err, at
                if case[4] then
                    err, at = dike.run(function() return raised(case[1], case[2]) end)
                else
                    err, at = raised(case[1], case[2])
                end
                tried = tried + 1
                assert.equal((case[5] and at or "") .. case[3], err)
                -- everything goes on working
                assert.equal("good", dike.run(good))
                assert.same({ 2, n = 1 }, dike.run(function()
                    dike.sleep(0)
                    return dike.gather({ function() return 2 end })
                end))
            end
            assert.equal(#cases, dike.stats(good).calls) -- one good call after each bad one
        end)
    end)

    it("circuit breaker methods called without the breaker", function()
        local cb = dike.circuit_breaker{ name = "m" }
        for _, method in ipairs({ "state", "isolate", "reset" }) do
            for _, self in ipairs({ {}, 5 }) do
                local err, at = raised(cb[method], self)
                tried = tried + 1
                assert.equal(at .. "dike.circuit_breaker: call " .. method .. " as breaker:" .. method .. "(), got "
                             .. show(self) .. " as self", err)
            end
        end
        assert.equal("closed", cb:state()) -- the breaker goes on working
    end)

    describe("rate limiter calls", function()
        it("bad costs of a cost function, acquire and try; methods called without a limiter", function()
            local results = { 0, -1, NAN, INF, -INF, "1", {}, true, 3, 1e300 }
            local i = 0
            local rl = dike.rate_limit{ rate = 1e9, burst = 2, cost = function() i = i + 1 return results[i] end }
            local f = rl(function() return "ran" end)
            for _, v in ipairs(results) do
                local err, at = raised(f)
                tried = tried + 1
                local want = (type(v) == "number" and v > 0 and v < INF)
                    and ("cost " .. show(v) .. " exceeds burst 2: such a call could never run")
                    or ("the cost function's result must be a finite number > 0, got " .. show(v))
                assert.equal(at .. "dike.rate_limit: " .. want, err)
            end
            for _, method in ipairs({ "acquire", "try" }) do
                local fname = "limiter:" .. method
                for _, v in ipairs({ 0, -1, NAN, INF, "1", {}, true, 2.5, 1e300 }) do
                    local err, at = raised(function() return rl[method](rl, v) end)
                    tried = tried + 1
                    local want = (type(v) == "number" and v > 0 and v < INF)
                        and ("cost " .. show(v) .. " exceeds burst 2: such a call could never run")
                        or ("cost must be a finite number > 0, got " .. show(v))
                    assert.equal(at .. fname .. ": " .. want, err)
                end
                for _, self in ipairs({ 5, "x", {}, f }) do
                    local err, at = raised(function() return rl[method](self) end)
                    tried = tried + 1
                    assert.equal(at .. fname .. ": expected a rate limiter (call it with a colon), got " .. show(self),
                                 err)
                end
            end
            -- nothing was taken: the limiter's turns are all still there
            assert.same({ calls = #results, admitted = 0, delayed = 0, rejected = 0, waiting = 0 }, dike.stats(rl))
            assert.same({ true, 0 }, { rl:try(2) })
            assert.is_nil(rl:acquire())
        end)
    end)

    describe("batch calls of the wrong shape", function()
        -- A call and the message it must get. `queued` is the good call already in the open
        -- batch (when there is one): the shape errors that compare against it.
        local beyond = { 1 }
        beyond[3] = 3
        local LIST = {
            { {}, "dike.batch: a call needs at least one argument (its rows)" },
            { { 5 }, "dike.batch: argument 1 must be a non-empty sequence, got 5" },
            { { "ab" }, 'dike.batch: argument 1 must be a non-empty sequence, got "ab"' },
            { { true }, "dike.batch: argument 1 must be a non-empty sequence, got true" },
            { { print }, "dike.batch: argument 1 must be a non-empty sequence, got a function" },
            { { nil, n = 1 }, "dike.batch: argument 1 must be a non-empty sequence, got nil" },
            { { {}, n = 1 }, "dike.batch: argument 1 is empty: a call needs at least one row" },
            { { { 1, nil, 3 } }, "dike.batch: argument 1 has a hole at index 2" },
            { { beyond }, "dike.batch: argument 1 has a hole at index 2" },
            { { { nil, 2 } }, "dike.batch: argument 1 has a hole at index 1" },
            { { dike.array({ 1 }) }, "dike.batch: argument 1 must be a non-empty sequence, got a dike.array" },
            { { { 1, 2 }, { 1 } }, "dike.batch: argument 2 has 1 rows but argument 1 has 2" },
            { { { 1 }, nil, n = 2 }, "dike.batch: argument 2 must be a non-empty sequence, got nil" },
            { { { 1 }, {}, n = 2 }, "dike.batch: argument 2 is empty: a call needs at least one row" },
            { { { a = 3 } }, 'dike.batch: argument 1 field "a" must be a non-empty sequence, got 3' },
            { { { a = {} } }, 'dike.batch: argument 1 field "a" is empty: a call needs at least one row' },
            { { { a = { 1, nil, 3 } } }, 'dike.batch: argument 1 field "a" has a hole at index 2' },
            { { { a = { b = { 1 } } } }, 'dike.batch: argument 1 field "a" must be a non-empty sequence, got a'
              .. " table without element 1 (named sequences do not nest)" },
            { { { a = { 1 }, [2] = { 1 } } }, "dike.batch: argument 1 mixes named sequences with a non-string key 2" },
            { { { a = { 1 }, b = { 1, 2 } } }, { 'dike.batch: argument 1 field "a" has 1 rows but field "b" has 2',
                                                 'dike.batch: argument 1 field "b" has 2 rows but field "a" has 1' } },
        }
        -- Errors that need a first queued call {1}, {2} to compare with.
        local AGAINST_QUEUED = {
            { { { 1 } }, "dike.batch: called with 1 arguments, but the calls queued for this batch pass 2" },
            { { { 1 }, { 2 }, { 3 } },
              "dike.batch: called with 3 arguments, but the calls queued for this batch pass 2" },
            { { { a = { 1 } }, { 2 } }, "dike.batch: argument 1 is named sequences, but the calls queued for this batch"
              .. " pass a sequence there" },
        }
        local function unpack_call(c) return (table.unpack or unpack)(c, 1, c.n or #c) end -- luacheck: ignore 143

        local function batcher(opts)
            local seen = {}
            local f = dike.batch(opts)(function(a, b)
                seen[#seen + 1] = { a, b }
                local out = {}
                for i = 1, #a do out[i] = a[i] * 10 + (b and b[i] or 0) end
                return out
            end)
            return f, seen
        end

        local function check_case(f, case, queued_first)
            -- the bad call alone, or while a good call waits in the open batch
            return dike.run(function()
                local waiting
                if queued_first then waiting = dike.spawn(f, { 1 }, { 2 }) end
                local err = raised(f, unpack_call(case[1]))
                tried = tried + 1
                if type(case[2]) == "table" then
                    assert.is_true(err == case[2][1] or err == case[2][2], tostring(err))
                else
                    assert.equal(case[2], err)
                end
                if waiting then
                    assert.same({ 12 }, waiting:join()) -- the queued call is untouched
                end
                assert.same({ 34 }, f({ 3 }, { 4 })) -- the same wrapper goes on working
            end)
        end

        it("in list mode, with the open batch empty or holding a good call", function()
            local f, seen = batcher{ target_batch_size = 2, max_waiting_time = 0.005 }
            for _, case in ipairs(LIST) do
                check_case(f, case, false)
                check_case(f, case, true)
            end
            for _, case in ipairs(AGAINST_QUEUED) do check_case(f, case, true) end
            -- only good rows were ever sent
            for _, args in ipairs(seen) do
                for _, x in ipairs(args[1]) do assert.is_true(x == 1 or x == 3) end
            end
            local s = dike.stats(f)
            assert.same({ 0, 0, 0, 0 }, { s.queued_calls, s.queued_rows, s.running_batches, s.waiting })
        end)

        it("key sets and named kinds against the first queued call", function()
            local f = dike.batch{ target_batch_size = 2, max_waiting_time = 0.005 }(function(kw)
                local out = {}
                for i = 1, #kw.a do out[i] = kw.a[i] end
                return out
            end)
            local cases = {
                { { b = { 1 } }, "dike.batch: argument 1 has keys {b}, but the calls queued for this batch have {a}" },
                { { a = { 1 }, b = { 1 } }, "dike.batch: argument 1 has keys {a, b}, but the calls queued for this"
                  .. " batch have {a}" },
                { { 1 }, "dike.batch: argument 1 is a sequence, but the calls queued for this batch pass named"
                  .. " sequences there" },
            }
            for _, case in ipairs(cases) do
                dike.run(function()
                    local waiting = dike.spawn(f, { a = { 7 } })
                    assert.equal(case[2], (raised(f, case[1])))
                    tried = tried + 1
                    assert.same({ 7 }, waiting:join())
                    assert.same({ 8 }, f({ a = { 8 } }))
                end)
            end
        end)

        it("in array mode: element types, widths, kinds", function()
            local f = dike.batch{ target_batch_size = 2, max_waiting_time = 0.005, argument_type = "array" }(
                function(a) return a end)
            local cases = {
                { { { 1 } }, 'dike.batch: argument 1 must be a dike.array (argument_type "array"), got a table',
                  false },
                { { 5 }, 'dike.batch: argument 1 must be a dike.array (argument_type "array"), got 5', false },
                { { dike.array({}) }, "dike.batch: argument 1 is empty: a call needs at least one row", false },
                { { { a = { 1 } } }, 'dike.batch: argument 1 field "a" must be a dike.array (argument_type "array"),'
                  .. " got a table", false },
                { { dike.array({ 1 }, "int32") }, "dike.batch: argument 1 is a dike.array of int32 x1, but the calls"
                  .. " queued for this batch pass a dike.array of double x1", true },
                { { dike.array({ 1, 2 }, "double", 2) }, "dike.batch: argument 1 is a dike.array of double x2, but"
                  .. " the calls queued for this batch pass a dike.array of double x1", true },
            }
            for _, case in ipairs(cases) do
                dike.run(function()
                    local waiting = case[3] and dike.spawn(f, dike.array({ 5 }))
                    assert.equal(case[2], (raised(f, unpack_call(case[1]))))
                    tried = tried + 1
                    if waiting then assert.same({ 5 }, waiting:join():totable()) end
                    assert.same({ 6 }, f(dike.array({ 6 })):totable())
                end)
            end
        end)

        it("results of the wrong shape from the batch function reach every caller, and nothing is left", function()
            local returns = { { nil, "a nil" }, { "no", "a string" }, { 5, "a number" }, { true, "a boolean" },
                              { {}, "0 results" }, { { 1, 2, 3 }, "3 results" },
                              { dike.array({ 1, 2, 3 }), "3 results" },
                              { dike.array({ 1 }), "1 results" } }
            for _, case in ipairs(returns) do
                local fn = function() return case[1] end
                local f = dike.batch{ target_batch_size = 2, max_waiting_time = 1 }(fn)
                local info = debug.getinfo(fn, "S")
                local got = dike.run(function()
                    return dike.gather({ function() return f({ 1 }) end, function() return f({ 2 }) end },
                                       { return_errors = true })
                end)
                tried = tried + 1
                assert.equal(format("dike.batch: %s:%d returned %s for a batch of 2 rows (expected a sequence of 2"
                                    .. " results, one per row)", info.short_src, info.linedefined, case[2]), got[1])
                assert.equal(got[1], got[2])
                local s = dike.stats(f)
                assert.same({ 0, 0, 0, 0 }, { s.queued_calls, s.queued_rows, s.running_batches, s.waiting })
                TOOLS[3].use(TOOLS[3].base) -- dike.batch goes on working
            end
        end)
    end)

    describe("arrays", function()
        it("bad lists, element types and widths", function()
            local cases = {
                { { 5 }, "bad argument #1 to 'array' (table expected, got number)" },
                { { "123" }, "bad argument #1 to 'array' (table expected, got string)" },
                { {}, "bad argument #1 to 'array' (table expected, got no value)" },
                { { { 1, "2" } }, "bad argument #1 to 'array' (element 2 must be a number, got string)" },
                { { { {} } }, "bad argument #1 to 'array' (element 1 must be a number, got table)" },
                { { { 1, nil, 3 } }, "bad argument #1 to 'array' (element 2 must be a number, got nil)" },
                { { { 300 }, "uint8" }, "bad argument #1 to 'array' (element 1 must fit uint8, got 300)" },
                { { { -1 }, "uint8" }, "bad argument #1 to 'array' (element 1 must fit uint8, got -1)" },
                { { { 1.5 }, "int32" }, "bad argument #1 to 'array' (element 1 must fit int32, got 1.5)" },
                { { { NAN }, "int64" }, "bad argument #1 to 'array' (element 1 must fit int64, got nan)" },
                { { { INF }, "int32" }, "bad argument #1 to 'array' (element 1 must fit int32, got inf)" },
                { { { 2 ^ 31 }, "int32" }, "bad argument #1 to 'array' (element 1 must fit int32, got 2147483648)" },
                { { { 1e39 }, "float" }, "bad argument #1 to 'array' (element 1 must fit float, got 1e+39)" },
                { { { 1 }, "int16" }, "bad argument #2 to 'array' (elemtype must be one of double, float, int32,"
                  .. " int64, uint8, got 'int16')" },
                { { { 1 }, "double\0" }, "bad argument #2 to 'array' (elemtype must be one of double, float, int32,"
                  .. " int64, uint8, got 'double')" },
                { { { 1 }, 5 }, "bad argument #2 to 'array' (string expected, got number)" },
                { { { 1 }, "double", 0 }, "bad argument #3 to 'array' (width must be an integer in [1, 2147483647],"
                  .. " got 0)" },
                { { { 1 }, "double", -1 }, "bad argument #3 to 'array' (width must be an integer in [1, 2147483647],"
                  .. " got -1)" },
                { { { 1 }, "double", 1.5 }, "bad argument #3 to 'array' (width must be an integer in [1, 2147483647],"
                  .. " got 1.5)" },
                { { { 1 }, "double", NAN }, "bad argument #3 to 'array' (width must be an integer in [1, 2147483647],"
                  .. " got nan)" },
                { { { 1 }, "double", INF }, "bad argument #3 to 'array' (width must be an integer in [1, 2147483647],"
                  .. " got inf)" },
                { { { 1 }, "double", 2 ^ 31 }, "bad argument #3 to 'array' (width must be an integer in"
                  .. " [1, 2147483647], got 2147483648)" },
                { { { 1 }, "double", "2" }, "bad argument #3 to 'array' (number expected, got string)" },
                { { { 1, 2, 3 }, "double", 2 }, "bad argument #1 to 'array' (#list must be a multiple of width 2,"
                  .. " got 3)" },
            }
            -- dike.array called by name from a one-line function, so the message names 'array' and
            -- its position is that function's line
            local make = function(...) local a = dike.array(...) return a end
            local info = debug.getinfo(make, "S")
            local at = info.short_src .. ":" .. info.linedefined .. ": "
            for _, case in ipairs(cases) do
                local args = case[1]
                local ok, err = pcall(make, (table.unpack or unpack)(args, 1, #args)) -- luacheck: ignore 143
                tried = tried + 1
                assert.is_false(ok)
                assert.equal(at .. case[2], err)
                assert.same({ 1, 2 }, dike.array({ 1, 2 }, "int32"):totable()) -- dike.array goes on working
            end
        end)

        it("bad indices, rows, columns and slices; arrays are read-only", function()
            -- (no case is a tail call, which would lose the function's name in the message)
            local a = dike.array({ 10, 20, 30 })
            local m = dike.array({ 1, 2, 3, 4, 5, 6 }, "int32", 3)
            local IDX = "dike.array: index must be an integer in [1, 3], got "
            local cases = {
                { function() local v = a[0] return v end, IDX .. "0" },
                { function() local v = a[4] return v end, IDX .. "4" },
                { function() local v = a[-1] return v end, IDX .. "-1" },
                { function() local v = a[1.5] return v end, IDX .. "1.5" },
                { function() local v = a[NAN] return v end, IDX .. "nan" },
                { function() local v = a[INF] return v end, IDX .. "inf" },
                { function() local v = m[1] return v end,
                  "dike.array: a[i] needs width 1, got width 3 (use a:get(row, col))" },
                { function() local v = m:get(0) return v end,
                  "bad argument #1 to 'get' (row must be an integer in [1, 2], got 0)" },
                { function() local v = m:get(3, 1) return v end,
                  "bad argument #1 to 'get' (row must be an integer in [1, 2], got 3)" },
                { function() local v = m:get(1, 4) return v end,
                  "bad argument #2 to 'get' (col must be an integer in [1, 3], got 4)" },
                { function() local v = m:get(1, NAN) return v end,
                  "bad argument #2 to 'get' (col must be an integer in [1, 3], got nan)" },
                { function() local v = m:get("1") return v end,
                  "bad argument #1 to 'get' (number expected, got string)" },
                { function() local v = m:get() return v end,
                  "bad argument #1 to 'get' (number expected, got no value)" },
                { function() local v = a:slice(0, 1) return v end,
                  "bad argument #1 to 'slice' (first_row must be an integer in [1, 4], got 0)" },
                { function() local v = a:slice(2, 3) return v end,
                  "bad argument #2 to 'slice' (nrows must be an integer in [0, 2], got 3)" },
                { function() local v = a.get(5, 1) return v end,
                  "bad argument #1 to 'get' (dike.array expected, got number)" },
                { function() a[1] = 5 end, "dike.array: arrays are read-only (cannot set a[1])" },
                { function() a.x = 5 end, "dike.array: arrays are read-only (cannot set a.x)" },
            }
            for _, case in ipairs(cases) do
                local ok, err = pcall(case[1])
                tried = tried + 1
                assert.is_false(ok)
                assert.equal(case[2], (err:gsub("^[^:]+:%d+: ", "")))
                -- the same arrays go on working
                assert.equal(20, a[2])
                assert.equal(6, m:get(2, 3))
                assert.same({ 20, 30 }, a:slice(2, 2):totable())
            end
            assert.is_nil(a.nope) -- other keys are not errors: they are looked up as methods
            assert.is_nil(a[true])
        end)
    end)

    describe("waiting outside a coroutine", function()
        it("raises the contract's message, changes nothing, and the same wrapper then works in a task", function()
            local function outside(name)
                return name .. ": must be called inside a coroutine (start one with dike.run or dike.spawn)"
            end
            local batched = dike.batch{ target_batch_size = 1, max_waiting_time = 1 }(add_one)
            local limited = dike.limit_jobs{ limit = 0, queue = 1, queue_timeout = 0.01 }(function() return "ran" end)
            local open_slot = dike.limit_jobs{ limit = 1 }(function(x) return x end)
            -- fails the first attempt of every call, so each call needs a retry (and so a task)
            local retried = dike.retry{ attempts = 2, logger = function() end }(function(state)
                state.n = state.n + 1
                if state.n == 1 then error("first", 0) end
                return state.n
            end)
            local wrapped = dike.wrap(function(x, cb) cb(x) end)
            local task = dike.spawn(function() dike.sleep(0) end) -- waits: not done yet
            local cases = { -- { fn, arguments (made afresh for each call), message }
                { dike.sleep, function() return 0 end, outside("dike.sleep") },
                { dike.gather, function() return {} end, outside("dike.gather") },
                { batched, function() return { 1 } end, outside("dike.batch") },
                { limited, function() end, outside("dike.limit_jobs") },
                { retried, function() return { n = 0 } end, outside("dike.retry") },
                { wrapped, function() return 3 end, outside("dike.wrap") },
                { task.join, function() return task end, outside("task:join") },
                -- timeout and circuit_breaker never wait themselves: the wrapped function's wait raises
                { dike.timeout{ seconds = 1 }(dike.sleep), function() return 0 end, outside("dike.sleep") },
                { dike.circuit_breaker{}(dike.sleep), function() return 0 end, outside("dike.sleep") },
            }
            for _, case in ipairs(cases) do
                -- on the main thread (outside any coroutine)
                local ok, err = pcall(case[1], case[2]())
                tried = tried + 1
                assert.is_false(ok)
                assert.equal(case[3], err)
            end
            -- nothing was queued or left half done, and the same wrappers work in a task
            local s = dike.stats(batched)
            assert.same({ 0, 0, 0, 0 }, { s.queued_calls, s.queued_rows, s.running_batches, s.waiting })
            assert.same({ 0, 0 }, { dike.stats(limited).running, dike.stats(limited).queued })
            dike.run(function()
                assert.same({ 2 }, batched({ 1 }))
                assert.equal(dike.TooManyCalls, getmetatable(raised(limited)))
                assert.equal(2, retried({ n = 0 }))
                assert.equal(3, wrapped(3))
                assert.is_nil(task:join())
            end)
            assert.equal(7, open_slot(7)) -- a call that need not wait works anywhere
            -- inside a coroutine that dike did not start, every one of them waits and works
            local got, ended = {}, 0
            for i, case in ipairs(cases) do
                coroutine.wrap(function()
                    got[i] = { pcall(case[1], case[2]()) }
                    ended = ended + 1
                end)()
                tried = tried + 1
            end
            dike.run(function() while ended < #cases do dike.sleep(0.001) end end)
            assert.same({ true }, got[1])
            assert.same({ true, { n = 0 } }, got[2])
            assert.same({ true, { 2 } }, got[3])
            assert.same({ false, true }, { got[4][1], dike.TooManyCalls.is(got[4][2]) })
            assert.same({ true, 2 }, got[5])
            assert.same({ true, 3 }, got[6])
            assert.same({ true }, got[7])
        end)

        it("a rate-limited call or acquire that would wait: the contract's message, no turn taken", function()
            local outside = ": must be called inside a coroutine (start one with dike.run or dike.spawn)"
            -- one turn per 0.5 s, the first taken at once (which works anywhere)
            local rl = dike.rate_limit{ rate = 1, per = 0.5, burst = 1, max_wait = 1 }
            local paced = rl(function() return "ran" end)
            assert.equal("ran", paced())
            for _ = 1, 3 do
                local ok, err = pcall(paced)
                tried = tried + 1
                assert.same({ false, "dike.rate_limit" .. outside }, { ok, err })
                ok, err = pcall(rl.acquire, rl)
                tried = tried + 1
                assert.same({ false, "limiter:acquire" .. outside }, { ok, err })
            end
            -- none of them reserved a turn: the next is still at most 0.5 s away
            local free, retry_after = rl:try()
            assert.is_false(free)
            assert.is_true(retry_after <= 0.5, tostring(retry_after))
            assert.same({ calls = 8, admitted = 1, delayed = 0, rejected = 1, waiting = 0 }, dike.stats(rl))
            -- inside a coroutine dike did not start, both wait for their turn
            local got
            coroutine.wrap(function()
                local r = paced()
                rl:acquire()
                got = r
            end)()
            dike.run(function() while not got do dike.sleep(0.001) end end)
            assert.equal("ran", got)
            local s = dike.stats(rl)
            assert.same({ calls = 10, admitted = 3, rejected = 1, waiting = 0 },
                        { calls = s.calls, admitted = s.admitted, rejected = s.rejected, waiting = s.waiting })
            -- acquire waited after paced (paced itself waited unless 0.5 s had passed: valgrind)
            assert.is_true(s.delayed >= 1, tostring(s.delayed))
        end)
    end)

    it("tried every input of the tables above", function()
        -- The figure the stress report quotes; a shrinking table would be a lost check.
        assert.is_true(tried >= 485, tostring(tried))
    end)
end)
