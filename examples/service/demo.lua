-- A short run of the demo service (part of `make demo`): the service and 32 keep-alive
-- client connections in this one process, one second with batching on, one with it off.
-- limit_jobs admits 24 requests at a time (the rest get 503) and 5% of model calls fail
-- (dike.retry calls again); a client that gets 503 waits 10 ms before it asks again.
-- `make demo-service` runs the real thing under wrk.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "../?.lua;" .. package.path

local dike = require("dike")
local service = require("service.app")
local client = require("service.client")

local CONNECTIONS, SECONDS = 32, 1
local OPTIONS = { limit = 24, fail_rate = 0.05, seed = 7 }

local function run(batch)
    local opts = { batch = batch }
    for k, v in pairs(OPTIONS) do opts[k] = v end
    local server, app = assert(service.start(0, opts))
    local deadline = dike.now() + SECONDS
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
    print(("batching %-3s: %s"):format(batch and "on" or "off", service.summary(s)))
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
end)
