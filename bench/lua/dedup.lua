--- Workload 10, dedup: N concurrent callers (dike tasks) each load one key, N keys drawn from
-- 1,000 distinct ones (a Park-Miller sequence, the same in bench/node/dedup.mjs); target 100,
-- max_waiting_time 0.01; the function returns its keys doubled.
--   IMPL key    dike.batch{key = function(k) return k end}: equal keys in a batch sent once
--   IMPL nokey  the same without key: every row sent
-- Reports the rows the function received (rows_sent) beside the time.
local common = require("lua.common")

local impl, n = common.args("dedup.lua key|nokey N")
if impl ~= "key" and impl ~= "nokey" then error("dedup.lua: unknown IMPL " .. impl, 0) end
local dike = require("dike")
local uv = common.uv

local keys, state = {}, 1
for i = 1, n do
    state = state * 16807 % 2147483647
    keys[i] = state % 1000
end

local rows_sent, sum = 0, 0
local load = dike.batch{ target_batch_size = 100, max_waiting_time = 0.01,
                         key = impl == "key" and function(k) return k end or nil }(function(ks)
    rows_sent = rows_sent + #ks
    local out = {}
    for i = 1, #ks do out[i] = ks[i] * 2 end
    return out
end)
local function caller(i)
    local r = load({ keys[i] })[1]
    sum = sum + r
end

local want = 0
for i = 1, n do want = want + 2 * keys[i] end
local spawn = dike.spawn
local t0 = common.now()
for i = 1, n do spawn(caller, i) end
uv.run()
local seconds = common.now() - t0
common.check("sum of results", sum, want)
common.report{ ops = n, seconds = seconds, rows_sent = rows_sent }
