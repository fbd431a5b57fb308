--- A measuring stick for workload 1: the hand-written minimal batcher's logic, but held to
-- dike's contract: the callers are dike tasks parked and woken through dike's runtime
-- (rt.suspend / rt.wake: the ready-queue pump), each call passes a sequence ({ key }) and
-- gets a new one ({ value }), and each batch runs in a task of its own. No checks, no
-- cancellation, no statistics, no processing timeout. The gap between it and the minimal
-- batcher is what the contract costs; the gap between dike.batch and it is dike.batch's own.
local rt = require("dike.runtime")

local M = {}

---@param fn fun(keys: table): table  one value per key
---@param target integer
---@param max_wait number seconds
---@return fun(call: table): table load
function M.new(fn, target, max_wait)
    local keys, waiters, n = {}, {}, 0
    local timer = nil

    local function run_batch(ks, ws)
        local out = fn(ks)
        local wake = rt.wake
        for i = 1, #ws do wake(ws[i], true, { out[i] }) end
    end

    local function close_batch()
        if timer then
            rt.cancel_timer(timer)
            timer = nil
        end
        rt.spawn_soon(run_batch, keys, waiters)
        keys, waiters, n = {}, {}, 0
    end

    local function on_timer()
        timer = nil
        if n > 0 then close_batch() end
    end

    local function load(call)
        local t = rt.waiter("load")
        local i = n + 1
        n = i
        keys[i], waiters[i] = call[1], t
        if i == 1 then timer = rt.timer(max_wait, on_timer) end
        if i >= target then close_batch() end
        return rt.suspend(t)
    end

    return load
end

return M
