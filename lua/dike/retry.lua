--- dike.retry (docs/retry.md): call again on failure, with delay, backoff, cap, jitter and a
-- time budget. The delays come from the C core (dike.core.backoff).
--
-- Hot path: a call that succeeds costs one pcall and a counter update. The arguments are
-- kept in locals (up to three; more are packed) so they can be passed again on a retry
-- without allocating on success.
local core = require("dike.core")
local rt = require("dike.runtime")
local errors = require("dike.errors")
local events = require("dike.events")
local exception_types = require("dike.exception_types")
local log = require("dike.log")
local options = require("dike.options")
local stats = require("dike.stats")

local select, getmetatable, rawequal, error, pcall, xpcall, format, setmetatable =
    select, getmetatable, rawequal, error, pcall, xpcall, string.format, setmetatable
local debug_traceback = debug.traceback
local unpack = table.unpack or unpack -- luacheck: ignore 143
local huge = math.huge
local CancelledError = errors.CancelledError
local over_budget = core.over_budget
local describe = errors.describe

local M = {}

local OPTIONS = { attempts = true, exception_types = true, delay = true, backoff = true,
                  max_delay = true, jitter = true, max_elapsed = true,
                  log_exception_info = true, logger = true, seed = true }
local JITTERS = { none = true, full = true, equal = true, decorrelated = true }
local FNAME = "dike.retry"

-- Errors are user values: compared by rawequal (no __eq of theirs runs) and turned into
-- text by errors.describe (no __tostring of theirs can raise or yield into retry).
local function cancelled(e)
    return rawequal(getmetatable(e), CancelledError)
end

-- The traceback of the error being caught, taken where it was raised. Read right after
-- xpcall returns, before anything can yield, so concurrent retries cannot mix them up.
local caught_traceback
local function keep_traceback(e)
    if not cancelled(e) then
        caught_traceback = debug_traceback("", 2):sub(2) -- drop the leading newline
    end
    return e
end
local function traced_pcall(fn, ...)
    return xpcall(fn, keep_traceback, ...)
end

-- Call fn with exactly the n arguments kept by the wrapper.
local function invoke(fn, n, a, b, c)
    if n == 1 then return fn(a) end
    if n == 0 then return fn() end
    if n == 2 then return fn(a, b) end
    if n == 3 then return fn(a, b, c) end
    return fn(unpack(a, 1, n))
end

local function sleep_or_fail(st, d)
    local ok, e = pcall(rt.sleep, d, FNAME)
    if not ok then
        st.failures = st.failures + 1
        error(e, 0)
    end
end

local Stats = {}
Stats.__index = Stats
function Stats:snapshot()
    return { calls = self.calls, retries = self.retries, failures = self.failures }
end

--- Make a retrying decorator.
---@param opts? {attempts?: integer, exception_types?: any, delay?: number, backoff?: number, max_delay?: number, jitter?: string, max_elapsed?: number, log_exception_info?: boolean, logger?: fun(level: string, message: string), seed?: integer}
---@return fun(fn: function): function
function M.retry(opts)
    opts = options.table(FNAME, opts, OPTIONS, true)
    local attempts = options.count(FNAME, opts, "attempts", 1, true, huge)
    local matches = exception_types.compile(FNAME, opts.exception_types)
    local delay = options.number(FNAME, opts, "delay", false, false, 0)
    local factor = options.number(FNAME, opts, "backoff", true, false, 1)
    local max_delay = options.number(FNAME, opts, "max_delay", true, true, nil)
    local jitter = options.choice(FNAME, opts, "jitter", JITTERS, "none",
                                  '"none", "full", "equal" or "decorrelated"')
    local max_elapsed = options.number(FNAME, opts, "max_elapsed", true, true, nil)
    local log_info = options.boolean(FNAME, opts, "log_exception_info", true)
    local logger = options.func(FNAME, opts, "logger")
    local seed = options.count(FNAME, opts, "seed", 0, false, nil)
    if max_delay == huge then max_delay = nil end
    if max_elapsed == huge then max_elapsed = nil end
    local protected = log_info and traced_pcall or pcall
    local now = rt.now

    return function(fn)
        options.callable(FNAME, fn)
        local st = setmetatable({ calls = 0, retries = 0, failures = 0 }, Stats)
        local schedule = core.backoff(delay, factor, max_delay, jitter, seed)
        local label = options.name_of(fn) -- for events

        -- No retry is left: if the error is one that is retried, tell the observer (only
        -- then is the predicate asked again), and raise it.
        local function give_up(attempt, err)
            if events.observed() then
                local ok, retryable = pcall(matches, err)
                if ok and retryable then events.emit("retry", label, "give_up", "attempt", attempt, "error", err) end
            end
            error(err, 0)
        end

        -- After attempt number `attempt` ended with (ok, ...): return its values, or decide
        -- whether to retry (then sleep and call again) or to raise the error unchanged.
        local function settle(n, a, b, c, attempt, raw, prev, start, ok, ...)
            if ok then return ... end
            local err = ...
            local traceback = caught_traceback
            caught_traceback = nil
            if attempt >= attempts then
                st.failures = st.failures + 1
                give_up(attempt, err)
            end
            -- exception_types may hold a predicate (user code): if it raises, its error is
            -- what the caller gets, as if the function had raised it, and nothing is retried.
            local ok_match, retryable = pcall(matches, err)
            if not (ok_match and retryable) then
                st.failures = st.failures + 1
                error(ok_match and err or retryable, 0)
            end
            local d
            d, raw, prev = schedule:next(raw, prev)
            if max_elapsed and over_budget(now() - start, d, max_elapsed) then
                st.failures = st.failures + 1
                give_up(attempt, err)
            end
            if rt.current_waiter() == nil then
                st.failures = st.failures + 1
                error(errors.outside_coroutine(FNAME), 0)
            end
            local message = "Caught exception " .. describe(err) .. ". Retrying in " .. format("%.3g", d) .. "s ..."
            if log_info and traceback then message = message .. "\n" .. traceback end
            log.log_with(logger, "warning", message)
            events.emit("retry", label, "retry", "attempt", attempt, "delay", d, "error", err)
            st.retries = st.retries + 1
            sleep_or_fail(st, d)
            return settle(n, a, b, c, attempt + 1, raw, prev, start, protected(invoke, fn, n, a, b, c))
        end

        local function wrapped(...)
            st.calls = st.calls + 1
            local n = select("#", ...)
            local start = max_elapsed and now() or nil
            -- The first attempt calls xpcall/pcall itself (not through `protected`): one call
            -- frame less on the path every successful call takes.
            if n <= 3 then
                local a, b, c = ...
                if log_info then
                    return settle(n, a, b, c, 1, nil, nil, start, xpcall(fn, keep_traceback, ...))
                end
                return settle(n, a, b, c, 1, nil, nil, start, pcall(fn, ...))
            end
            return settle(n, { ... }, nil, nil, 1, nil, nil, start, protected(fn, ...))
        end
        stats.register(wrapped, st)
        options.set_name(wrapped, label)
        return wrapped
    end
end

return M
