--- The Neovim host: dike's work runs from Neovim's main loop (as vim.schedule callbacks
-- do), never inside a libuv callback, so after any wait the code may call vim.api and
-- vim.notify, and loggers and observers may too.
--
-- The loop primitives are luv's (runtime/luv.lua on vim.uv / vim.loop): its alarm timer and
-- idle handle fire in Neovim's "fast" context, where they only hand the work to the main
-- loop with vim.schedule. dike.run, called from the main context, drives the loop itself
-- and runs that work directly (a scheduled callback would wait for Neovim's own loop).
-- dike.set_runtime("luv") gives back resumption straight from luv callbacks.
local luv_host = require("dike.runtime.luv")

local rawget, type = rawget, type

local M = {}

function M.available()
    local vim = rawget(_G, "vim")
    return type(vim) == "table" and type(vim.schedule) == "function"
end

function M.new()
    local vim = rawget(_G, "vim")
    local schedule = vim.schedule
    local base = luv_host.new()
    local H = { name = "nvim", uv = base.uv, now = base.now, arm = base.arm, disarm = base.disarm,
                loop_running = base.loop_running, handles = base.handles, close = base.close }

    local on_alarm, on_pump = nil, nil
    local alarm_due, pump_due = false, false    -- work handed over, not yet run
    local alarm_sent, pump_sent = false, false  -- a vim.schedule callback is on its way
    local driving = false                        -- dike.run is driving the loop

    local function run_alarm()
        alarm_sent = false
        if alarm_due then
            alarm_due = false
            on_alarm()
        end
    end

    local function run_pump()
        pump_sent = false
        if pump_due then
            pump_due = false
            on_pump()
        end
    end

    -- The alarm timer fires in the fast context: hand over to the main loop.
    local function alarm_fast()
        alarm_due = true
        if not alarm_sent and not driving then
            alarm_sent = true
            schedule(run_alarm)
        end
    end

    function H.attach(alarm, pump)
        on_alarm, on_pump = alarm, pump
        base.attach(alarm_fast, nil) -- the base's idle handle is not used here
    end

    --- Call on_pump once, from the main loop.
    function H.pump()
        pump_due = true
        if not pump_sent and not driving then
            pump_sent = true
            schedule(run_pump)
        end
    end

    --- dike.run, from the main context: run the work handed over here, and block for events
    --- only when there is none.
    function H.run_once()
        driving = true
        local alive = true
        if not (alarm_due or pump_due) then alive = base.run_once() end
        if alarm_due then
            alarm_due = false
            on_alarm()
        end
        if pump_due then
            pump_due = false
            on_pump()
        end
        driving = false
        -- What the last turn handed over still runs once dike.run has returned.
        if pump_due and not pump_sent then
            pump_sent = true
            schedule(run_pump)
        end
        if alarm_due and not alarm_sent then
            alarm_sent = true
            schedule(run_alarm)
        end
        return alive or pump_due
    end

    return H
end

return M
