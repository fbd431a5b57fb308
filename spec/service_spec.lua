-- examples/service: the demo HTTP service on luv, in this process (server, app, client).
local dike = require("dike")
local service = require("service.app")
local client = require("service.client")
local json = require("service.json")
local http_server = require("service.server")
local uv = require("luv")

local HOST = "127.0.0.1"

-- Start the service, run fn(server, app) in a task, and always close the server.
local function with_service(opts, fn, server_opts)
    return dike.run(function()
        local server, app = assert(service.start(0, opts, server_opts))
        local ok, err = pcall(fn, server, app)
        server:close(2)
        if not ok then error(err, 0) end
    end)
end

-- Send raw bytes on a new connection; the first n responses, and (when the server is
-- expected to close, `closes`) what comes after them: "closed".
local function raw(server, bytes, n, closes)
    local conn = assert(client.connect(HOST, server.port))
    conn:send(bytes)
    local out = {}
    for i = 1, n or 1 do
        local res, err = conn:receive(5)
        out[i] = res or err
    end
    local after = closes and select(2, conn:receive(5)) or nil
    conn:close()
    return out, after
end

local function predict_ok(res, x)
    return res.status == 200 and res.body == ('{"x":%d,"y":%d}'):format(x, 2 * x + 1)
end

describe("demo service", function()
    it("answers GET /predict?x=N with y = 2x + 1, batching concurrent requests", function()
        with_service({ max_wait = 0.01 }, function(server, app)
            local calls = {}
            for i = 1, 20 do
                calls[i] = function() return client.get(HOST, server.port, "/predict?x=" .. i, 5) end
            end
            local results = dike.gather(calls)
            for i = 1, 20 do assert.is_true(predict_ok(results[i], i), results[i].body) end
            local s = app.stats()
            assert.are.equal(20, s.batch.calls)
            assert.is_true(s.batch.batches < 20, "batches: " .. s.batch.batches)
            assert.are.equal(20, s.model.rows)
        end)
    end)

    it("400 for a missing or malformed x, 404 for other paths, 405 for other methods", function()
        with_service({}, function(server)
            local function get(target) return client.get(HOST, server.port, target, 5) end
            local r = get("/predict")
            assert.are.same({ 400, '{"error":"missing query parameter x"}' }, { r.status, r.body })
            for _, x in ipairs({ "abc", "0x10", "nan", "1e999999", "", ("9"):rep(40) }) do
                assert.are.equal(400, get("/predict?x=" .. x).status, x)
            end
            assert.are.equal(200, get("/predict?x=-2.5e1").status)
            r = get("/nowhere")
            assert.are.same({ 404, '{"detail":"no route for /nowhere","status":404,"title":"Not Found"}' },
                            { r.status, r.body })
            local out = raw(server, "POST /predict?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
            assert.are.equal(405, out[1].status)
            assert.are.equal("GET", out[1].headers.allow)
        end)
    end)

    it("keep-alive: many requests on one connection; Connection: close ends it", function()
        with_service({}, function(server, app)
            local conn = assert(client.connect(HOST, server.port))
            for x = 1, 5 do assert.is_true(predict_ok(conn:get("/predict?x=" .. x, 5), x)) end
            conn:send("GET /predict?x=6 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            local res = conn:receive(5)
            assert.is_true(predict_ok(res, 6))
            assert.are.equal("close", res.headers.connection)
            assert.are.same({ nil, "closed" }, { conn:receive(5) })
            conn:close()
            assert.are.equal(1, app.stats().server.connections)
        end)
    end)

    it("HTTP/1.0 closes unless it asks for keep-alive", function()
        with_service({}, function(server)
            local out, after = raw(server, "GET /health HTTP/1.0\r\n\r\n", 1, true)
            assert.are.same({ 200, "close", "closed" }, { out[1].status, out[1].headers.connection, after })
            out = raw(server, "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /health HTTP/1.0\r\n\r\n", 2)
            assert.are.same({ "keep-alive", 200 }, { out[1].headers.connection, out[2].status })
        end)
    end)

    it("pipelined requests are answered in order, batched together", function()
        with_service({ max_wait = 0.01 }, function(server, app)
            local reqs = {}
            for x = 1, 8 do reqs[x] = ("GET /predict?x=%d HTTP/1.1\r\nHost: a\r\n\r\n"):format(x) end
            local out = raw(server, table.concat(reqs), 8)
            for x = 1, 8 do assert.is_true(predict_ok(out[x], x), tostring(out[x].body)) end
            assert.are.equal(1, app.stats().batch.batches)
        end)
    end)

    it("bad requests get 400, oversized headers 431, a long request line 414; then the connection closes", function()
        with_service({}, function(server)
            local out, after = raw(server, "GARBAGE\r\n\r\n", 1, true)
            assert.are.same({ 400, "close", "closed" }, { out[1].status, out[1].headers.connection, after })
            out = raw(server, "GET / HTTP/1.1\r\nHost: a\r\nX: " .. ("v"):rep(10000) .. "\r\n\r\n")
            assert.are.equal(431, out[1].status)
            out = raw(server, "GET /" .. ("a"):rep(10000))
            assert.are.equal(414, out[1].status)
            -- A good request before the bad one is still answered, in order.
            out = raw(server, "GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/9.9\r\n\r\n", 2)
            assert.are.same({ 200, 505 }, { out[1].status, out[2].status })
        end)
    end)

    it("survives random bytes from many connections, and still serves", function()
        with_service({}, function(server, app)
            math.randomseed(99)
            local conns = {}
            for c = 1, 40 do
                conns[c] = function()
                    local conn = assert(client.connect(HOST, server.port))
                    local t = {}
                    for j = 1, math.random(1, 3000) do t[j] = string.char(math.random(0, 255)) end
                    conn:send(table.concat(t))
                    if c % 2 == 0 then conn:close() return end -- some hang up at once
                    conn:receive(2)
                    conn:close()
                end
            end
            dike.gather(conns)
            local res, err = client.get(HOST, server.port, "/predict?x=7", 5)
            assert.is_true(res and predict_ok(res, 7), tostring(err) .. " " .. tostring(res and res.body))
            local errors = 0
            for code, n in pairs(app.stats().server.responses) do
                if code ~= "200" then errors = errors + n end
            end
            assert.is_true(errors >= 20, "error responses: " .. errors) -- one per connection that waited
        end, { head_timeout = 0.2 })
    end)

    it("a request not completed in head_timeout gets 408; an idle connection is closed", function()
        with_service({}, function(server)
            local out, after = raw(server, "GET /health HTTP/1.1\r\nHo", 1, true)
            assert.are.same({ 408, "closed" }, { out[1].status, after })
            local conn = assert(client.connect(HOST, server.port))
            assert.are.same({ nil, "closed" }, { conn:receive(2) })
            conn:close()
        end, { head_timeout = 0.05, idle_timeout = 0.05 })
    end)

    it("sheds load with 503 and Python dike's JSON body", function()
        with_service({ batch = false, limit = 2, overhead = 0.3 }, function(server)
            local calls = {}
            for i = 1, 5 do calls[i] = function() return client.get(HOST, server.port, "/predict?x=" .. i, 5) end end
            local results = dike.gather(calls)
            local by = {}
            for i = 1, 5 do by[results[i].status] = (by[results[i].status] or 0) + 1 end
            assert.are.same({ [200] = 2, [503] = 3 }, by)
            for i = 1, 5 do
                if results[i].status == 503 then
                    assert.are.equal('{"detail":"Too many concurrent requests","status":503,'
                                     .. '"title":"Service unavailable"}', results[i].body)
                end
            end
        end)
    end)

    it("retries injected model failures: every request still succeeds", function()
        with_service({ fail_rate = 0.3, attempts = 20, seed = 3 }, function(server, app)
            local calls = {}
            for i = 1, 30 do calls[i] = function() return client.get(HOST, server.port, "/predict?x=" .. i, 5) end end
            local results = dike.gather(calls)
            for i = 1, 30 do assert.is_true(predict_ok(results[i], i), results[i].body) end
            local s = app.stats()
            assert.is_true(s.retry.retries > 0)
            assert.are.equal(0, s.retry.failures)
            assert.are.equal(s.model.failures, s.retry.retries)
        end)
    end)

    it("stops reading from a peer that leaves its responses unread, and goes on when it reads", function()
        dike.run(function()
            local big = ("x"):rep(1048576)
            local server = assert(http_server.listen({ max_unsent = 65536, max_pipeline = 100,
                                                       handler = function() return 200, {}, big end }))
            local tcp = uv.new_tcp()
            dike.wrap(function(cb) tcp:connect(HOST, server.port, cb) end)()
            tcp:write(("GET / HTTP/1.1\r\nHost: a\r\n\r\n"):rep(40))
            dike.sleep(0.3) -- 40 MiB of answers cannot all sit in the kernel's buffers
            local seen = server.counters.requests
            local parser = require("service.http").parser("response", { max_body = 2 * 1048576 })
            local got = 0
            dike.wrap(function(cb)
                tcp:read_start(function(_, data)
                    parser:feed(data or "")
                    while parser:next() do got = got + 1 end
                    if got == 40 or not data then tcp:read_stop() cb() end
                end)
            end)()
            tcp:close()
            server:close(2)
            assert.is_true(seen < 40, "requests taken while the peer did not read: " .. seen)
            assert.are.equal(40, got)
            assert.are.equal(40, server.counters.requests)
        end)
    end)

    it("GET /stats is JSON with every layer's dike.stats; gauges are 0 when idle", function()
        with_service({}, function(server)
            client.get(HOST, server.port, "/predict?x=1", 5)
            local s = json.decode(client.get(HOST, server.port, "/stats", 5).body)
            assert.are.same({ 1, 0, 0 }, { s.batch.calls, s.batch.waiting, s.batch.queued_calls })
            assert.are.same({ 0, 0 }, { s.limit_jobs.running, s.limit_jobs.queued })
            assert.are.same({ 1, 0, 0 }, { s.device.calls, s.device.running, s.device.queued })
            assert.are.same({ ["1"] = 1 }, s.batch_sizes)
            assert.is_true(s.lua.heap_kib > 0)
            assert.is_nil(s.lua.live_kib)
            -- ?gc=1: a full collection first; the live heap it leaves is at most the heap found.
            local g = json.decode(client.get(HOST, server.port, "/stats?gc=1", 5).body)
            assert.is_true(g.lua.live_kib > 0 and g.lua.live_kib <= g.lua.heap_kib)
        end)
    end)

    it("an outage behind a circuit breaker: 503 with Retry-After while open, 200 again after it", function()
        local logs, restore = require("spec.support").capture_logs(dike)
        -- down from the start for 2 s (time for 11 requests even under valgrind); the breaker
        -- opens after 10 failed model calls, for 1 s at a time
        local opts = { breaker = true, open_for = 1, outage_start = 0, outage_for = 2, attempts = 1,
                       max_wait = 0.001 }
        local started = dike.now()
        local ok, err = pcall(with_service, opts, function(server, app)
            local statuses = {}
            for i = 1, 10 do statuses[i] = client.get(HOST, server.port, "/predict?x=" .. i, 5).status end
            assert.are.same({ 500, 500, 500, 500, 500, 500, 500, 500, 500, 500 }, statuses)
            local r = client.get(HOST, server.port, "/predict?x=11", 5)
            assert.are.equal(503, r.status)
            assert.are.equal("1", r.headers["retry-after"])
            assert.matches('"detail":"Circuit open for function model! retry after 0?%.?%d+s"', r.body)
            dike.sleep(math.max(0, started + 2.05 - dike.now())) -- the model is back
            -- 503 until the breaker half-opens; then the trial call succeeds: 200
            local status
            repeat
                status = client.get(HOST, server.port, "/predict?x=12", 5).status
                if status == 503 then dike.sleep(0.05) end
            until status ~= 503 or dike.now() > started + 10
            assert.are.equal(200, status)
            local s = app.stats()
            assert.are.same({ "closed", 1 }, { s.circuit_breaker.state, s.circuit_breaker.opened })
            assert.are.equal(10, s.outage.model_calls)
            assert.is_true(s.outage.recovered_after >= 0)
        end)
        restore()
        assert.is_true(ok, tostring(err))
        assert.are.same({ "Circuit model opened: failure rate 1 over 10 calls", "Circuit model half-open",
                          "Circuit model closed" }, { logs[1].message, logs[2].message, logs[3].message })
    end)

    it("GET /metrics: Prometheus text with dike.stats of every layer and the events counted", function()
        local logs, restore = require("spec.support").capture_logs(dike)
        local opts = { breaker = true, open_for = 30, outage_start = 0, outage_for = 30, attempts = 1,
                       max_wait = 0.001, timeout = 5 }
        local ok, err = pcall(with_service, opts, function(server)
            for i = 1, 11 do client.get(HOST, server.port, "/predict?x=" .. i, 5) end
            local r = client.get(HOST, server.port, "/metrics", 5)
            assert.are.equal(200, r.status)
            assert.are.equal("text/plain; version=0.0.4; charset=utf-8", r.headers["content-type"])
            local body = r.body
            for _, line in ipairs({
                "# TYPE dike_events_total counter",
                'dike_events_total{tool="circuit_breaker",name="model",event="state"} 1',
                'dike_circuit_breaker_transitions_total{name="model",from="closed",to="open"} 1',
                "# TYPE dike_circuit_breaker_state gauge",
                'dike_circuit_breaker_state{name="model",state="open"} 1',
                'dike_circuit_breaker_state{name="model",state="closed"} 0',
                'dike_circuit_breaker_calls_total{name="model"} 11',
                'dike_circuit_breaker_rejected_total{name="model"} 1',
                'dike_circuit_breaker_opened_total{name="model"} 1',
                'dike_timeout_calls_total{name="model"} 10',
                'dike_timeout_timeouts_total{name="model"} 0',
                'dike_limit_jobs_calls_total{name="predict"} 11',
                'dike_limit_jobs_running{name="predict"} 0',
                "# TYPE dike_batch_queued_rows gauge",
                'dike_retry_failures_total{name="model"} 11',
                'demo_http_responses_total{code="500"} 10',
                'demo_http_responses_total{code="503"} 1',
                "demo_model_calls_total 10",
            }) do
                assert.is_truthy(body:find("\n" .. line .. "\n", 1, true) or body:find("^" .. line .. "\n"),
                                 "missing: " .. line .. "\n" .. body)
            end
            -- every line is a comment or `name{labels} value`
            for line in body:gmatch("[^\n]+") do
                assert.is_truthy(line:find("^# HELP %S+ ") or line:find("^# TYPE %S+ counter$")
                                 or line:find("^# TYPE %S+ gauge$")
                                 or line:find('^[%a_:][%w_:]*{?[^}]*}? %-?[%d.e+]+$'), line)
            end
        end)
        restore()
        assert.is_true(ok, tostring(err))
        assert.are.equal("Circuit model opened: failure rate 1 over 10 calls", logs[1].message)
    end)
end)
