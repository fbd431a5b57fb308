--- dike.limit_jobs with a `store` (README "Sharing limits"): at most `limit` calls hold a
-- slot at once across every process that uses the same store and name. limit_jobs.lua
-- hands a limiter to this file when it is made with a store; without one, nothing here runs.
--
-- A call that may run asks the store for a slot (one round trip; store/init.lua's
-- J:acquire) and gives it back when it ends (one more, sent without waiting). Slots are
-- leases: a timer renews, every lease/3 seconds, the leases of calls running for longer
-- than lease/3 (so a short call costs no renewal), and a process that dies loses its slots
-- when they expire.
--
-- The queue is per process (FIFO), as without a store. A caller that finds no slot waits in
-- it and is registered in the store as a waiter, so that slots freed anywhere go to waiters
-- in the order they came (Redis; the shared dict has no order across workers). Waiters learn
-- of a free slot by polling: while callers wait, one grant call every `poll` seconds
-- (store option, default 0.01) asks for slots for the first min(queued, limit) of them and
-- refreshes their places; a release in this process asks for them at once, in the same round
-- trip. So a slot freed in this process reaches a waiter here in one round trip, and one freed
-- elsewhere within `poll` seconds plus one round trip.
--
-- A call that finds `limit` calls of its own process running or asking the store for a slot
-- is queued (or rejected) without a round trip: a process never asks for more slots than the
-- limit, however many callers arrive at once.
--
-- A call never waits for the store longer than the store's timeout. When the store fails (or
-- is in an outage: store/redis.lua) the store's on_failure policy decides: "local" runs the
-- call under a process-local limiter with the same options (this process's running calls
-- against `limit`, its queue), "open" runs it, "closed" raises TooManyCalls; queued callers
-- get the same treatment. Calls let through that way hold no lease: once the store answers
-- again they still run, uncounted there, until they end.
--
-- Events and names as limit_jobs.lua's: queued, rejected with reason "full" or
-- "queue_timeout", and "store" for a call rejected because the store failed ("closed").
local rt = require("dike.runtime")
local errors = require("dike.errors")
local emit = require("dike.events").emit
local options = require("dike.options")
local stats = require("dike.stats")

local pcall, error, setmetatable, pairs, huge = pcall, error, setmetatable, pairs, math.huge
local TooManyCalls = errors.TooManyCalls

local M = {}

local FNAME = "dike.limit_jobs"
-- The value a slot not held in the store is handed over as (policy "local" or "open").
local LOCAL = false

local Shared = {}
Shared.__index = Shared

function Shared:snapshot()
    return { calls = self.calls, running = self.running, queued = self.queued, rejected = self.rejected,
             limit = self.limit, store_errors = self.store_errors, fallback_calls = self.fallback_calls }
end

---------------------------------------------------------------- renewal

local renew_tick

local function renew_arm(S)
    if not S.renew_timer then S.renew_timer = rt.timer(S.lease / 3, renew_tick, S) end
end

-- A renewal or a release failed (the store keeps the release for when it is back).
local function store_failed(S, res)
    if res == nil then S.store_errors = S.store_errors + 1 end
end

renew_tick = function(S)
    S.renew_timer = nil
    if S.nheld == 0 then return end
    local now = rt.now()
    local cutoff = now - S.lease / 3
    local ids, n = nil, 0
    local holders = S.holders
    for id, at in pairs(holders) do
        if at <= cutoff then
            ids = ids or {}
            n = n + 1
            ids[n] = id
            holders[id] = now
        end
    end
    if n > 0 then S.J:renew(ids, n, store_failed, S) end
    renew_arm(S)
end

local function hold(S, id)
    S.holders[id] = rt.now()
    S.nheld = S.nheld + 1
    renew_arm(S)
end

local function unhold(S, id)
    S.holders[id] = nil
    local n = S.nheld - 1
    S.nheld = n
    if n == 0 and S.renew_timer then
        rt.cancel_timer(S.renew_timer)
        S.renew_timer = nil
    end
end

---------------------------------------------------------------- the queue

local poll_tick, grant_round

local function stop_poll(S)
    if S.poll_timer then
        rt.cancel_timer(S.poll_timer)
        S.poll_timer = nil
    end
end

local function start_poll(S)
    if not S.poll_timer then S.poll_timer = rt.timer(S.poll, poll_tick, S) end
end

-- The queue q[qh..qt] holds waiting callers and, ahead of those who came later, the places
-- of callers whose acquire is on its way (e.pending): if the store says no, such a caller
-- waits in its own place, so the queue stays in arrival order, which is also the order in
-- which its callers registered as waiters in the store. Holes (callers gone) are skipped.
local function compact(S)
    if S.queued == 0 and S.reserved == 0 then
        S.qh, S.qt = 1, 0
        return
    end
    local q, h = S.q, S.qh
    while q[h] == nil and h <= S.qt do h = h + 1 end
    S.qh = h
end

local function unqueue(S, e)
    S.q[e.idx] = nil
    e.idx = nil
    if e.timer then
        rt.cancel_timer(e.timer)
        e.timer = nil
    end
    local queued = S.queued - 1
    S.queued = queued
    if queued == 0 then stop_poll(S) end
    compact(S)
end

-- A place for a caller whose acquire is about to go out.
local function reserve(S, w, id)
    local i = S.qt + 1
    S.qt = i
    local e = { w = w, id = id, idx = i, timer = false, got = LOCAL, pending = true }
    S.q[i] = e
    S.reserved = S.reserved + 1
    return e
end

-- Its acquire was answered (or failed): the place is not needed.
local function drop(S, e)
    S.q[e.idx] = nil
    e.idx = nil
    S.reserved = S.reserved - 1
    compact(S)
end

-- The first caller waiting (S.queued > 0).
local function head(S)
    local q = S.q
    for i = S.qh, S.qt do
        local e = q[i]
        if e and not e.pending then return e end
    end
end

-- Give entry e its slot: `got` is its store id, or LOCAL. The hook stays until it resumes,
-- so a cancellation in between gives the slot back (on_cancel).
local function hand(S, e, got)
    unqueue(S, e)
    S.running = S.running + 1
    if got then hold(S, got) end
    e.got = got
    rt.wake(e.w, true, got, true)
end

local function unwait(S, id)
    if id then S.J:unwait({ id }, 1, store_failed, S) end
end

-- The store failed or is down while callers wait: they get what the policy says.
local function policy_queue(S)
    local policy = S.policy
    if policy == "closed" then
        while S.queued > 0 do
            local e = head(S)
            unqueue(S, e)
            S.rejected = S.rejected + 1
            S.fallback_calls = S.fallback_calls + 1
            rt.wake(e.w, false, TooManyCalls.new(S.message))
            emit("limit_jobs", S.name, "rejected", "reason", "store")
        end
    elseif policy == "open" then
        while S.queued > 0 do
            S.fallback_calls = S.fallback_calls + 1
            hand(S, head(S), LOCAL)
        end
    else
        while S.queued > 0 and S.running < S.limit do
            S.fallback_calls = S.fallback_calls + 1
            hand(S, head(S), LOCAL)
        end
    end
end

local function granted(batch, g)
    local S = batch.S
    S.granting = false
    if g == nil then
        S.store_errors = S.store_errors + 1
        if S.queued > 0 then policy_queue(S) end
        return
    end
    for i = 1, g do
        local e = batch[i]
        if e.idx then
            hand(S, e, e.id)
        else
            S.J:release(e.id, store_failed, S) -- it left (cancelled, timed out) while the answer came
        end
    end
    if S.again then
        -- a slot was released here while this call was on its way: ask again at once
        S.again = false
        if S.queued > 0 and S.store:available() then grant_round(S, "") end
    end
end

-- One round trip: release `release_id` ("" for none) and ask for slots for the first
-- min(queued, limit) waiting callers. Only one such call is in flight per limiter.
grant_round = function(S, release_id)
    local ids, batch, n = {}, { S = S }, 0
    local k = S.queued
    if k > S.limit then k = S.limit end
    local q = S.q
    local store = S.store
    for i = S.qh, S.qt do
        if n >= k then break end
        local e = q[i]
        if e and not e.pending then
            local id = e.id
            if not id then
                id = store:new_id()
                e.id = id
            end
            n = n + 1
            ids[n], batch[n] = id, e
        end
    end
    if n == 0 then
        if release_id ~= "" then S.J:release(release_id, store_failed, S) end
        return
    end
    S.granting = true
    if not S.J:grant(release_id, ids, n, granted, batch) then
        S.granting = false
        if release_id ~= "" then S.J:release(release_id, store_failed, S) end -- kept for later
        policy_queue(S)
    end
end

poll_tick = function(S)
    S.poll_timer = nil
    if S.queued == 0 then return end
    if not S.store:available() then
        policy_queue(S)
    elseif not S.granting then
        grant_round(S, "")
    end
    if S.queued > 0 then start_poll(S) end
end

-- A slot not held in the store was freed here.
local function freed_local(S)
    if S.queued == 0 then return end
    if not S.store:available() then
        policy_queue(S)
    elseif not S.granting then
        grant_round(S, "")
    end
end

-- A call ends (or a caller handed a slot left before it ran): give its slot back.
local function release_slot(S, got)
    S.running = S.running - 1
    if not got then return freed_local(S) end
    unhold(S, got)
    if S.queued > 0 and not S.granting and S.store:available() then
        grant_round(S, got)
    else
        S.J:release(got, store_failed, S)
        if S.queued > 0 then
            if S.granting then S.again = true
            elseif not S.store:available() then policy_queue(S) end
        end
    end
end

local function on_cancel(_, S, e)
    if e.idx then
        unqueue(S, e)
        unwait(S, e.id)
    else
        release_slot(S, e.got) -- handed a slot, cancelled before it resumed
    end
end

local function on_queue_timeout(S, e)
    e.timer = nil
    if not e.idx then return end
    unqueue(S, e)
    unwait(S, e.id)
    S.rejected = S.rejected + 1
    rt.wake(e.w, false, TooManyCalls.new(S.message))
    emit("limit_jobs", S.name, "rejected", "reason", "queue_timeout")
end

-- Wait in the queue; returns the slot handed over (id or LOCAL) or raises TooManyCalls.
-- e: the caller's place reserved before its acquire (it is registered in the store as a
-- waiter), or nil for a place at the end.
local function wait_in_queue(S, w, e)
    if e then
        e.pending = false
        S.reserved = S.reserved - 1
    else
        if S.queued + S.reserved >= S.queue_max then
            S.rejected = S.rejected + 1
            emit("limit_jobs", S.name, "rejected", "reason", "full")
            error(TooManyCalls.new(S.message), 0)
        end
        local i = S.qt + 1
        S.qt = i
        e = { w = w, id = nil, idx = i, timer = false, got = LOCAL }
        S.q[i] = e
    end
    S.queued = S.queued + 1
    if S.queue_timeout then e.timer = rt.timer(S.queue_timeout, on_queue_timeout, S, e) end
    start_poll(S)
    emit("limit_jobs", S.name, "queued")
    return rt.suspend(w, on_cancel, S, e)
end

---------------------------------------------------------------- calls

local function finish(S, got, ok, ...)
    release_slot(S, got)
    if ok then return ... end
    error((...), 0)
end

-- Run fn(...) holding the slot `got` and give it back after. The frame is registered with the
-- runtime so that a task abandoned inside fn (it yielded with coroutine.yield, and so never
-- returns here) still gives its slot back; a frame per call, because each holds its own slot.
local function run(S, got, fn, ...)
    local function frame(...)
        return finish(S, got, pcall(fn, ...)) -- not a tail call of fn: this frame stays below it
    end
    rt.holds(frame, function() release_slot(S, got) end)
    return frame(...)
end

-- reason: "full" (no slot, no room in the queue) or "store" (the store failed: "closed")
local function reject(S, reason)
    S.rejected = S.rejected + 1
    emit("limit_jobs", S.name, "rejected", "reason", reason or "full")
    error(TooManyCalls.new(S.message), 0)
end

-- The store failed, or is down: the policy decides. `asked`: the call asked the store (it came
-- before the callers queued meanwhile, so under "local" it runs if a slot is free here).
local function fallback(S, w, asked, fn, ...)
    local policy = S.policy
    if policy == "closed" then
        S.fallback_calls = S.fallback_calls + 1
        return reject(S, "store")
    end
    if policy == "open" or (S.running < S.limit and (asked or S.queued == 0)) then
        S.fallback_calls = S.fallback_calls + 1
        S.running = S.running + 1
        return run(S, LOCAL, fn, ...)
    end
    if S.queued + S.reserved >= S.queue_max then return reject(S) end
    w = w or rt.waiter(FNAME)
    return run(S, wait_in_queue(S, w, nil), fn, ...)
end

local function call(S, fn, ...)
    S.calls = S.calls + 1
    if S.limit == huge then -- nothing to share
        S.running = S.running + 1
        return run(S, LOCAL, fn, ...)
    end
    local store = S.store
    if not store:available() then return fallback(S, rt.current_waiter(FNAME), false, fn, ...) end
    if S.queued > 0 or S.running + S.acquiring >= S.limit then
        -- this process runs or is asking for `limit` slots already: queue or reject it without a
        -- round trip (so a process never has more than `limit` acquires in flight)
        if S.queued + S.reserved >= S.queue_max then return reject(S) end
        return run(S, wait_in_queue(S, rt.waiter(FNAME), nil), fn, ...)
    end
    local w = rt.waiter(FNAME)
    local id = store:new_id()
    -- If there is room, the caller's place in the queue is kept while it asks (and the store
    -- registers it as a waiter if no slot is free).
    local place = S.queued + S.reserved < S.queue_max and reserve(S, w, id) or nil
    S.acquiring = S.acquiring + 1
    local ok, got, _, kind = pcall(S.J.acquire, S.J, id, place ~= nil, FNAME)
    S.acquiring = S.acquiring - 1
    if not ok or got ~= false then
        if place then drop(S, place) end
        if not ok then error(got, 0) end -- cancelled while the store answered
    end
    if got == nil then
        if kind ~= "down" then S.store_errors = S.store_errors + 1 end
        return fallback(S, w, true, fn, ...)
    end
    if got then
        S.running = S.running + 1
        hold(S, id)
        return run(S, id, fn, ...)
    end
    if not place then return reject(S) end
    return run(S, wait_in_queue(S, w, place), fn, ...)
end

--- A limiter whose slots live in `opts.store` (limit_jobs.lua has checked limit, queue,
--- queue_timeout and name's type).
function M.new(opts, limit, queue_timeout, name)
    local store = opts.store
    options.store(FNAME, store, "jobs", name, 3)
    local lease = options.number(FNAME, opts, "lease", true, false, nil)
    local S = setmetatable({
        store = store, policy = store.on_failure, limit = limit, name = name,
        queue_max = options.count(FNAME, opts, "queue", 0, true, 0), queue_timeout = queue_timeout,
        lease = lease or store.lease, poll = store.poll,
        message = "Too many calls to function " .. name .. "! limit="
            .. (limit == huge and "inf" or string.format("%d", limit)) .. " exceeded",
        calls = 0, running = 0, queued = 0, rejected = 0, acquiring = 0, reserved = 0,
        store_errors = 0, fallback_calls = 0,
        q = {}, qh = 1, qt = 0, holders = {}, nheld = 0,
        renew_timer = nil, poll_timer = nil, granting = false, again = false,
    }, Shared)
    S.J = store:jobs(name, limit, S.lease)

    local function limiter(fn)
        options.callable(FNAME, fn)
        local function wrapped(...)
            return call(S, fn, ...)
        end
        stats.register(wrapped, S)
        options.set_name(wrapped, name)
        return wrapped
    end
    stats.register(limiter, S)
    return limiter
end

return M
