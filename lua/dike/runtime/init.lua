--- The runtime seam (DESIGN.md §1). retry, limit_jobs and batch talk to the loop only
-- through this table:
--   now() -> seconds                       monotonic time
--   timer(delay, fn, a, b) -> handle        call fn(a, b) after delay seconds
--   cancel_timer(handle)
--   task(fname) -> task                     the running task, or raise "<fname>: must be called inside..."
--   current() -> task|nil
--   suspend(task, hook, obj, key) -> value  park the running task until wake(); hook(task, obj, key)
--                                           undoes its place if it is cancelled meanwhile
--   wake(task, ok, value) -> boolean        resume it later with value (ok) or by raising value
--   spawn(fn, ...) -> task, spawn_soon(fn, a, b) -> task, sleep(seconds), run(fn, ...)
-- The table is filled in place, so modules may keep a reference to it across set_runtime().
local scheduler = require("dike.scheduler")
local show = require("dike.options").show

local rt = {}

-- What dike's modules call: checked before anything is replaced, so a bad set_runtime()
-- leaves the current runtime in place.
local REQUIRED = { "now", "timer", "cancel_timer", "task", "current", "suspend", "wake", "rehook",
                   "watch", "unwatch", "spawn", "spawn_soon", "sleep", "run" }

local function default()
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
--- or nil for the default: luv (Neovim's vim.uv/vim.loop inside Neovim).
function rt.install(impl)
    if impl ~= nil then check(impl) end
    local install = rt.install
    for k in pairs(rt) do rt[k] = nil end
    for k, v in pairs(impl or default()) do rt[k] = v end
    rt.install = install
end

rt.install()

return rt
