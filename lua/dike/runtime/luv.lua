--- The luv loop driver: the few loop services the scheduler needs, on libuv via luv
-- (or Neovim's vim.uv / vim.loop, which is luv on Neovim's own loop).
--
-- One timer (the alarm for the earliest dike deadline) and one idle handle (which pumps
-- the ready queue) per Lua state and loop, whoever drives the loop: dike.run, user code
-- calling uv.run(), or Neovim. They are created on first use and kept for reuse: stopped
-- (inactive) whenever dike has nothing to do, so they never keep the loop alive.
-- They live in the Lua registry so that loading dike again (busted does, per spec file)
-- reuses them instead of leaking handles.
local ceil = math.ceil
local debug_getregistry = debug.getregistry
local rawget, type = rawget, type

local REGISTRY_KEY = "dike.runtime.luv.driver"
-- luv takes a timeout in whole milliseconds as a Lua integer: Lua 5.4 raises for a float
-- beyond 2^63 (dike.sleep(math.huge), a batch max_waiting_time of 1e300), and a raise inside a
-- luv callback ends the process. A deadline further away is armed this far ahead (about 24.8
-- days, like setTimeout); when the alarm fires early the scheduler finds nothing due and arms
-- it again.
local MAX_ARM_MS = 2147483647

--- The luv module in use: Neovim's own loop when inside Neovim, else require("luv").
local function find_uv()
    local vim = rawget(_G, "vim")
    if type(vim) == "table" then
        local uv = vim.uv or vim.loop
        if uv then return uv end
    end
    return require("luv")
end

---@param uv? table luv module (default: find_uv())
local function new(uv)
    uv = uv or find_uv()
    local registry = debug_getregistry()
    -- Reuse the handles of an earlier load. A reloaded luv module is a new table over the
    -- same default loop, so the identity of `uv` does not matter.
    local shared = registry[REGISTRY_KEY]
    if shared then return shared end

    local hrtime, update_time = uv.hrtime, uv.update_time
    local timer, idle
    local idle_on = false
    local D = { name = "luv", uv = uv }

    -- Set by the scheduler that owns this driver (the latest load of dike).
    D.on_alarm = function() end
    D.on_pump = function() end

    local function alarm_cb() D.on_alarm() end
    local function idle_cb() D.on_pump() end

    --- Monotonic time in seconds (not the loop's cached clock).
    function D.now()
        return hrtime() * 1e-9
    end

    --- Call on_alarm once at (or just after) monotonic time `at`.
    function D.arm(at)
        timer = timer or uv.new_timer()
        -- The loop's clock is cached per iteration: refresh it, or a timer started late
        -- in an iteration fires early.
        update_time()
        local ms = ceil((at - hrtime() * 1e-9) * 1000)
        if ms < 0 then ms = 0 elseif ms > MAX_ARM_MS then ms = MAX_ARM_MS end
        timer:start(ms, 0, alarm_cb)
    end

    function D.disarm()
        if timer then timer:stop() end
    end

    --- Call on_pump from the loop (idle phase) until pump_stop().
    function D.pump_start()
        if idle_on then return end
        idle = idle or uv.new_idle()
        idle:start(idle_cb)
        idle_on = true
    end

    function D.pump_stop()
        if idle_on then
            idle:stop()
            idle_on = false
        end
    end

    --- Run one loop iteration (blocking for events); false when nothing keeps the loop alive.
    function D.run_once()
        return uv.run("once")
    end

    -- Neovim runs its loop from C, so luv's loop_mode() stays nil inside its callbacks;
    -- there, being in a "fast" event means being inside the loop.
    local vim = rawget(_G, "vim")
    local in_fast_event = type(vim) == "table" and vim.in_fast_event or nil

    --- Whether the loop is being run right now (by anyone).
    function D.loop_running()
        return uv.loop_mode() ~= nil or (in_fast_event ~= nil and in_fast_event())
    end

    --- The handles this driver owns (for tests that check nothing else is left open).
    function D.handles()
        return { timer, idle }
    end

    registry[REGISTRY_KEY] = D
    return D
end

return { new = new, find_uv = find_uv }
