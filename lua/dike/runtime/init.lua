--- The runtime seam (DESIGN.md §1). dike's modules (retry, limit_jobs, batch, task.lua's
-- gather and wrap, init.lua) talk to the loop only through this table:
--   now() -> seconds                       monotonic time
--   timer(delay, fn, a, b) -> handle        call fn(a, b) after delay seconds
--   cancel_timer(handle)
--   task(fname) -> task                     the running task, or raise "<fname>: must be called inside..."
--   current() -> task|nil
--   suspend(task, hook, obj, key) -> value  park the running task until wake(); hook(task, obj, key)
--                                           undoes its place if it is cancelled meanwhile
--   wake(task, ok, value, holds) -> boolean resume it later with value (ok) or by raising value;
--                                           holds: the hook stays until it resumes (a slot handed over)
--   rehook(task, hook, obj, key)            move a waiting task's hook to another place
--   watch(task, watcher), unwatch(watcher, task)  watcher:notify(task) once the task has ended
--   Task                                    the tasks' class (join, cancel, done)
--   spawn(fn, ...) -> task, spawn_soon(fn, a, b) -> task, sleep(seconds, fname), run(fn, ...)
--   pending() -> {timers, ready, unreported}  what is left (tests: all 0 once every task ended)
--   attach()                                optional: called once the runtime is installed (the
--                                           scheduler takes over its loop driver's callbacks then)
-- Both runtimes (dike.scheduler on a loop driver, and runtime/ngx.lua) keep their tasks as
-- dike.task_record records, and take wake, suspend, rehook, watch, unwatch and Task from it;
-- gather reads a finished task's ok and value (its first value, or its error) off the record.
-- The table is filled in place, so modules may keep a reference to it across set_runtime().
local scheduler = require("dike.scheduler")
local show = require("dike.options").show

local rt = {}

-- What dike's modules call: checked before anything is replaced, so a bad set_runtime()
-- leaves the current runtime in place.
local REQUIRED = { "now", "timer", "cancel_timer", "task", "current", "suspend", "wake", "rehook",
                   "watch", "unwatch", "spawn", "spawn_soon", "sleep", "run" }

-- Inside nginx (OpenResty, or nginx with the Lua module) the ngx runtime, in every phase:
-- modules are commonly loaded in init_by_lua and used later by requests and timers.
-- Elsewhere luv, which inside Neovim is Neovim's own loop.
local function default()
    local ngx_runtime = require("dike.runtime.ngx")
    if ngx_runtime.available() then return ngx_runtime.new() end
    return scheduler.new(require("dike.runtime.luv").new())
end

local function check(impl)
    if type(impl) ~= "table" then
        error("dike.set_runtime: expected a runtime table (dike.scheduler.new(driver)) or nil, got "
              .. show(impl), 4)
    end
    for _, name in ipairs(REQUIRED) do
        if type(impl[name]) ~= "function" then
            error(("dike.set_runtime: the runtime has no function %q"):format(name), 4)
        end
    end
end

--- Replace the runtime in place; `impl` is a runtime table (e.g. scheduler.new(driver)),
--- or nil for the default: ngx inside nginx, else luv (Neovim's vim.uv/vim.loop inside Neovim).
function rt.install(impl)
    if impl ~= nil then check(impl) end
    local install = rt.install
    for k in pairs(rt) do rt[k] = nil end
    for k, v in pairs(impl or default()) do rt[k] = v end
    rt.install = install
    -- The names the tools use from now on (the runtime rewrite keeps these):
    -- waiter(fname): the running coroutine's wait record, or raise; current_waiter(): or nil.
    rt.waiter, rt.current_waiter = rt.task, rt.current
    if rt.attach then rt.attach() end
end

rt.install()

return rt
