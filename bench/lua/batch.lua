--- Workload 1, batch throughput: N concurrent tasks each make one single-row call; target
-- 100, max_waiting_time 0.01; the batch function returns its input doubled.
--   IMPL dike      dike.batch, callers are dike tasks: load({i}) -> {2 * i}
--   IMPL minimal   the hand-written floor (minimal_batcher.lua), callers are bare
--                  coroutines: load(i) -> 2 * i
--   IMPL contract  the same logic held to dike's contract (contract_batcher.lua): callers
--                  are dike tasks, load({i}) -> {2 * i}
-- Timed: from spawning the first caller until the loop has nothing left (every caller has
-- its result). With `mem`: the heap growth per waiting caller once all N are waiting.
local common = require("lua.common")

local impl, n, mem = common.args("batch.lua dike|minimal|contract N [mem]")
local uv = common.uv
local TARGET, MAX_WAIT = 100, 0.01

-- The batch function of every variant: its input doubled.
local function double_all(xs, count)
    local out = {}
    for i = 1, count or #xs do out[i] = xs[i] * 2 end
    return out
end

local sum = 0
local spawn_all, close
local load_sequence -- dike's contract: load({ i }) -> { 2 * i }, called from dike tasks
if impl == "dike" then
    load_sequence = require("dike").batch{ target_batch_size = TARGET, max_waiting_time = MAX_WAIT }(double_all)
elseif impl == "contract" then
    load_sequence = require("lua.contract_batcher").new(double_all, TARGET, MAX_WAIT)
elseif impl == "minimal" then
    local load
    load, close = require("lua.minimal_batcher").new(double_all, TARGET, MAX_WAIT)
    local function caller(i)
        local r = load(i) -- read sum only after the wait
        sum = sum + r
    end
    spawn_all = function()
        local create, resume = coroutine.create, coroutine.resume
        for i = 1, n do resume(create(caller), i) end
    end
else
    error("batch.lua: unknown IMPL " .. impl, 0)
end
if load_sequence then
    local function caller(i)
        local r = load_sequence({ i })[1]
        sum = sum + r
    end
    spawn_all = function()
        local spawn = require("dike").spawn
        for i = 1, n do spawn(caller, i) end
    end
end

local before = mem and common.heap_bytes()
local t0 = common.now()
spawn_all()
local per_caller = mem and (common.heap_bytes() - before) / n
uv.run()
local seconds = common.now() - t0
common.check("sum of results", sum, n * (n + 1))
if close then close(); uv.run() end
common.report{ ops = n, seconds = seconds, bytes_per_caller = per_caller }
