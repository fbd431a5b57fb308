--- The scheduler: everything about waiting that does not depend on the event loop, written
-- once for every host (runtime/luv.lua, nvim.lua, ngx.lua supply the loop).
--
-- A *wait record* stands for one coroutine that waits in dike. A task (dike.spawn) is a
-- record with the Task metatable, made when it is spawned; any other coroutine (made by user
-- code with coroutine.create or .wrap, an nginx request's thread) gets a *light* record
-- when it first waits. A record waits in one place at a time: suspend(w, hook, obj, key)
-- parks it; whoever ends the wait calls wake(w, ok, value), which only marks it READY and
-- queues it: it is resumed later, from the scheduler's pump, never inside the waker, so no
-- queue is re-entered while it is half updated. hook(w, obj, key) undoes the wait's place
-- (queue entry, timer, slot) when the wait ends any other way: cancel, interrupt, or a
-- resume by a stranger.
--
-- Two ways to run coroutines, chosen by the host:
--   dike resumes them itself (luv, Neovim): a waiting coroutine has yielded to whoever ran
--     it; the pump resumes it with a private token, so a resume by anyone else is detected.
--     Woken records go to the ready queue, which the host's pump callback drains.
--   the host resumes them (nginx, host.threads): a thread waits on something of the host's
--     (a semaphore) and wake posts to it; nginx resumes it in its own time.
--
-- Records are arrays (slots below): half the memory of named fields, and they never grow.
local errors = require("dike.errors")
local log = require("dike.log")
local Timers = require("dike.runtime.timers")
local options = require("dike.options")
local show, is_callable = options.show, options.is_callable

local co_create, co_resume, co_yield, co_running, co_status =
    coroutine.create, coroutine.resume, coroutine.yield, coroutine.running, coroutine.status
local pcall, xpcall, error, select, setmetatable, getmetatable, type, rawequal =
    pcall, xpcall, error, select, setmetatable, getmetatable, type, rawequal
local debug_traceback, debug_getinfo = debug.traceback, debug.getinfo
local unpack = table.unpack or unpack -- luacheck: ignore 143
local CancelledError = errors.CancelledError
local outside_coroutine, describe = errors.outside_coroutine, errors.describe

local M = {}

---------------------------------------------------------------- records

-- Slots of a wait record. A light record has the first eight; a task all but the last
-- three, which it gains when it needs them (rarely); in host mode every record has all.
local CO = 1        -- its coroutine (nil once a task has ended; host mode: nil until started)
local STATE = 2     -- NEW, RUNNING, WAITING, READY or DONE
local HOOK = 3      -- where it waits: hook(w, obj, key) undoes that place
local HOOK_OBJ = 4  --   (while NEW, these two hold spawn_soon's arguments)
local HOOK_KEY = 5
local OK = 6        -- READY: the wake's ok. DONE: false (raised) or the number of values returned
local VALUE = 7     -- READY: the wake's value. DONE: its first value, or its error
local FNAME = 8     -- the dike function it waits in (for messages)
local WATCHERS = 9  -- tasks: nil, one watcher, or a list of them: told when the task ends
local OBSERVED = 10 -- tasks: someone takes its outcome (join, gather, run): an error is not reported
local PENDING = 11  -- tasks: an error to raise at its next wait (cancelled while not waiting)
local EXTRA = 12    -- tasks, DONE: all its values when more than one, or the traceback of its error
local HOST = 13     -- host mode: the host's (nginx: the thread's semaphore; NEW: the function)
M.STATE, M.HOST, M.CO = STATE, HOST, CO

local NEW, RUNNING, WAITING, READY, DONE = 0, 1, 2, 3, 4
M.NEW, M.RUNNING, M.WAITING, M.READY, M.DONE = NEW, RUNNING, WAITING, READY, DONE
local STATE_NAMES = { [0] = "new", "running", "waiting", "ready", "done" }

local CANCEL_MESSAGE = "Task was cancelled"

-- Resumes by dike carry this first; a waiting coroutine resumed without it was resumed by
-- someone else.
local RESUMED_BY_DIKE = setmetatable({}, { __name = "dike resume token" })

-- Resumes per pump turn before the loop gets its turn again (so a flood of wakes cannot
-- starve I/O); the rest run on the next turn.
local MAX_RESUMES_PER_TURN = 10000

local function cancelled()
    return CancelledError.new(CANCEL_MESSAGE)
end
M.cancelled = cancelled

--- `fn` must be something a coroutine can run: a function, or a table with __call (wrapped
--- in a function). The error names `fname` and blames its caller.
---@param fname string
---@return function
local function body_of(fname, fn)
    if type(fn) == "function" then return fn end
    if is_callable(fn) then return function(...) return fn(...) end end
    error(fname .. ": fn must be a function, got " .. type(fn), 3)
end

--- `seconds` of a sleep must be a number >= 0; the error blames the sleep's caller.
local function check_seconds(fname, seconds)
    if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
        error(fname .. ": seconds must be a number >= 0, got " .. show(seconds), 3)
    end
end

-- Wrapped functions whose frames hold something that must be given back if the coroutine
-- running them is abandoned (a task that yielded through coroutine.yield can never unwind):
-- frame function -> undo(). Weak keys: a wrapper nobody references is collected.
local holders = setmetatable({}, { __mode = "k" })

--- Register that a frame of `fn` on an abandoned coroutine's stack is undone by `undo()`
--- (limit_jobs: its wrapped function gives back the slot the frame holds). Costs nothing
--- on the calls themselves: the stack is only walked when a task is abandoned.
---@param fn function
---@param undo fun()
function M.holds(fn, undo)
    holders[fn] = undo
end

-- Give back what the frames of suspended coroutine `co` hold.
local function release_frames(co)
    local level = 0
    while true do
        local info = debug_getinfo(co, level, "f")
        if info == nil then return end
        local undo = holders[info.func]
        if undo then pcall(undo) end
        level = level + 1
    end
end

---------------------------------------------------------------- the scheduler

--- A runtime: the scheduler over `host` (see runtime/init.lua for what a host supplies).
---@param host table
---@return table runtime
function M.new(host)
    local S = { host = host, name = host.name }
    local now = host.now
    local threads = host.threads -- nil: dike resumes coroutines itself
    S.now = now

    local current = nil -- the record dike is running now (coroutine mode)

    local Task = {}
    Task.__index = Task
    Task.__name = "dike.Task"
    S.Task = Task

    -- Records of coroutines dike did not start: only their notify (as joiners) is shared.
    local Light = {}
    Light.__index = Light
    Light.__name = "dike.Waiter"

    ------------------------------------------------------------ the ready queue and the pump
    local rq, rq_head, rq_tail = {}, 1, 0
    -- In sleep(0): woken at the start of the next turn. A record that leaves earlier (it
    -- was cancelled) leaves `false` behind; later_live counts the others.
    local later, later_n, later_live = {}, 0, 0
    local unreported, unreported_n = {}, 0 -- tasks whose error nobody took, to be logged
    local pump_asked = false

    local function ask_pump()
        if not pump_asked then
            pump_asked = true
            host.pump()
        end
    end

    -- Records woken while the pump runs go to `soon`, which the pump empties before it takes
    -- the next record of the ready queue: callers woken by a batch's task run (and end, and
    -- are collected) right after it, not after every other batch queued meanwhile.
    local soon, soon_head, soon_tail = {}, 1, 0
    local draining = false

    local function enqueue(w)
        if draining then
            local n = soon_tail + 1
            soon_tail = n
            soon[n] = w
            return
        end
        local n = rq_tail + 1
        rq_tail = n
        rq[n] = w
        if not pump_asked then ask_pump() end
    end

    local function pending_work()
        return rq_head <= rq_tail or soon_head <= soon_tail or later_live > 0 or unreported_n > 0
    end

    -- A woken record: queued (coroutine mode), or posted to its thread (host mode).
    local ready = threads and threads.post or enqueue

    ------------------------------------------------------------ errors nobody takes
    local function internal_error(where, err)
        log.log("error", "dike: internal error in " .. where .. ": " .. describe(err))
    end

    local function report(w)
        local tb = w[EXTRA]
        local what = getmetatable(w) == Task and "task" or "a coroutine"
        log.log("error", "Unhandled error in " .. what .. ": " .. describe(w[VALUE]) .. (tb and "\n" .. tb or ""))
    end

    local function flush_unreported()
        local list, n = unreported, unreported_n
        unreported, unreported_n = {}, 0
        for i = 1, n do
            local t = list[i]
            if not t[OBSERVED] then
                t[OBSERVED] = true
                report(t)
            end
        end
    end

    -- A coroutine dike did not start raised after dike resumed it: nobody can take the
    -- error, so it is reported like an unobserved task's.
    local function report_light(err, co)
        local tb = not rawequal(getmetatable(err), CancelledError) and debug_traceback(co, "", 0):sub(2) or nil
        local w = { nil, DONE, nil, nil, nil, false, err, nil, nil, nil, nil, tb }
        unreported_n = unreported_n + 1
        unreported[unreported_n] = w
        ask_pump()
    end

    ------------------------------------------------------------ ending a task
    local function notify_watchers(t)
        local ws = t[WATCHERS]
        if ws == nil then return false end
        t[WATCHERS] = nil
        t[OBSERVED] = true
        if getmetatable(ws) ~= nil then
            ws:notify(t)
        else
            for i = 1, #ws do ws[i]:notify(t) end
        end
        return true
    end

    --- Record a task's outcome, as the resume (or xpcall) that ended it returned it.
    local function finish(t, ok, ...)
        if ok then
            local n = select("#", ...)
            t[OK] = n
            t[VALUE] = ...
            if n > 1 then t[EXTRA] = { ... } end
        else
            t[OK] = false
            t[VALUE] = ...
        end
        t[STATE] = DONE
        -- A coroutine that died by an error keeps its stack: a finished task holds neither.
        t[CO] = nil
        t[HOOK], t[HOOK_OBJ], t[HOOK_KEY] = nil, nil, nil
        if t[WATCHERS] ~= nil then return notify_watchers(t) end
        if ok or t[OBSERVED] then return end
        if rawequal(getmetatable(t[VALUE]), CancelledError) then return end
        unreported_n = unreported_n + 1
        unreported[unreported_n] = t
        ask_pump()
    end

    ------------------------------------------------------------ waking and waiting
    --- Wake a waiting record with (ok, value): it resumes later, returning value (ok) or
    --- raising it. False when it was not waiting. `holds`: the waker hands something over
    --- (a slot), so the hook stays until it resumes and a cancel in between gives it back.
    local function wake(w, ok, value, holds)
        if w[STATE] ~= WAITING then return false end
        w[STATE] = READY
        w[OK], w[VALUE] = ok, value
        if not holds then w[HOOK] = nil end
        ready(w)
        return true
    end
    S.wake = wake

    -- Undo the place a record waits in (its hook), once.
    local function unhook(w)
        local hook = w[HOOK]
        if hook then
            w[HOOK] = nil
            hook(w, w[HOOK_OBJ], w[HOOK_KEY])
        end
    end

    -- The wait of `w` ended without dike: it could not yield (`yielded` false, `why` the
    -- error), or someone else resumed it. Undo the wait, then raise there.
    local function not_resumed_by_dike(w, yielded, why)
        local fname = w[FNAME] or "dike"
        unhook(w)
        local msg
        if not yielded then
            w[STATE] = RUNNING
            msg = fname .. ": cannot wait here: " .. describe(why)
        else
            msg = fname .. ": the coroutine was resumed by someone other than dike while it waited"
                .. " (only dike may resume a coroutine waiting in dike)"
            if getmetatable(w) == Task then
                -- dike can no longer follow it: the task ends here, for its joiners
                w[STATE] = RUNNING
                finish(w, false, msg)
            else
                w[STATE] = DONE
            end
        end
        error(msg, 0)
    end

    -- Park the running coroutine (coroutine mode): it yields to whoever resumed it; the pump
    -- resumes it with RESUMED_BY_DIKE, ok, value.
    local function yield_park(w)
        local yielded, token, ok, value = pcall(co_yield)
        if token ~= RESUMED_BY_DIKE then return not_resumed_by_dike(w, yielded, token) end
        if ok then return value end
        error(value, 0)
    end

    -- Park the running thread (host mode) until it is woken.
    local function thread_park(w)
        threads.park(w)
        w[STATE] = RUNNING
        local ok, value = w[OK], w[VALUE]
        w[HOOK], w[HOOK_OBJ], w[HOOK_KEY], w[OK], w[VALUE] = nil, nil, nil, nil, nil
        if ok then return value end
        error(value, 0)
    end

    local park = threads and thread_park or yield_park

    --- Park `w` (the running coroutine's record) until wake(w, ...). hook(w, obj, key) is
    --- called if the wait ends any other way. Returns the woken value or raises it.
    local function suspend(w, hook, obj, key)
        local pending = w[PENDING]
        if pending ~= nil then
            w[PENDING] = nil
            if hook then hook(w, obj, key) end
            error(pending, 0)
        end
        w[HOOK], w[HOOK_OBJ], w[HOOK_KEY] = hook, obj, key
        w[STATE] = WAITING
        return park(w)
    end
    S.suspend = suspend

    --- Move a waiting record's hook to another place (e.g. a batch it was sent in).
    function S.rehook(w, hook, obj, key)
        w[HOOK], w[HOOK_OBJ], w[HOOK_KEY] = hook, obj, key
    end

    --- End the wait of `w` now: its hook runs, and `err` is raised where it waits. False
    --- when `w` is not waiting in dike (running, ended, or waiting elsewhere).
    local function interrupt(w, err)
        local s = w[STATE]
        if s == WAITING then
            unhook(w)
            wake(w, false, err)
            return true
        elseif s == READY and w[OK] then -- woken, not resumed yet: it resumes raising instead
            unhook(w)
            w[OK], w[VALUE] = false, err
            return true
        end
        -- (Woken to raise already, a cancellation say: that error stands.)
        return false
    end
    S.interrupt = interrupt

    ------------------------------------------------------------ the running record
    local light -- below

    local by_co = threads and setmetatable({}, { __mode = "k" }) -- host mode: thread -> record

    --- The running coroutine's record, or raise the contract's error naming `fname`.
    -- (waiter and current_waiter are written out apart: waiter calling current_waiter made
    -- every batched call measurably slower on LuaJIT; see the commit that says so.)
    local function waiter(fname)
        local w = current
        local co, main = co_running()
        if w ~= nil and w[CO] == co then
            w[FNAME] = fname
            return w
        end
        if co == nil or main then error(outside_coroutine(fname), 0) end
        return light(co, fname)
    end

    local function current_waiter(fname)
        local w = current
        local co, main = co_running()
        if w ~= nil and w[CO] == co then
            w[FNAME] = fname
            return w
        end
        if co == nil or main then return nil end
        return light(co, fname)
    end

    if threads then
        -- The host says where a thread may wait; a thread's record is kept while it lives.
        function waiter(fname)
            local co, why = threads.current()
            if co == nil then error(outside_coroutine(fname) .. why, 0) end
            local w = by_co[co]
            -- A record whose thread is not running is one left by a thread nginx killed
            -- mid-wait (its coroutine object reused): start afresh.
            if w == nil or w[STATE] ~= RUNNING then w = light(co, fname) end
            w[FNAME] = fname
            return w
        end
        function current_waiter(fname)
            local co = threads.current()
            if co == nil then return nil end
            local w = by_co[co]
            if w == nil or w[STATE] ~= RUNNING then w = light(co, fname) end
            w[FNAME] = fname
            return w
        end
    end
    S.waiter, S.current_waiter = waiter, current_waiter

    if threads then
        function light(co, fname)
            local w = setmetatable({ co, RUNNING, nil, nil, nil, nil, nil, fname, nil, nil, nil, nil, nil }, Light)
            by_co[co] = w
            return w
        end
    else
        function light(co, fname)
            return setmetatable({ co, RUNNING, nil, nil, nil, nil, nil, fname }, Light)
        end
    end

    --- A joiner is told its task ended by being woken with it.
    function Task:notify(finished) wake(self, true, finished) end
    Light.notify = Task.notify

    ------------------------------------------------------------ running coroutines (coroutine mode)
    -- After dike resumed `w` and the resume returned (rok, ...): it waits again (the common
    -- case), it ended, or it yielded through coroutine.yield (not dike's).
    local function after_resume(w, prev, rok, ...)
        current = prev
        if w[STATE] == WAITING then return end
        local co = w[CO]
        local task = getmetatable(w) == Task
        -- A failed resume ends it even where the coroutine is not dead (on PUC Lua 5.2/5.3 a C
        -- stack overflow fails the resume itself).
        if not rok or co_status(co) == "dead" then
            if task then
                if not rok and not rawequal(getmetatable((...)), CancelledError) then
                    -- a dead coroutine keeps its stack as it was where the error was raised
                    w[EXTRA] = debug_traceback(co, "", 0):sub(2)
                end
                return finish(w, rok, ...)
            end
            w[STATE] = DONE
            if not rok then report_light((...), co) end
            return
        end
        if task then
            -- Its code yielded the task's own coroutine: it can never be resumed where it
            -- stopped, so it fails, and what its frames hold (limit_jobs slots) is given back.
            release_frames(co)
            finish(w, false, "dike: a task yielded with coroutine.yield; wait with dike's functions instead")
            return
        end
        -- A coroutine dike did not start yielded to dike: left to whoever resumes it next.
        w[STATE] = DONE
        log.log("error", "dike: a coroutine that dike resumed after a wait yielded with coroutine.yield;"
                .. " dike leaves it to whoever resumes it next")
    end

    local function resume(w)
        local prev = current
        current = w
        w[STATE] = RUNNING
        local ok, value = w[OK], w[VALUE]
        w[HOOK], w[HOOK_OBJ], w[HOOK_KEY], w[OK], w[VALUE] = nil, nil, nil, nil, nil
        return after_resume(w, prev, co_resume(w[CO], RESUMED_BY_DIKE, ok, value))
    end

    local function start(t, ...)
        local prev = current
        current = t
        t[STATE] = RUNNING
        return after_resume(t, prev, co_resume(t[CO], ...))
    end

    ------------------------------------------------------------ running threads (host mode)
    local last_traceback -- where the error that is ending a thread was raised
    local function keep_traceback(e)
        if not rawequal(getmetatable(e), CancelledError) then last_traceback = debug_traceback("", 2):sub(2) end
        return e
    end

    local function thread_ended(t, ok, ...)
        if not ok then t[EXTRA], last_traceback = last_traceback, nil end
        return finish(t, ok, ...)
    end

    local function thread_body(t, fn, ...)
        local co = co_running()
        by_co[co] = t
        t[CO] = co
        t[STATE] = RUNNING
        thread_ended(t, xpcall(fn, keep_traceback, ...))
        by_co[co] = nil
    end

    local function start_thread(t, fn, a, b)
        local ok, err = threads.start(thread_body, t, fn, a, b)
        if not ok then
            t[STATE] = RUNNING
            finish(t, false, "dike: cannot start a task: " .. describe(err))
        end
    end

    ------------------------------------------------------------ spawning
    local function new_task(co)
        if threads then
            return setmetatable({ co, NEW, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil }, Task)
        end
        return setmetatable({ co, NEW, nil, nil, nil, nil, nil, nil, nil, nil }, Task)
    end

    --- Start fn(...) in a new task now; it runs until its first wait.
    if threads then
        function S.spawn(fn, ...)
            if type(fn) ~= "function" then fn = body_of("dike.spawn", fn) end
            local t = new_task(nil)
            local ok, err = threads.spawn(thread_body, t, fn, ...)
            if not ok then error(err, 2) end
            return t
        end
    else
        -- (new_task and start written out: spawn is the path every task takes)
        function S.spawn(fn, ...)
            if type(fn) ~= "function" then fn = body_of("dike.spawn", fn) end
            local co = co_create(fn)
            local t = setmetatable({ co, RUNNING, nil, nil, nil, nil, nil, nil, nil, nil }, Task)
            local prev = current
            current = t
            after_resume(t, prev, co_resume(co, ...))
            return t
        end
    end

    --- Start fn(a, b) in a new task soon, from the pump (never inside the caller).
    function S.spawn_soon(fn, a, b)
        local t = new_task(nil)
        if threads then t[HOST] = fn else t[CO] = co_create(fn) end
        t[HOOK_OBJ], t[HOOK_KEY] = a, b
        enqueue(t)
        return t
    end

    local function start_new(t)
        local a, b = t[HOOK_OBJ], t[HOOK_KEY]
        t[HOOK_OBJ], t[HOOK_KEY] = nil, nil
        if threads then
            local fn = t[HOST]
            t[HOST] = nil
            return start_thread(t, fn, a, b)
        end
        return start(t, a, b)
    end

    ------------------------------------------------------------ the pump
    -- Drain the ready queue: woken records resume, spawn_soon tasks start. Records woken
    -- meanwhile run in the same turn (so woken callers finish, and are collected, young);
    -- sleep(0) waiters wait for the next turn.
    local function drain()
        if later_n > 0 then
            local list, n = later, later_n
            later, later_n, later_live = {}, 0, 0
            for i = 1, n do
                local w = list[i]
                if w then wake(w, true, nil) end
            end
        end
        if unreported_n > 0 then flush_unreported() end
        draining = true
        local budget = MAX_RESUMES_PER_TURN
        while true do
            local w
            local h = soon_head
            if h <= soon_tail then
                w = soon[h]
                soon[h] = nil
                soon_head = h + 1
            else
                h = rq_head
                if h > rq_tail then break end
                w = rq[h]
                rq[h] = nil
                rq_head = h + 1
            end
            local s = w[STATE]
            if s == READY then
                resume(w) -- (host mode never queues READY records: they are posted)
            elseif s == NEW then
                start_new(w)
            end
            budget = budget - 1
            if budget == 0 then break end
        end
        draining = false
        if soon_head > soon_tail then soon_head, soon_tail = 1, 0 end
        if rq_head > rq_tail then rq_head, rq_tail = 1, 0 end
    end

    local function traceback_of(e) return debug_traceback(describe(e), 2) end

    --- The host calls this (once per pump() it was asked for) from its loop.
    -- (pump_asked stays true while it drains, so wakes meanwhile do not ask the host again.)
    local timers -- below

    local function on_pump()
        local ok, err = xpcall(drain, traceback_of)
        draining = false
        pump_asked = false
        timers.settle()
        if not ok then internal_error("the pump", err) end
        if pending_work() then ask_pump() end
    end

    ------------------------------------------------------------ timers
    -- The last timer went while a task runs (not in host mode): disarm the alarm at the end
    -- of the pump's turn (asked for if need be) or of dike.run, whichever comes first.
    local function defer_disarm()
        if current == nil and not draining then return false end
        if not pump_asked then ask_pump() end
        return true
    end
    timers = Timers.new(host, now, traceback_of, internal_error, not threads and defer_disarm or nil)
    S.timer, S.cancel_timer = timers.add, timers.cancel

    --- The host calls this when the alarm it was armed for goes off.
    local function on_alarm()
        timers.fire()
        -- Ask again even if a turn was asked for: user code may have closed the handle
        -- that would have served it (asking twice is harmless).
        if pending_work() then host.pump() end
    end

    ------------------------------------------------------------ sleep
    local function sleeper_due(w) wake(w, true, nil) end
    local function sleep_cancel(_, e) S.cancel_timer(e) end

    local function unlater(_, list, i)
        if list == later then
            later[i] = false
            later_live = later_live - 1
        end
    end

    --- Let the loop run once, then continue.
    local function yield_once(w)
        local n = later_n + 1
        later_n, later_live = n, later_live + 1
        later[n] = w
        ask_pump()
        return suspend(w, unlater, later, n)
    end

    function S.sleep(seconds, fname)
        fname = fname or "dike.sleep"
        check_seconds(fname, seconds)
        local w = waiter(fname)
        if seconds == 0 then return yield_once(w) end
        return suspend(w, sleep_cancel, S.timer(seconds, sleeper_due, w))
    end

    ------------------------------------------------------------ tasks' methods
    local function results_of(t)
        local n = t[OK]
        if n == false then error(t[VALUE], 0) end
        if n == 1 then return t[VALUE] end
        if n == 0 then return end
        return unpack(t[EXTRA], 1, n)
    end

    --- `watcher:notify(target)` once `target` has ended.
    local function watch(target, watcher)
        local ws = target[WATCHERS]
        if ws == nil then
            target[WATCHERS] = watcher
        elseif getmetatable(ws) ~= nil then
            target[WATCHERS] = { ws, watcher }
        else
            ws[#ws + 1] = watcher
        end
    end

    --- Undo watch(target, watcher); also the hook of a task waiting in join.
    local function unwatch(watcher, target)
        local ws = target[WATCHERS]
        if ws == watcher then
            target[WATCHERS] = nil
        elseif ws ~= nil and getmetatable(ws) == nil then
            for i = #ws, 1, -1 do
                if ws[i] == watcher then
                    table.remove(ws, i)
                    return
                end
            end
        end
    end
    S.watch, S.unwatch = watch, unwatch

    --- The outcome of an ended task: ok, and its first value or its error.
    function S.outcome(t)
        return t[OK] ~= false, t[VALUE]
    end

    --- Mark that someone takes the task's outcome (its error is not reported).
    function S.observe(t)
        t[OBSERVED] = true
    end

    function Task:__tostring()
        return "dike.Task (" .. STATE_NAMES[self[STATE]] .. ")"
    end

    --- Cancel: takes effect on dike's bookkeeping at once; CancelledError is raised where
    --- the task waits, when it next runs.
    function Task:cancel()
        local s = self[STATE]
        if s == DONE then return end
        if s == NEW then
            self[HOOK_OBJ], self[HOOK_KEY], self[HOST] = nil, nil, nil
            self[STATE] = RUNNING
            finish(self, false, cancelled())
        elseif s == RUNNING then
            self[PENDING] = cancelled()
        elseif s == WAITING then
            interrupt(self, cancelled())
        else -- READY: woken, not resumed yet; it resumes raising CancelledError instead
            unhook(self)
            self[OK], self[VALUE] = false, cancelled()
        end
    end

    function Task:done()
        return self[STATE] == DONE
    end

    --- Wait for the task to end; return its values or raise its error.
    function Task:join()
        if self[STATE] ~= DONE then
            local w = waiter("task:join")
            if w == self then error("task:join: a task cannot join itself", 2) end
            watch(self, w)
            suspend(w, unwatch, self)
        end
        self[OBSERVED] = true
        return results_of(self)
    end

    ------------------------------------------------------------ run
    --- From outside any coroutine: run fn(...) in a task, driving the loop until it ends.
    function S.run(fn, ...)
        if threads then
            local t = S.spawn(fn, ...)
            t[OBSERVED] = true
            return t:join()
        end
        if current ~= nil then
            error("dike.run: cannot be called inside a task; use dike.spawn (or just call fn)", 2)
        end
        if host.loop_running() then
            error("dike.run: the loop is already running; use dike.spawn", 2)
        end
        if type(fn) ~= "function" then fn = body_of("dike.run", fn) end
        local t = new_task(co_create(fn))
        t[OBSERVED] = true -- its error is raised by run, not logged
        start(t, ...)
        local stalled = 0
        while t[STATE] ~= DONE do
            local alive = host.run_once()
            if t[STATE] == DONE then break end
            if not alive then
                -- Nothing keeps the loop alive: dike's own handles were closed by user code
                -- (uv.walk + close), or nothing is left that could wake the task.
                if pending_work() then
                    on_pump() -- drive the queue from here
                    stalled = 0
                elseif timers.count() > 0 and stalled == 0 then
                    timers.rearm() -- the alarm's handle is gone: arm a new one
                    stalled = 1
                else
                    error("dike.run: the task waits but nothing is left that could wake it", 2)
                end
            else
                stalled = 0
            end
        end
        flush_unreported()
        timers.settle()
        if pump_asked and not pending_work() and host.unpump then
            -- asked for while the task ran, and nothing left to do: leave the loop idle
            pump_asked = false
            host.unpump()
        end
        return results_of(t)
    end

    --- What the scheduler holds: all 0 once every task has ended (tests check it).
    function S.pending()
        return { timers = timers.count(), ready = rq_tail - rq_head + 1 + soon_tail - soon_head + 1 + later_live,
                 unreported = unreported_n }
    end

    --- Take the host's callbacks. (runtime/init.lua calls this when it installs the runtime.)
    function S.attach()
        host.attach(on_alarm, on_pump)
        if pending_work() then
            pump_asked = false
            ask_pump()
        end
        if timers.count() > 0 then timers.rearm() end
    end

    return S
end

return M
