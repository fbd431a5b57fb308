--- dike.circuit_breaker with a `store` (docs/sharing.md): the state and the window live in the
-- store, and every process that uses the same store and name sees the same state.
-- circuit_breaker.lua hands a breaker to this file when it is made with a store; without one,
-- nothing here runs.
--
-- A call asks the store whether it may run (B:admit: one atomic step, which also turns an open
-- breaker half-open when open_for has passed and hands out trial places), runs, and records
-- its outcome (B:record). The record is sent without waiting for its answer (record_async), so
-- a call waits for one round trip, not two: on luv the record goes out on the one pipelined
-- connection ahead of the next call's admission, which therefore sees it; inside nginx each
-- command has a connection of its own, and a call that starts right after another ended may be
-- admitted before that outcome is counted. M.async_record = false waits for it instead (the
-- benchmark compares the two).
--
-- Every step of the store reports the change it made, if any, and the state before it: the
-- one process whose step changed the state logs the change (the lines of circuit_breaker.lua)
-- and emits the `state` event, so each change is logged once across the processes. `opened`
-- counts the openings made by this process's steps.
--
-- When the store fails (or is in an outage) the store's on_failure policy decides, call by
-- call, until it answers again: "local" uses a process-local breaker with the same options
-- (circuit_breaker.lua's, made at the first failure; its window and state are this process's
-- own and stay for the next outage), "open" runs the call unrecorded, "closed" refuses it with
-- CircuitOpen and retry_after = the store's `recheck`. A breaker last seen isolated stays
-- isolated meanwhile under "local" (isolation is an operator's decision the local breaker does
-- not know of). Nothing waits for the store longer than its `timeout`.
local rt = require("dike.runtime")
local errors = require("dike.errors")
local events = require("dike.events")
local log = require("dike.log")
local options = require("dike.options")
local stats = require("dike.stats")

local error, pcall, getmetatable, setmetatable, rawequal, format, tostring =
    error, pcall, getmetatable, setmetatable, rawequal, string.format, tostring
local huge = math.huge
local CancelledError, CircuitOpen = errors.CancelledError, errors.CircuitOpen
local emit = events.emit

local M = {}

-- Send a finished call's outcome without waiting for the store's answer (see above).
M.async_record = true

local FNAME = "dike.circuit_breaker"

local Shared = {}
Shared.__index = Shared

-- The state this process's calls get while the store fails.
local function fallback_state(SB)
    local policy = SB.policy
    if policy == "open" then return "closed" end
    if policy == "closed" then return "open" end
    if SB.seen == "isolated" then return "isolated" end
    return SB.L and SB.L:state() or "closed"
end

function Shared:snapshot()
    local failures, slow, rejected, opened = self.failures, self.slow, self.rejected, self.opened
    local L = self.L
    if L then -- the process-local breaker's own counts (its calls are fallback_calls here)
        local l = stats.stats(L)
        failures, slow, rejected, opened = failures + l.failures, slow + l.slow, rejected + l.rejected,
            opened + l.opened
    end
    local state = self.seen
    if not self.store:available() then state = fallback_state(self) end
    return { calls = self.calls, failures = failures, slow = slow, rejected = rejected, opened = opened,
             state = state, store_errors = self.store_errors, fallback_calls = self.fallback_calls }
end

---------------------------------------------------------------- changes

-- A step of this process changed the state from `from` to `to`: log it, emit the event.
local function announce(SB, from, to, reason, rate, n)
    local name = SB.name
    local message
    if to == "open" then
        SB.opened = SB.opened + 1
        if reason == "trial" then
            message = "Circuit " .. name .. " opened: trial call failed"
        else
            message = format("Circuit %s opened: %s %.3g over %d calls", name,
                reason == "slow" and "slow call rate" or "failure rate", rate or 0, n or 0)
        end
    elseif to == "half_open" then
        message = "Circuit " .. name .. " half-open"
    else
        message = "Circuit " .. name .. " " .. to -- closed, isolated
    end
    log.log("warning", message)
    emit("circuit_breaker", name, "state", "from", from, "to", to)
end

-- A store step failed (kind "down": not tried, the store is in an outage).
local function store_failed(SB, kind)
    if kind ~= "down" then SB.store_errors = SB.store_errors + 1 end
end

-- The answer to a record (async: from the loop).
local function recorded(SB, state, changed, reason, rate, n, before)
    if state == nil then return store_failed(SB, "io") end
    SB.seen = state
    if changed then announce(SB, before, changed, reason, rate, n) end
end

local function record(SB, failed, slow, trial, period)
    if failed then SB.failures = SB.failures + 1 end
    if slow then SB.slow = SB.slow + 1 end
    if M.async_record then
        SB.B:record_async(failed, slow, trial, period, recorded, SB) -- false when down: not counted
        return
    end
    local state, changed, reason, rate, n, before = SB.B:record(failed, slow, trial, period, FNAME)
    if state == nil then return store_failed(SB, reason) end
    return recorded(SB, state, changed, reason, rate, n, before)
end

---------------------------------------------------------------- calls

local function refuse(SB, retry_after)
    SB.rejected = SB.rejected + 1
    local e
    if retry_after == huge then
        e = CircuitOpen.new("Circuit open for function " .. SB.name .. "! isolated")
    else
        e = CircuitOpen.new("Circuit open for function " .. SB.name .. "! retry after "
                            .. format("%.3g", retry_after) .. "s")
    end
    e.retry_after = retry_after
    error(e, 0)
end

-- The call ended (ok, ...): record it, then return its values or raise its error.
local function done(SB, period, trial, start, ok, ...)
    local slow = false
    if start then slow = rt.now() - start > SB.slow_call_seconds end
    if ok then
        record(SB, false, slow, trial, period)
        return ...
    end
    local err = ...
    if rawequal(getmetatable(err), CancelledError) then -- counts neither way
        if trial then SB.B:release_trial_async(period) end
        error(err, 0)
    end
    local mok, failure = pcall(SB.matches, err)
    record(SB, not mok or failure, slow, trial, period)
    if mok then error(err, 0) end
    error(failure, 0) -- the predicate's error
end

-- The store failed, or is down: the policy decides. local_call(...) is the call through the
-- process-local breaker.
local function fallback(SB, fn, local_call, ...)
    SB.fallback_calls = SB.fallback_calls + 1
    local policy = SB.policy
    if policy == "open" then return fn(...) end
    if policy == "closed" then return refuse(SB, SB.store.recheck) end
    if SB.seen == "isolated" then return refuse(SB, huge) end
    return local_call(...)
end

local function call(SB, fn, local_call, ...)
    SB.calls = SB.calls + 1
    if not SB.store:available() then return fallback(SB, fn, local_call, ...) end
    local allowed, state, retry_after, changed, trial, period, before = SB.B:admit(FNAME)
    if allowed == nil then
        store_failed(SB, retry_after)
        return fallback(SB, fn, local_call, ...)
    end
    SB.seen = state
    if changed then announce(SB, before, changed) end
    if not allowed then return refuse(SB, retry_after) end
    local start = SB.slow_call_seconds and rt.now()
    return done(SB, period, trial, start, pcall(fn, ...))
end

---------------------------------------------------------------- the breaker

local Breaker = { __name = "dike.circuit_breaker" }
Breaker.__index = Breaker

local function check_self(self, method)
    if getmetatable(self) ~= Breaker then
        error(FNAME .. ": call " .. method .. " as breaker:" .. method .. "(), got " .. options.show(self)
              .. " as self", 3)
    end
    return self.record
end

-- The process-local breaker (made at the first failure of the store).
local function local_breaker(SB)
    local L = SB.L
    if not L then
        L = SB.make_local()
        SB.L = L
    end
    return L
end

--- The state: the store's (one round trip; with Redis, in a coroutine). While the store fails:
--- the state this process's calls get (on_failure "local": the local breaker's; "open":
--- "closed"; "closed": "open").
---@return string
function Breaker:state()
    local SB = check_self(self, "state")
    if SB.store:available() then
        local state, _, changed, before = SB.B:state("breaker:state")
        if state ~= nil then
            SB.seen = state
            if changed then announce(SB, before, changed) end
            return state
        end
        store_failed(SB, changed)
    end
    return fallback_state(SB)
end

-- isolate() and reset(): in the store; when it fails, on the local breaker (this process
-- honours it during the outage) and false, message.
local function force(self, method, to)
    local SB = check_self(self, method)
    local state, changed, before
    if SB.store:available() then
        state, changed, before = SB.B:force(to, "breaker:" .. method)
        if state ~= nil then
            SB.seen = state
            if changed then announce(SB, before, changed) end
            return true
        end
        store_failed(SB, before)
    else
        changed = SB.store.label .. ": unavailable"
    end
    if to == "closed" and SB.seen == "isolated" then SB.seen = "closed" end
    local L = local_breaker(SB)
    if to == "isolated" then L:isolate() else L:reset() end
    return false, tostring(changed)
end

--- Force the breaker open everywhere (calls raise CircuitOpen, retry_after = math.huge) until
--- reset(). Returns true, or false and a message when the store failed (then only this process's
--- local breaker is isolated).
function Breaker:isolate()
    return force(self, "isolate", "isolated")
end

--- Close the breaker everywhere with an empty window. Returns true, or false and a message when
--- the store failed (then only the local breaker is reset).
function Breaker:reset()
    return force(self, "reset", "closed")
end

function Breaker:__call(fn)
    options.callable(FNAME, fn)
    local SB = self.record
    local local_fn
    local function local_call(...)
        if not local_fn then local_fn = local_breaker(SB)(fn) end
        return local_fn(...)
    end
    local function wrapped(...)
        return call(SB, fn, local_call, ...)
    end
    stats.register(wrapped, SB)
    options.set_name(wrapped, SB.name)
    return wrapped
end

function Breaker:__tostring()
    local SB = self.record
    return format("dike.circuit_breaker(name=%s, store=%s)", SB.name, SB.store.label)
end

--- A breaker whose state lives in o.store. circuit_breaker.lua has checked every option;
--- o.conf is the state machine's (store/init.lua), o.make_local() makes the process-local
--- breaker with the same options.
---@param o {store: table, name?: string, conf: table, matches: function, slow_call_seconds?: number, make_local: function}
function M.new(o)
    local store, name = o.store, o.name
    options.store(FNAME, store, "breaker", name, 3)
    local SB = setmetatable({
        store = store, policy = store.on_failure, B = store:breaker(name, o.conf), name = name,
        matches = o.matches, slow_call_seconds = o.slow_call_seconds, make_local = o.make_local, L = false,
        seen = "closed", calls = 0, failures = 0, slow = 0, rejected = 0, opened = 0, store_errors = 0,
        fallback_calls = 0,
    }, Shared)
    local breaker = setmetatable({ record = SB }, Breaker)
    stats.register(breaker, SB)
    return breaker
end

return M
