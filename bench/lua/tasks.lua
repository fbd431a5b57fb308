--- Task cost: N tasks, each spawned and run to its end, one after the other.
--   IMPL empty     dike.spawn(f) of an empty function: spawn to finish
--   IMPL sleep0    dike.spawn(f) where f does dike.sleep(0) once: spawn, park, wake, finish
--                  (the loop, run by uv.run(), resumes them all)
local common = require("lua.common")

local impl, n = common.args("tasks.lua empty|sleep0 N")
local dike = require("dike")
local spawn, sleep = dike.spawn, dike.sleep

local ended = 0
local body
if impl == "empty" then
    body = function() ended = ended + 1 end
elseif impl == "sleep0" then
    body = function()
        sleep(0)
        ended = ended + 1
    end
else
    error("tasks.lua: unknown IMPL " .. impl, 0)
end

local t0 = common.now()
for _ = 1, n do spawn(body) end
common.uv.run()
local seconds = common.now() - t0
common.check("tasks ended", ended, n)
common.report{ ops = n, seconds = seconds }
