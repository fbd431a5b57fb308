--- The stress run: dike.batch, dike.limit_jobs, dike.retry and dike.rate_limit under many
-- concurrent callers with injected faults, in rounds (spec/stress/{batch,limit_jobs,retry,
-- rate_limit}.lua). After every round:
-- every call got exactly its outcome, dike.stats' gauges are back to 0 and its counters match,
-- no dike timer, task or luv handle is left, and the previous round's wrappers were collected.
-- At the end: memory (Lua heap after a full collection, and RSS) is flat across rounds.
--
--   luajit spec/stress/run.lua [--full] [--only NAME[,NAME]] [--rounds N] [--seed N] [--sanitized]
--
-- --sanitized (the ASan build's suites): RSS and the C heap are not checked, only the Lua heap.
-- ASan's quarantine and shadow memory make RSS swing by tens of MB, and its malloc does not
-- report to mallinfo2; its own checks stand in for them there.
-- The short run (the default: ctest's stress.* suites in make test) makes 330,000 calls from
-- 2,000 concurrent tasks in 3 rounds per scenario; --full (make stress) 1,000,000 batch calls,
-- 500,000 limit_jobs calls, 300,000 retry calls and 500,000 rate_limit calls from 10,000
-- concurrent tasks, in 10 rounds each. Prints the figures of every round and ends with "N passed, N failed". Paths: lua/ and
-- the build dir must be on LUA_PATH / LUA_CPATH (ctest and make stress set them), run from the
-- repository root.
local dike = require("dike")
local harness = require("spec.stress.harness")

local format, clock = string.format, os.clock

local SCENARIOS = { "batch", "limit_jobs", "retry", "rate_limit" }
local JITTERS = { "full", "equal", "decorrelated" }


-- Parameters of one round, per scenario. tasks run at once; each makes `calls` calls.
local PRESETS = {
    short = {
        rounds = 3,
        batch = { tasks = 2000, calls = 25 },
        limit_jobs = { tasks = 2000, calls = 10, limit = 64, queue = 1024, queue_timeout = 0.01 },
        retry = { tasks = 2000, calls = 10 },
        rate_limit = { tasks = 2000, calls = 10, rate = 100000 },
    },
    full = {
        rounds = 10,
        batch = { tasks = 10000, calls = 10 },
        limit_jobs = { tasks = 10000, calls = 5, limit = 256, queue = 4096, queue_timeout = 0.05 },
        retry = { tasks = 10000, calls = 3 },
        rate_limit = { tasks = 10000, calls = 5, rate = 200000 },
    },
}
local COMMON = {
    batch = { cancel_pct = 5, max_waiting_time = 0.002, max_processing_time = 0.05,
              sizes = { { target = 64, max_batch_size = 96 }, { target = 2048, max_batch_size = 4096 },
                        { target = 8, max_batch_size = 8 } } },
    limit_jobs = { cancel_pct = 5 },
    retry = { cancel_pct = 5, delay = 0.0005, max_delay = 0.002 },
    rate_limit = { cancel_pct = 5, burst = 64, max_wait = 0.005 },
}

-- How much memory may grow across a scenario's rounds. The Lua heap (after a full collection)
-- and the C heap in use may grow by 256 KB from round 1 to the last: dike's ready queue keeps
-- the capacity of its largest burst, and malloc's per-thread caches hold a few freed chunks.
-- A leak of one small table or one malloc'd block per call is MBs per round, far above it.
-- RSS is compared from the middle round to the last (at most +10% + 8 MB): allocators keep
-- the pages of earlier rounds' peaks (10,000 coroutines at once), and with LuaJIT's allocator
-- that high-water mark climbs for a few rounds before it settles.
local HEAP_SLACK_KB, RSS_SLACK_KB, RSS_SLACK_RATIO = 256, 8192, 0.10

local function parse(argv)
    local o = { preset = "short", only = nil, rounds = nil, seed = 20240601, sanitized = false }
    local i = 1
    while i <= #argv do
        local a = argv[i]
        if a == "--full" then o.preset = "full"
        elseif a == "--only" then i = i + 1; o.only = argv[i]
        elseif a == "--rounds" then i = i + 1; o.rounds = tonumber(argv[i])
        elseif a == "--seed" then i = i + 1; o.seed = tonumber(argv[i])
        elseif a == "--sanitized" then o.sanitized = true
        else error("stress: unknown argument " .. a .. " (see the header of spec/stress/run.lua)", 0) end
        i = i + 1
    end
    return o
end

local function params(name, preset, round)
    local p = {}
    for k, v in pairs(COMMON[name]) do p[k] = v end
    for k, v in pairs(PRESETS[preset][name]) do p[k] = v end
    p.jitter = JITTERS[(round - 1) % #JITTERS + 1]
    return p
end

-- A round in a function of its own, so that no stale slot of main's stack frame keeps the
-- round's wrappers alive: once it returns, nothing but dike could still hold them.
local function run_round(scenario, p, rand, tally, weak)
    local t0, w0 = clock(), dike.now()
    local fig, wrappers = scenario.round(p, rand, tally)
    for i, w in ipairs(wrappers) do weak[i] = w end
    return fig, clock() - t0, dike.now() - w0
end

local function main(argv)
    local o = parse(argv)
    local report = harness.report()
    local rounds = o.rounds or PRESETS[o.preset].rounds
    local interp = jit and jit.version or _VERSION
    print(format("stress (%s, %s): %d rounds per scenario, seed %d", o.preset, interp, rounds, o.seed))
    if o.sanitized then print("  (sanitized build: RSS and the C heap are not checked, the Lua heap is)") end
    local totals = { calls = 0, faults = 0, seconds = 0 }
    for _, name in ipairs(SCENARIOS) do
        if not o.only or (("," .. o.only .. ","):find("," .. name .. ",", 1, true)) then
            local scenario = require("spec.stress." .. name)
            local mem, sums = {}, {}
            for round = 1, rounds do
                local p = params(name, o.preset, round)
                local rand = harness.rng(o.seed + round * 7919 + #name)
                local tally = harness.tally()
                local weak = setmetatable({}, { __mode = "v" })
                local fig, cpu, wall = run_round(scenario, p, rand, tally, weak)
                local what = format("%s round %d", name, round)
                report:check_tally(tally, what .. ": every caller got exactly its outcome")
                report:check(fig.gauges_zero, what .. ": dike.stats gauges back to 0", { tostring(fig.stats) })
                report:check(fig.counters_match, what .. ": dike.stats counters match the calls made")
                local left = harness.leftovers()
                report:check(#left == 0, what .. ": nothing left on the loop or in dike's runtime", left)
                local lua_kb, rss_kb, c_kb = harness.memory()
                report:check(next(weak) == nil, what .. ": its wrappers were collected once unreachable")
                mem[round] = { lua = lua_kb, rss = rss_kb, c = c_kb }
                print(format("  %s: %s; %.1f s (%.1f s CPU); Lua heap %.0f KB, C heap %s KB, RSS %.1f MB",
                             what, fig.summary, wall, cpu, lua_kb, c_kb and format("%.0f", c_kb) or "?",
                             (rss_kb or 0) / 1024))
                totals.calls, totals.faults = totals.calls + fig.calls, totals.faults + fig.faults
                for k, v in pairs(fig) do
                    if type(v) == "number" and k ~= "max_running" then sums[k] = (sums[k] or 0) + v end
                end
                totals.seconds = totals.seconds + wall
            end
            local keys = {}
            for k in pairs(sums) do keys[#keys + 1] = k end
            table.sort(keys)
            for i, k in ipairs(keys) do keys[i] = k .. " " .. sums[k] end
            print(format("  %s, all rounds: %s", name, table.concat(keys, ", ")))
            if rounds > 1 then
                local first, mid, last = mem[1], mem[math.ceil(rounds / 2)], mem[rounds]
                report:check(last.lua <= first.lua + HEAP_SLACK_KB, format(
                    "%s: Lua heap flat across rounds (%.0f KB after round 1, %.0f KB after round %d)",
                    name, first.lua, last.lua, rounds))
                if first.c and not o.sanitized then
                    report:check(last.c <= first.c + HEAP_SLACK_KB, format(
                        "%s: C heap in use flat across rounds (%.0f KB after round 1, %.0f KB after round %d)",
                        name, first.c, last.c, rounds))
                end
                if first.rss and not o.sanitized then
                    report:check(last.rss <= mid.rss * (1 + RSS_SLACK_RATIO) + RSS_SLACK_KB, format(
                        "%s: RSS flat across rounds (%.1f MB after round %d, %.1f MB after round %d)",
                        name, mid.rss / 1024, math.ceil(rounds / 2), last.rss / 1024, rounds))
                end
                print(format("  %s memory after round 1 / %d / %d: Lua heap %.0f / %.0f / %.0f KB, C heap %s,"
                             .. " RSS %.1f / %.1f / %.1f MB", name, math.ceil(rounds / 2), rounds,
                             first.lua, mid.lua, last.lua,
                             first.c and format("%.0f / %.0f / %.0f KB", first.c, mid.c, last.c) or "not measured",
                             (first.rss or 0) / 1024, (mid.rss or 0) / 1024, (last.rss or 0) / 1024))
            end
        end
    end
    print(format("stress: %d calls, %d faults injected, %.1f s", totals.calls, totals.faults, totals.seconds))
    return report:summary()
end

local ok, result = pcall(main, arg)
if not ok then
    print("stress: " .. tostring(result))
    print("0 passed, 1 failed")
    os.exit(1, true)
end
os.exit(result and 0 or 1, true)
