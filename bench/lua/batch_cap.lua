--- Workload 9, max_concurrent_batches under the demo service's load: the demo service
-- (examples/service/, a process of its own) with its simulated model (2 ms + 20 us per row,
-- one model call at a time: --model-slots 1) behind dike.batch{target_batch_size = 32,
-- max_batch_size = 128, max_waiting_time = 0.002}, driven by wrk -t2 -c64 for N seconds;
-- no injected failures.
--   IMPL nocap  no max_concurrent_batches: every due batch is sent (and queues at the model)
--   IMPL cap1   max_concurrent_batches = 1: one batch in flight, the next one grows meanwhile
--   IMPL cap2   max_concurrent_batches = 2: one runs, one waits at the model, the next grows
-- Reports requests answered (ops) over wrk's seconds, wrk's p50/p99 latency and the mean batch
-- size. Needs wrk (scripts/deps.sh test); without it the script fails.
local common = require("lua.common")

local impl, n = common.args("batch_cap.lua nocap|cap1|cap2 SECONDS")
local CAPS = { nocap = 0, cap1 = 1, cap2 = 2 }
local cap = CAPS[impl]
if cap == nil then error("batch_cap.lua: unknown IMPL " .. impl, 0) end

assert(loadfile("examples/service/paths.lua"))("examples/service/")
local uv = require("luv")
local harness = require("service.harness")
local client = require("service.client")
local json = require("service.json")

local interp = arg[-1] or "luajit"
local figures, stats
harness.run("batch_cap.lua", function()
    local args = { "--fail-rate", "0", "--max-concurrent-batches", tostring(cap) }
    local service = harness.start_service(interp, args, n + 60)
    local connections = tonumber(os.getenv("CONNS") or 128)
    figures = harness.wrk(service.port, { threads = 2, connections = connections, duration = n })
    local res = client.get("127.0.0.1", service.port, "/stats", 10)
    stats = res and json.decode(res.body) or {}
    uv.kill(service.pid, "sigterm")
    service.wait()
end)
if figures.error then error("batch_cap.lua: " .. figures.error, 0) end
common.check("wrong bodies", tonumber(figures.wrong), 0)
local statuses = select(2, harness.statuses(figures))
local ok = statuses["200"] or 0
common.check("every request answered 200", ok, tonumber(figures.requests))
local model = stats.model or {}
common.report{ ops = ok, seconds = tonumber(figures.seconds), p50_ms = tonumber(figures.p50_ms),
               p99_ms = tonumber(figures.p99_ms),
               mean_batch = (model.calls or 0) > 0 and model.rows / model.calls or 0 }
