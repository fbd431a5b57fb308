--- dike's timers: every deadline in one binary heap, behind the host's single alarm.
-- The alarm is armed for the earliest deadline, or earlier: when that timer is cancelled the
-- alarm stays (it goes off, finds nothing due and is armed again), which saves the loop two
-- calls per batch sent by size. With no timer left it is disarmed, so it never keeps the loop
-- alive for nothing: while a task runs, at the end of the scheduler's turn (settle; `defer`
-- makes sure one comes), so that a task adding and cancelling a timer per call (dike.timeout
-- returning in time) costs the host nothing; elsewhere at once. A timer's callback is dike's own code, but it touches user values (batch
-- arguments...): each runs contained, and its error goes to `on_error`.
local Heap = require("dike.runtime.heap")

local xpcall = xpcall

local M = {}

---@param host table arm(at), disarm()
---@param now fun(): number
---@param traceback_of fun(err): string the xpcall handler
---@param on_error fun(where: string, err: any)
---@param defer? fun(): boolean true: the scheduler will call settle soon (else disarm at once)
function M.new(host, now, traceback_of, on_error, defer)
    local T = {}
    local heap = Heap.new()
    local armed_at = nil

    local function rearm()
        local top = heap[1]
        if top == nil then
            if armed_at then
                if not (defer and defer()) then
                    host.disarm()
                    armed_at = nil
                end
            end
        elseif armed_at == nil or top.at < armed_at then
            host.arm(top.at)
            armed_at = top.at
        end
    end

    --- Call fn(a, b) after `delay` seconds, from the loop. Returns a handle for cancel.
    function T.add(delay, fn, a, b)
        local e = { at = now() + delay, fn = fn, a = a, b = b, idx = 0 }
        heap:push(e)
        if e.idx == 1 then rearm() end
        return e
    end

    --- Stop a timer; a no-op once it has fired.
    function T.cancel(e)
        local i = e.idx
        if i ~= 0 then
            heap:remove(e)
            if i == 1 then rearm() end
        end
    end

    local function fire_due()
        local t_now = now()
        while true do
            local e = heap[1]
            if e == nil or e.at > t_now then return end
            heap:remove(e)
            local ok, err = xpcall(e.fn, traceback_of, e.a, e.b)
            if not ok then on_error("a timer callback", err) end
        end
    end

    --- The alarm went off: run what is due, arm for what is left.
    function T.fire()
        armed_at = nil
        local ok, err = xpcall(fire_due, traceback_of)
        if not ok then on_error("the timers", err) end
        rearm()
    end

    --- The end of a turn: disarm the alarm if no timer is left.
    function T.settle()
        if armed_at and heap[1] == nil then
            host.disarm()
            armed_at = nil
        end
    end

    --- Arm the alarm afresh (its handle may have been closed by user code).
    function T.rearm()
        armed_at = nil
        rearm()
    end

    --- How many timers wait.
    function T.count()
        return heap.n
    end

    return T
end

return M
