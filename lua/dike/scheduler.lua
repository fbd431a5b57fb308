--- Tasks and timers on top of a loop driver (runtime/luv.lua is one).
--
-- A task is a coroutine plus a small record. It waits in exactly one place at a time
-- through `suspend(t, hook, obj, key)`; whoever ends the wait calls `wake(t, ok, value)`,
-- which only marks the task READY and queues it: tasks are resumed later by the pump,
-- one at a time, never from inside the waker. So a queue is never re-entered while it is
-- half updated, and no task is resumed inside an arbitrary luv callback.
--
-- Cancellation calls the waiting place's `hook(t, obj, key)` at once, which must undo
-- what the place holds for `t` (a queue entry, a slot already handed over, a timer), then
-- delivers dike.CancelledError where the task waits. The hook stays set until the task
-- actually resumes, so a task woken but not yet resumed can still be cancelled cleanly.
--
-- Timers are entries of one binary heap driven by a single loop timer (the alarm).
local errors = require("dike.errors")
local log = require("dike.log")
local Heap = require("dike.heap")
local show = require("dike.options").show

local co_create, co_resume, co_yield, co_running =
    coroutine.create, coroutine.resume, coroutine.yield, coroutine.running
local setmetatable, getmetatable, select, type, error, tostring, xpcall =
    setmetatable, getmetatable, select, type, error, tostring, xpcall
local debug_traceback = debug.traceback
local unpack = table.unpack or unpack -- luacheck: ignore 143
local CancelledError = errors.CancelledError
local outside_task = errors.outside_task

local NEW, RUNNING, WAITING, READY, DONE = 0, 1, 2, 3, 4
local STATE_NAMES = { [0] = "new", "running", "waiting", "ready", "done" }
local CANCEL_MESSAGE = "Task was cancelled"

local M = {}

---@param driver table a loop driver (see runtime/luv.lua)
function M.new(driver)
    local rt = { driver = driver }
    local now = driver.now
    rt.now = now

    local current = nil -- the task whose coroutine is running

    ---------------------------------------------------------------- ready queue
    local rq, rq_n, spare = {}, 0, {}
    local unreported, unreported_n = {}, 0

    local function enqueue(t)
        rq_n = rq_n + 1
        rq[rq_n] = t
        if rq_n == 1 then driver.pump_start() end
    end

    --- Wake a waiting task with (ok, value): it resumes later, returning value (ok) or
    --- raising it. Returns false when the task was not waiting (already woken, or done).
    --- A waker that hands something over with the wake (a limiter slot) passes
    --- `holds = true`: the hook then stays until the task resumes, so a cancellation in
    --- between can give it back. Otherwise the place holds nothing more for the task.
    local function wake(t, ok, value, holds)
        if t.state ~= WAITING then return false end
        t.state = READY
        t.wok, t.wval = ok, value
        if not holds then t.hook, t.hook_obj, t.hook_key = nil, nil, nil end
        enqueue(t)
        return true
    end
    rt.wake = wake

    --- Move a waiting task's cancellation hook to another place (e.g. a batch it was sent in).
    function rt.rehook(t, hook, obj, key)
        t.hook, t.hook_obj, t.hook_key = hook, obj, key
    end

    ---------------------------------------------------------------- tasks
    local Task = {}
    Task.__index = Task
    Task.__name = "dike.Task"
    rt.Task = Task

    function Task:__tostring()
        return "dike.Task (" .. STATE_NAMES[self.state] .. ")"
    end

    --- A joiner is told its task ended by being woken with the finished task.
    function Task:notify(finished)
        wake(self, true, finished)
    end

    local last_traceback
    local function on_error(e)
        if getmetatable(e) ~= CancelledError then
            last_traceback = debug_traceback("", 2):sub(2) -- drop the leading newline
        end
        return e
    end

    local function report(t)
        log.log("error", "Unhandled error in task: " .. tostring(t.err) .. "\n" .. (t.traceback or ""))
    end

    local function flush_unreported()
        if unreported_n == 0 then return end
        local list, n = unreported, unreported_n
        unreported, unreported_n = {}, 0
        if rq_n == 0 then driver.pump_stop() end
        for i = 1, n do
            local t = list[i]
            if not t.observed then
                t.observed = true
                report(t)
            end
        end
    end
    rt.flush_unreported = flush_unreported

    local function finish(t, ok, ...)
        if ok then
            local n = select("#", ...)
            t.nres = n
            if n == 1 then
                t.r1 = ...
            elseif n > 1 then
                t.results = { ... }
            end
        else
            local e = ...
            t.failed, t.err = true, e
            if getmetatable(e) == CancelledError then
                t.cancelled = true
            else
                t.traceback = last_traceback
            end
            last_traceback = nil
        end
        t.state = DONE
        t.hook, t.hook_obj, t.hook_key, t.wval = nil, nil, nil, nil
        local watchers = t.watchers
        if watchers then
            t.watchers = nil
            for i = 1, #watchers do watchers[i]:notify(t) end
        elseif t.failed and not t.cancelled and not t.observed then
            unreported_n = unreported_n + 1
            unreported[unreported_n] = t
            driver.pump_start()
        end
    end

    local function task_body(t, fn, ...)
        return finish(t, xpcall(fn, on_error, ...))
    end

    -- After a resume returns: the task waits (it went through suspend), or it is done.
    -- Anything else means user code yielded the task's coroutine itself.
    local function after_resume(t, ok, err)
        if not ok then
            -- Only a failure of dike's own body gets here (e.g. out of memory).
            t.state = WAITING
            finish(t, false, err)
        elseif t.state == RUNNING then
            t.state = WAITING
            finish(t, false, "dike: a task yielded with coroutine.yield; wait with dike's functions instead")
        end
    end

    local function start(t, fn, ...)
        local prev = current
        current = t
        t.state = RUNNING
        local ok, err = co_resume(t.co, t, fn, ...)
        current = prev
        after_resume(t, ok, err)
    end

    local function step(t)
        local prev = current
        current = t
        t.state = RUNNING
        local ok, value = t.wok, t.wval
        t.hook, t.hook_obj, t.hook_key, t.wval = nil, nil, nil, nil
        local rok, err = co_resume(t.co, ok, value)
        current = prev
        after_resume(t, rok, err)
    end

    local function new_task()
        return setmetatable({ co = co_create(task_body), state = NEW }, Task)
    end

    local function check_callable(fname, fn)
        local tf = type(fn)
        if tf == "function" then return end
        local mt = getmetatable(fn)
        if mt and type(mt.__call) == "function" then return end
        error(fname .. ": fn must be a function, got " .. tf, 3)
    end

    --- Start fn(...) in a new task now; it runs until its first wait.
    function rt.spawn(fn, ...)
        check_callable("dike.spawn", fn)
        local t = new_task()
        start(t, fn, ...)
        return t
    end

    --- Start fn(a, b) in a new task from the pump (not from inside the caller).
    function rt.spawn_soon(fn, a, b)
        local t = new_task()
        t.fn, t.a1, t.a2 = fn, a, b
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
                local fn, a, b = t.fn, t.a1, t.a2
                t.fn, t.a1, t.a2 = nil, nil, nil
                start(t, fn, a, b)
            end
        end
        spare = q
        if rq_n == 0 and unreported_n == 0 then driver.pump_stop() end
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

    --- Park task `t` (the running one) until wake(t, ...) or its cancellation.
    --- hook(t, obj, key) is called if it is cancelled meanwhile.
    local function suspend(t, hook, obj, key)
        if t.cancel_pending then
            t.cancel_pending = nil
            if hook then hook(t, obj, key) end
            error(CancelledError.new(CANCEL_MESSAGE), 0)
        end
        t.hook, t.hook_obj, t.hook_key = hook, obj, key
        t.state = WAITING
        local ok, value = co_yield()
        if ok then return value end
        error(value, 0)
    end
    rt.suspend = suspend

    -- A task already queued READY just yields; a cancellation meanwhile has replaced
    -- its wake value with the error.
    local function suspend_ready(t)
        if t.cancel_pending then
            t.cancel_pending = nil
            t.wok, t.wval = false, CancelledError.new(CANCEL_MESSAGE)
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

    --- Cancel: see API.md §1. Takes effect on dike's bookkeeping before it returns.
    function Task:cancel()
        local s = self.state
        if s == DONE then return end
        if s == NEW then
            self.fn, self.a1, self.a2 = nil, nil, nil
            self.state = RUNNING
            finish(self, false, CancelledError.new(CANCEL_MESSAGE))
            return
        end
        if s == RUNNING then
            self.cancel_pending = true
            return
        end
        local hook = self.hook
        if hook then
            self.hook = nil
            hook(self, self.hook_obj, self.hook_key)
        end
        self.wok, self.wval = false, CancelledError.new(CANCEL_MESSAGE)
        if s == WAITING then
            self.state = READY
            enqueue(self)
        end
    end

    function Task:done()
        return self.state == DONE
    end

    local function results_of(t)
        if t.failed then error(t.err, 0) end
        local n = t.nres
        if n == 1 then return t.r1 end
        if n == 0 then return end
        return unpack(t.results, 1, n)
    end

    local function unjoin(waiter, target)
        local ws = target.watchers
        if not ws then return end
        for i = #ws, 1, -1 do
            if ws[i] == waiter then
                table.remove(ws, i)
                return
            end
        end
    end

    local function watch(target, watcher)
        local ws = target.watchers
        if ws then ws[#ws + 1] = watcher else target.watchers = { watcher } end
    end
    rt.watch = watch
    rt.unwatch = unjoin

    --- Wait for the task to end; return its values or raise its error.
    function Task:join()
        if self.state ~= DONE then
            local t = task_for("task:join")
            if t == self then error("task:join: a task cannot join itself", 2) end
            watch(self, t)
            suspend(t, unjoin, self)
        end
        self.observed = true
        return results_of(self)
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
        if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
            error(fname .. ": seconds must be a number >= 0, got " .. show(seconds), 2)
        end
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
        return { timers = heap.n, ready = rq_n, unreported = unreported_n }
    end

    driver.on_alarm = on_alarm
    driver.on_pump = pump
    driver.pending = rt.pending
    -- A previous load of dike may have left the shared handles running.
    driver.disarm()
    driver.pump_stop()
    return rt
end

return M
