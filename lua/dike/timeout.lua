--- dike.timeout: bound the time of a call. fn runs in the caller's coroutine; if it has not
-- returned `seconds` after the call began, the wait it is suspended in is ended with
-- dike.TimeoutError (rt.interrupt: what the wait held is released, as for a cancellation),
-- and a call that returns after its deadline anyway raises TimeoutError.
--
-- One timer per wrapper, not one per call: the calls in flight are a FIFO (every deadline
-- is its start + `seconds`, so the FIFO is in deadline order), and the timer is armed for
-- the earliest deadline not yet passed while there is one. A call that cannot wait (outside
-- any coroutine dike can wait in) needs no place in it: its time is only measured.
local rt = require("dike.runtime")
local errors = require("dike.errors")
local events = require("dike.events")
local options = require("dike.options")
local stats = require("dike.stats")

local pcall, error, format, setmetatable, getmetatable, rawequal =
    pcall, error, string.format, setmetatable, getmetatable, rawequal
local huge = math.huge
local TimeoutError, CancelledError = errors.TimeoutError, errors.CancelledError
local emit = events.emit

local M = {}

local FNAME = "dike.timeout"
local OPTIONS = { seconds = true, name = true }

local Timeout = {}
Timeout.__index = Timeout

function Timeout:snapshot()
    return { calls = self.calls, timeouts = self.timeouts }
end

-- A call timed out: count it, tell the observer, and make its error.
local function timed_out(T)
    T.timeouts = T.timeouts + 1
    emit("timeout", T.name, "timeout", "seconds", T.seconds)
    return TimeoutError.new(T.message)
end

local on_deadline

local function arm(T, delay)
    T.timer = rt.timer(delay, on_deadline, T)
end

-- The timer: every call whose deadline has come has its wait ended with its TimeoutError.
function on_deadline(T)
    T.timer = nil
    local now = rt.now()
    local q, due, fired = T.q, T.due, T.fired
    local h, tail = T.head, T.tail
    while h <= tail do
        local w = q[h]
        if w then
            if due[h] > now then break end
            q[h] = nil -- no longer pending: its error waits in fired[h] until the call ends
            T.pending = T.pending - 1
            local e = timed_out(T)
            fired[h] = e
            rt.interrupt(w, e)
        end
        h = h + 1
    end
    T.head = h
    if T.pending > 0 and T.timer == nil then
        local d = due[h] - now
        arm(T, d > 0 and d or 0)
    end
end

-- The call in place i has ended: free its place. Returns its TimeoutError if it timed out.
local function leave(T, i)
    local e = T.fired[i]
    if e then
        T.fired[i] = nil
    else
        T.q[i] = nil
        T.pending = T.pending - 1
        if T.pending == 0 and T.timer then
            rt.cancel_timer(T.timer)
            T.timer = nil
        end
    end
    T.due[i] = nil
    local live = T.live - 1
    T.live = live
    if live == 0 then T.head, T.tail = 1, 0 end
    return e
end

local function finish(T, i, start, ok, ...)
    local fired = i ~= 0 and leave(T, i) or nil
    if not ok then
        local e = ...
        if rawequal(getmetatable(e), CancelledError) then error(e, 0) end -- cancellation wins
        if fired then error(fired, 0) end
        if rt.now() - start > T.seconds then error(timed_out(T), 0) end
        error(e, 0)
    end
    if fired then error(fired, 0) end
    if rt.now() - start > T.seconds then error(timed_out(T), 0) end
    return ...
end

--- Make a timeout decorator.
---@param opts {seconds: number, name?: string}
---@return fun(fn: function): function
function M.timeout(opts)
    opts = options.table(FNAME, opts, OPTIONS)
    local seconds = options.number(FNAME, opts, "seconds", true, true, nil)
    if seconds == nil then
        error(FNAME .. ": seconds must be a number > 0, got nil", 2)
    end
    local name = options.string(FNAME, opts, "name")

    return function(fn)
        options.callable(FNAME, fn)
        local label = name or options.name_of(fn)
        local T = setmetatable({
            seconds = seconds, name = label,
            message = "Call to function " .. label .. " timed out after " .. format("%.3g", seconds) .. "s",
            calls = 0, timeouts = 0,
            q = {}, due = {}, fired = {}, head = 1, tail = 0, live = 0, pending = 0, timer = nil,
        }, Timeout)
        local function wrapped(...)
            T.calls = T.calls + 1
            local start = rt.now()
            if seconds == huge then return finish(T, 0, start, pcall(fn, ...)) end
            local w = rt.current_waiter(FNAME)
            if w == nil then return finish(T, 0, start, pcall(fn, ...)) end
            local i = T.tail + 1
            T.tail = i
            T.q[i], T.due[i] = w, start + seconds
            T.live, T.pending = T.live + 1, T.pending + 1
            if T.timer == nil then arm(T, seconds) end
            return finish(T, i, start, pcall(fn, ...))
        end
        stats.register(wrapped, T)
        options.set_name(wrapped, label)
        return wrapped
    end
end

return M
