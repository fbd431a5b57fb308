--- The runtime seam: the only way dike's tools reach the event loop.
--
-- Tools call (and nothing else of the loop):
--   now() -> seconds                     monotonic time
--   timer(delay, fn, a, b) -> handle      call fn(a, b) after `delay` seconds, from the loop
--   cancel_timer(handle)
--   waiter(fname) -> w                    the running coroutine's wait record (a task's, or a
--                                         light one for any other coroutine); outside a
--                                         coroutine, raise "<fname>: must be called inside..."
--   current_waiter(fname) -> w | nil      the same, nil where nothing can wait
--   suspend(w, hook, obj, key) -> value   park w until wake(w, ...); if the wait ends any other
--                                         way (cancel, interrupt, a stranger's resume),
--                                         hook(w, obj, key) runs first and undoes its place
--   wake(w, ok, value, holds) -> boolean  resume w later returning value (ok) or raising it;
--                                         holds: keep the hook until it resumes (a slot handed over)
--   rehook(w, hook, obj, key)             move w's hook to another place
--   interrupt(w, err) -> boolean          end w's wait now (hook runs), raising err there
--   spawn(fn, ...) -> task                start fn(...) now, until its first wait
--   spawn_soon(fn, a, b) -> task          start fn(a, b) from the loop, never inside the caller
--   sleep(seconds, fname), run(fn, ...)
--   holds(fn, undo)                       a frame of fn holds something undo() gives back if
--                                         its task is abandoned (it yielded with coroutine.yield)
--   bind(target, names)                   target[k] = rt[names[k]], now and after every install
-- and, for dike.gather/join: Task, watch(target, watcher), unwatch(watcher, target),
-- outcome(task) -> ok, first value or error, observe(task); for tests: pending().
--
-- Behind it: one scheduler (runtime/scheduler.lua: records, ready queue, timers, tasks,
-- error reporting) over a host that supplies the loop. A host is a table:
--   name                                  "luv", "nvim", "ngx", ...
--   now() -> seconds                      monotonic
--   attach(on_alarm, on_pump)             the scheduler's two callbacks
--   arm(at), disarm()                     call on_alarm once at monotonic time `at`
--   pump()                                call on_pump once, soon, from the loop (idempotent
--                                         until it has run); optional unpump() takes that back
--   run_once() -> alive                   dike.run: one loop iteration, blocking for events;
--                                         false when nothing keeps the loop alive
--   loop_running() -> boolean             whether the loop is running now (dike.run refuses)
--   handles() -> list                     the loop handles it made (tests)
--   close()                               optional: it is being replaced; close its handles
--   threads                               optional: the host resumes coroutines itself
--                                         (nginx): see runtime/ngx.lua
-- runtime/luv.lua, runtime/nvim.lua and runtime/ngx.lua are the hosts dike ships.
--
-- The table below is filled in place, so modules keep a reference to it across set_runtime.
local scheduler = require("dike.runtime.scheduler")
local show = require("dike.options").show

local rawget, type, pairs, ipairs, error, setmetatable = rawget, type, pairs, ipairs, error, setmetatable

local rt = {}
local bind -- below

local HOSTS = { luv = "dike.runtime.luv", nvim = "dike.runtime.nvim", ngx = "dike.runtime.ngx" }
local HOST_FUNCTIONS = { "now", "attach", "arm", "disarm", "pump", "run_once", "loop_running" }

-- Inside nginx the ngx host, in every phase (modules are commonly loaded in init_by_lua and
-- used by requests later); inside Neovim its main loop; elsewhere luv.
local function default_host_name()
    if require("dike.runtime.ngx").available() then return "ngx" end
    local vim = rawget(_G, "vim")
    if type(vim) == "table" and type(vim.schedule) == "function" then return "nvim" end
    return "luv"
end

local function host_of(spec)
    if spec == nil then spec = default_host_name() end
    if type(spec) == "string" then
        local module = HOSTS[spec]
        if module == nil then
            error("dike.set_runtime: unknown runtime " .. show(spec) .. ' (expected "luv", "nvim" or "ngx")', 4)
        end
        local m = require(module)
        if m.available and not m.available() then
            error("dike.set_runtime: the " .. spec .. " runtime is not available here", 4)
        end
        return m.new()
    end
    if type(spec) ~= "table" then
        error("dike.set_runtime: expected a runtime name, a host table or nil, got " .. show(spec), 4)
    end
    for _, name in ipairs(HOST_FUNCTIONS) do
        if type(spec[name]) ~= "function" then
            error(("dike.set_runtime: the host has no function %q"):format(name), 4)
        end
    end
    return spec
end

-- Tables whose fields are the runtime's functions, set again at every install (dike's own
-- spawn, run, sleep and now: one call less on every use).
local bound = setmetatable({}, { __mode = "k" })

--- Keep target[k] = rt[names[k]] for every k, now and after every set_runtime.
function bind(target, names)
    bound[target] = names
    for k, v in pairs(names) do target[k] = rt[v] end
end

--- Install a runtime: the scheduler over a host. `spec` is nil (the default for this place),
--- a host name ("luv", "nvim", "ngx") or a host table.
function rt.install(spec)
    local host = host_of(spec)
    local pending = rt.pending and rt.pending()
    if pending and (pending.timers > 0 or pending.ready > 0) then
        error(("dike.set_runtime: cannot switch while dike has work in hand (%d timers, %d ready)")
              :format(pending.timers, pending.ready), 3)
    end
    local S = scheduler.new(host)
    if rt.host and rt.host.close then rt.host.close() end
    local install = rt.install
    for k in pairs(rt) do rt[k] = nil end
    for k, v in pairs(S) do rt[k] = v end
    rt.install, rt.holds, rt.bind = install, scheduler.holds, bind
    S.attach()
    for target, names in pairs(bound) do
        for k, v in pairs(names) do target[k] = rt[v] end
    end
end

rt.install()

return rt
