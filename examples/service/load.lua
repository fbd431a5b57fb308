-- The load script (`make demo-service`): start the demo service with batching on, then off,
-- then on with a per-client rate limit (mode "rate": --client-rate R, 200 by default, so the 16
-- clients wrk plays get 429s with Retry-After beyond R requests a second each), drive each with wrk,
-- and report req/s, latency percentiles, status counts (429s included), the rate limit's
-- figures and the batch-size histogram (from the service's GET /stats).
--   luajit examples/service/load.lua [--duration S] [--connections N] [--threads N]
--                                    [--modes on,off,rate] [--client-rate R] [-- SERVICE OPTIONS...]
-- Defaults: 5 s per mode, 64 connections, 2 threads; service options go to main.lua (e.g.
-- -- --fail-rate 0.05 --limit 32). Every process it starts is ended by its pid.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
assert(loadfile(here .. "paths.lua"))(here)

local uv = require("luv")
local harness = require("service.harness")
local client = require("service.client")
local json = require("service.json")

local interp = arg[-1] or "luajit"
local o = { duration = 5, connections = 64, threads = 2, modes = { "on", "off", "rate" }, client_rate = 200 }
local service_args = harness.parse_args("load.lua", {
    ["--duration"] = { "duration", "number" }, ["--connections"] = { "connections", "number" },
    ["--threads"] = { "threads", "number" }, ["--modes"] = { "modes", "list" },
    ["--client-rate"] = { "client_rate", "number" },
}, o) or { "--fail-rate", "0.01" }

local function run_mode(mode)
    local args = {}
    if mode == "off" then args[1] = "--no-batch" end
    if mode == "rate" then
        args[#args + 1] = "--client-rate"
        args[#args + 1] = tostring(o.client_rate)
    end
    for _, a in ipairs(service_args) do args[#args + 1] = a end
    local service = harness.start_service(interp, args, o.duration + 60)
    local figures, wrk = harness.wrk(service.port, o)
    local res = client.get("127.0.0.1", service.port, "/stats", 10)
    local stats = res and json.decode(res.body) or {}
    uv.kill(service.pid, "sigterm")
    local code = service.wait()
    return { mode = mode, figures = figures, stats = stats, service_code = code,
             command = service.command, wrk = wrk }
end

local function report(r)
    print(r.mode == "rate" and ("== batching on, rate limit %s requests/s per client"):format(o.client_rate)
          or ("== batching %s"):format(r.mode))
    print("   service: " .. r.command)
    print("   load:    " .. r.wrk)
    if r.figures.error then
        print("   " .. r.figures.error)
        return
    end
    for _, line in ipairs(harness.report_lines(r.figures, r.stats, o.duration)) do print(line) end
    print(("   service exit %s"):format(tostring(r.service_code)))
end

harness.run("load.lua", function()
    local results = {}
    for _, mode in ipairs(o.modes) do
        local r = run_mode(mode)
        results[#results + 1] = r
        report(r)
        print()
    end
    local by_mode = {}
    for _, r in ipairs(results) do by_mode[r.mode] = r end
    if by_mode.on and by_mode.off then
        -- Compare answers (200s) per second: a shed request (503) is cheap and fast.
        local first, second = by_mode.on, by_mode.off
        local a, b = first.figures, second.figures
        local function ok_rate(f) return (tonumber(f.status_200) or 0) / (tonumber(f.seconds) or o.duration) end
        local ra, rb = ok_rate(a), ok_rate(b)
        if a.rps and b.rps and rb > 0 then
            print(("batching %s vs %s: %.1fx the 200 responses per second (%.1f vs %.1f/s);"
                .. " p99 latency %s ms vs %s ms"):format(first.mode, second.mode, ra / rb, ra, rb,
                                                          a.p99_ms, b.p99_ms))
        end
    end
end)
