--- The task record, and what both runtimes do with it alike: dike.scheduler (tasks on a loop
-- driver such as runtime/luv.lua) and runtime/ngx.lua (tasks that are nginx light threads).
-- They differ only in how a waiting task is parked and resumed (the scheduler's coroutine
-- yields to its pump, which resumes queued tasks; in nginx each thread waits on its own
-- semaphore) and in how unobserved errors get their turn to be reported: each runtime passes
-- those in as the `host` of M.new.
--
-- A task waits in exactly one place at a time through `suspend(t, hook, obj, key)`;
-- whoever ends the wait calls `wake(t, ok, value)`, which only marks the task READY and
-- hands it to the runtime (host.ready): it resumes later, never from inside the waker, so a
-- queue is never re-entered while it is half updated.
--
-- Cancellation calls the waiting place's `hook(t, obj, key)` at once, which must undo
-- what the place holds for `t` (a queue entry, a slot already handed over, a timer), then
-- delivers dike.CancelledError where the task waits. The hook stays set until the task
-- actually resumes, so a task woken but not yet resumed can still be cancelled cleanly.
--
-- A record is made with every field its common life needs (so the table never grows,
-- and never rehashes, on the hot path; a task of a waiting caller stays small):
--   co, state                 its coroutine (the scheduler's; none in nginx, where the
--                             task is an ngx thread) and NEW/RUNNING/WAITING/READY/DONE
--   hook, hook_obj, hook_key  where it waits: hook(t, obj, key) undoes that on cancel
--   ok, value                 READY: the pending wake (resume returning value, or raising it)
--                             DONE: whether it returned, and its first result or its error
--                             (what dike.gather reads)
--   nres                      DONE: how many values it returned
-- Rarer fields are added when needed: results (more than one value), traceback, observed
-- (someone takes its outcome), watchers (joiners), cancel_pending; and the runtime's own:
-- a1/a2 (spawn_soon's arguments; nginx also keeps fn), sem and adopted (nginx).
local errors = require("dike.errors")
local log = require("dike.log")
local show = require("dike.options").show

local setmetatable, getmetatable, select, type, error =
    setmetatable, getmetatable, select, type, error
local unpack = table.unpack or unpack -- luacheck: ignore 143
local remove = table.remove
local CancelledError = errors.CancelledError

local NEW, RUNNING, WAITING, READY, DONE = 0, 1, 2, 3, 4
local STATE_NAMES = { [0] = "new", "running", "waiting", "ready", "done" }
local CANCEL_MESSAGE = "Task was cancelled"

local M = { NEW = NEW, RUNNING = RUNNING, WAITING = WAITING, READY = READY, DONE = DONE }

--- The error a cancelled task receives where it waits.
---@return dike.CancelledError
local function cancelled()
    return CancelledError.new(CANCEL_MESSAGE)
end
M.cancelled = cancelled

--- `fn` must be something a task can run (a function, or a table with __call); the error
--- names `fname` and blames the caller of the function that checks.
---@param fname string
function M.check_callable(fname, fn)
    local tf = type(fn)
    if tf == "function" then return end
    local mt = getmetatable(fn)
    if mt and type(mt.__call) == "function" then return end
    error(fname .. ": fn must be a function, got " .. tf, 3)
end

--- `seconds` of a sleep must be a number >= 0; the error blames the sleep's caller.
---@param fname string
function M.check_seconds(fname, seconds)
    if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
        error(fname .. ": seconds must be a number >= 0, got " .. show(seconds), 3)
    end
end

--- A finished task's values, or raise its error.
---@param t table a DONE record
function M.results_of(t)
    if not t.ok then error(t.value, 0) end
    local n = t.nres
    if n == 1 then return t.value end
    if n == 0 then return end
    return unpack(t.results, 1, n)
end

--- `watcher:notify(target)` once `target` has ended (a joining task, a gather item).
---@param target table
---@param watcher table
function M.watch(target, watcher)
    local ws = target.watchers
    if ws then ws[#ws + 1] = watcher else target.watchers = { watcher } end
end

--- Undo watch(target, watcher); also the hook of a task waiting in join.
---@param watcher table
---@param target table
function M.unwatch(watcher, target)
    local ws = target.watchers
    if not ws then return end
    for i = #ws, 1, -1 do
        if ws[i] == watcher then
            remove(ws, i)
            return
        end
    end
end

--- Move a waiting task's cancellation hook to another place (e.g. a batch it was sent in).
function M.rehook(t, hook, obj, key)
    t.hook, t.hook_obj, t.hook_key = hook, obj, key
end

---@class dike.TaskHost what a runtime supplies
---@field ready fun(t: table) resume `t` later, from the runtime's loop: it was just woken (READY)
---@field park fun(t: table): boolean, any the running task `t` (WAITING) waits until it is resumed; returns its wake (ok, value)
---@field task fun(fname: string): table the running task, or raise naming fname
---@field on_unreported fun() an error now waits to be reported: see that flush_unreported runs soon
---@field on_flush? fun() flush_unreported has taken the waiting errors and is about to report them

--- One runtime's task bookkeeping: its Task class and the operations on its records.
---@param host dike.TaskHost
---@return table book {Task, record, wake, suspend, finish, flush_unreported, unreported_count}
function M.new(host)
    local ready, park, task_for = host.ready, host.park, host.task
    local on_unreported, on_flush = host.on_unreported, host.on_flush
    local results_of, watch, unwatch = M.results_of, M.watch, M.unwatch
    local unreported, unreported_n = {}, 0

    local Task = {}
    Task.__index = Task
    Task.__name = "dike.Task"

    --- A new record (see the top of this file) of this runtime's Task class. (dike.scheduler
    --- writes the same constructor out on its spawn path; spec/task_record_spec.lua checks
    --- that the two agree.)
    ---@param co thread|nil the task's coroutine, where the runtime resumes it itself
    ---@param state integer NEW, or RUNNING for a thread that is already running
    local function record(co, state)
        return setmetatable({ co = co, state = state, hook = false, hook_obj = false,
                              hook_key = false, ok = false, value = false, nres = 0 }, Task)
    end

    --- Wake a waiting task with (ok, value): it resumes later, returning value (ok) or
    --- raising it. Returns false when the task was not waiting (already woken, or done).
    --- A waker that hands something over with the wake (a limiter slot) passes
    --- `holds = true`: the hook then stays until the task resumes, so a cancellation in
    --- between can give it back. Otherwise the place holds nothing more for the task.
    local function wake(t, ok, value, holds)
        if t.state ~= WAITING then return false end
        t.state = READY
        t.ok, t.value = ok, value
        if not holds then t.hook, t.hook_obj, t.hook_key = nil, nil, nil end
        ready(t)
        return true
    end

    --- Park task `t` (the running one) until wake(t, ...) or its cancellation.
    --- hook(t, obj, key) is called if it is cancelled meanwhile.
    local function suspend(t, hook, obj, key)
        if t.cancel_pending then
            t.cancel_pending = nil
            if hook then hook(t, obj, key) end
            error(cancelled(), 0)
        end
        t.hook, t.hook_obj, t.hook_key = hook, obj, key
        t.state = WAITING
        local ok, value = park(t)
        if ok then return value end
        error(value, 0)
    end

    -- Never raises or yields: the error is described safely, and a failing logger is bypassed.
    local function report(t)
        log.log("error", "Unhandled error in task: " .. errors.describe(t.value) .. "\n" .. (t.traceback or ""))
    end

    --- Log the errors of tasks that ended with nobody to take them (and still have none).
    local function flush_unreported()
        if unreported_n == 0 then return end
        local list, n = unreported, unreported_n
        unreported, unreported_n = {}, 0
        if on_flush then on_flush() end
        for i = 1, n do
            local t = list[i]
            if not t.observed then
                t.observed = true
                report(t)
            end
        end
    end

    local function unreported_count()
        return unreported_n
    end

    --- Record the task's outcome: ok and its values (ok) or its error, as the resume or
    --- xpcall that ended it returned them. Its joiners are told; an error nobody takes is
    --- reported later (by then a join may have observed it).
    local function finish(t, ok, ...)
        local was_cancelled = false
        if ok then
            local n = select("#", ...)
            t.nres = n
            t.value = ... -- the first value (nil when none)
            if n > 1 then t.results = { ... } end
        else
            t.value = ...
            was_cancelled = getmetatable(t.value) == CancelledError
        end
        t.ok = ok
        t.state = DONE
        -- A coroutine that died by an error keeps its stack (and what it references): a
        -- finished task holds on to neither.
        t.co = nil
        t.hook, t.hook_obj, t.hook_key = nil, nil, nil
        local watchers = t.watchers
        if watchers then
            t.watchers = nil
            for i = 1, #watchers do watchers[i]:notify(t) end
        elseif not ok and not was_cancelled and not t.observed then
            unreported_n = unreported_n + 1
            unreported[unreported_n] = t
            on_unreported()
        end
    end

    function Task:__tostring()
        return "dike.Task (" .. STATE_NAMES[self.state] .. ")"
    end

    --- A joiner is told its task ended by being woken with the finished task.
    function Task:notify(finished)
        wake(self, true, finished)
    end

    --- Cancel: see API.md §1. Takes effect on dike's bookkeeping before it returns.
    function Task:cancel()
        local s = self.state
        if s == DONE then return end
        if s == NEW then
            self.fn, self.a1, self.a2 = nil, nil, nil -- what spawn_soon kept to start it with
            self.state = RUNNING
            finish(self, false, cancelled())
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
        if s == WAITING then
            wake(self, false, cancelled())
        else -- READY: woken but not resumed yet; it resumes raising instead
            self.ok, self.value = false, cancelled()
        end
    end

    function Task:done()
        return self.state == DONE
    end

    --- Wait for the task to end; return its values or raise its error.
    function Task:join()
        if self.state ~= DONE then
            local t = task_for("task:join")
            if t == self then error("task:join: a task cannot join itself", 2) end
            watch(self, t)
            suspend(t, unwatch, self)
        end
        self.observed = true
        return results_of(self)
    end

    return { Task = Task, record = record, wake = wake, suspend = suspend, finish = finish,
             flush_unreported = flush_unreported, unreported_count = unreported_count }
end

return M
