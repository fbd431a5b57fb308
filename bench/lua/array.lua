--- Workload 6, array mode: N concurrent callers each send one row of 16 doubles to a
-- batcher (target 100, max_waiting_time 0.01) that returns its input doubled.
--   IMPL array  argument_type "array": each caller passes a 1 x 16 dike.array and gets one
--               back; the function gets one N x 16 array per batch and returns a new one
--   IMPL list   list mode: each caller passes { row } (row: a table of 16 numbers) and gets
--               { doubled row }; the function gets a list of rows
-- The inputs are made before the clock starts; the results are checked after it stops.
local common = require("lua.common")

local impl, n = common.args("array.lua array|list N")
local dike = require("dike")
local uv = common.uv
local WIDTH, TARGET, MAX_WAIT = 16, 100, 0.01

local inputs, results = {}, {}
local caller
if impl == "array" then
    local array = dike.array
    local load = dike.batch{ target_batch_size = TARGET, max_waiting_time = MAX_WAIT,
                             argument_type = "array" }(function(a)
        local flat = a:totable()
        for i = 1, #flat do flat[i] = flat[i] * 2 end
        return array(flat, "double", WIDTH)
    end)
    for i = 1, n do
        local row = {}
        for c = 1, WIDTH do row[c] = i + c end
        inputs[i] = array(row, "double", WIDTH)
    end
    caller = function(i) results[i] = load(inputs[i]):get(1, WIDTH) end
elseif impl == "list" then
    local load = dike.batch{ target_batch_size = TARGET, max_waiting_time = MAX_WAIT }(function(rows)
        local out = {}
        for r = 1, #rows do
            local row, doubled = rows[r], {}
            for c = 1, WIDTH do doubled[c] = row[c] * 2 end
            out[r] = doubled
        end
        return out
    end)
    for i = 1, n do
        local row = {}
        for c = 1, WIDTH do row[c] = i + c end
        inputs[i] = { row }
    end
    caller = function(i) results[i] = load(inputs[i])[1][WIDTH] end
else
    error("array.lua: unknown IMPL " .. impl, 0)
end

local spawn = dike.spawn
local t0 = common.now()
for i = 1, n do spawn(caller, i) end
uv.run()
local seconds = common.now() - t0
for i = 1, n do common.check("result of caller " .. i, results[i], 2 * (i + WIDTH)) end
common.report{ ops = n, seconds = seconds }
