--- Workload 6, array mode: N concurrent callers (dike tasks) each send one row of W doubles
-- to a batcher (target 100, max_waiting_time 0.01) whose function returns its input doubled.
--   IMPL arrayW  argument_type "array": each caller passes a 1 x W dike.array and gets one
--                back; the function gets one array of all the batch's rows (W wide) and returns
--                a new one (a:totable(), the doubling in Lua, dike.array(...))
--   IMPL listW   list mode with the same data: W = 1, each caller passes { x } and gets
--                { 2x } (the function gets a list of numbers); W > 1, each caller passes
--                { row } (row: a Lua table of W numbers) and gets { doubled row } (the
--                function gets a list of rows and makes a new table per row)
-- W is 1, 16 or 64 ("array" and "list" alone: 16). The inputs are made before the clock
-- starts; each caller reads one element of its result (its last); they are checked after.
local common = require("lua.common")

local impl, n = common.args("array.lua array1|list1|array16|list16|array64|list64 N")
local mode, w = impl:match("^(%a+)(%d*)$")
local WIDTH = tonumber(w ~= "" and w or "16")
local dike = require("dike")
local uv = common.uv
local TARGET, MAX_WAIT = 100, 0.01

local inputs, results = {}, {}
local caller
if mode == "array" then
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
    if WIDTH == 1 then
        caller = function(i) results[i] = load(inputs[i])[1] end
    else
        caller = function(i) results[i] = load(inputs[i]):get(1, WIDTH) end
    end
elseif mode == "list" and WIDTH == 1 then
    local load = dike.batch{ target_batch_size = TARGET, max_waiting_time = MAX_WAIT }(function(xs)
        local out = {}
        for r = 1, #xs do out[r] = xs[r] * 2 end
        return out
    end)
    for i = 1, n do inputs[i] = { i + 1 } end
    caller = function(i) results[i] = load(inputs[i])[1] end
elseif mode == "list" then
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
