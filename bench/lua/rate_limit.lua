--- Workloads 12 and 13: many callers waiting in one rate limiter.
--   IMPL waiting  N callers call at once into dike.rate_limit{rate = 20000, burst = 1,
--                 max_wait = math.huge}: all but the first reserve a turn and wait (N - 1 at
--                 once), and are woken in order, 20,000 a second, by the limiter's one timer.
--                 Reported: process CPU time per call (spawn, reservation, wait, wake, run),
--                 from the first spawn until the last caller is done. The run lasts N / 20000
--                 seconds, mostly idle; CPU time is the work dike does per waiting caller,
--                 which should not grow with the number waiting.
--   IMPL rate     N callers (10,000 in make bench) call again and again for D seconds (2; 0.2
--                 for N < 1000: the smoke run) through dike.rate_limit{rate = 5000, burst = 100,
--                 max_wait = math.huge}. Reported: the calls that ran within the D seconds
--                 (ops), and `expected` = rate * D + burst, the most GCRA may admit: their
--                 ratio is how close the admitted rate comes to the configured one.
local common = require("lua.common")

local impl, n = common.args("rate_limit.lua waiting|rate N")
local dike = require("dike")
local uv = common.uv
local clock = os.clock

if impl == "waiting" then
    local RATE = 20000
    local limited = dike.rate_limit{ rate = RATE, burst = 1, max_wait = math.huge }(function(i) return i end)
    local done = 0
    local function caller(i)
        if limited(i) == i then done = done + 1 end
    end
    local spawn = dike.spawn
    local cpu0, t0 = clock(), common.now()
    for i = 1, n do spawn(caller, i) end
    local waiting = dike.stats(limited).waiting
    uv.run()
    local cpu, wall = clock() - cpu0, common.now() - t0
    common.check("callers done", done, n)
    common.check("waiting at once", waiting, n - 1)
    common.report{ ops = n, seconds = cpu, wall = wall }
elseif impl == "rate" then
    local RATE, BURST = 5000, 100
    local D = n >= 1000 and 2 or 0.2
    local admitted, late = 0, 0
    local deadline
    local limited = dike.rate_limit{ rate = RATE, burst = BURST, max_wait = math.huge }(function()
        if dike.now() <= deadline then admitted = admitted + 1 else late = late + 1 end
    end)
    local function caller()
        while dike.now() < deadline do limited() end
    end
    local cpu0 = clock()
    dike.run(function()
        deadline = dike.now() + D
        local callers = {}
        for i = 1, n do callers[i] = dike.spawn(caller) end
        for i = 1, n do callers[i]:join() end
    end)
    local expected = RATE * D + BURST
    common.report{ ops = admitted, seconds = D, expected = expected, ratio = admitted / expected,
                   late = late, cpu = clock() - cpu0 }
else
    error("rate_limit.lua: unknown IMPL " .. impl, 0)
end
