--- Events (dike.on_event): one observer for every wrapper, told what the tools decide (a
-- retry, a rejection, a batch sent, a breaker's state change...).
--
-- Cost. Tools call `emit(tool, name, event, k1, v1, ...)` where the event happens; with no
-- observer installed that is one upvalue test and a return: no table, no clock read. A
-- tool whose extra fields need work to compute tests `M.observed()` first.
--
-- Containment. The observer is user code, run synchronously where the event happens,
-- often inside a tool's bookkeeping or a loop callback. Where the emitting code could yield
-- (in a coroutine) the observer runs in a coroutine of its own (one, reused while observers
-- return normally), so that:
--   * an error it raises stays there: the event is bypassed and the logger told, once;
--   * a wait (dike.sleep, a batched call...) cannot suspend the code that emitted the
--     event: the wait yields back here, and the observer is resumed at once, by someone
--     other than dike, so the wait raises where the observer waits (the runtime undoes
--     the wait first);
--   * a coroutine.yield comes back here too: the observer is resumed until it ends, at
--     most a few times; one that keeps yielding is dropped. Either way the event counts
--     as bypassed, and the logger is told.
-- Where nothing can yield (a loop callback on the main thread) a pcall is enough: a wait
-- raises there anyway, and a yield is an error. Inside nginx the coroutine is not reused
-- (and nginx, which resumes coroutines itself there, may let an observer's wait finish).
local rt = require("dike.runtime")
local errors = require("dike.errors")
local log = require("dike.log")
local show = require("dike.options").show

local type, error, pcall, rawget, _G = type, error, pcall, rawget, _G
local co_create, co_resume, co_yield, co_status = coroutine.create, coroutine.resume, coroutine.yield, coroutine.status
-- Whether the running code could yield (LuaJIT 2.1 and Lua 5.3+ say so; on 5.2, only the
-- main thread cannot).
local can_yield = coroutine.isyieldable or function()
    local _, main = coroutine.running()
    return not main
end

local new_tab = require("dike.new_tab")

local M = {}

local observer = nil    -- the installed fn(event), or nil
local runner = nil      -- an idle coroutine that runs observers (nil: make one when needed)
-- Inside nginx a coroutine belongs to the request or timer that made it (resuming it from
-- another crashes the worker): there every event gets a fresh one.
local ngx = rawget(_G, "ngx")
local KEEP_RUNNER = not (type(ngx) == "table" and ngx.get_phase ~= nil)
local DONE = {}         -- what the runner yields after each observer call (never user data)
local MAX_RESUMES = 8   -- resumes of an observer that yields before it is dropped

local describe = errors.describe -- tostring that cannot fail

-- (dike's logger is contained: one that raises or yields is bypassed, the message written
-- by the built-in one)
local function report(message)
    log.log("error", message)
end

-- The body of a runner: call observers one after the other, yielding DONE after each. Its
-- outcome is handed over in two upvalues, and the locals are cleared before the runner
-- waits for the next one: an idle runner keeps no observer, event or error alive.
local result_ok, result_err
local function runner_body(fn, event)
    while true do
        local ok, err = pcall(fn, event)
        fn, event = nil, nil -- luacheck: ignore 311
        result_ok, result_err = ok, err
        ok, err = nil, nil -- luacheck: ignore 311
        if not KEEP_RUNNER then return DONE end
        fn, event = co_yield(DONE)
    end
end

local function what(event)
    return "event " .. describe(event.event) .. " of " .. describe(event.tool) .. " " .. describe(event.name)
end

-- Run `fn(event)` in `co`; returns whether `co` can run the next observer.
local function run_in(co, fn, event)
    local ok, tag = co_resume(co, fn, event)
    local fn_ok, err = result_ok, result_err
    result_ok, result_err = nil, nil
    if ok and tag == DONE then
        if not fn_ok then
            report("event observer raised (bypassed for " .. what(event) .. "): " .. describe(err))
        end
        return true
    end
    -- It yielded (or the resume itself failed: a C stack overflow from observers that emit
    -- events recursively). Resume it until it ends; a wait that dike parked raises there.
    local resumes = 0
    while ok and tag ~= DONE and resumes < MAX_RESUMES and co_status(co) == "suspended" do
        resumes = resumes + 1
        ok, tag = co_resume(co)
    end
    fn_ok, err = result_ok, result_err
    result_ok, result_err = nil, nil
    if not ok then
        report("event observer failed (bypassed for " .. what(event) .. "): " .. describe(tag))
        return false
    end
    if tag ~= DONE then
        report("event observer yielded (bypassed for " .. what(event) .. "): observers must not wait;"
               .. " it was dropped after " .. resumes .. " resumes")
        return false
    end
    report("event observer yielded (bypassed for " .. what(event) .. "): observers must not wait"
           .. (fn_ok and "" or "; then it raised: " .. describe(err)))
    return true
end

local function contained_call(fn, event)
    local ok, err = pcall(fn, event)
    if not ok then report("event observer raised (bypassed for " .. what(event) .. "): " .. describe(err)) end
end

local function deliver(fn, event)
    -- Where nothing can yield (a loop callback on the main thread), nothing can wait either:
    -- a plain pcall contains the observer.
    if not can_yield() then return contained_call(fn, event) end
    local co = runner
    if co == nil then
        local made
        made, co = pcall(co_create, runner_body)
        -- (nginx's phases that cannot yield let no coroutine be made: a wait raises there anyway)
        if not made then return contained_call(fn, event) end
    else
        runner = nil -- busy: an event emitted by this observer gets a coroutine of its own
    end
    if run_in(co, fn, event) and runner == nil and KEEP_RUNNER then runner = co end
end

--- Tell the observer, if any: event {tool, name, event, time, k1 = v1, ...}.
--- Up to four extra fields; a nil key ends the list.
---@param tool string
---@param name string
---@param event string
function M.emit(tool, name, event, k1, v1, k2, v2, k3, v3, k4, v4)
    local fn = observer
    if fn == nil then return end
    local e = new_tab(0, 8)
    e.tool, e.name, e.event, e.time = tool, name, event, rt.now()
    if k1 ~= nil then
        e[k1] = v1
        if k2 ~= nil then
            e[k2] = v2
            if k3 ~= nil then
                e[k3] = v3
                if k4 ~= nil then e[k4] = v4 end
            end
        end
    end
    deliver(fn, e)
end

--- Whether an observer is installed (for emitters whose fields cost something to compute).
---@return boolean
function M.observed()
    return observer ~= nil
end

--- Install the observer of every wrapper's events; nil removes it. Returns the previous one.
---@param fn fun(event: table)|nil
---@return fun(event: table)|nil
function M.on_event(fn)
    if fn ~= nil and type(fn) ~= "function" then
        error("dike.on_event: observer must be a function or nil, got " .. show(fn), 2)
    end
    local previous = observer
    observer = fn
    return previous
end

return M
