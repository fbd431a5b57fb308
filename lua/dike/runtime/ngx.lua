--- The nginx host (OpenResty, or nginx with the Lua module): the scheduler's loop primitives
-- on nginx's own event loop, through ngx.semaphore, ngx.timer.at, ngx.thread and ngx.now.
--
-- In nginx only nginx may resume a request's Lua thread, so the scheduler runs in host mode
-- (`threads` below): a waiting thread waits on its record's own ngx.semaphore and a wake
-- posts to it; nginx resumes the thread later, from its posted events, never inside the
-- waker. A post racing with a timed-out wait leaves a stale count, so waits loop until the
-- record says it was woken. A task is an ngx light thread: one started by dike.spawn (bound
-- to the current request), or, for spawn_soon, one started by the worker (so a batch
-- outlives the request that filled it). Any other thread that waits (a request's own, a
-- coroutine of the request) gets a light record.
--
-- The worker: one ngx.timer.at callback serves the scheduler's alarm and pump. It sleeps on
-- its own semaphore until the next deadline or until poked, so however many dike timers
-- there are, one nginx timer runs (per-batch timers cannot exhaust lua_max_pending_timers).
-- It ends after an idle second (a graceful shutdown is never delayed longer), or after
-- RECYCLE started tasks (nginx keeps per-thread records of a timer until it ends), and is
-- started again on demand.
--
-- Time: ngx.now() after ngx.update_time() (ngx.now is cached per event-loop iteration).
local log = require("dike.log")
local errors = require("dike.errors")
local scheduler = require("dike.runtime.scheduler")

local co_running = coroutine.running
local type, tostring, pcall, rawget = type, tostring, pcall, rawget
local ceil = math.ceil
local STATE, WAITING, HOST = scheduler.STATE, scheduler.WAITING, scheduler.HOST
local describe, outside_coroutine = errors.describe, errors.outside_coroutine

local FOREVER = 86400    -- seconds of one semaphore wait; waits loop, so any bound works
local IDLE = 1           -- seconds the worker stays without work before it ends
local RECYCLE = 256      -- tasks started after which the worker hands over to a fresh timer
local LOST = 2           -- seconds a started worker may take to show life before another starts

-- Phases whose Lua code runs in a thread nginx can suspend (ngx.sleep works there).
local WAITABLE = { rewrite = true, access = true, content = true, timer = true,
                   ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true }

local M = {}

--- Whether this Lua state runs inside nginx with the Lua module.
---@return boolean
function M.available()
    local ngx = rawget(_G, "ngx")
    return type(ngx) == "table" and type(ngx.get_phase) == "function"
        and type(ngx.timer) == "table" and type(ngx.config) == "table"
        and ngx.config.ngx_lua_version ~= nil
end

function M.new()
    local ngx = rawget(_G, "ngx")
    local semaphore = require("ngx.semaphore")
    local ngx_now, update_time, get_phase = ngx.now, ngx.update_time, ngx.get_phase
    local timer_at, thread_spawn = ngx.timer.at, ngx.thread.spawn
    local H = { name = "ngx" }

    local function now()
        update_time()
        return ngx_now()
    end
    H.now = now

    -- Waits shorter than a millisecond would not wait at all (nginx timers count whole ms).
    local function wait_seconds(s)
        local ms = ceil(s * 1000)
        if ms < 1 then ms = 1 end
        return ms / 1000
    end

    local on_alarm, on_pump = nil, nil
    function H.attach(alarm, pump)
        on_alarm, on_pump = alarm, pump
    end

    ---------------------------------------------------------------- the worker
    local alarm_at = nil        -- the scheduler's alarm (nil: disarmed)
    local pump_due = false      -- the scheduler asked for a pump turn
    local worker_on = false     -- an ngx timer runs (or is about to run) the worker loop
    local worker_sem = nil
    local worker_until = nil    -- the worker waits until this time (nil: not waiting)
    local worker_seen = 0       -- when the worker last showed life (or was started)
    local started = 0           -- tasks this worker started (RECYCLE)
    local worker_loop

    local function start_worker()
        worker_on = true
        worker_seen = now()
        local ok, err = timer_at(0, worker_loop)
        if ok then return end
        -- No timer (worker exiting, or too many timers): serve from this request instead.
        if WAITABLE[get_phase()] and pcall(thread_spawn, worker_loop, false, true) then return end
        worker_on = false
        log.log("error", "dike (ngx runtime): cannot start its timer: " .. tostring(err))
    end

    --- Something is due at time `at` (nil: now): make sure the worker sees it in time.
    local function poke(at)
        if not worker_on then return start_worker() end
        local u = worker_until
        if u then
            if at == nil or at < u then
                worker_until = nil
                worker_sem:post(1)
            end
        elseif now() - worker_seen > LOST then
            -- Started but never ran: nginx drops a timer callback when lua_max_running_timers
            -- are all busy. Start another rather than wait forever.
            start_worker()
        end
    end

    function H.arm(at)
        alarm_at = at
        poke(at)
    end

    function H.disarm()
        alarm_at = nil -- the worker may wake for nothing; it just waits again
    end

    function H.pump()
        pump_due = true
        poke(nil)
    end

    -- The worker: one ngx timer (or, as a fallback, a light thread of a request).
    function worker_loop(premature, borrowed)
        worker_sem = worker_sem or semaphore.new()
        -- Borrowed, it was started inside its caller: yield first, so it never runs a task
        -- (or wakes one) before that caller has reached its own wait.
        if borrowed then semaphore.new():wait(0.001) end -- a fresh one: no stale count
        started = 0
        local idle = false
        while true do
            worker_seen = now()
            if alarm_at and alarm_at <= worker_seen then
                alarm_at = nil
                on_alarm()
            end
            if pump_due then
                pump_due = false
                on_pump()
            end
            if not pump_due then
                local at = alarm_at
                if at == nil and (idle or premature or borrowed or ngx.worker.exiting()) then break end
                if started >= RECYCLE then break end
                -- At most IDLE at a time, so a shutting-down nginx is not kept waiting.
                local wait = at and at - now() or IDLE
                if wait > IDLE then wait = IDLE end
                idle = at == nil
                worker_until = now() + wait
                worker_sem:wait(wait_seconds(wait))
                worker_until = nil
            end
        end
        worker_on = false
        if alarm_at or pump_due then start_worker() end
    end

    ---------------------------------------------------------------- threads
    local function not_here(phase)
        return " (in nginx: a request or timer handler; the " .. tostring(phase) .. " phase cannot wait)"
    end

    local threads = {}
    H.threads = threads

    --- The running thread if dike may wait in it here; else nil and why not.
    function threads.current()
        local co = co_running()
        local phase = get_phase()
        if co == nil or not WAITABLE[phase] then return nil, not_here(phase) end
        return co
    end

    --- Start body(...) now in a light thread of the current request (or timer).
    function threads.spawn(body, ...)
        local phase = get_phase()
        if not WAITABLE[phase] then return false, outside_coroutine("dike.spawn") .. not_here(phase) end
        local th, err = thread_spawn(body, ...)
        if not th then return false, "dike.spawn: " .. describe(err) end
        return true
    end

    --- Start body(...) from the worker (the scheduler's pump runs there).
    function threads.start(body, ...)
        started = started + 1
        local th, err = thread_spawn(body, ...)
        if not th then return false, err end
        return true
    end

    local function semaphore_of(w)
        local sem = w[HOST]
        if not sem then
            sem = semaphore.new()
            w[HOST] = sem
        end
        return sem
    end

    --- The running thread waits until its record is woken.
    function threads.park(w)
        local sem = semaphore_of(w)
        while w[STATE] == WAITING do
            local ok, err = sem:wait(FOREVER)
            if not ok and err ~= "timeout" then
                error("dike (ngx runtime): cannot wait here: " .. describe(err), 0)
            end
        end
    end

    --- A woken record: nginx resumes its thread once the post is seen.
    function threads.post(w)
        semaphore_of(w):post(1)
    end

    ---------------------------------------------------------------- the rest of a host
    function H.run_once()
        error("dike (ngx runtime): nginx drives the loop", 2)
    end

    function H.loop_running()
        return true
    end

    function H.handles()
        return {}
    end

    return H
end

return M
