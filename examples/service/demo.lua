-- A short run of the demo service (part of `make demo`): the service and 32 keep-alive
-- client connections in this one process, one second with batching on, one with it off.
-- limit_jobs admits 24 requests at a time (the rest get 503) and 5% of model calls fail
-- (dike.retry calls again); a client that gets 503 waits 10 ms before it asks again.
-- Then an outage: the model fails every call for 0.8 s, without and with a circuit breaker.
-- `make demo-service` and `make demo-outage` run the real thing under wrk.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "../?.lua;" .. package.path

local dike = require("dike")
local service = require("service.app")
local client = require("service.client")

local CONNECTIONS, SECONDS = 32, 1
local OPTIONS = { limit = 24, fail_rate = 0.05, seed = 7 }

local function run(batch, extra, seconds)
    local opts = { batch = batch }
    for k, v in pairs(OPTIONS) do opts[k] = v end
    for k, v in pairs(extra or {}) do opts[k] = v end
    local server, app = assert(service.start(0, opts))
    local deadline = dike.now() + (seconds or SECONDS)
    local wrong = 0
    local loops = {}
    for c = 1, CONNECTIONS do
        loops[c] = function()
            local conn = assert(client.connect("127.0.0.1", server.port))
            local i = 0
            while dike.now() < deadline do
                i = i + 1
                local x = c * 1000 + i
                local res = conn:get("/predict?x=" .. x, 5)
                if not res then break end
                if res.status == 503 then dike.sleep(0.01) end -- a polite client backs off
                if res.status == 200 and res.body ~= ('{"x":%d,"y":%d}'):format(x, 2 * x + 1) then
                    wrong = wrong + 1
                end
            end
            conn:close()
        end
    end
    dike.gather(loops)
    server:close()
    local s = app.stats()
    local label = extra and (extra.breaker and "breaker on " or "breaker off")
        or ("batching " .. (batch and "on " or "off"))
    print(("%s: %s"):format(label, service.summary(s)))
    if wrong > 0 then error(wrong .. " wrong answers") end
    return s
end

dike.run(function()
    print(("== the demo service: %d keep-alive connections for %d s each; limit_jobs limit %d (503 beyond),"
        .. " %d%% of model calls fail (retried)"):format(CONNECTIONS, SECONDS, OPTIONS.limit, OPTIONS.fail_rate * 100))
    local on = run(true)
    local off = run(false)
    local ok_on, ok_off = on.server.responses["200"] or 0, off.server.responses["200"] or 0
    print(("-- batching answered %.1fx the requests: %d model calls served %d rows (vs %d for %d)"):format(
        ok_off > 0 and ok_on / ok_off or 0, on.model.calls, on.model.rows, off.model.calls, off.model.rows))
    print()
    print("== an outage: every model call fails from 0.3 s to 1.1 s; 1.5 s of load, without and with"
        .. " dike.circuit_breaker{open_for = 0.2} in front of the model (CircuitOpen -> 503)")
    local outage = { fail_rate = 0, outage_start = 0.3, outage_for = 0.8, open_for = 0.2 }
    outage.breaker = false
    local without = run(true, outage, 1.5)
    outage.breaker = true
    local with = run(true, outage, 1.5)
    local a, b = without.outage.model_calls, with.outage.model_calls
    print(("-- while the model was down, %d calls reached it without the breaker, %d with it (%.0f%% fewer)")
        :format(a, b, a > 0 and 100 * (1 - b / a) or 0))
end)
