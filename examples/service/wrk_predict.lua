-- wrk script for the demo service (examples/service/load.lua runs it):
--   wrk -t2 -c64 -d5s --latency -s examples/service/wrk_predict.lua http://127.0.0.1:PORT
-- Each request asks GET /predict?x=N with N varying per thread and request, as one of 8
-- clients per thread (an X-Client-Id header, for the service's per-client rate limit); each
-- response is counted by status, and a 200 whose body is not {"x":N,"y":2N+1}, or a 429
-- without a Retry-After header, counts as wrong.
-- done() prints one machine-readable line per figure ("dike-wrk <key> <value>").
-- wrk runs one Lua state per thread; setup() and done() run in the main one, which reads
-- each thread's globals `statuses` and `wrong` with thread:get, so they are globals.
-- luacheck: globals wrk setup init request response done id statuses wrong
local threads = {}

function setup(thread)
    thread:set("id", #threads + 1)
    threads[#threads + 1] = thread
end

local counter

function init()
    counter = 0
    statuses = {}
    wrong = 0
end

local CLIENTS = 8
local headers = {}

function request()
    counter = counter + 1
    headers["X-Client-Id"] = "t" .. id .. "-" .. counter % CLIENTS
    return wrk.format("GET", "/predict?x=" .. (id * 100000 + counter % 100000), headers)
end

function response(status, response_headers, body)
    statuses[status] = (statuses[status] or 0) + 1
    if status == 200 then
        local x, y = body:match('^{"x":(%-?%d+),"y":(%-?%d+)}$')
        if not x or tonumber(y) ~= 2 * tonumber(x) + 1 then wrong = wrong + 1 end
    elseif status == 429 then
        local after = tonumber(response_headers["Retry-After"])
        if not after or after < 1 or after % 1 ~= 0 then wrong = wrong + 1 end
    end
end

function done(summary, latency)
    local total = {}
    local bad = 0
    for _, t in ipairs(threads) do
        for status, n in pairs(t:get("statuses")) do total[status] = (total[status] or 0) + n end
        bad = bad + t:get("wrong")
    end
    local seconds = summary.duration / 1e6
    print(("dike-wrk requests %d"):format(summary.requests))
    print(("dike-wrk seconds %.3f"):format(seconds))
    print(("dike-wrk rps %.1f"):format(summary.requests / seconds))
    for _, p in ipairs({ 50, 90, 99, 99.9 }) do
        print(("dike-wrk p%s_ms %.3f"):format(p, latency:percentile(p) / 1000))
    end
    print(("dike-wrk max_ms %.3f"):format(latency.max / 1000))
    for status, n in pairs(total) do print(("dike-wrk status_%d %d"):format(status, n)) end
    local e = summary.errors
    print(("dike-wrk errors connect=%d read=%d write=%d timeout=%d"):format(e.connect, e.read, e.write, e.timeout))
    print(("dike-wrk wrong %d"):format(bad))
end
