--- The OpenResty runtime (DESIGN.md §1): dike's runtime seam (runtime/init.lua) on nginx's
-- own event loop, through ngx.semaphore, ngx.timer.at, ngx.thread and ngx.now.
--
-- Not a driver under dike.scheduler: the scheduler resumes raw coroutines from one pump,
-- but in nginx a request's Lua code runs in an ngx "light thread" that only nginx may
-- resume, and only inside its own request. So here a task *is* an ngx thread: the thread
-- of a request or timer that first calls into dike (adopted), one started by dike.spawn
-- (ngx.thread.spawn, bound to the current request), or one started by spawn_soon (a light
-- thread of dike's worker timer, so a batch outlives the request that filled it).
--
-- Tasks are dike.task_record records; wake, suspend, cancellation and join are its, shared
-- with dike.scheduler, and this runtime supplies how a task waits and is woken: each task
-- has an ngx.semaphore. suspend() marks the task WAITING and waits on it; wake() marks it
-- READY, stores the value and posts once. nginx resumes the thread later, from its posted
-- events, never inside the waker, so no queue is re-entered half updated. A post racing
-- with a timed-out wait leaves a stale count, so waits loop until the state says READY.
--
-- Timers: one binary heap of deadlines, served by a single worker (an ngx.timer.at
-- callback) that sleeps on its own semaphore until the next deadline, starts spawn_soon
-- tasks and reports unobserved errors. One running nginx timer however many dike timers
-- there are, so per-batch timers cannot exhaust lua_max_pending_timers. The worker ends
-- after an idle second (or after RECYCLE spawns, since nginx keeps per-thread records of a
-- timer until it ends) and is started again on demand.
--
-- Time: ngx.now() after ngx.update_time() (ngx.now is cached per event-loop iteration).
local errors = require("dike.errors")
local log = require("dike.log")
local Heap = require("dike.heap")
local task_record = require("dike.task_record")

local co_running = coroutine.running
local setmetatable, getmetatable, type, error, tostring, xpcall, pcall, rawget =
    setmetatable, getmetatable, type, error, tostring, xpcall, pcall, rawget
local ceil = math.ceil
local debug_traceback = debug.traceback
local CancelledError = errors.CancelledError
local check_callable, check_seconds = task_record.check_callable, task_record.check_seconds
local cancelled = task_record.cancelled

local NEW, RUNNING, WAITING = task_record.NEW, task_record.RUNNING, task_record.WAITING
local FOREVER = 86400    -- seconds of one semaphore wait; waits loop, so any bound works
local IDLE = 1           -- seconds the worker stays without work before it ends
local RECYCLE = 256      -- spawns after which the worker hands over to a fresh timer
local LOST = 2           -- seconds a started worker may take to show life before another starts

-- Phases whose Lua code runs in a thread nginx can suspend (ngx.sleep works there).
local WAITABLE = { rewrite = true, access = true, content = true, timer = true,
                   ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true }

local M = {}

--- Whether this Lua state runs inside nginx with the Lua module (OpenResty or Debian's).
---@return boolean
function M.available()
    local ngx = rawget(_G, "ngx")
    return type(ngx) == "table" and type(ngx.get_phase) == "function"
        and type(ngx.timer) == "table" and type(ngx.config) == "table"
        and ngx.config.ngx_lua_version ~= nil
end

--- The runtime table (see runtime/init.lua); only inside nginx.
---@return table runtime
function M.new()
    local ngx = rawget(_G, "ngx")
    local semaphore = require("ngx.semaphore")
    local ngx_now, update_time, get_phase = ngx.now, ngx.update_time, ngx.get_phase
    local timer_at, thread_spawn = ngx.timer.at, ngx.thread.spawn
    local rt = { name = "ngx" }

    local function now()
        update_time()
        return ngx_now()
    end
    rt.now = now

    -- Waits shorter than a millisecond would not wait at all (nginx timers count whole ms).
    local function wait_seconds(s)
        local ms = ceil(s * 1000)
        if ms < 1 then ms = 1 end
        return ms / 1000
    end

    local by_co = setmetatable({}, { __mode = "k" }) -- ngx thread -> its task
    local heap = Heap.new()
    local starts, starts_head, starts_tail = {}, 1, 0 -- spawn_soon tasks not started yet
    local yielders, yielders_n = {}, 0 -- tasks in sleep(0), woken by the worker's next round

    ---------------------------------------------------------------- the worker
    local worker_on = false     -- an ngx timer runs (or is about to run) the worker loop
    local worker_sem = nil
    local worker_until = nil    -- the worker waits until this time (nil: not waiting)
    local worker_seen = 0       -- when the worker last showed life (or was started)
    local worker_loop

    local function start_worker()
        worker_on = true
        worker_seen = now()
        local ok, err = timer_at(0, worker_loop)
        if ok then return end
        -- No timer (worker exiting, or too many timers): serve from this request instead.
        local phase = get_phase()
        if WAITABLE[phase] and pcall(thread_spawn, worker_loop, false, true) then return end
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

    ---------------------------------------------------------------- tasks
    local function semaphore_of(t)
        local sem = t.sem
        if not sem then
            sem = semaphore.new()
            t.sem = sem
        end
        return sem
    end

    -- A woken task: nginx resumes its thread once the post is seen.
    local function post(t)
        semaphore_of(t):post(1)
    end

    -- Wait until `t` is woken, or `seconds` have passed (then return false).
    local function wait_woken(t, seconds)
        local sem = semaphore_of(t)
        local deadline = seconds and now() + seconds
        while t.state == WAITING do
            local s = FOREVER
            if deadline then
                s = deadline - now()
                if s <= 0 then return false end
            end
            local ok, err = sem:wait(wait_seconds(s))
            if not ok and err ~= "timeout" then
                error("dike (ngx runtime): cannot wait here: " .. tostring(err), 0)
            end
        end
        return true
    end

    -- The task runs again: its wake (ok, value), taken off the record.
    local function resumed(t)
        t.state = RUNNING
        local ok, value = t.ok, t.value
        t.hook, t.hook_obj, t.hook_key, t.value = nil, nil, nil, nil
        return ok, value
    end

    local function park(t)
        wait_woken(t, nil)
        return resumed(t)
    end

    local task_for -- below: it needs the records made here
    local book = task_record.new{
        ready = post,
        park = park,
        task = function(fname) return task_for(fname) end,
        -- Reported by the worker, later: a join right after the task ended observes it.
        on_unreported = function() poke(nil) end,
    }
    local record, wake, finish = book.record, book.wake, book.finish
    local flush_unreported, unreported_count = book.flush_unreported, book.unreported_count
    rt.Task, rt.wake, rt.suspend, rt.flush_unreported = book.Task, wake, book.suspend, flush_unreported
    rt.rehook, rt.watch, rt.unwatch = task_record.rehook, task_record.watch, task_record.unwatch

    local last_traceback -- where the error that is ending a thread was raised
    local function on_error(e)
        if getmetatable(e) ~= CancelledError then
            last_traceback = debug_traceback("", 2):sub(2)
        end
        return e
    end

    local function ended(t, ok, ...)
        if not ok then t.traceback, last_traceback = last_traceback, nil end
        return finish(t, ok, ...)
    end

    -- The body of every thread dike starts.
    local function thread_body(t, fn, ...)
        local co = co_running()
        by_co[co] = t
        t.state = RUNNING
        ended(t, xpcall(fn, on_error, ...))
        by_co[co] = nil
    end

    local function not_here(fname, phase)
        return errors.outside_task(fname) .. " (in nginx: a request or timer handler; the "
            .. tostring(phase) .. " phase cannot wait)"
    end

    --- The task of the running ngx thread (adopting it on first use), or nil where nginx
    --- cannot suspend it.
    local function current()
        local co = co_running()
        local t = co and by_co[co]
        -- A running thread's task is RUNNING; any other state is a record left by a thread
        -- nginx killed mid-wait (its coroutine object reused): start afresh.
        if t and t.state == RUNNING then return t end
        if co == nil or not WAITABLE[get_phase()] then return nil end
        t = record(nil, RUNNING)
        t.adopted = true
        by_co[co] = t
        return t
    end
    rt.current = current

    function task_for(fname)
        local t = current()
        if t == nil then error(not_here(fname, get_phase()), 0) end
        return t
    end
    rt.task = task_for

    --- Start fn(...) now in a light thread of the current request (or timer).
    function rt.spawn(fn, ...)
        check_callable("dike.spawn", fn)
        local phase = get_phase()
        if not WAITABLE[phase] then error(not_here("dike.spawn", phase), 2) end
        local t = record(nil, NEW)
        local th, err = thread_spawn(thread_body, t, fn, ...)
        if not th then error("dike.spawn: " .. tostring(err), 2) end
        return t
    end

    --- Start fn(a, b) soon, in a light thread of the worker (never inside the caller).
    function rt.spawn_soon(fn, a, b)
        local t = record(nil, NEW)
        t.fn, t.a1, t.a2 = fn, a, b
        starts_tail = starts_tail + 1
        starts[starts_tail] = t
        poke(nil)
        return t
    end

    ---------------------------------------------------------------- timers
    function rt.timer(delay, fn, a, b)
        local e = { at = now() + delay, fn = fn, a = a, b = b, idx = 0 }
        heap:push(e)
        if e.idx == 1 then poke(e.at) end
        return e
    end

    function rt.cancel_timer(e)
        heap:remove(e) -- the worker may wake for nothing; it just waits again
        if heap.n == 0 then poke(nil) end -- ... but it can go idle (and end) now
    end

    local function guarded(fn, a, b)
        local ok, err = xpcall(fn, debug_traceback, a, b)
        if not ok then log.log("error", "dike (ngx runtime): a timer callback failed: " .. tostring(err)) end
    end

    local function fire_due()
        local t_now = now()
        while true do
            local e = heap[1]
            if e == nil or e.at > t_now then return e end
            heap:remove(e)
            guarded(e.fn, e.a, e.b)
        end
    end

    local function start_queued()
        local n = 0
        while starts_head <= starts_tail do
            local t = starts[starts_head]
            starts[starts_head] = nil
            starts_head = starts_head + 1
            if t.state == NEW then
                local fn, a, b = t.fn, t.a1, t.a2
                t.fn, t.a1, t.a2 = nil, nil, nil
                local th, err = thread_spawn(thread_body, t, fn, a, b)
                if not th then
                    t.state = RUNNING
                    finish(t, false, "dike (ngx runtime): cannot start a task: " .. tostring(err))
                end
                n = n + 1
            end
        end
        starts_head, starts_tail = 1, 0
        return n
    end

    -- The worker: one ngx timer (or, as a fallback, a light thread of a request).
    function worker_loop(premature, borrowed)
        worker_sem = worker_sem or semaphore.new()
        -- Borrowed, it was started inside its caller: yield first, so it never runs a task
        -- (or wakes one) before that caller has reached its own wait.
        if borrowed then semaphore.new():wait(0.001) end -- a fresh one: no stale count
        local spawned, idle = 0, false
        while true do
            worker_seen = now()
            flush_unreported()
            if yielders_n > 0 then
                local list, n = yielders, yielders_n
                yielders, yielders_n = {}, 0
                for i = 1, n do wake(list[i], true, nil) end
            end
            spawned = spawned + start_queued()
            local top = fire_due()
            local busy = starts_head <= starts_tail or unreported_count() > 0 or yielders_n > 0
            if not busy then
                if top == nil and (idle or premature or borrowed or ngx.worker.exiting()) then break end
                if spawned >= RECYCLE then break end
                -- At most IDLE at a time, so a shutting-down nginx is not kept waiting.
                local wait = top and top.at - now() or IDLE
                if wait > IDLE then wait = IDLE end
                idle = top == nil
                worker_until = now() + wait
                worker_sem:wait(wait_seconds(wait))
                worker_until = nil
            end
        end
        worker_on = false
        if heap[1] or starts_head <= starts_tail or unreported_count() > 0 or yielders_n > 0 then start_worker() end
    end

    ---------------------------------------------------------------- sleep and run
    function rt.sleep(seconds, fname)
        fname = fname or "dike.sleep"
        check_seconds(fname, seconds)
        local t = task_for(fname)
        if t.cancel_pending then
            t.cancel_pending = nil
            error(cancelled(), 0)
        end
        t.state = WAITING
        if seconds == 0 then
            -- Woken by the worker's next round: one trip through nginx's event loop (no
            -- ngx.sleep(0), which plain nginx builds run through a timer, with a warning).
            yielders_n = yielders_n + 1
            yielders[yielders_n] = t
            poke(nil)
            wait_woken(t, nil)
        elseif not wait_woken(t, seconds) then
            t.state = RUNNING
            return
        end
        local ok, err = resumed(t)
        if not ok then error(err, 0) end
    end

    --- In nginx: spawn fn(...) and wait for it (the calling thread waits; nginx goes on).
    function rt.run(fn, ...)
        check_callable("dike.run", fn)
        local t = rt.spawn(fn, ...)
        t.observed = true
        return t:join()
    end

    --- Counts for tests: nothing should be left once every task has ended.
    function rt.pending()
        return { timers = heap.n, ready = starts_tail - starts_head + 1 + yielders_n, unreported = unreported_count() }
    end

    return rt
end

return M
