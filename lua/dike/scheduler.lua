--- Tasks and timers on top of a loop driver (runtime/luv.lua is one).
--
-- A task is a coroutine plus a record (dike.task_record: its fields, wake, suspend,
-- cancellation, join). Here a woken task goes to the ready queue, and the pump resumes
-- queued tasks one at a time, never from inside the waker, and never inside an arbitrary
-- luv callback; a waiting task's coroutine has yielded to the pump that resumed it.
--
-- Timers are entries of one binary heap driven by a single loop timer (the alarm).
local errors = require("dike.errors")
local Heap = require("dike.heap")
local task_record = require("dike.task_record")

local co_create, co_resume, co_yield, co_running, co_status =
    coroutine.create, coroutine.resume, coroutine.yield, coroutine.running, coroutine.status
local setmetatable, getmetatable, type, error = setmetatable, getmetatable, type, error
local debug_traceback = debug.traceback
local CancelledError = errors.CancelledError
local outside_task = errors.outside_task
local check_callable, check_seconds = task_record.check_callable, task_record.check_seconds
local results_of = task_record.results_of
local cancelled = task_record.cancelled

local NEW, RUNNING, WAITING, READY, DONE =
    task_record.NEW, task_record.RUNNING, task_record.WAITING, task_record.READY, task_record.DONE

local M = {}

---@param driver table a loop driver (see runtime/luv.lua)
function M.new(driver)
    local rt = { driver = driver }
    local now = driver.now
    rt.now = now

    local current = nil -- the task whose coroutine is running

    ---------------------------------------------------------------- ready queue
    local rq, rq_n, spare = {}, 0, {}

    local function enqueue(t)
        rq_n = rq_n + 1
        rq[rq_n] = t
        if rq_n == 1 then driver.pump_start() end
    end

    --- The running task, or raise the contract's error naming `fname`.
    local function task_for(fname)
        local t = current
        if t == nil or co_running() ~= t.co then
            error(outside_task(fname), 0)
        end
        return t
    end
    rt.task = task_for

    function rt.current()
        local t = current
        if t ~= nil and co_running() == t.co then return t end
        return nil
    end

    ---------------------------------------------------------------- tasks
    local book = task_record.new{
        ready = enqueue,
        -- The task's coroutine yields to the pump (or spawn) that resumed it, which ignores
        -- what it yields (the task); step resumes it with its wake (ok, value).
        park = co_yield,
        task = task_for,
        -- Errors are reported from the pump: it runs while some wait.
        on_unreported = function() driver.pump_start() end,
        on_flush = function()
            if rq_n == 0 then driver.pump_stop() end
        end,
    }
    local Task, wake, finish, unreported_count = book.Task, book.wake, book.finish, book.unreported_count
    local suspend, flush_unreported = book.suspend, book.flush_unreported
    rt.Task = Task
    rt.wake, rt.suspend, rt.flush_unreported = wake, suspend, flush_unreported
    rt.rehook, rt.watch, rt.unwatch = task_record.rehook, task_record.watch, task_record.unwatch

    -- A task's coroutine runs the task's function itself, with no body of dike's around it:
    -- its stack stays as shallow as the user's code (a coroutine whose stack never has to
    -- grow is half the memory), and its outcome is what the resume returns.
    -- After a resume returns (ok, ...): the coroutine has ended (returned or raised), or it
    -- waits (it went through suspend). Anything else means user code yielded the task's
    -- coroutine itself.
    local function after_resume(t, prev, ok, ...)
        current = prev
        if ok and t.state ~= RUNNING then return end -- it waits (the common case)
        if co_status(t.co) == "dead" then
            if not ok and getmetatable((...)) ~= CancelledError then
                -- A dead coroutine keeps its stack as it was where the error was raised.
                t.traceback = debug_traceback(t.co, "", 0):sub(2) -- drop the leading newline
            end
            return finish(t, ok, ...)
        end
        if t.state == RUNNING then
            t.state = WAITING
            finish(t, false, "dike: a task yielded with coroutine.yield; wait with dike's functions instead")
        end
    end

    local function start(t, ...)
        local prev = current
        current = t
        t.state = RUNNING
        return after_resume(t, prev, co_resume(t.co, ...))
    end

    local function step(t)
        local prev = current
        current = t
        t.state = RUNNING
        local ok, value = t.ok, t.value
        t.hook, t.hook_obj, t.hook_key, t.value = nil, nil, nil, nil
        return after_resume(t, prev, co_resume(t.co, ok, value))
    end

    -- coroutine.create takes functions only; a callable table gets a function around it.
    -- (Made apart from body_of: a closure over body_of's own argument would make every
    -- call of it close an upvalue, which LuaJIT cannot compile: the spawn path would run
    -- interpreted.)
    local function function_around(callable)
        return function(...) return callable(...) end
    end
    local function body_of(fn)
        if type(fn) == "function" then return fn end
        return function_around(fn)
    end

    -- The record task_record's record(co, NEW) makes (spec/task_record_spec.lua checks that
    -- the fields agree), written out here: made by that call, the constructor ran interpreted
    -- (LuaJIT blacklisted record, whose traces all ended at its return, and spawn's trace
    -- aborts at its varargs before taking it in): 200,000 tasks spawned, suspended, woken
    -- and finished took 5% longer.
    local function new_task(fn)
        return setmetatable({ co = co_create(body_of(fn)), state = NEW, hook = false, hook_obj = false,
                              hook_key = false, ok = false, value = false, nres = 0 }, Task)
    end

    --- Start fn(...) in a new task now; it runs until its first wait.
    function rt.spawn(fn, ...)
        check_callable("dike.spawn", fn)
        local t = new_task(fn)
        start(t, ...)
        return t
    end

    --- Start fn(a, b) in a new task from the pump (not from inside the caller).
    function rt.spawn_soon(fn, a, b)
        local t = new_task(fn)
        t.a1, t.a2 = a, b
        enqueue(t)
        return t
    end

    local function pump()
        flush_unreported()
        local q, n = rq, rq_n
        rq, rq_n = spare, 0
        for i = 1, n do
            local t = q[i]
            q[i] = nil
            local s = t.state
            if s == READY then
                step(t)
            elseif s == NEW then
                local a, b = t.a1, t.a2
                t.a1, t.a2 = nil, nil
                start(t, a, b)
            end
        end
        spare = q
        if rq_n == 0 and unreported_count() == 0 then driver.pump_stop() end
    end

    -- A task already queued READY just yields; a cancellation meanwhile has replaced
    -- its wake value with the error.
    local function suspend_ready(t)
        if t.cancel_pending then
            t.cancel_pending = nil
            t.ok, t.value = false, cancelled()
        end
        local ok, value = co_yield()
        if ok then return value end
        error(value, 0)
    end

    --- Let the loop run once, then continue.
    local function yield_once(t)
        t.state = WAITING
        wake(t, true, nil)
        return suspend_ready(t)
    end

    ---------------------------------------------------------------- timers
    local heap = Heap.new()
    local armed_at = nil

    local function rearm()
        local top = heap[1]
        if top == nil then
            if armed_at then
                driver.disarm()
                armed_at = nil
            end
        elseif armed_at ~= top.at then
            driver.arm(top.at)
            armed_at = top.at
        end
    end

    --- Call fn(a, b) after `delay` seconds, from the loop. Returns a handle for cancel_timer.
    function rt.timer(delay, fn, a, b)
        local e = { at = now() + delay, fn = fn, a = a, b = b, idx = 0 }
        heap:push(e)
        if e.idx == 1 then rearm() end
        return e
    end

    function rt.cancel_timer(e)
        local i = e.idx
        if i ~= 0 then
            heap:remove(e)
            if i == 1 then rearm() end
        end
    end

    local function on_alarm()
        armed_at = nil
        local t_now = now()
        while true do
            local e = heap[1]
            if e == nil or e.at > t_now then break end
            heap:remove(e)
            e.fn(e.a, e.b)
        end
        rearm()
    end

    ---------------------------------------------------------------- sleep
    local function sleeper_due(t) wake(t, true, nil) end
    local function sleep_cancel(_, e) rt.cancel_timer(e) end

    function rt.sleep(seconds, fname)
        fname = fname or "dike.sleep"
        check_seconds(fname, seconds)
        local t = task_for(fname)
        if seconds == 0 then return yield_once(t) end
        suspend(t, sleep_cancel, rt.timer(seconds, sleeper_due, t))
    end

    ---------------------------------------------------------------- run
    function rt.run(fn, ...)
        if current ~= nil then
            error("dike.run: cannot be called inside a task; use dike.spawn (or just call fn)", 2)
        end
        if driver.loop_running() then
            error("dike.run: the loop is already running; use dike.spawn", 2)
        end
        check_callable("dike.run", fn)
        local t = rt.spawn(fn, ...)
        t.observed = true -- its error is raised by run, not logged
        while t.state ~= DONE do
            if not driver.run_once() and t.state ~= DONE and rq_n == 0 then
                error("dike.run: the task waits but nothing is left that could wake it", 2)
            end
        end
        flush_unreported()
        return results_of(t)
    end

    --- Counts for tests: nothing should be left once every task has ended.
    function rt.pending()
        return { timers = heap.n, ready = rq_n, unreported = unreported_count() }
    end

    --- Take over the driver's callbacks. dike.runtime calls this when the runtime is
    --- installed, so a scheduler made over the shared luv driver but never installed leaves
    --- the current runtime alone.
    function rt.attach()
        driver.on_alarm = on_alarm
        driver.on_pump = pump
        driver.pending = rt.pending
        -- An earlier runtime (or load of dike) on the same driver may have left its handles running.
        driver.disarm()
        driver.pump_stop()
    end
    return rt
end

return M
