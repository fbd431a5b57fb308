--- interrupt(w, err): end the wait of `w` (a wait record from rt.current_waiter()) now,
-- releasing what the wait holds exactly as a cancellation does (its hook runs: a queue place
-- is given up, batch rows are withdrawn, a slot handed over is given back, a timer stops),
-- and raise `err` where it waits. Returns false when `w` is not waiting in dike (it is
-- running, or has ended), or when an error (a cancellation...) is already on its way to it.
--
-- This is the runtime's `rt.interrupt`. Runtimes that do not provide it yet get the adapter
-- below, which does on today's task records (dike.task_record) what Task:cancel does, with
-- `err` in place of CancelledError. It is the only code outside the runtime that reads a
-- wait record's fields; delete it once every runtime has rt.interrupt.
local rt = require("dike.runtime")
local task_record = require("dike.task_record")

local WAITING, READY = task_record.WAITING, task_record.READY

local function adapter(w, err)
    local s = w.state
    if s ~= WAITING and s ~= READY then return false end
    -- Woken but not resumed yet: a pending error (a cancellation, an earlier interrupt)
    -- stays; a pending value is dropped.
    if s == READY and not w.ok then return false end
    local hook = w.hook
    if hook then
        w.hook = nil
        hook(w, w.hook_obj, w.hook_key)
    end
    if s == WAITING then return rt.wake(w, false, err) end
    w.ok, w.value = false, err
    return true
end

---@param w table a wait record (rt.current_waiter())
---@param err any what the wait raises
---@return boolean
return function(w, err)
    local interrupt = rt.interrupt -- looked up per call: set_runtime replaces rt's contents
    if interrupt then return interrupt(w, err) end
    return adapter(w, err)
end
