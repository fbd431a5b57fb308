--- dike.rate_limit with a `store` (docs/sharing.md): one budget shared by every process that
-- uses the same store and name. rate_limit.lua hands a limiter to this file when it is made
-- with a store; without one, nothing here runs.
--
-- Each admission is one atomic step in the store (store/init.lua's R:acquire: one Redis script
-- with the server's clock, or a step under the shared dictionary's lock), the C core's GCRA
-- step written out in Lua (store/algorithms.lua): admitted at once, admitted with its turn
-- `wait` seconds away (it sleeps, then runs), or refused with retry_after and nothing changed.
-- A call that may wait asks with max_wait; one that cannot (no coroutine that can wait) asks
-- with 0.
--
-- Callers of one process run in the order they called. Each call takes a place in this
-- limiter's queue before it asks the store, and runs only once its turn has come and every
-- caller before it has run, been refused or left: with Redis on luv the replies come back in
-- order anyway (one pipelined connection), but inside nginx each call has a connection of its
-- own and the server may take two calls the other way round; then the second waits for the
-- first (its turn can only be later for it, never earlier). The queue's head is served by one
-- timer, as in rate_limit.lua; a place is three array slots, no table per call.
--
-- When the store fails (or is in an outage) the store's on_failure policy decides, call by
-- call, until it answers again: "local" admits by a process-local GCRA in the C core with the
-- same options (dike.core.gcra; so N processes admit up to N times the rate meanwhile), "open"
-- admits at once, "closed" refuses with RateLimited (retry_after: the store's `recheck`, how
-- soon a store that is down is tried again). The callers keep their places in the queue
-- either way. A call never waits for the store longer than its `timeout`.
--
-- Counters as rate_limit.lua's (calls, admitted, delayed, rejected, waiting), and store_errors
-- (operations of this limiter that failed: not answered within timeout, refused, an error
-- reply) and fallback_calls (admissions the policy decided).
local core = require("dike.core")
local rt = require("dike.runtime")
local errors = require("dike.errors")
local events = require("dike.events")
local options = require("dike.options")
local stats = require("dike.stats")

local type, error, pcall, format, setmetatable, getmetatable, huge =
    type, error, pcall, string.format, setmetatable, getmetatable, math.huge
local RateLimited = errors.RateLimited
local show = options.show
local emit = events.emit
local gcra_reserve = core.gcra_reserve

local M = {}

local FNAME = "dike.rate_limit"

-- due[i] of a place: PENDING while its caller asks the store, a time (rt.now's clock) once it
-- knows its turn, WOKEN once woken and not yet resumed (it still runs before those after it),
-- nil for a hole (the caller left).
local PENDING, WOKEN = false, true

local Shared = {}
Shared.__index = Shared

function Shared:snapshot()
    return { calls = self.calls, admitted = self.admitted, delayed = self.delayed, rejected = self.rejected,
             waiting = self.waiting, store_errors = self.store_errors, fallback_calls = self.fallback_calls }
end

---------------------------------------------------------------- the queue

local fire

local function stop_timer(S)
    if S.timer then
        rt.cancel_timer(S.timer)
        S.timer = nil
    end
end

local function arm(S, at)
    if S.timer then
        if S.armed_at <= at then return end -- it fires first; the pump arms the next
        rt.cancel_timer(S.timer)
    end
    local delay = at - rt.now()
    S.timer = rt.timer(delay > 0 and delay or 0, fire, S)
    S.armed_at = at
end

-- Wake, in queue order, every caller whose turn has come, up to the first that still asks the
-- store or whose turn is later (the timer is armed for it). `t`: the time to judge by.
local function pump(S, t)
    local q, due = S.q, S.due
    local h, tail = S.head, S.tail
    while h <= tail and due[h] == nil do h = h + 1 end
    if h > tail then
        S.head, S.tail = 1, 0 -- empty: start again at 1, keeping the tables small
        return stop_timer(S)
    end
    S.head = h
    t = t or rt.now()
    for i = h, tail do
        local d = due[i]
        if d == PENDING then break end
        if d ~= nil and d ~= WOKEN then
            if d > t then return arm(S, d) end
            due[i] = WOKEN
            rt.wake(q[i], true, nil, true) -- holds: a cancel before it resumes runs leave()
        end
    end
    stop_timer(S)
end

fire = function(S)
    S.timer = nil
    local t = rt.now()
    -- the caller it was armed for counts as due even if the clock reads a hair earlier
    if t < S.armed_at then t = S.armed_at end
    pump(S, t)
end

-- A place at the end of the queue, for a caller about to ask the store.
local function place(S, w)
    local i = S.tail + 1
    S.tail = i
    S.q[i], S.due[i] = w or false, PENDING
    return i
end

-- The caller of place i leaves it (ran, refused, cancelled).
local function unplace(S, i)
    S.q[i], S.due[i] = nil, nil
    if i == S.head then pump(S) end
end

-- A waiting caller was cancelled (or its wait ended otherwise): it leaves.
local function leave(_, S, i)
    S.waiting = S.waiting - 1
    S.q[i], S.due[i] = nil, nil
    pump(S)
end

---------------------------------------------------------------- outcomes

local function reject(S, i, message, retry_after)
    if i then unplace(S, i) end
    S.rejected = S.rejected + 1
    emit("rate_limit", S.name, "rejected", "retry_after", retry_after)
    error(RateLimited.new(message, retry_after), 0)
end

-- The caller of place i may run `wait` seconds from now: return once it may (its turn has
-- come and every caller before it has gone).
local function settle(S, w, i, wait, fname)
    if wait == 0 and i == S.head then
        unplace(S, i)
        S.admitted = S.admitted + 1
        return
    end
    if w == nil then
        unplace(S, i)
        -- Nothing can wait here (it asked with max_wait 0, so its turn is free): it runs now,
        -- ahead of earlier callers, as in rate_limit.lua; a wait would be the caller's mistake.
        if wait > 0 then rt.waiter(fname) end
        S.admitted = S.admitted + 1
        return
    end
    local at = rt.now() + wait
    S.due[i] = at
    S.waiting = S.waiting + 1
    emit("rate_limit", S.name, "delayed", "wait", wait)
    -- Woken by the timer (armed from the loop, so never before this caller suspends).
    arm(S, at)
    rt.suspend(w, leave, S, i)
    S.waiting = S.waiting - 1
    S.admitted = S.admitted + 1
    S.delayed = S.delayed + 1
    unplace(S, i)
end

-- The store failed (or is down): the policy decides. Returns the wait (admitted), or false
-- and retry_after (refused; nothing counted yet).
local function decide(S, c, max_wait)
    S.fallback_calls = S.fallback_calls + 1
    local policy = S.policy
    if policy == "open" then return 0 end
    if policy == "closed" then return false, S.store.recheck end
    local G = S.G
    if not G then
        G = core.gcra(S.rate, S.per, S.burst) -- made at the first failure: most limiters never need it
        S.G = G
    end
    return gcra_reserve(G, rt.now(), c, max_wait)
end

local function fallback(S, i, c, max_wait, message)
    local wait, retry_after = decide(S, c, max_wait)
    if wait == false then return reject(S, i, message, retry_after) end
    return wait
end

-- Admit one call of cost c (checked): returns once it may run, or raises RateLimited.
local function admit(S, c, fname, message)
    S.calls = S.calls + 1
    local w = rt.current_waiter(fname)
    local max_wait = w and S.max_wait or 0
    local i = place(S, w)
    local store = S.store
    local wait
    if store:available() then
        local pok, ok, v, kind = pcall(S.R.acquire, S.R, S.T, S.burst, c, max_wait, fname)
        if not pok then -- cancelled while the store answered (or no coroutine to wait in)
            unplace(S, i)
            error(ok, 0)
        end
        if ok == false then return reject(S, i, message, v) end
        if ok then
            wait = v
        else
            if kind ~= "down" then S.store_errors = S.store_errors + 1 end
            wait = fallback(S, i, c, max_wait, message)
        end
    else
        wait = fallback(S, i, c, max_wait, message)
    end
    return settle(S, w, i, wait, fname)
end

---------------------------------------------------------------- costs

local function checked_cost(S, fname, what, c)
    if type(c) ~= "number" or c ~= c or c <= 0 or c == huge then
        error(fname .. ": " .. what .. " must be a finite number > 0, got " .. show(c), 3)
    end
    if c > S.burst then
        error(format("%s: cost %s exceeds burst %s: such a call could never run", fname, show(c), show(S.burst)), 3)
    end
    return c
end

---------------------------------------------------------------- the limiter

local Limiter = { __name = "dike.rate_limit" }
Limiter.__index = Limiter

local function state_of(self, fname)
    local S = type(self) == "table" and getmetatable(self) == Limiter and self._state
    if not S then
        error(fname .. ": expected a rate limiter (call it with a colon), got " .. show(self), 3)
    end
    return S
end

--- Wait for a turn of `cost` units (default 1), or raise dike.RateLimited, exactly as a
--- wrapped call would.
---@param cost? number
function Limiter:acquire(cost)
    local S = state_of(self, "limiter:acquire")
    cost = checked_cost(S, "limiter:acquire", "cost", cost == nil and 1 or cost)
    admit(S, cost, "limiter:acquire", S.message)
end

--- Take a turn of `cost` units (default 1) if it is free now; never waits for a turn (but
--- waits for the store's answer: with Redis, in a coroutine).
---@param cost? number
---@return boolean ok, number retry_after
function Limiter:try(cost)
    local S = state_of(self, "limiter:try")
    cost = checked_cost(S, "limiter:try", "cost", cost == nil and 1 or cost)
    S.calls = S.calls + 1
    local ok, v, kind
    if S.store:available() then
        ok, v, kind = S.R:acquire(S.T, S.burst, cost, 0, "limiter:try")
        if ok == nil and kind ~= "down" then S.store_errors = S.store_errors + 1 end
    end
    if ok == nil then
        local wait, retry_after = decide(S, cost, 0)
        ok, v = wait ~= false, retry_after
    end
    if ok then
        S.admitted = S.admitted + 1
        return true, 0
    end
    S.rejected = S.rejected + 1
    emit("rate_limit", S.name, "rejected", "retry_after", v)
    return false, v
end

function Limiter.__call(self, fn)
    local S = state_of(self, FNAME)
    options.callable(FNAME, fn)
    local message, cost, cost_fn = S.message, S.cost, S.cost_fn
    local function wrapped(...)
        local c = cost
        if cost_fn then c = checked_cost(S, FNAME, "the cost function's result", (cost_fn(...))) end
        admit(S, c, FNAME, message)
        return fn(...)
    end
    stats.register(wrapped, S)
    options.set_name(wrapped, S.name)
    return wrapped
end

function Limiter:__tostring()
    local S = self._state
    return format("dike.rate_limit(rate=%g/%gs, burst=%g, name=%s, store=%s)", S.rate, S.per, S.burst, S.name,
        S.store.label)
end

--- A limiter whose budget lives in o.store (rate_limit.lua has checked every other option).
---@param o {store: table, name?: string, rate: number, per: number, burst: number, max_wait: number, cost: number, cost_fn?: function}
function M.new(o)
    local store, name = o.store, o.name
    options.store(FNAME, store, "rate", name, 3)
    local S = setmetatable({
        store = store, policy = store.on_failure, R = store:rate(name), G = false,
        rate = o.rate, per = o.per, burst = o.burst, T = o.per / o.rate, max_wait = o.max_wait,
        cost = o.cost, cost_fn = o.cost_fn, name = name,
        message = "Rate limit exceeded for function " .. name .. format("! rate=%g/%gs", o.rate, o.per),
        calls = 0, admitted = 0, delayed = 0, rejected = 0, waiting = 0, store_errors = 0, fallback_calls = 0,
        q = {}, due = {}, head = 1, tail = 0, timer = nil, armed_at = 0,
    }, Shared)
    local limiter = setmetatable({ _state = S }, Limiter)
    stats.register(limiter, S)
    return limiter
end

return M
