--- The luv host: the scheduler's loop primitives on libuv through luv (or, with
-- dike.set_runtime("luv") inside Neovim, on Neovim's loop straight from luv callbacks).
--
-- Two handles per loaded copy of dike, made on first use: a timer (the alarm for the
-- earliest dike deadline) and an idle handle (asks the loop for one pump turn without
-- blocking for I/O). They are stopped whenever dike has nothing to do, so they never keep
-- the loop alive. Each copy of dike has its own: a second copy (a plugin reloaded by
-- clearing package.loaded) never takes over the first one's callbacks. A handle closed by
-- user code (uv.walk + close, a shutdown idiom) is replaced by a new one at its next use.
local ceil, abs = math.ceil, math.abs
local rawget, type, pcall, require, tonumber = rawget, type, pcall, require, tonumber

local M = {}

-- luv takes a timeout in whole milliseconds as a Lua integer (Lua 5.4 raises for a float
-- beyond 2^63, e.g. dike.sleep(math.huge)). A deadline further away is armed this far ahead
-- (about 24.8 days, like setTimeout); when the alarm fires early nothing is due and the
-- scheduler arms it again.
local MAX_ARM_MS = 2147483647

--- The luv module in use: Neovim's own loop when inside Neovim, else require("luv").
function M.find_uv()
    local vim = rawget(_G, "vim")
    if type(vim) == "table" then
        local uv = vim.uv or vim.loop
        if uv then return uv end
    end
    return require("luv")
end

-- Monotonic seconds, on the clock uv.hrtime reads (libuv: clock_gettime(CLOCK_MONOTONIC) on
-- Linux). On LuaJIT it is read through the FFI: a compiled call of a few nanoseconds, where
-- uv.hrtime, a Lua C function, costs some 60 ns and ends the caller's trace (every timer,
-- rate limit and timeout reads it). Elsewhere, uv.hrtime.
local function monotonic_clock(uv)
    local hrtime = uv.hrtime
    local function from_hrtime() return hrtime() * 1e-9 end
    if rawget(_G, "jit") == nil then return from_hrtime end
    local ok, ffi = pcall(require, "ffi")
    if not ok or ffi.os ~= "Linux" then return from_hrtime end
    -- Declared once per process whatever the number of dike copies (a second cdef raises).
    pcall(ffi.cdef, "struct dike_timespec { long tv_sec; long tv_nsec; };")
    pcall(ffi.cdef, "int clock_gettime(int clk_id, struct dike_timespec *tp);")
    local got, ts = pcall(ffi.new, "struct dike_timespec")
    if not got then return from_hrtime end
    local C, CLOCK_MONOTONIC = ffi.C, 1
    local function from_ffi()
        C.clock_gettime(CLOCK_MONOTONIC, ts)
        return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
    end
    -- Use it only if it agrees with uv.hrtime (the same clock, read a moment apart).
    local works, t = pcall(from_ffi)
    if not works or abs(t - from_hrtime()) > 0.5 then return from_hrtime end
    return from_ffi
end
M.monotonic_clock = monotonic_clock

--- A host (see runtime/init.lua) on `uv`.
---@param uv? table the luv module (default: find_uv())
function M.new(uv)
    uv = uv or M.find_uv()
    local hrtime, update_time = uv.hrtime, uv.update_time
    local H = { name = "luv", uv = uv }
    local timer, idle
    local on_alarm, on_pump = nil, nil

    local function alarm_cb() on_alarm() end
    local function idle_cb()
        idle:stop()
        on_pump()
    end

    function H.attach(alarm, pump)
        on_alarm, on_pump = alarm, pump
    end

    --- Monotonic seconds (not the loop's cached clock).
    H.now = monotonic_clock(uv)

    -- A handle user code closed is not ours any more.
    local function usable(h)
        return h ~= nil and not h:is_closing()
    end

    --- Call on_alarm once at (or just after) monotonic time `at`.
    function H.arm(at)
        if not usable(timer) then timer = uv.new_timer() end
        -- The loop's clock is cached per iteration: refresh it, or a timer started late in
        -- an iteration fires early.
        update_time()
        local ms = ceil((at - hrtime() * 1e-9) * 1000)
        if ms < 0 then ms = 0 elseif ms > MAX_ARM_MS then ms = MAX_ARM_MS end
        timer:start(ms, 0, alarm_cb)
    end

    function H.disarm()
        if usable(timer) then timer:stop() end
    end

    --- Call on_pump once, from the loop's next idle phase (the loop does not block meanwhile).
    function H.pump()
        if not usable(idle) then idle = uv.new_idle() end
        idle:start(idle_cb)
    end

    function H.unpump()
        if usable(idle) then idle:stop() end
    end

    --- One loop iteration (blocking for events); false when nothing keeps the loop alive.
    function H.run_once()
        return uv.run("once")
    end

    -- Neovim runs its loop from C, so luv's loop_mode() stays nil inside its callbacks;
    -- there, being in a "fast" event means being inside the loop.
    local vim = rawget(_G, "vim")
    local in_fast_event = type(vim) == "table" and vim.in_fast_event or nil

    --- Whether the loop is being run right now (by anyone).
    function H.loop_running()
        return uv.loop_mode() ~= nil or (in_fast_event ~= nil and in_fast_event())
    end

    --- The runtime is being replaced: close the handles.
    function H.close()
        if usable(timer) then timer:close() end
        if usable(idle) then idle:close() end
    end

    --- The handles dike made (for tests that check nothing else is left open).
    function H.handles()
        return { timer, idle }
    end

    return H
end

return M
