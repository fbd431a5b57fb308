--- Workload 1, batch throughput: N concurrent tasks each make one single-row call; target
-- 100, max_waiting_time 0.01; the batch function returns its input doubled.
--   IMPL dike      dike.batch, callers are dike tasks: load({i}) -> {2 * i}
--   IMPL join      the peers' pattern (dataloader's Promise.all): inside dike.run, every
--                  caller started as dike.spawn(load, {i}), then each task joined in turn
--   IMPL wrap      dike.batch, callers are plain coroutines (coroutine.wrap(caller)(i)), the
--                  loop run by uv.run(): the minimal batcher's own pattern
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
local run_all -- the whole workload, loop included (IMPL join)
if impl == "join" then
    local dike = require("dike")
    local load = dike.batch{ target_batch_size = TARGET, max_waiting_time = MAX_WAIT }(double_all)
    run_all = function()
        sum = dike.run(function()
            local spawn, tasks = dike.spawn, {}
            for i = 1, n do tasks[i] = spawn(load, { i }) end
            local s = 0
            for i = 1, n do s = s + tasks[i]:join()[1] end
            return s
        end)
    end
elseif impl == "wrap" then
    local load = require("dike").batch{ target_batch_size = TARGET, max_waiting_time = MAX_WAIT }(double_all)
    local function caller(i)
        local r = load({ i })[1]
        sum = sum + r
    end
    spawn_all = function()
        local wrap = coroutine.wrap
        for i = 1, n do wrap(caller)(i) end
    end
elseif impl == "dike" then
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
local per_caller
if run_all then
    if mem then error("batch.lua: IMPL join has no mem measurement (its callers wait inside dike.run)", 0) end
    run_all()
else
    spawn_all()
    per_caller = mem and (common.heap_bytes() - before) / n
    uv.run()
end
local seconds = common.now() - t0
common.check("sum of results", sum, n * (n + 1))
if close then close(); uv.run() end
common.report{ ops = n, seconds = seconds, bytes_per_caller = per_caller }
