--- dike.limit_jobs (docs/limit_jobs.md): cap concurrent calls; reject the rest with TooManyCalls,
-- or let up to `queue` callers wait (FIFO, optionally for at most `queue_timeout`).
--
-- Hot path: a call that finds a free slot costs one pcall and two counter increments.
-- The counters only grow (calls, ended, rejected) except `queued`; the calls running are
-- derived: running = calls - ended - rejected - queued. So the hot path adds 1 to `calls`
-- on the way in and 1 to `ended` on the way out: two independent increments that compiled
-- code overlaps, where a `running` counter would chain an increment and a decrement.
-- Invariant: running < limit implies nobody is queued, because a freed slot is handed
-- straight to the head of the queue (queued - 1: running stays the same).
-- The queue is a table indexed head..tail; a caller that leaves early (cancelled, timed
-- out) leaves a hole that the next grant skips, so every operation is O(1) amortised.
local rt = require("dike.runtime")
local errors = require("dike.errors")
local emit = require("dike.events").emit
local options = require("dike.options")
local stats = require("dike.stats")

local pcall, error, format, setmetatable = pcall, error, string.format, setmetatable
local huge = math.huge
local TooManyCalls = errors.TooManyCalls

local M = {}

local OPTIONS = { limit = true, queue = true, queue_timeout = true, name = true, store = true, lease = true }
local FNAME = "dike.limit_jobs"

local Limiter = {}
Limiter.__index = Limiter

local function running_of(L)
    return L.calls - L.ended - L.rejected - L.queued
end

function Limiter:snapshot()
    return { calls = self.calls, running = running_of(self), queued = self.queued,
             rejected = self.rejected, limit = self.limit }
end

-- Hand a free slot to the first caller still queued, if any.
local function grant(L)
    local q, timers = L.q, L.timers
    local h, tail = L.head, L.tail
    while h <= tail do
        local t = q[h]
        if t then
            q[h] = nil
            local tm = timers[h]
            if tm then
                timers[h], L.messages[h], L.names[h] = nil, nil, nil
                rt.cancel_timer(tm)
            end
            L.head = h + 1
            L.queued = L.queued - 1 -- now running
            rt.wake(t, true, nil, true) -- holds the slot until it resumes
            return
        end
        h = h + 1
    end
    L.head, L.tail = 1, 0 -- empty: start again at 1, keeping the table small
end

local function release(L, ok, ...)
    L.ended = L.ended + 1
    if L.queued > 0 then grant(L) end
    if ok then return ... end
    error((...), 0)
end

-- Caller i leaves the queue (the caller counts it as ended or rejected).
local function unqueue(L, i)
    L.q[i] = nil
    local tm = L.timers[i]
    if tm then
        L.timers[i], L.messages[i], L.names[i] = nil, nil, nil
        rt.cancel_timer(tm)
    end
    L.queued = L.queued - 1
    if L.queued == 0 then L.head, L.tail = 1, 0 end
end

-- A queued caller is cancelled: leave the queue, or give back the slot handed over.
local function on_cancel(t, L, i)
    L.ended = L.ended + 1
    if L.q[i] == t then
        unqueue(L, i)
    elseif L.queued > 0 then
        grant(L)
    end
end

local function on_queue_timeout(L, i)
    local t = L.q[i]
    if not t then return end
    local message, label = L.messages[i], L.names[i]
    unqueue(L, i)
    L.rejected = L.rejected + 1
    rt.wake(t, false, TooManyCalls.new(message))
    emit("limit_jobs", label, "rejected", "reason", "queue_timeout")
end

-- No free slot: wait in the queue (returns holding a slot) or raise TooManyCalls.
-- The call is already counted in `calls`.
local function wait_for_slot(L, message, label)
    if L.queued >= L.queue_max then
        L.rejected = L.rejected + 1
        emit("limit_jobs", label, "rejected", "reason", "full")
        error(TooManyCalls.new(message), 0)
    end
    local t = rt.current_waiter(FNAME)
    if t == nil then
        L.ended = L.ended + 1 -- it ends here, never having run: running stays derived right
        rt.waiter(FNAME) -- raises the contract's "must be called inside a coroutine" error
    end
    local i = L.tail + 1
    L.tail = i
    L.q[i] = t
    L.queued = L.queued + 1
    if L.queue_timeout then
        L.messages[i], L.names[i] = message, label
        L.timers[i] = rt.timer(L.queue_timeout, on_queue_timeout, L, i)
    end
    emit("limit_jobs", label, "queued")
    rt.suspend(t, on_cancel, L, i)
end

--- Make a limiter: a decorator whose wrapped functions share `limit` slots.
---@param opts {limit: integer, queue?: integer, queue_timeout?: number, name?: string}
---@return fun(fn: function): function
function M.limit_jobs(opts)
    opts = options.table(FNAME, opts, OPTIONS)
    local limit = options.count(FNAME, opts, "limit", 0, true, nil)
    if limit == nil then
        error(FNAME .. ": limit must be an integer >= 0 or math.huge, got nil", 2)
    end
    local queue_timeout = options.number(FNAME, opts, "queue_timeout", true, true, nil)
    if queue_timeout == huge then queue_timeout = nil end
    local name = options.string(FNAME, opts, "name")
    if opts.store ~= nil then
        local shared = require("dike.limit_jobs_shared").new(opts, limit, queue_timeout, name)
        return shared -- not a tail call: its errors blame the caller of dike.limit_jobs (level 3)
    end
    if opts.lease ~= nil then error(FNAME .. ": lease needs a store", 2) end
    local L = setmetatable({
        limit = limit, queue_max = options.count(FNAME, opts, "queue", 0, true, 0),
        queue_timeout = queue_timeout,
        calls = 0, ended = 0, queued = 0, rejected = 0,
        q = {}, timers = {}, messages = {}, names = {}, head = 1, tail = 0,
    }, Limiter)
    local limit_text = limit == huge and "inf" or format("%d", limit)

    local function limiter(fn)
        options.callable(FNAME, fn)
        local label = name or options.name_of(fn)
        local message = "Too many calls to function " .. label .. "! limit=" .. limit_text .. " exceeded"
        local function wrapped(...)
            local calls = L.calls + 1
            L.calls = calls
            -- running (this call included) within the limit; the right side rarely
            -- changes, so compiled code keeps it out of the loop of a caller
            if calls - L.ended <= L.limit + L.rejected + L.queued then
                return release(L, pcall(fn, ...))
            end
            wait_for_slot(L, message, label)
            return release(L, pcall(fn, ...))
        end
        stats.register(wrapped, L)
        options.set_name(wrapped, label)
        -- A task abandoned inside fn (it yielded with coroutine.yield) never returns here:
        -- the runtime gives its slot back for it.
        rt.holds(wrapped, function() release(L, true) end)
        return wrapped
    end
    stats.register(limiter, L)
    return limiter
end

return M
