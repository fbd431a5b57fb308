--- dike.circuit_breaker: stop calling a backend that keeps failing (or keeps being slow),
-- let a few trial calls through after a while, and close again once they succeed.
--
-- The state (window and state machine) is dike.circuit_state; this file is the wrapper
-- around it: options, admission, timing, classification of errors, the CircuitOpen error,
-- the log lines, events and statistics.
--
-- With a `store` the breaker is circuit_breaker_shared.lua's, chosen once when it is made:
-- nothing of it runs on this file's paths.
--
-- Hot path: while the breaker is closed with a count window and no slow-call timing, a call
-- costs one pcall, a counter increment and one more for the window (circuit_state.lua
-- explains why a success needs no check): no clock read, no table, no closure. Other
-- configurations read the clock once or twice per call.
local rt = require("dike.runtime")
local errors = require("dike.errors")
local events = require("dike.events")
local exception_types = require("dike.exception_types")
local log = require("dike.log")
local options = require("dike.options")
local stats = require("dike.stats")
local circuit_state = require("dike.circuit_state")

local error, pcall, getmetatable, setmetatable, rawequal, type, format, pairs =
    error, pcall, getmetatable, setmetatable, rawequal, type, string.format, pairs
local huge = math.huge
local CancelledError, CircuitOpen = errors.CancelledError, errors.CircuitOpen
local emit = events.emit
local OPEN, HALF_OPEN, CLOSED, ISOLATED =
    circuit_state.OPEN, circuit_state.HALF_OPEN, circuit_state.CLOSED, circuit_state.ISOLATED

local M = {}

local FNAME = "dike.circuit_breaker"
local OPTIONS = { failure_rate = true, window = true, window_seconds = true, minimum_calls = true,
                  slow_call_seconds = true, slow_call_rate = true, open_for = true, open_backoff = true,
                  max_open_for = true, half_open_calls = true, exception_types = true, name = true,
                  clock = true, store = true }
local UNNAMED = "unnamed" -- a breaker with no name option before it wraps a function

local Breaker = {}
Breaker.__index = Breaker
Breaker.__name = "dike.circuit_breaker"

-- Log a state change (dike's logger is contained: one that raises or yields is bypassed).
local function warn(message)
    log.log("warning", message)
end

local function rate_option(opts, key, default)
    local v = opts[key]
    if v == nil then return default end
    if type(v) == "number" and v > 0 and v <= 1 then return v end
    error(FNAME .. ": " .. key .. " must be a number > 0 and <= 1, got " .. options.show(v), 3)
end

local function reject(B, retry_after)
    B.rejected = B.rejected + 1
    local name = B.name or UNNAMED
    local e
    if retry_after == huge then
        e = CircuitOpen.new("Circuit open for function " .. name .. "! isolated")
    else
        e = CircuitOpen.new("Circuit open for function " .. name .. "! retry after "
                            .. format("%.3g", retry_after) .. "s")
    end
    e.retry_after = retry_after
    error(e, 0)
end

-- A call admitted in period `gen` raised `err`: count it (or not), then raise it unchanged.
-- An exception_types predicate that raises makes its error the call's, counted as a failure.
local function failed(B, S, gen, trial, t_end, slow, err)
    if rawequal(getmetatable(err), CancelledError) then
        S:forget(gen, trial)
        error(err, 0)
    end
    local ok, failure = pcall(B.matches, err)
    S:record(gen, trial, t_end or B.clock(), not ok or failure, slow)
    if ok then error(err, 0) end
    error(failure, 0) -- the predicate's error
end

-- The fast path's end (closed, count window, no timing).
local function fast_done(B, S, gen, ok, ...)
    if ok then
        S:success(gen)
        return ...
    end
    return failed(B, S, gen, false, nil, false, (...))
end

-- Every other configuration or state.
local function timed_done(B, S, gen, trial, start, ok, ...)
    local t_end = B.clock()
    local slow = B.slow_call_seconds ~= nil and t_end - start > B.slow_call_seconds
    if ok then
        S:record(gen, trial, t_end, false, slow)
        return ...
    end
    local err = ...
    return failed(B, S, gen, trial, t_end, slow, err)
end

local function guarded_call(B, S, fn, ...)
    local now = B.clock()
    local gen, trial = S:admit(now)
    if gen == nil then return reject(B, trial) end
    return timed_done(B, S, gen, trial, now, pcall(fn, ...))
end

-- What dike.stats registers for the breaker and its wrapped functions: the breaker's own
-- record (B below). It references neither (the registry holds them weakly by key; on LuaJIT
-- a value that referenced its key would keep it alive).
local Record = {}
Record.__index = Record

function Record:snapshot()
    local S = self.S
    return { calls = self.calls, failures = S.failures, slow = S.slow, rejected = self.rejected,
             opened = S.opened, state = S:state_at(self.clock()) }
end

local function check_self(self, method)
    if getmetatable(self) ~= Breaker then
        error(FNAME .. ": call " .. method .. " as breaker:" .. method .. "(), got " .. options.show(self)
              .. " as self", 3)
    end
end

--- The breaker's state: "closed", "open", "half_open" or "isolated".
---@return string
function Breaker:state()
    check_self(self, "state")
    local B = self.record
    return B.S:state_at(B.clock())
end

--- Force the breaker open (calls raise CircuitOpen, retry_after = math.huge) until reset().
function Breaker:isolate()
    check_self(self, "isolate")
    local B = self.record
    B.S:isolate(B.clock())
end

--- Close the breaker with an empty window, from any state.
function Breaker:reset()
    check_self(self, "reset")
    local B = self.record
    B.S:reset(B.clock())
end

--- Wrap `fn`: calls go through this breaker (every function wrapped by one breaker shares it).
function Breaker:__call(fn)
    options.callable(FNAME, fn)
    local B = self.record
    local S = B.S
    if B.name == nil then B.name = options.name_of(fn) end
    local function wrapped(...)
        B.calls = B.calls + 1
        if S.fast then return fast_done(B, S, S.gen, pcall(fn, ...)) end
        return guarded_call(B, S, fn, ...)
    end
    stats.register(wrapped, B)
    options.set_name(wrapped, B.name)
    return wrapped
end

--- Make a circuit breaker: a decorator whose wrapped functions share one state.
---@param opts? {failure_rate?: number, window?: integer, window_seconds?: number, minimum_calls?: integer, slow_call_seconds?: number, slow_call_rate?: number, open_for?: number, open_backoff?: number, max_open_for?: number, half_open_calls?: integer, exception_types?: any, name?: string, clock?: fun(): number, store?: table}
---@return table breaker callable as breaker(fn), with :state(), :isolate(), :reset()
function M.circuit_breaker(opts)
    opts = options.table(FNAME, opts, OPTIONS, true)
    local failure_rate = rate_option(opts, "failure_rate", 0.5)
    local window = options.count(FNAME, opts, "window", 1, false, nil)
    local window_seconds = options.number(FNAME, opts, "window_seconds", true, false, nil)
    if window and window_seconds then
        error(FNAME .. ": window and window_seconds cannot both be given (the window is the last"
              .. " `window` calls, or the calls of the last `window_seconds` seconds)", 2)
    end
    if not window_seconds then window = window or 20 end
    local minimum_calls = options.count(FNAME, opts, "minimum_calls", 1, false, nil)
    if minimum_calls == nil then
        minimum_calls = window and window < 10 and window or 10
    elseif window and minimum_calls > window then
        error(format("%s: minimum_calls must be <= window (%d), got %d", FNAME, window, minimum_calls), 2)
    end
    local slow_call_seconds = options.number(FNAME, opts, "slow_call_seconds", true, true, nil)
    if slow_call_seconds == huge then slow_call_seconds = nil end
    local slow_call_rate = rate_option(opts, "slow_call_rate", 1)
    local open_for = options.number(FNAME, opts, "open_for", true, false, 30)
    local open_backoff = opts.open_backoff
    if open_backoff == nil then
        open_backoff = 1
    elseif type(open_backoff) ~= "number" or not (open_backoff >= 1 and open_backoff < huge) then
        error(FNAME .. ": open_backoff must be a finite number >= 1, got " .. options.show(open_backoff), 2)
    end
    local max_open_for = options.number(FNAME, opts, "max_open_for", true, true, nil)
    if max_open_for and max_open_for < open_for then
        error(format("%s: max_open_for must be >= open_for (%s), got %s", FNAME, options.show(open_for),
                     options.show(max_open_for)), 2)
    end
    local half_open_calls = options.count(FNAME, opts, "half_open_calls", 1, false, 1)
    local matches = exception_types.compile(FNAME, opts.exception_types)
    local name = options.string(FNAME, opts, "name")
    local clock = options.func(FNAME, opts, "clock") or rt.now
    if opts.store ~= nil then -- shared: circuit_breaker_shared.lua (nothing below runs)
        if opts.clock ~= nil then
            error(FNAME .. ": clock cannot be given with a store (the store's clock times the breaker)", 2)
        end
        local local_opts = {}
        for k, v in pairs(opts) do if k ~= "store" then local_opts[k] = v end end
        local shared = require("dike.circuit_breaker_shared").new{
            store = opts.store, name = name, matches = matches, slow_call_seconds = slow_call_seconds,
            conf = { failure_rate = failure_rate, minimum_calls = minimum_calls, window = window,
                     window_seconds = window_seconds, slow_call_rate = slow_call_seconds and slow_call_rate or nil,
                     open_for = open_for, open_backoff = open_backoff, max_open_for = max_open_for,
                     half_open_calls = half_open_calls },
            make_local = function() return M.circuit_breaker(local_opts) end,
        }
        return shared -- not a tail call: its errors blame the caller of dike.circuit_breaker (level 3)
    end

    local B = setmetatable({ name = name, matches = matches, clock = clock,
                             slow_call_seconds = slow_call_seconds, calls = 0, rejected = 0 }, Record)
    B.S = circuit_state.new{
        window = window, window_seconds = window_seconds, minimum_calls = minimum_calls,
        failure_rate = failure_rate, slow_call_rate = slow_call_rate, open_for = open_for,
        open_backoff = open_backoff, max_open_for = max_open_for, half_open_calls = half_open_calls,
        timed = slow_call_seconds ~= nil, clock = clock,
        on_change = function(_, from, to, why, rate, n)
            local label = B.name or UNNAMED
            if to == OPEN then
                if why == "trial call failed" then
                    warn("Circuit " .. label .. " opened: trial call failed")
                else
                    warn(format("Circuit %s opened: %s %.3g over %d calls", label, why, rate, n))
                end
            elseif to == HALF_OPEN then
                warn("Circuit " .. label .. " half-open")
            elseif to == CLOSED then
                warn("Circuit " .. label .. " closed")
            elseif to == ISOLATED then
                warn("Circuit " .. label .. " isolated")
            end
            emit("circuit_breaker", label, "state", "from", from, "to", to)
        end,
    }
    local breaker = setmetatable({ record = B }, Breaker)
    stats.register(breaker, B)
    return breaker
end

return M
