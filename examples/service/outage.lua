-- The outage scenario (`make demo-outage`): the demo service's model fails every call for a
-- while, then recovers; the service runs twice under wrk, without and with a circuit breaker
-- in front of the model, and the report compares the calls that reached the model while it
-- was down, and how soon after its recovery the service answered 200 again.
--   luajit examples/service/outage.lua [--duration S] [--outage-start S] [--outage-for S]
--                                      [--open-for S] [--connections N] [--threads N]
--                                      [--min-drop P] [--max-recovery S] [-- SERVICE OPTIONS...]
-- Defaults: 10 s of load, the model down from 2 s to 7 s after the service started, open_for
-- 1 s, 64 connections. It exits 1 unless the breaker cut the model calls made during the
-- outage by at least --min-drop (default 0.95) and the service was back to 200s within
-- open_for + --max-recovery seconds (default 0.25: one trial call, with room for a loaded
-- machine). Every process it starts is ended by its pid.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
assert(loadfile(here .. "paths.lua"))(here)

local uv = require("luv")
local harness = require("service.harness")
local client = require("service.client")
local json = require("service.json")

local interp = arg[-1] or "luajit"
local o = { duration = 10, outage_start = 2, outage_for = 5, open_for = 1, connections = 64, threads = 2,
            min_drop = 0.95, max_recovery = 0.25 }
local service_args = harness.parse_args("outage.lua", {
    ["--duration"] = { "duration", "number" }, ["--outage-start"] = { "outage_start", "number" },
    ["--outage-for"] = { "outage_for", "number" }, ["--open-for"] = { "open_for", "number" },
    ["--connections"] = { "connections", "number" }, ["--threads"] = { "threads", "number" },
    ["--min-drop"] = { "min_drop", "number" }, ["--max-recovery"] = { "max_recovery", "number" },
}, o) or {}

local function run(breaker)
    local args = { "--outage-start", tostring(o.outage_start), "--outage-for", tostring(o.outage_for),
                   "--open-for", tostring(o.open_for) }
    if breaker then args[#args + 1] = "--breaker" end
    for _, a in ipairs(service_args) do args[#args + 1] = a end
    local service = harness.start_service(interp, args, o.duration + 60)
    local figures, wrk = harness.wrk(service.port, o)
    local res = client.get("127.0.0.1", service.port, "/stats", 10)
    local stats = res and json.decode(res.body) or {}
    uv.kill(service.pid, "sigterm")
    local code = service.wait()
    return { figures = figures, stats = stats, code = code, command = service.command, wrk = wrk }
end

harness.run("outage.lua", function()
    print(("== the model fails every call from %g s to %g s after the service started; %g s of load"
           .. " (%d connections)"):format(o.outage_start, o.outage_start + o.outage_for, o.duration, o.connections))
    local results = {}
    for i, breaker in ipairs({ false, true }) do
        local r = run(breaker)
        results[i] = r
        print(("== circuit breaker %s"):format(breaker and ("on (open_for " .. o.open_for .. " s)") or "off"))
        print("   service: " .. r.command)
        print("   load:    " .. r.wrk)
        if r.figures.error then error(r.figures.error, 0) end
        local statuses = harness.statuses(r.figures)
        print(("   requests     %s in %.2f s: %s"):format(r.figures.requests, tonumber(r.figures.seconds) or 0,
                                                         table.concat(statuses, ", ")))
        local out = r.stats.outage or {}
        print(("   outage       %d model calls while it was down; 200s again %s after it"):format(
            out.model_calls or -1,
            out.recovered_after and ("%.3f s"):format(out.recovered_after) or "never"))
        local cb = r.stats.circuit_breaker
        if cb then
            print(("   breaker      opened %d times, %d calls rejected (503 with Retry-After), state %s"):format(
                cb.opened, cb.rejected, cb.state))
        end
        print(("   service exit %s"):format(tostring(r.code)))
    end
    local off, on = results[1].stats.outage or {}, results[2].stats.outage or {}
    local drop = off.model_calls and off.model_calls > 0 and 1 - (on.model_calls or 0) / off.model_calls or 0
    local recovered = on.recovered_after
    print(("outage: the breaker cut the model calls made while it was down by %.1f%% (%d -> %d);"
           .. " 200s again %s after the recovery (open_for %g s)"):format(100 * drop, off.model_calls or 0,
           on.model_calls or 0, recovered and ("%.3f s"):format(recovered) or "never", o.open_for))
    local problems = {}
    if drop < o.min_drop then problems[#problems + 1] = ("drop %.3f < %.3f"):format(drop, o.min_drop) end
    if not recovered or recovered > o.open_for + o.max_recovery then
        problems[#problems + 1] = ("not back to 200s within open_for + %g s"):format(o.max_recovery)
    end
    for _, r in ipairs(results) do
        if r.code ~= 0 then problems[#problems + 1] = "the service exited " .. tostring(r.code) end
        if r.figures.wrong ~= "0" then problems[#problems + 1] = "wrong bodies: " .. tostring(r.figures.wrong) end
    end
    if #problems > 0 then error("outage: " .. table.concat(problems, "; "), 0) end
    print("outage: checks passed")
end)
