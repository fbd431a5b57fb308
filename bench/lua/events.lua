--- Workload 8, the cost of an event: N emits of a retry event with three extra fields
-- (what retry emits before each retry).
--   IMPL none       no observer installed, from a task: the emit returns at once (no table,
--                   no clock read)
--   IMPL noop       a no-op observer, from a task: the event table, dike.now() and the
--                   observer's call, contained in its own coroutine (where the emitting code
--                   could yield, so could the observer)
--   IMPL noop_main  a no-op observer, from the main thread (as in a loop callback: a timer
--                   sending a batch): the observer's call is contained by a pcall
-- N/10 untimed emits first.
local common = require("lua.common")

local impl, n = common.args("events.lua none|noop|noop_main N")
local dike = require("dike")
local emit = require("dike.events").emit

local seen = 0
if impl == "noop" or impl == "noop_main" then
    dike.on_event(function() seen = seen + 1 end)
elseif impl ~= "none" then
    error("events.lua: unknown IMPL " .. impl, 0)
end

local err = "connection refused"
local function loop(m)
    for i = 1, m do emit("retry", "fetch", "retry", "attempt", i, "delay", 0.1, "error", err) end
end

local function measure()
    local warm = math.max(1, math.floor(n / 10))
    loop(warm)
    local t0 = common.now()
    loop(n)
    local s = common.now() - t0
    common.check("events seen", seen, impl == "none" and 0 or warm + n)
    return s
end
local seconds = impl == "noop_main" and measure() or dike.run(measure)
common.report{ ops = n, seconds = seconds }
