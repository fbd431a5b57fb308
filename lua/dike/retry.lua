--- dike.retry (docs/retry.md): call again on failure, with delay, backoff, cap, jitter and a
-- time budget. The delays come from the C core (dike.core.backoff). v2: a return value can be
-- a failure too (retry_if_result), the server can set a retry's delay (delay_from), and a
-- shared retry budget (dike.retry_budget) stops retry storms.
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
local retry_budget = require("dike.retry_budget")

local select, type, getmetatable, rawequal, error, pcall, xpcall, format, setmetatable =
    select, type, getmetatable, rawequal, error, pcall, xpcall, string.format, setmetatable
local debug_traceback = debug.traceback
local unpack = table.unpack or unpack -- luacheck: ignore 143
local huge = math.huge
local CancelledError = errors.CancelledError
local over_budget = core.over_budget
local describe = errors.describe
local budget_failed, budget_succeeded, budget_allows =
    retry_budget.failed, retry_budget.succeeded, retry_budget.allows

local M = {}

local OPTIONS = { attempts = true, exception_types = true, delay = true, backoff = true,
                  max_delay = true, jitter = true, max_elapsed = true,
                  log_exception_info = true, logger = true, seed = true,
                  retry_if_result = true, delay_from = true, budget = true }
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
    return { calls = self.calls, retries = self.retries, failures = self.failures,
             budget_refused = self.budget_refused }
end

-- Call a user function of the wrapper's (retry_if_result, delay_from) for the caller: if it
-- raises, that error is what the caller gets, as if the wrapped function had raised it, and
-- nothing is retried.
local function call_user(st, f, ...)
    local ok, v = pcall(f, ...)
    if ok then return v end
    st.failures = st.failures + 1
    error(v, 0)
end

-- This retry's delay from delay_from's answer: a number >= 0 replaces the computed one (under
-- the same cap: max_delay, or the core's BACKOFF_MAX_DELAY), nil keeps it.
local function pushback(st, answer, computed, cap)
    if answer == nil then return computed end
    if type(answer) ~= "number" or answer ~= answer or answer < 0 then
        st.failures = st.failures + 1
        error(FNAME .. ": delay_from must return a number >= 0 or nil, got " .. options.show(answer), 0)
    end
    return answer < cap and answer or cap
end

--- Make a retrying decorator.
---@param opts? {attempts?: integer, exception_types?: any, delay?: number, backoff?: number, max_delay?: number, jitter?: string, max_elapsed?: number, log_exception_info?: boolean, logger?: fun(level: string, message: string), seed?: integer, retry_if_result?: fun(...): boolean, delay_from?: fun(err: any): number?, budget?: table}
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
    local retry_if_result = options.func(FNAME, opts, "retry_if_result")
    local delay_from = options.func(FNAME, opts, "delay_from")
    local budget = retry_budget.state_of(opts.budget)
    if opts.budget ~= nil and budget == nil then
        error(FNAME .. ": budget must be a dike.retry_budget, got " .. options.show(opts.budget), 2)
    end
    if max_delay == huge then max_delay = nil end
    local cap = max_delay or core.BACKOFF_MAX_DELAY
    if max_elapsed == huge then max_elapsed = nil end
    local protected = log_info and traced_pcall or pcall
    local now = rt.now

    return function(fn)
        options.callable(FNAME, fn)
        local st = setmetatable({ calls = 0, retries = 0, failures = 0, budget_refused = 0 }, Stats)
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

        -- A failure that is retried (an error exception_types matches, or a return
        -- retry_if_result refuses; `cause` is the error or the first value), with attempts
        -- left: the delay before the next attempt (and the schedule's next raw, prev), or nil
        -- when max_elapsed or the budget leaves no retry ("budget": the budget refused it).
        local function plan(raw, prev, start, cause)
            if budget then budget_failed(budget) end
            local d, computed
            computed, raw, prev = schedule:next(raw, prev)
            d = computed
            if delay_from then d = pushback(st, call_user(st, delay_from, cause), computed, cap) end
            if max_elapsed and over_budget(now() - start, d, max_elapsed) then return nil end
            if budget and not budget_allows(budget) then
                st.budget_refused = st.budget_refused + 1
                events.emit("retry", label, "budget_refused")
                return nil, "budget"
            end
            return d, raw, prev
        end

        -- No attempt left after a failure that is retried: its token is taken all the same.
        local function last_failure(err, is_result)
            if not budget then return end
            if is_result then return budget_failed(budget) end
            local ok, retryable = pcall(matches, err)
            if ok and retryable then budget_failed(budget) end
        end

        -- Log, sleep d seconds (a coroutine is needed for that), and count the retry.
        local function pause(d, message, attempt, cause)
            if rt.current_waiter() == nil then
                st.failures = st.failures + 1
                error(errors.outside_coroutine(FNAME), 0)
            end
            log.log_with(logger, "warning", message)
            events.emit("retry", label, "retry", "attempt", attempt, "delay", d, "error", cause)
            st.retries = st.retries + 1
            sleep_or_fail(st, d)
        end

        local settle

        -- Attempt number `attempt` returned (...) and retry_if_result is given: return the
        -- values, or retry; with no retry left the values are returned all the same.
        local function settle_result(n, a, b, c, attempt, raw, prev, start, ...)
            if not call_user(st, retry_if_result, ...) then
                if budget then budget_succeeded(budget) end
                return ...
            end
            local first = ...
            if attempt >= attempts then
                last_failure(first, true)
                events.emit("retry", label, "give_up", "attempt", attempt, "error", first)
                return ...
            end
            local d, why
            d, raw, prev = plan(raw, prev, start, first)
            if not d then
                why = raw
                if why ~= "budget" then
                    events.emit("retry", label, "give_up", "attempt", attempt, "error", first)
                end
                return ...
            end
            pause(d, "Caught result " .. describe(first) .. ". Retrying in " .. format("%.3g", d) .. "s ...",
                  attempt, first)
            return settle(n, a, b, c, attempt + 1, raw, prev, start, protected(invoke, fn, n, a, b, c))
        end

        -- After attempt number `attempt` ended with (ok, ...): return its values, or decide
        -- whether to retry (then sleep and call again) or to raise the error unchanged.
        function settle(n, a, b, c, attempt, raw, prev, start, ok, ...)
            if ok then
                if retry_if_result then return settle_result(n, a, b, c, attempt, raw, prev, start, ...) end
                if budget then budget_succeeded(budget) end
                return ...
            end
            local err = ...
            local traceback = caught_traceback
            caught_traceback = nil
            if attempt >= attempts then
                last_failure(err, false)
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
            local d, why
            d, raw, prev = plan(raw, prev, start, err)
            if not d then
                why = raw
                st.failures = st.failures + 1
                if why == "budget" then error(err, 0) end -- refused: raised at once, unlogged
                give_up(attempt, err)
            end
            local message = "Caught exception " .. describe(err) .. ". Retrying in " .. format("%.3g", d) .. "s ..."
            if log_info and traceback then message = message .. "\n" .. traceback end
            pause(d, message, attempt, err)
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
