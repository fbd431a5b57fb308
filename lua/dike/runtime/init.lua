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

local rt = {}

-- Inside nginx (OpenResty, or nginx with the Lua module) the ngx runtime, in every phase:
-- modules are commonly loaded in init_by_lua and used later by requests and timers.
-- Elsewhere luv, which inside Neovim is Neovim's own loop.
local function default()
    local ngx_runtime = require("dike.runtime.ngx")
    if ngx_runtime.available() then return ngx_runtime.new() end
    return scheduler.new(require("dike.runtime.luv").new())
end

--- Replace the runtime in place; `impl` is a runtime table (e.g. scheduler.new(driver)),
--- or nil for the default: ngx inside nginx, else luv (Neovim's vim.uv/vim.loop inside Neovim).
function rt.install(impl)
    local install = rt.install
    for k in pairs(rt) do rt[k] = nil end
    for k, v in pairs(impl or default()) do rt[k] = v end
    rt.install = install
end

rt.install()

return rt
