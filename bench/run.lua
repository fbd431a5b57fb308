--- The benchmark driver (`make bench`, through bench/run.sh). It runs every measurement of
-- the fifteen workloads (bench/lua/*.lua and bench/node/*.mjs; each script says what it does)
-- several times, each in a fresh process, interleaved (round 1 of everything, then round 2,
-- ...) so that the machine's noise falls on every variant alike; takes medians; prints one
-- table of ratios with the absolute figures beside
-- them; writes bench/RESULTS.md and the data for bench/chart.gp.
--
--   luajit bench/run.lua [--runs N] [--smoke] [--build DIR] [--out DIR] [--results FILE]
--     --runs N       rounds (default 7; BENCH_RUNS overrides the default)
--     --build DIR    the build tree holding dike/core.so and lua54/dike/core.so (default build)
--     --smoke        tiny sizes, one round, no Node, no RESULTS.md: proves the scripts run
--     --out DIR      raw logs and chart data (default build/bench)
--     --results FILE where the Markdown report goes (default bench/RESULTS.md; with --smoke or
--                    --only, DIR/RESULTS.md)
--     --only PREFIX  only the measurements whose key starts with PREFIX (e.g. "store." for
--                    workload 14); the other rows and targets stay empty
-- Run from the repository root with build/ built (bench/run.sh does both).
local format, concat, sort = string.format, table.concat, table.sort

---------------------------------------------------------------- command line

local opts = { runs = tonumber(os.getenv("BENCH_RUNS") or "") or 7, smoke = false,
               build = "build", out = "build/bench", results = nil, only = nil }
do
    local i = 1
    while i <= #arg do
        local a = arg[i]
        if a == "--smoke" then opts.smoke = true
        elseif a == "--runs" then i = i + 1; opts.runs = tonumber(arg[i])
        elseif a == "--out" then i = i + 1; opts.out = arg[i]
        elseif a == "--build" then i = i + 1; opts.build = arg[i]
        elseif a == "--results" then i = i + 1; opts.results = arg[i]
        elseif a == "--only" then i = i + 1; opts.only = arg[i]
        else error("bench/run.lua: unknown argument " .. tostring(a), 0) end
        i = i + 1
    end
    if not opts.runs or opts.runs < 1 then error("bench/run.lua: --runs needs a number >= 1", 0) end
    if opts.smoke then opts.runs = 1 end
    opts.results = opts.results or ((opts.smoke or opts.only) and (opts.out .. "/RESULTS.md") or "bench/RESULTS.md")
end

---------------------------------------------------------------- shell helpers

local function shell_quote(s)
    s = tostring(s)
    if s:match("^[%w%-%./_=:,+]+$") then return s end
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function read_all(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
end

local function write_file(path, s)
    local f = assert(io.open(path, "wb"))
    f:write(s)
    f:close()
end

--- stdout of a shell command, trailing newline removed ("" when it fails).
local function capture(cmd)
    local p = io.popen(cmd .. " 2>/dev/null")
    if not p then return "" end
    local s = p:read("*a") or ""
    p:close()
    return (s:gsub("%s+$", ""))
end

local function exists(cmd)
    return capture("command -v " .. cmd) ~= ""
end

---------------------------------------------------------------- interpreters

-- Both Lua interpreters find dike in the build tree and the workloads' helpers in bench/;
-- ';;' keeps the system paths (luv, LuaJIT's jit.*).
local LUA_PATH = "lua/?.lua;lua/?/init.lua;bench/?.lua;;"
local INTERP = {
    luajit = { label = "LuaJIT", env = { LUA_PATH = LUA_PATH, LUA_CPATH = opts.build .. "/?.so;;" },
               argv = { "luajit" } },
    lua54 = { label = "Lua 5.4",
              env = { LUA_PATH_5_4 = LUA_PATH, LUA_CPATH_5_4 = opts.build .. "/lua54/?.so;;" },
              argv = { "lua5.4" } },
    node = { label = "Node", env = {}, argv = { "node" } },
}

---------------------------------------------------------------- the measurements

-- Sizes from the issue; `smoke` sizes only prove the scripts still run.
-- rate_wait: callers waiting in one rate limiter; rate_run: callers of the 2 s admitted-rate run
-- (rate_limit.lua runs 0.2 s below 1,000 callers); bottleneck: its sequential calls (each takes
-- milliseconds: see bench/node/rate_limit.mjs).
local N = opts.smoke
    and { batch = 300, calls = 2000, fail = 200, queue = { 10, 20, 40 }, array = 300, tasks = 300, wait = 200,
          node_calls = 200, events = 2000, cap = 1, dedup = 300,
          rate_wait = { 10, 20, 40 }, rate_run = 100, bottleneck = 20, store = 320, store_seq = 50, handoff = 20,
          ngx_seconds = 1 }
    or { batch = 100000, calls = 1000000, fail = 100000, queue = { 1000, 10000, 100000 }, array = 100000,
         tasks = 200000, wait = 100000, node_calls = 200000, events = 1000000, cap = 3, dedup = 100000,
         rate_wait = { 100, 1000, 10000 }, rate_run = 10000, bottleneck = 500, store = 20000, store_seq = 5000,
         handoff = 100,
         ngx_seconds = 3 }
local WIDTHS = { 1, 16, 64 }
local CAPS = { "nocap", "cap1", "cap2" }

local M = {}
local function measure(key, interp, script, impl, n, extra)
    local m = { key = key, interp = interp, script = script, impl = impl, n = n }
    for k, v in pairs(extra or {}) do m[k] = v end
    M[#M + 1] = m
end

-- 1. batch throughput (and memory per waiting caller: the `.mem` runs)
for _, interp in ipairs({ "luajit", "lua54" }) do
    measure("batch.dike." .. interp, interp, "bench/lua/batch.lua", "dike", N.batch)
    measure("batch.dike." .. interp .. ".mem", interp, "bench/lua/batch.lua", "dike", N.batch, { mem = true })
end
measure("batch.minimal.luajit", "luajit", "bench/lua/batch.lua", "minimal", N.batch)
measure("batch.minimal.luajit.mem", "luajit", "bench/lua/batch.lua", "minimal", N.batch, { mem = true })
measure("batch.contract.luajit", "luajit", "bench/lua/batch.lua", "contract", N.batch)
measure("batch.contract.luajit.mem", "luajit", "bench/lua/batch.lua", "contract", N.batch, { mem = true })
-- the peers' pattern (spawn every caller, join them all) and plain-coroutine callers
measure("batch.join.luajit", "luajit", "bench/lua/batch.lua", "join", N.batch)
measure("batch.wrap.luajit", "luajit", "bench/lua/batch.lua", "wrap", N.batch)
measure("batch.wrap.luajit.mem", "luajit", "bench/lua/batch.lua", "wrap", N.batch, { mem = true })
measure("batch.dataloader", "node", "bench/node/batch.mjs", "dataloader", N.batch, { node = true })
measure("batch.dataloader.mem", "node", "bench/node/batch.mjs", "dataloader", N.batch,
        { node = true, mem = true })
-- 1b. task cost: spawn to finish, and spawn + sleep(0) + finish
for _, interp in ipairs({ "luajit", "lua54" }) do
    for _, impl in ipairs({ "empty", "sleep0" }) do
        measure("tasks." .. impl .. "." .. interp, interp, "bench/lua/tasks.lua", impl, N.tasks)
    end
end
-- 2, 3. wrapper overhead on calls that do not wait
for _, interp in ipairs({ "luajit", "lua54" }) do
    for _, impl in ipairs({ "bare", "pcall", "limit_jobs", "retry", "pcall_now", "rate_limit" }) do
        measure("overhead." .. impl .. "." .. interp, interp, "bench/lua/overhead.lua", impl, N.calls)
    end
end
measure("overhead.p-limit", "node", "bench/node/overhead.mjs", "p-limit", N.calls, { node = true })
measure("overhead.p-retry", "node", "bench/node/overhead.mjs", "p-retry", N.calls, { node = true })
-- 11. (rate_limit admitted at once: the rows above, and the peers)
measure("overhead.p-throttle", "node", "bench/node/overhead.mjs", "p-throttle", N.calls, { node = true })
measure("overhead.bottleneck", "node", "bench/node/overhead.mjs", "bottleneck", N.bottleneck,
        { node = true, max_rounds = 3 })
-- 4. retry under failure
for _, impl in ipairs({ "dike", "minimal" }) do
    measure("retry_fail." .. impl, "luajit", "bench/lua/retry_fail.lua", impl, N.fail)
end
-- 5. queue growth
for i, q in ipairs(N.queue) do
    for _, impl in ipairs({ "dike", "minimal" }) do
        measure("queue." .. impl .. "." .. i, "luajit", "bench/lua/queue.lua", impl, q)
    end
end
-- 6. array mode, rows of 1, 16 and 64 doubles
for _, w in ipairs(WIDTHS) do
    for _, impl in ipairs({ "array", "list" }) do
        measure("array." .. impl .. w, "luajit", "bench/lua/array.lua", impl .. w, N.array)
    end
end
-- 7. circuit breaker and timeout on calls that do not wait; timeout on calls that wait once
for _, interp in ipairs({ "luajit", "lua54" }) do
    for _, impl in ipairs({ "circuit_breaker", "timeout" }) do
        measure("overhead." .. impl .. "." .. interp, interp, "bench/lua/overhead.lua", impl, N.calls)
    end
end
for _, impl in ipairs({ "pcall_wait", "timeout_wait" }) do
    measure("overhead." .. impl .. ".luajit", "luajit", "bench/lua/overhead.lua", impl, N.wait)
end
for _, impl in ipairs({ "opossum", "cockatiel" }) do
    measure("breaker." .. impl, "node", "bench/node/breaker.mjs", impl, N.node_calls, { node = true })
end
-- 8. the cost of an event
for _, impl in ipairs({ "none", "noop", "noop_main" }) do
    measure("events." .. impl, "luajit", "bench/lua/events.lua", impl, N.events)
end
-- 9. max_concurrent_batches under the demo service's load (needs wrk: `--smoke` skips it without)
for _, impl in ipairs(CAPS) do
    measure("cap." .. impl, "luajit", "bench/lua/batch_cap.lua", impl, N.cap, { wrk = true })
end
-- 10. dedup by key, beside dataloader's cache
for _, impl in ipairs({ "key", "nokey" }) do
    measure("dedup." .. impl, "luajit", "bench/lua/dedup.lua", impl, N.dedup)
end
for _, impl in ipairs({ "cached", "uncached" }) do
    measure("dedup.dataloader." .. impl, "node", "bench/node/dedup.mjs", impl, N.dedup, { node = true })
end
-- 12. callers waiting in one rate limiter (bottleneck at 10,000 takes ~25 s: one round)
for i, q in ipairs(N.rate_wait) do
    measure("rate_wait.dike." .. i, "luajit", "bench/lua/rate_limit.lua", "waiting", q)
    measure("rate_wait.p-throttle." .. i, "node", "bench/node/rate_limit.mjs", "p-throttle-waiting", q,
            { node = true })
    measure("rate_wait.bottleneck." .. i, "node", "bench/node/rate_limit.mjs", "bottleneck-waiting", q,
            { node = true, max_rounds = i == #N.rate_wait and 1 or 3 })
end
-- 13. the admitted rate over a 2 s run (each run takes 2 s: three rounds)
measure("rate_run.dike", "luajit", "bench/lua/rate_limit.lua", "rate", N.rate_run, { max_rounds = 3 })
for _, peer in ipairs({ "p-throttle", "bottleneck" }) do
    measure("rate_run." .. peer, "node", "bench/node/rate_limit.mjs", peer .. "-rate", N.rate_run,
            { node = true, max_rounds = 3 })
end
-- 14. limits shared through Redis (each run starts its own redis-server and worker processes)
for _, impl in ipairs({ "ping4", "jobs4", "jobs1", "rate4", "rl4", "cb4", "cb4sync" }) do
    measure("store." .. impl, "luajit", "bench/lua/store.lua", impl, N.store)
end
for _, impl in ipairs({ "cb1", "cb1sync" }) do
    measure("store." .. impl, "luajit", "bench/lua/store.lua", impl, N.store_seq)
end
measure("store.handoff", "luajit", "bench/lua/store.lua", "handoff", N.handoff)
-- 15. limits shared by nginx's workers (each run starts its own nginx and redis-server; N = seconds of wrk)
for _, impl in ipairs({ "bare", "none", "sd", "rd" }) do
    measure("ngx." .. impl, "luajit", "bench/lua/ngx_store.lua", impl, N.ngx_seconds)
end

---------------------------------------------------------------- running

local have_node = not opts.smoke and exists("node") and
    capture("test -d bench/node_modules/dataloader && echo yes") == "yes"
local time_bin = "/usr/bin/time"
-- GNU time (Debian package `time`) for the peak RSS; without it the column stays empty.
local have_time = capture(time_bin .. " -v true 2>&1 >/dev/null | grep -c 'Maximum resident'") == "1"

local function command_of(m, time_file)
    local I = INTERP[m.interp]
    local parts = {}
    local env_keys = {}
    for k in pairs(I.env) do env_keys[#env_keys + 1] = k end
    sort(env_keys)
    for _, k in ipairs(env_keys) do parts[#parts + 1] = k .. "=" .. shell_quote(I.env[k]) end
    if time_file then
        parts[#parts + 1] = time_bin .. " -v -o " .. shell_quote(time_file)
    end
    for _, a in ipairs(I.argv) do parts[#parts + 1] = a end
    if m.node and m.mem then parts[#parts + 1] = "--expose-gc" end
    parts[#parts + 1] = m.script
    parts[#parts + 1] = m.impl
    parts[#parts + 1] = tostring(m.n)
    if m.mem then parts[#parts + 1] = "mem" end
    return concat(parts, " ")
end

local function parse_result(out)
    local line = out:match("\nresult ([^\n]*)") or out:match("^result ([^\n]*)")
    if not line then return nil end
    local r = {}
    for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) or v end
    if type(r.seconds) ~= "number" or type(r.ops) ~= "number" then return nil end
    return r
end

os.execute("mkdir -p " .. shell_quote(opts.out))
local runs = {} -- key -> list of results
local failures = {}
local started = os.time()
local clock0 = os.clock()

local function run_one(m, round)
    local base = format("%s/%s.%d", opts.out, m.key, round)
    local time_file = have_time and not m.mem and (base .. ".time") or nil
    local cmd = command_of(m, time_file)
    m.command = command_of(m, nil)
    local ok = os.execute(cmd .. " >" .. shell_quote(base .. ".out") .. " 2>" .. shell_quote(base .. ".err"))
    local out = read_all(base .. ".out") or ""
    local r = (ok == true or ok == 0) and parse_result(out) or nil
    if not r then
        failures[#failures + 1] = format("%s (round %d): %s\n%s", m.key, round, cmd,
                                         (read_all(base .. ".err") or ""):sub(1, 2000))
        return
    end
    if time_file then
        local t = read_all(time_file) or ""
        r.rss_kib = tonumber(t:match("Maximum resident set size %(kbytes%): (%d+)"))
    end
    local list = runs[m.key] or {}
    runs[m.key] = list
    list[#list + 1] = r
end

local have_wrk = exists("wrk")
local selected = {}
for _, m in ipairs(M) do
    if (not m.node or have_node) and (not m.wrk or have_wrk)
        and (not opts.only or m.key:sub(1, #opts.only) == opts.only) then
        selected[#selected + 1] = m
    end
end
io.stderr:write(format("bench: %d measurements x %d rounds%s\n", #selected, opts.runs,
                       have_node and "" or " (no Node peers)"))
local load_before = capture("cat /proc/loadavg")
for round = 1, opts.runs do
    local t0 = os.time()
    for _, m in ipairs(selected) do
        -- Memory readings are deterministic: three rounds are plenty. Long runs set their own cap.
        local cap = m.max_rounds or (m.mem and 3)
        if not cap or round <= cap then run_one(m, round) end
    end
    io.stderr:write(format("bench: round %d/%d done (%ds)\n", round, opts.runs, os.time() - t0))
end
local load_after = capture("cat /proc/loadavg")
local elapsed = os.time() - started

if #failures > 0 then
    for _, f in ipairs(failures) do io.stderr:write("bench: FAILED ", f, "\n") end
end

---------------------------------------------------------------- figures

local function median(xs)
    if #xs == 0 then return nil end
    local s = {}
    for i, x in ipairs(xs) do s[i] = x end
    sort(s)
    local k = #s
    if k % 2 == 1 then return s[(k + 1) / 2] end
    return (s[k / 2] + s[k / 2 + 1]) / 2
end

local function field(key, name)
    local list = runs[key]
    if not list then return nil end
    local xs = {}
    for _, r in ipairs(list) do
        if type(r[name]) == "number" then xs[#xs + 1] = r[name] end
    end
    return median(xs)
end

--- Median seconds per operation.
local function per_op(key)
    local list = runs[key]
    if not list then return nil end
    local xs = {}
    for _, r in ipairs(list) do xs[#xs + 1] = r.seconds / r.ops end
    return median(xs)
end

local function ns(key) local s = per_op(key) return s and s * 1e9 end

---------------------------------------------------------------- the table

-- Each row: what, its figure, and its ratio to the workload's reference row.
-- Ratios are of costs (time per operation): 1.00 = as fast as the reference.
local rows, targets = {}, {}
local function row(workload, label, key, unit, ref_key, note)
    local v = per_op(key)
    local r = { workload = workload, label = label, key = key, unit = unit, note = note }
    if v then
        if unit == "calls/s" or unit == "req/s" then r.value = 1 / v
        elseif unit == "us/call" then r.value = v * 1e6
        elseif unit == "admitted" then r.value = field(key, "ratio") -- a ratio the run reports
        else r.value = v * 1e9 end
        local ref = ref_key and per_op(ref_key)
        if ref then r.ratio = v / ref end
        r.rss = field(key, "rss_kib")
        r.bytes = field(key .. ".mem", "bytes_per_caller")
    end
    rows[#rows + 1] = r
    return r
end

local function target(name, value, limit, how)
    targets[#targets + 1] = { name = name, value = value, limit = limit, how = how,
                              met = value ~= nil and value <= limit }
end

local W1 = format("1. batch, %s callers", N.batch)
row(W1, "hand-written minimal batcher (LuaJIT)", "batch.minimal.luajit", "calls/s", "batch.minimal.luajit")
row(W1, "the same, held to dike's contract (LuaJIT)", "batch.contract.luajit", "calls/s", "batch.minimal.luajit")
row(W1, "dike.batch (LuaJIT)", "batch.dike.luajit", "calls/s", "batch.minimal.luajit")
row(W1, "dike.batch (Lua 5.4)", "batch.dike.lua54", "calls/s", "batch.minimal.luajit")
row(W1, "dataloader 2.2.3 (Node)", "batch.dataloader", "calls/s", "batch.minimal.luajit")
row(W1, "dike.batch, spawn(load, {i}) then join all (LuaJIT)", "batch.join.luajit", "calls/s",
    "batch.minimal.luajit")
row(W1, "dike.batch, plain coroutine callers (LuaJIT)", "batch.wrap.luajit", "calls/s", "batch.minimal.luajit")

local W1b = format("1b. tasks, %s spawned", N.tasks)
for _, interp in ipairs({ "luajit", "lua54" }) do
    local L = " (" .. INTERP[interp].label .. ")"
    row(W1b, "spawn to finish, empty task" .. L, "tasks.empty." .. interp, "ns/call", "tasks.empty." .. interp)
    row(W1b, "spawn + sleep(0) + finish" .. L, "tasks.sleep0." .. interp, "ns/call", "tasks.empty." .. interp)
end

local W2 = format("2. limit_jobs, %s calls", N.calls)
local W3 = format("3. retry success, %s calls", N.calls)
for _, interp in ipairs({ "luajit", "lua54" }) do
    local L = " (" .. INTERP[interp].label .. ")"
    local pc = "overhead.pcall." .. interp
    row(W2, "bare call" .. L, "overhead.bare." .. interp, "ns/call", pc)
    row(W2, "bare pcall" .. L, pc, "ns/call", pc)
    row(W2, "dike.limit_jobs{limit = 10}" .. L, "overhead.limit_jobs." .. interp, "ns/call", pc)
end
row(W2, "p-limit (Node), ratio to dike (LuaJIT)", "overhead.p-limit", "ns/call", "overhead.limit_jobs.luajit")
for _, interp in ipairs({ "luajit", "lua54" }) do
    row(W3, "dike.retry{attempts = 3} (" .. INTERP[interp].label .. "), ratio to its bare pcall",
        "overhead.retry." .. interp, "ns/call", "overhead.pcall." .. interp)
end
row(W3, "p-retry 6 (Node), ratio to dike (LuaJIT)", "overhead.p-retry", "ns/call", "overhead.retry.luajit")

local W4 = format("4. retry, %s calls failing once", N.fail)
row(W4, "hand-written retry (LuaJIT)", "retry_fail.minimal", "us/call", "retry_fail.minimal")
row(W4, "dike.retry{attempts = 2, delay = 0}", "retry_fail.dike", "us/call", "retry_fail.minimal")

local W5 = "5. queue growth, limit 1"
for i, q in ipairs(N.queue) do
    row(W5, format("dike.limit_jobs, %d waiting", q), "queue.dike." .. i, "ns/call", "queue.dike.1")
end
for i, q in ipairs(N.queue) do
    row(W5, format("hand-written FIFO, %d waiting", q), "queue.minimal." .. i, "ns/call", "queue.minimal.1")
end

local W6 = format("6. array mode, %s callers, a row of W doubles each", N.array)
for _, w in ipairs(WIDTHS) do
    row(W6, format("list mode, W = %d", w), "array.list" .. w, "ns/call", "array.list" .. w)
    row(W6, format("array mode, W = %d, ratio to list mode", w), "array.array" .. w, "ns/call", "array.list" .. w)
end

local W7 = format("7. circuit_breaker and timeout, %s calls (%s that wait once)", N.calls, N.wait)
for _, interp in ipairs({ "luajit", "lua54" }) do
    local L = " (" .. INTERP[interp].label .. "), ratio to its bare pcall"
    row(W7, "dike.circuit_breaker{} (closed)" .. L, "overhead.circuit_breaker." .. interp, "ns/call",
        "overhead.pcall." .. interp)
    row(W7, "dike.timeout{seconds = 10}, returning in time" .. L, "overhead.timeout." .. interp, "ns/call",
        "overhead.pcall." .. interp)
end
row(W7, "bare pcall of a function that waits once: dike.sleep(0) (LuaJIT)", "overhead.pcall_wait.luajit", "ns/call",
    "overhead.pcall_wait.luajit")
row(W7, "dike.timeout{seconds = 10} of it (LuaJIT)", "overhead.timeout_wait.luajit", "ns/call",
    "overhead.pcall_wait.luajit")
row(W7, "opossum 8 (Node), closed, ratio to dike's breaker (LuaJIT)", "breaker.opossum", "ns/call",
    "overhead.circuit_breaker.luajit")
row(W7, "cockatiel 3 (Node), closed, ratio to dike's breaker (LuaJIT)", "breaker.cockatiel", "ns/call",
    "overhead.circuit_breaker.luajit")

local W8 = format("8. events, %s emits of a retry event", N.events)
row(W8, "no observer (LuaJIT)", "events.none", "ns/call", "events.none")
row(W8, "a no-op observer, emitted in a task (LuaJIT)", "events.noop", "ns/call", "events.none")
row(W8, "a no-op observer, emitted on the main thread (LuaJIT)", "events.noop_main", "ns/call", "events.none")

local W9 = format("9. demo service, model 2 ms + 20 us/row, wrk -c128, %d s", N.cap)
for _, impl in ipairs(CAPS) do
    local p99, batch = field("cap." .. impl, "p99_ms"), field("cap." .. impl, "mean_batch")
    local what = impl == "nocap" and "no max_concurrent_batches" or "max_concurrent_batches = " .. impl:sub(4)
    row(W9, format("%s: p99 %s ms, mean batch %s rows", what, p99 and format("%.1f", p99) or "-",
                   batch and format("%.0f", batch) or "-"), "cap." .. impl, "calls/s", "cap.nocap")
end

local W10 = format("10. dedup, %s calls over 1,000 keys", N.dedup)
for _, d in ipairs({ { "dike.batch{key = ...}", "dedup.key" }, { "dike.batch without key", "dedup.nokey" },
                     { "dataloader, cache (across batches)", "dedup.dataloader.cached" },
                     { "dataloader, cache: false", "dedup.dataloader.uncached" } }) do
    local sent = field(d[2], "rows_sent")
    row(W10, format("%s: %s rows sent", d[1], sent and format("%.0f", sent) or "-"), d[2], "calls/s", "dedup.key")
end
local W11 = format("11. rate_limit admitted at once, %s calls", N.calls)
for _, interp in ipairs({ "luajit", "lua54" }) do
    local L = " (" .. INTERP[interp].label .. ")"
    local pc = "overhead.pcall." .. interp
    row(W11, "bare pcall" .. L, pc, "ns/call", pc)
    row(W11, "bare pcall + one dike.now()" .. L, "overhead.pcall_now." .. interp, "ns/call", pc)
    row(W11, "dike.rate_limit{rate = 1e12, burst = 1e12}" .. L, "overhead.rate_limit." .. interp, "ns/call", pc)
end
row(W11, "p-throttle 8 (Node), ratio to dike (LuaJIT)", "overhead.p-throttle", "ns/call", "overhead.rate_limit.luajit")
row(W11, format("bottleneck 2 (Node, %d calls), ratio to dike (LuaJIT)", N.bottleneck), "overhead.bottleneck",
    "ns/call", "overhead.rate_limit.luajit")

local W12 = "12. rate_limit, callers waiting (CPU time per call)"
for i, q in ipairs(N.rate_wait) do
    row(W12, format("dike.rate_limit (LuaJIT), %d waiting", q), "rate_wait.dike." .. i, "ns/call", "rate_wait.dike.1")
end
for _, peer in ipairs({ "p-throttle", "bottleneck" }) do
    for i, q in ipairs(N.rate_wait) do
        row(W12, format("%s (Node), %d waiting, ratio to dike's", peer, q), "rate_wait." .. peer .. "." .. i,
            "ns/call", "rate_wait.dike." .. i)
    end
end

local W13 = format("13. rate_limit, %d callers at 5,000/s for %s", N.rate_run, N.rate_run >= 1000 and "2 s" or "0.2 s")
row(W13, "dike.rate_limit{burst = 100} (LuaJIT): admitted / (rate x 2 s + burst)", "rate_run.dike", "admitted")
row(W13, "p-throttle (Node, 500 per 100 ms): admitted / (rate x 2 s)", "rate_run.p-throttle", "admitted")
row(W13, "bottleneck (Node, reservoir 500 per 100 ms): admitted / (rate x 2 s)", "rate_run.bottleneck", "admitted")

local W14 = format("14. limits shared through Redis, %d calls, 16 callers per process", N.store)
row(W14, "floor: 2 PINGs per call (dike's client), 4 processes", "store.ping4", "calls/s", "store.ping4")
row(W14, "dike.limit_jobs{store = redis}, 4 processes", "store.jobs4", "calls/s", "store.ping4")
row(W14, "dike.limit_jobs{store = redis}, 1 process", "store.jobs1", "calls/s", "store.ping4")
row(W14, "the GCRA script (store:rate), 4 processes", "store.rate4", "calls/s", "store.ping4")
row(W14, format("dike.rate_limit{store = redis}, 4 processes: %s commands per call",
    field("store.rl4", "commands") and format("%.3f", field("store.rl4", "commands")) or "-"),
    "store.rl4", "calls/s", "store.ping4")
row(W14, format("dike.circuit_breaker{store = redis} closed, 4 processes: %s commands per call, 1 waited",
    field("store.cb4", "commands") and format("%.3f", field("store.cb4", "commands")) or "-"),
    "store.cb4", "calls/s", "store.ping4")
row(W14, "the same, waiting for the outcome's answer too (2 waited)", "store.cb4sync", "calls/s", "store.ping4")
row(W14, "dike.circuit_breaker{store = redis} closed, 1 caller: latency of a call", "store.cb1", "us/call", "store.cb1")
row(W14, "the same, waiting for the outcome's answer too", "store.cb1sync", "us/call", "store.cb1")
row(W14, "a slot handed from one process to another's queue (gap)", "store.handoff", "us/call")

local W15 = format("15. nginx, 4 workers, wrk -c 50 for %d s", N.ngx_seconds)
row(W15, "bare ngx.shared.DICT:incr counter (limit.conn's mechanism)", "ngx.bare", "req/s", "ngx.bare")
row(W15, "no guard", "ngx.none", "req/s", "ngx.bare")
row(W15, "dike.limit_jobs{store = shared_dict}", "ngx.sd", "req/s", "ngx.bare")
row(W15, "dike.limit_jobs{store = redis} (lua-resty-redis)", "ngx.rd", "req/s", "ngx.bare")

local function ratio_of(key, ref)
    local a, b = per_op(key), per_op(ref)
    return a and b and a / b or nil
end
target("batch: dike (LuaJIT) cost / minimal batcher", ratio_of("batch.dike.luajit", "batch.minimal.luajit"),
       1.5, "<= 1.5")
target("batch: dataloader calls/s / dike (LuaJIT) calls/s", ratio_of("batch.dike.luajit", "batch.dataloader"),
       0.5, "<= 0.5 (dike >= 2x)")
target("batch, joined tasks: dataloader calls/s / dike's (LuaJIT)",
       ratio_of("batch.join.luajit", "batch.dataloader"), 1 / 1.5, "<= 0.67 (dike >= 1.5x)")
target("batch, plain coroutines: dike (LuaJIT) cost / minimal batcher",
       ratio_of("batch.wrap.luajit", "batch.minimal.luajit"), 1.3, "<= 1.3")
target("spawn to finish of an empty task (LuaJIT), ns", ns("tasks.empty.luajit"), 250, "<= 250 (aim)")
target("limit_jobs / bare pcall (LuaJIT)", ratio_of("overhead.limit_jobs.luajit", "overhead.pcall.luajit"),
       1.5, "<= 1.5")
target("retry success / bare pcall (LuaJIT)", ratio_of("overhead.retry.luajit", "overhead.pcall.luajit"),
       1.5, "<= 1.5")
target(format("queue: per call at %d / at %d waiting", N.queue[3], N.queue[1]),
       ratio_of("queue.dike.3", "queue.dike.1"), 1.3, "<= 1.3")
target("circuit_breaker closed / bare pcall (LuaJIT)",
       ratio_of("overhead.circuit_breaker.luajit", "overhead.pcall.luajit"), 1.5, "<= 1.5")
target("timeout returning in time / bare pcall (LuaJIT)",
       ratio_of("overhead.timeout.luajit", "overhead.pcall.luajit"), 1.5, "<= 1.5")
target("circuit_breaker: dike (LuaJIT) cost / opossum's",
       ratio_of("overhead.circuit_breaker.luajit", "breaker.opossum"), 1, "<= 1 (aim: dike ahead)")
target("circuit_breaker: dike (LuaJIT) cost / cockatiel's",
       ratio_of("overhead.circuit_breaker.luajit", "breaker.cockatiel"), 1, "<= 1 (aim: dike ahead)")
target("rate_limit admitted at once / bare pcall (LuaJIT)",
       ratio_of("overhead.rate_limit.luajit", "overhead.pcall.luajit"), 1.5, "<= 1.5")
target(format("rate_limit: CPU per call at %d / at %d waiting", N.rate_wait[3], N.rate_wait[1]),
       ratio_of("rate_wait.dike.3", "rate_wait.dike.1"), 1.3, "<= 1.3")
do
    local r = field("rate_run.dike", "ratio")
    target("rate_limit: admitted over 2 s vs rate x 2 s + burst, relative deviation", r and math.abs(1 - r),
           0.02, "<= 0.02")
end
target("rate_limit at once: dike (LuaJIT) cost / p-throttle's",
       ratio_of("overhead.rate_limit.luajit", "overhead.p-throttle"), 1, "<= 1 (aim)")
target("rate_limit at once: dike (LuaJIT) cost / bottleneck's",
       ratio_of("overhead.rate_limit.luajit", "overhead.bottleneck"), 1, "<= 1 (aim)")
target(format("rate_limit, %d waiting: dike CPU per call / p-throttle's", N.rate_wait[3]),
       ratio_of("rate_wait.dike.3", "rate_wait.p-throttle.3"), 1, "<= 1 (aim)")
target(format("rate_limit, %d waiting: dike CPU per call / bottleneck's", N.rate_wait[3]),
       ratio_of("rate_wait.dike.3", "rate_wait.bottleneck.3"), 1, "<= 1 (aim)")
local mem_dike = field("batch.dike.luajit.mem", "bytes_per_caller")
-- Not targets of the issue: where the batch figures come from (bench/RESULTS.md, "Floors").
local floors = {
    { name = "batch: dike (LuaJIT) / the minimal logic held to dike's contract",
      value = ratio_of("batch.dike.luajit", "batch.contract.luajit") },
    { name = "batch: the contract floor / the minimal batcher",
      value = ratio_of("batch.contract.luajit", "batch.minimal.luajit") },
    { name = "rate_limit at once (LuaJIT) / bare pcall + one dike.now()",
      value = ratio_of("overhead.rate_limit.luajit", "overhead.pcall_now.luajit") },
    { name = "bare pcall + one dike.now() / bare pcall (LuaJIT)",
      value = ratio_of("overhead.pcall_now.luajit", "overhead.pcall.luajit") },
    { name = "rate_limit at once (Lua 5.4) / bare pcall + one dike.now()",
      value = ratio_of("overhead.rate_limit.lua54", "overhead.pcall_now.lua54") },
}
target("memory per waiting batch caller (LuaJIT), bytes", mem_dike, 600, "<= 600")
target("array mode, W = 1: cost / list mode's", ratio_of("array.array1", "array.list1"), 1.0, "<= 1.0")
target("array mode, W = 64: cost / list mode's", ratio_of("array.array64", "array.list64"), 1 / 3,
       "<= 0.33 (>= 3x throughput)")

target("limit_jobs through Redis: commands per admitted call (4 processes)", field("store.jobs4", "commands"),
       2.01, "<= 2 (1 acquire, 1 release, 0 renewals)")
target("rate_limit through Redis: commands per admitted call (4 processes)", field("store.rl4", "commands"),
       1.01, "<= 1 (one script)")
target("circuit_breaker through Redis, closed: commands per call (4 processes)", field("store.cb4", "commands"),
       2.01, "<= 2 (admit; outcome not waited for)")
floors[#floors + 1] = { name = "circuit_breaker through Redis: cost, outcome waited / not waited",
                        value = ratio_of("store.cb4sync", "store.cb4") }

local function fmt_value(v, unit)
    if v == nil then return "-" end
    if unit == "calls/s" or unit == "req/s" then return format("%.0f", v) end
    if unit == "admitted" then return format("%.4f", v) end
    if v >= 100 then return format("%.0f", v) end
    if v >= 10 then return format("%.1f", v) end
    return format("%.2f", v)
end
-- A target's value: small ratios (a peer far behind) keep two significant digits.
local function fmt_target(v)
    if v >= 10 then return format("%.0f", v) end
    if v < 0.01 then return format("%.2g", v) end
    return format("%.2f", v)
end
local function fmt_ratio(r) return r and format("%.2f", r) or "-" end
local function fmt_opt(v, f) return v and format(f, v) or "" end

local function text_table()
    local out = {}
    local head = { "workload", "variant", "median", "unit", "ratio", "peak RSS", "B/waiting" }
    local cells = { head }
    for _, r in ipairs(rows) do
        cells[#cells + 1] = { r.workload, r.label, fmt_value(r.value, r.unit), r.unit, fmt_ratio(r.ratio),
                              fmt_opt(r.rss and r.rss / 1024, "%.1f MiB"), fmt_opt(r.bytes, "%.0f") }
    end
    local width = {}
    for _, c in ipairs(cells) do
        for j, s in ipairs(c) do width[j] = math.max(width[j] or 0, #s) end
    end
    local last
    for i, c in ipairs(cells) do
        local line = {}
        for j, s in ipairs(c) do
            if j == 1 and i > 1 and s == last then s = "" else if j == 1 then last = c[1] end end
            local pad = (" "):rep(width[j] - #s)
            line[j] = (j >= 3 and j ~= 4) and (pad .. s) or (s .. pad)
        end
        out[#out + 1] = concat(line, "  ")
        if i == 1 then
            local rule = {}
            for j = 1, #head do rule[j] = ("-"):rep(width[j]) end
            out[#out + 1] = concat(rule, "  ")
        end
    end
    out[#out + 1] = ""
    if opts.smoke then
        out[#out + 1] = "targets: not judged at smoke sizes"
        return concat(out, "\n")
    end
    out[#out + 1] = "targets:"
    for _, t in ipairs(targets) do
        local v = t.value and fmt_target(t.value) or "-"
        out[#out + 1] = format("  %-58s %8s  %-22s %s", t.name, v, t.how,
                               t.value == nil and "not measured" or (t.met and "met" or "NOT MET"))
    end
    out[#out + 1] = "floors (cost ratios):"
    for _, f in ipairs(floors) do
        out[#out + 1] = format("  %-58s %8s", f.name, f.value and format("%.2f", f.value) or "-")
    end
    return concat(out, "\n")
end

local report = text_table()
print(report)

---------------------------------------------------------------- RESULTS.md

local function versions()
    local v = {}
    v[#v + 1] = "LuaJIT: " .. capture("luajit -v")
    v[#v + 1] = "Lua 5.4: " .. capture("lua5.4 -v")
    v[#v + 1] = "libuv (through luv): " .. capture("luajit -e 'io.write(require(\"luv\").version_string())'")
    if have_node then
        v[#v + 1] = "Node: " .. capture("node --version")
        for _, p in ipairs({ "dataloader", "p-limit", "p-retry", "yocto-queue", "retry", "opossum", "cockatiel",
                             "bottleneck", "p-throttle" }) do
            local ver = capture("node -e 'process.stdout.write(require(\"./bench/node_modules/" .. p
                                .. "/package.json\").version)'")
            v[#v + 1] = "npm " .. p .. ": " .. (ver ~= "" and ver or "?")
        end
    end
    v[#v + 1] = "dike: git " .. capture("git rev-parse --short HEAD")
        .. (capture("git status --porcelain -- lua csrc") ~= "" and " (with uncommitted library changes)" or "")
    return v
end

local function machine()
    return {
        "CPU: " .. capture("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'")
            .. ", " .. capture("nproc") .. " cores",
        "Memory: " .. capture("awk '/MemTotal/ {printf \"%.1f GiB\", $2 / 1048576}' /proc/meminfo"),
        "OS: " .. capture(". /etc/os-release && echo \"$PRETTY_NAME\"") .. ", kernel " .. capture("uname -r"),
        "Load average before / after: " .. load_before .. " / " .. load_after
            .. " (the machine is shared: compare ratios, not absolute numbers)",
    }
end

local function md_results()
    local o = {}
    local function w(s) o[#o + 1] = s or "" end
    w("# Benchmark results")
    w()
    w("Written by `make bench` (bench/run.sh, bench/run.lua) on " .. os.date("!%Y-%m-%d %H:%M UTC")
      .. format(": %d rounds, %d s.", opts.runs, elapsed))
    w("Every figure is the median of the rounds; every measurement runs in a fresh process, and")
    w("the rounds are interleaved so that the machine's")
    w("noise falls on all variants alike. A ratio is a cost ratio (time per call) against the")
    w("first row of its workload, or the row it names: 1.00 = as fast, 2.00 = twice the time.")
    w("Peak RSS is `/usr/bin/time -v`'s maximum resident set size of the timed run; B/waiting is")
    w("the heap growth per caller once all callers wait (Lua: `collectgarbage(\"count\")`, Node:")
    w("`process.memoryUsage().heapUsed`, both after full collections), coroutine included.")
    w()
    w("![chart](results.png)")
    w()
    w("## Targets")
    w()
    w("| target | measured | wanted | |")
    w("| --- | ---: | --- | --- |")
    for _, t in ipairs(targets) do
        local v = t.value and fmt_target(t.value) or "-"
        w(format("| %s | %s | %s | %s |", t.name, v, t.how,
                 t.value == nil and "not measured" or (t.met and "met" or "**not met**")))
    end
    w()
    w("## Floors: where the batch and rate_limit figures come from")
    w()
    w("| ratio of costs | measured |")
    w("| --- | ---: |")
    for _, f in ipairs(floors) do
        w(format("| %s | %s |", f.name, f.value and format("%.2f", f.value) or "-"))
    end
    w()
    w("The minimal batcher's callers are bare coroutines that pass a number and get a number. dike's")
    w("contract asks more of every caller: it is a dike task (a task record beside its coroutine, parked")
    w("and woken through the runtime's ready-queue pump, so that no queue is re-entered and any loop")
    w("driver works), it passes a sequence and gets a new one, and every batch runs in a task of its")
    w("own. `bench/lua/contract_batcher.lua` is the minimal batcher's logic held to exactly that")
    w("contract and nothing more (no checks, no cancellation, no statistics, no processing timeout).")
    w("dike.batch against it is what dike.batch's own code costs; it against the minimal batcher is")
    w("what the contract costs. On LuaJIT that is about half garbage collection (every caller")
    w("allocates four objects more than the minimal one: its task record and the record's hash part,")
    w("its call's sequence, its result; and each collection cycle traverses all 100,000 live")
    w("coroutines) and half the bookkeeping of a task: spawning, parking, waking through the pump,")
    w("finishing. A batcher whose callers are dike tasks cannot go below this floor.")
    w()
    w("A rate limiter must read the clock on every call: whether a call may run depends on the time")
    w("since the last one. On LuaJIT a bare pcall of a trivial function compiles to a few")
    w("instructions (about a nanosecond), while `dike.now()` on the luv runtime reads")
    w("`clock_gettime(CLOCK_MONOTONIC)` through LuaJIT's FFI (the clock `uv.hrtime()` reads, at")
    w("half its cost and without ending the compiled trace): a call into the kernel's vDSO of")
    w("some 25 nanoseconds. \"bare pcall + one dike.now()\" is the floor of any rate limiter on")
    w("this runtime, and `rate_limit / bare pcall <= 1.5` is out of reach by construction. What")
    w("dike.rate_limit adds to that floor is its own cost (the core's reservation through the FFI,")
    w("two counters, the call). Skipping the clock on calls admitted at once (a reading cached per")
    w("loop iteration, as nginx's limit_req does) would let a burst beyond the configured rate")
    w("through after a pause of the loop; dike does not.")
    w()
    w("## Figures")
    w()
    w("| workload | variant | median | unit | ratio | peak RSS | B/waiting |")
    w("| --- | --- | ---: | --- | ---: | ---: | ---: |")
    for _, r in ipairs(rows) do
        w(format("| %s | %s | %s | %s | %s | %s | %s |", r.workload, r.label, fmt_value(r.value, r.unit),
                 r.unit, fmt_ratio(r.ratio), fmt_opt(r.rss and r.rss / 1024, "%.1f MiB"),
                 fmt_opt(r.bytes, "%.0f")))
    end
    w()
    w("## Machine and versions")
    w()
    for _, s in ipairs(machine()) do w("- " .. s) end
    for _, s in ipairs(versions()) do w("- " .. s) end
    w()
    w("## Commands")
    w()
    w("Run from the repository root after `make build` (bench/run.sh does that, installs the")
    w("Node peers into bench/node_modules, and then runs `luajit bench/run.lua`). Each line is one")
    w("measurement; the timed runs are wrapped in `/usr/bin/time -v -o FILE`.")
    w()
    w("```")
    for _, m in ipairs(selected) do
        if m.command then w(m.command) end
    end
    w("```")
    w()
    w("## Every run")
    w()
    w("Seconds per run (the `.mem` rows: bytes per waiting caller).")
    w()
    w("| measurement | runs |")
    w("| --- | --- |")
    for _, m in ipairs(selected) do
        local list, xs = runs[m.key] or {}, {}
        for _, r in ipairs(list) do
            xs[#xs + 1] = m.mem and format("%.0f", r.bytes_per_caller or 0) or format("%.4f", r.seconds)
        end
        w(format("| %s | %s |", m.key, concat(xs, ", ")))
    end
    if #failures > 0 then
        w()
        w("## Failed runs")
        w()
        for _, f in ipairs(failures) do w("- `" .. f:gsub("\n.*", "") .. "`") end
    end
    w()
    return concat(o, "\n")
end

write_file(opts.results, md_results())

---------------------------------------------------------------- chart data

-- bench/chart.gp reads these: one file per panel, `label value [extra]` per line.
local function dat(name, lines)
    write_file(opts.out .. "/" .. name .. ".dat", concat(lines, "\n") .. "\n")
end
local function q(s) return '"' .. s:gsub('"', "'") .. '"' end
do
    local b = {}
    for _, k in ipairs({ { "minimal\\n(LuaJIT)", "batch.minimal.luajit" },
                         { "contract\\nfloor", "batch.contract.luajit" }, { "dike\\n(LuaJIT)", "batch.dike.luajit" },
                         { "dike\\n(Lua 5.4)", "batch.dike.lua54" }, { "dataloader\\n(Node)", "batch.dataloader" } }) do
        local s = per_op(k[2])
        b[#b + 1] = format("%s %.6g", q(k[1]), s and 1 / s / 1000 or 0)
    end
    dat("batch", b)
    local o = {}
    for _, k in ipairs({ { "bare", "overhead.bare.luajit" }, { "pcall", "overhead.pcall.luajit" },
                         { "limit_jobs", "overhead.limit_jobs.luajit" }, { "retry", "overhead.retry.luajit" },
                         { "p-limit", "overhead.p-limit" }, { "p-retry", "overhead.p-retry" } }) do
        o[#o + 1] = format("%s %.6g", q(k[1]), ns(k[2]) or 0)
    end
    dat("overhead", o)
    local g = {}
    for i, qn in ipairs(N.queue) do
        g[#g + 1] = format("%d %.6g %.6g", qn, ns("queue.dike." .. i) or 0, ns("queue.minimal." .. i) or 0)
    end
    dat("queue", g)
    -- The chart's ratio targets, by the start of their names.
    local t = {}
    local short = { { "batch: dike", "batch vs\\nminimal" }, { "batch: dataloader", "dataloader calls/s\\nvs dike's" },
                    { "batch, joined", "joined: dataloader\\nvs dike's" },
                    { "batch, plain", "coroutines vs\\nminimal" },
                    { "limit_jobs", "limit_jobs\\nvs pcall" }, { "retry", "retry vs\\npcall" },
                    { "queue", "queue\\n100k/1k" } }
    for _, sh in ipairs(short) do
        for _, x in ipairs(targets) do
            if x.name:sub(1, #sh[1]) == sh[1] then
                t[#t + 1] = format("%s %.6g %.6g", q(sh[2]), x.value or 0, x.limit)
                break
            end
        end
    end
    dat("targets", t)
end

io.stderr:write(format("bench: wrote %s and %s/*.dat in %d s (%.1f s of driver CPU)\n",
                       opts.results, opts.out, elapsed, os.clock() - clock0))
if #failures > 0 then
    io.stderr:write(format("bench: %d runs failed\n", #failures))
    os.exit(1)
end
