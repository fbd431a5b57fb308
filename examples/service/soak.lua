-- The soak (`make soak`): the demo service under wrk for a minute with injected model failures
-- (dike.retry retries them) and a limit that sheds load (deliberate 503s). Every second it
-- samples the service's RSS (/proc/PID/status VmRSS) and Lua heap (GET /stats?gc=1: the heap
-- as found and the live heap a full collection leaves); then it checks that nothing went
-- wrong and that memory stayed flat, prints the figures, and ends with "N passed, N failed"
-- (exit 1 if any check failed).
--   luajit examples/service/soak.lua [--duration S] [--connections N] [--threads N]
--       [--warm-up S] [--interval S] [--max-rss-growth PCT] [--max-heap-growth PCT]
--       [--series FILE] [-- SERVICE OPTIONS...]
-- Defaults: 60 s, 64 connections, 2 threads; service options "--fail-rate 0.05 --limit 32
-- --queue 16" (64 connections against 32 running + 16 queued: the other 16 get 503 at once).
-- Memory: warm-up is the first half (while the JIT compiles traces the live heap grows, and RSS
-- with it in steps; with -joff both are flat from the first second). RSS follows the heap's
-- peaks (what a collection frees mostly stays mapped), so a later, higher peak can still add a
-- step: over the second half RSS may grow by less than --max-rss-growth, which leaves room for
-- two such steps and not three. The live heap's maximum over the last quarter must stay within
-- --max-heap-growth of the third quarter's (maxima, since a sample taken while fewer requests
-- are in flight dips). What full runs measured, and so why the defaults are what they are, is in
-- docs/service.md ("Soak"). Samples come every min(1, duration / 12) s; --series FILE
-- writes them ("t rss_kib live_kib heap_kib" a line).
-- Every process it starts is ended by its pid, also when a check or the script fails.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
assert(loadfile(here .. "paths.lua"))(here)

local uv = require("luv")
local dike = require("dike")
local client = require("service.client")
local json = require("service.json")
local harness = require("service.harness")

local floor = math.floor
local interp = arg[-1] or "luajit"
local o = { duration = 60, connections = 64, threads = 2, max_rss_growth = 6, max_heap_growth = 10 }
local service_args = { "--fail-rate", "0.05", "--limit", "32", "--queue", "16" }
do
    local flags = { ["--series"] = { "series", "string" } }
    for _, name in ipairs({ "duration", "connections", "threads", "warm-up", "interval",
                            "max-rss-growth", "max-heap-growth" }) do
        flags["--" .. name] = { (name:gsub("%-", "_")), "number" }
    end
    service_args = harness.parse_args("soak.lua", flags, o) or service_args
    o.warm_up = o.warm_up or o.duration / 2
    o.interval = o.interval or math.min(1, o.duration / 12)
end

-- Every gauge of every layer in GET /stats: 0 once no call is in flight.
local GAUGES = {
    limit_jobs = { "running", "queued" },
    batch = { "queued_calls", "queued_rows", "running_batches", "waiting" },
    device = { "running", "queued" },
}

local function busy_gauges(stats)
    local busy = {}
    for layer, names in pairs(GAUGES) do
        local s = stats[layer]
        if s == nil and layer ~= "batch" then
            busy[#busy + 1] = layer .. " missing"
        end
        for _, name in ipairs(s and names or {}) do
            if s[name] ~= 0 then busy[#busy + 1] = ("%s.%s = %s"):format(layer, name, tostring(s[name])) end
        end
    end
    table.sort(busy)
    return busy
end

local function get_stats(port, path)
    local res, err = client.get("127.0.0.1", port, path or "/stats", 5)
    if not res then return nil, err end
    if res.status ~= 200 then return nil, "status " .. res.status end
    local ok, stats = pcall(json.decode, res.body)
    if not ok then return nil, stats end
    return stats
end

local function rss_kib(pid)
    local f = io.open("/proc/" .. pid .. "/status")
    if not f then return nil end
    local text = f:read("*a")
    f:close()
    return tonumber(text:match("VmRSS:%s*(%d+) kB"))
end

-- Sample RSS and heap every o.interval s until sampler.stop is set. Samples: {t, rss, heap
-- (as found), live (after a full collection: GET /stats?gc=1)}.
local function sampler(pid, port)
    local s = { samples = {}, failures = {} }
    local start = dike.now()
    s.task = dike.spawn(function()
        while not s.stop do
            local t = dike.now() - start
            local rss = rss_kib(pid)
            local stats, err = get_stats(port, "/stats?gc=1")
            if s.stop then
                break -- the load ended while this sample was taken: it does not count
            elseif rss and stats then
                -- Whole KiB, as RSS is: the report prints them with %d, which Lua 5.3+ refuses
                -- for a fraction (collectgarbage("count") has them).
                s.samples[#s.samples + 1] = { t = t, rss = rss, live = floor(stats.lua.live_kib + 0.5),
                                              heap = floor(stats.lua.heap_kib + 0.5) }
            else
                s.failures[#s.failures + 1] = ("at %.1f s: %s"):format(t, rss and tostring(err) or "no VmRSS")
            end
            local next_sample = start + t + o.interval
            while not s.stop and dike.now() < next_sample do -- short naps: stop is seen at once
                dike.sleep(math.min(0.05, next_sample - dike.now()))
            end
        end
    end)
    return s
end

-- first, after warm-up, max, last of one series; growth after warm-up in KiB and %.
local function summarise(samples, key)
    local first, warm, max, last = samples[1], nil, nil, samples[#samples]
    for _, s in ipairs(samples) do
        if not warm and s.t >= o.warm_up then warm = s end
        if not max or s[key] > max[key] then max = s end
    end
    warm = warm or last
    local growth = last[key] - warm[key]
    return { first = first[key], warm = warm[key], warm_t = warm.t, max = max[key], max_t = max.t,
             last = last[key], last_t = last.t, growth = growth, growth_pct = 100 * growth / warm[key] }
end

-- Max of `key` over the samples with t in [from, to), and their number.
local function max_between(samples, key, from, to)
    local max, n = nil, 0
    for _, s in ipairs(samples) do
        if s.t >= from and s.t < to then
            n = n + 1
            if not max or s[key] > max then max = s[key] end
        end
    end
    return max, n
end

local results = { passed = 0, failed = 0 }
local function check(ok, name, detail)
    if ok then results.passed = results.passed + 1 else results.failed = results.failed + 1 end
    print(("%s %s%s"):format(ok and "ok  " or "FAIL", name, detail and ": " .. detail or ""))
end

harness.run("soak.lua", function()
    local service = harness.start_service(interp, service_args, o.duration + 60)
    print("== soak: " .. o.duration .. " s")
    print("   service: " .. service.command .. "   (pid " .. service.pid .. ")")
    local sampling = sampler(service.pid, service.port)
    local figures, wrk = harness.wrk(service.port, o)
    sampling.stop = true
    print("   load:    " .. wrk)

    -- The load has stopped: the requests wrk left in flight finish within milliseconds.
    local stopped, idle = dike.now(), nil
    local busy
    repeat
        local stats = get_stats(service.port)
        busy = stats and busy_gauges(stats) or { "GET /stats failed" }
        if #busy == 0 then idle = dike.now() - stopped else dike.sleep(0.05) end
    until idle or dike.now() - stopped > 2
    local idle_rss = rss_kib(service.pid)
    sampling.task:join()

    uv.kill(service.pid, "sigterm")
    local code = service.wait(15)
    if code == nil then
        uv.kill(service.pid, "sigkill")
        service.wait()
    end
    local final = harness.final_stats(service) or {}

    if figures.error then
        check(false, "wrk ran", figures.error)
    else
        for _, line in ipairs(harness.report_lines(figures, final, o.duration)) do print(line) end
    end
    local lj, rt, server = final.limit_jobs or {}, final.retry or {}, final.server or {}
    print(("   shed         %d rejected by limit_jobs (limit %s, queue %s); %d of %d model calls failed"
        .. " (injected), %d retries"):format(lj.rejected or 0, tostring(lj.limit), tostring(final.options
        and final.options.queue), final.model and final.model.failures or 0,
        final.model and final.model.calls or 0, rt.retries or 0))
    local rss, live, heap
    local samples = sampling.samples
    if #samples >= 2 then
        rss, heap = summarise(samples, "rss"), summarise(samples, "heap")
        live = summarise(samples, "live")
        for _, m in ipairs({ { "RSS", rss }, { "live heap", live }, { "heap found", heap } }) do
            local s = m[2]
            print(("   %-12s first %d KiB, after warm-up (%.0f s) %d KiB, max %d KiB (%.0f s), last %d KiB"
                .. " (%.0f s): %+d KiB (%+.1f%%) after warm-up"):format(m[1], s.first, s.warm_t, s.warm,
                s.max, s.max_t, s.last, s.last_t, s.growth, s.growth_pct))
        end
        print(("   idle         RSS %s KiB once the load stopped; %d samples, one per %g s"):format(
            tostring(idle_rss), #samples, o.interval))
    end
    print(("   service exit %s"):format(tostring(code)))
    print()
    if o.series then
        local f = assert(io.open(o.series, "w"))
        f:write("# t_s rss_kib live_kib heap_kib\n")
        for _, s in ipairs(samples) do f:write(("%.3f %d %d %d\n"):format(s.t, s.rss, s.live, s.heap)) end
        f:close()
    end

    -- The checks.
    local _, counts = harness.statuses(figures)
    local others = {}
    for status, n in pairs(counts) do
        if status ~= "200" and status ~= "503" then others[#others + 1] = status .. " x " .. n end
    end
    check(#others == 0 and (counts["200"] or 0) > 0, "every response wrk got was 200 or a deliberate 503",
          #others > 0 and table.concat(others, ", ") or nil)
    check((counts["503"] or 0) > 0 and (lj.rejected or 0) > 0, "the limit shed load (503s)",
          ("%d 503s"):format(counts["503"] or 0))
    check((rt.retries or 0) > 0 and (rt.failures or 1) == 0, "injected failures were retried, none failed a request",
          ("%s retries, %s failures"):format(tostring(rt.retries), tostring(rt.failures)))
    check(figures.wrong == "0", "every 200's body was right", "wrong bodies " .. tostring(figures.wrong))
    -- The server closes a keep-alive connection only on its idle timeout (30 s; wrk's are never
    -- idle) or at shutdown (after wrk): wrk counts no read error for a closed connection here.
    check(figures.errors == "connect=0 read=0 write=0 timeout=0", "no socket errors or timeouts",
          tostring(figures.errors))
    check(idle ~= nil, "every dike.stats gauge back to 0 after the load stopped",
          idle and ("after %.0f ms"):format(idle * 1000) or table.concat(busy, ", "))
    local answered = 0
    for _, n in pairs(server.responses or {}) do answered = answered + n end
    check(server.requests ~= nil and server.requests == answered and #busy_gauges(final) == 0,
          "every request the service read was answered; gauges 0 at exit",
          ("%s requests, %d responses"):format(tostring(server.requests), answered))
    check(code == 0, "the service exited 0 on SIGTERM", "exit " .. tostring(code))
    check(#sampling.failures == 0 and #samples >= 2, "every sample taken",
          #sampling.failures > 0 and table.concat(sampling.failures, "; ") or #samples .. " samples")
    if rss then
        check(rss.growth_pct < o.max_rss_growth, ("RSS grew less than %g%% after warm-up"):format(o.max_rss_growth),
              ("%+d KiB (%+.1f%%)"):format(rss.growth, rss.growth_pct))
        -- Live heap (what a full collection leaves), third quarter vs fourth: their maxima,
        -- since a sample taken while fewer requests are in flight dips.
        local d = o.duration
        local q3, n3 = max_between(samples, "live", d / 2, d * 3 / 4)
        local q4, n4 = max_between(samples, "live", d * 3 / 4, math.huge)
        check(q3 and q4 and q4 <= q3 * (1 + o.max_heap_growth / 100),
              ("live Lua heap flat across the second half (within %g%%)"):format(o.max_heap_growth),
              q3 and q4 and ("max %d KiB (%d samples) then %d KiB (%d samples)"):format(q3, n3, q4, n4)
              or "no samples")
    end
    print(("%d passed, %d failed"):format(results.passed, results.failed))
end)
os.exit(results.failed == 0 and 0 or 1)
