--- The demo service's application: GET /predict?x=N batched into a simulated model.
--
--   limit_jobs{limit, queue}            sheds load: TooManyCalls -> 503 with a JSON body
--     batch{target_batch_size, ...}     collects concurrent requests into one model call
--       retry{attempts, delay, ...}     retries the model's injected failures
--         circuit_breaker{open_for}     (--breaker) stops calling a model that keeps failing:
--                                       CircuitOpen -> 503 with Retry-After
--           timeout{seconds}            (--timeout S) bounds each attempt
--             device limit_jobs         the model runs `model_slots` calls at a time (one
--               model(xs)               GPU, a pool...): a fixed cost per call plus a small
--                                       cost per row, simulated with dike.sleep; y = 2x + 1
--
-- With batching off, each request calls the retried model alone. Failures are injected at
-- random (--fail-rate) or as an outage: every model call fails from --outage-start seconds
-- after the service started, for --outage-for seconds. GET /stats returns the dike.stats of
-- every layer, the server's counters, the batch-size histogram, the outage's figures and the
-- Lua heap (collectgarbage("count"), KiB); GET /stats?gc=1 also runs a full collection and
-- adds the live heap it leaves (examples/service/soak.lua watches both). GET /metrics is the
-- same in Prometheus' text format, with dike's events counted (examples/service/metrics.lua).
local dike = require("dike")
local json = require("service.json")
local metrics = require("service.metrics")
local server_mod = require("service.server")

local tonumber, tostring, pairs, format, huge = tonumber, tostring, pairs, string.format, math.huge

local M = {}

M.DEFAULTS = {
    batch = true,        -- batch requests with dike.batch
    batch_size = 32,     -- target_batch_size
    max_batch = 128,     -- max_batch_size
    max_wait = 0.002,    -- max_waiting_time (s)
    overhead = 0.002,    -- model cost per call (s)
    per_row = 0.00002,   -- model cost per row (s)
    model_slots = 1,     -- model calls at a time
    limit = 256,         -- requests in flight before 503
    queue = 0,           -- requests that may wait for a slot
    fail_rate = 0,       -- probability that a model call fails (injected)
    attempts = 5,        -- retry attempts per model call
    retry_delay = 0.001, -- first retry delay (s), doubling
    seed = 1,
    breaker = false,     -- a circuit breaker in front of the model
    open_for = 1,        -- its open_for (s)
    timeout = 0,         -- seconds each model attempt may take (0: no dike.timeout)
    outage_start = -1,   -- every model call fails from this many seconds after the start...
    outage_for = 0,      -- ... for this long (s)
}

local JSON = { { "Content-Type", "application/json" } }
local NUMBER = "^%-?%d+%.?%d*$"
local EXPONENT = "^%-?%d+%.?%d*[eE][-+]?%d+$"

local function json_reply(status, t) return status, JSON, json.encode(t) end

-- A small deterministic PRNG (an LCG), so runs are repeatable and 5.1/5.4 agree.
local function rng(seed)
    local state = seed % 2147483647
    if state <= 0 then state = state + 2147483646 end
    return function()
        state = state * 16807 % 2147483647
        return state / 2147483647
    end
end

--- Make the application; `opts` overrides M.DEFAULTS. Returns {handler, stats, server_counters}.
function M.new(opts)
    local o = {}
    for k, v in pairs(M.DEFAULTS) do o[k] = v end
    for k, v in pairs(opts or {}) do
        if M.DEFAULTS[k] == nil then error("service: unknown option " .. tostring(k), 2) end
        o[k] = v
    end
    local random = rng(o.seed)
    local sizes, model = {}, { calls = 0, rows = 0, failures = 0 }
    local started = dike.now()
    local outage_from, outage_to = started + o.outage_start, started + o.outage_start + o.outage_for
    -- model calls while the model is down; seconds from its recovery to the first 200
    local outage = { start = o.outage_start, seconds = o.outage_for, model_calls = 0, recovered_after = nil }
    local registry = metrics.new()

    local device = dike.limit_jobs{ limit = o.model_slots, queue = huge, name = "model" }
    local run_model = device(function(xs)
        local n = #xs
        model.calls = model.calls + 1
        local now = dike.now()
        local down = o.outage_for > 0 and now >= outage_from and now < outage_to
        if down then outage.model_calls = outage.model_calls + 1 end
        if down or random() < o.fail_rate then
            model.failures = model.failures + 1
            dike.sleep(o.overhead)
            error("injected model failure", 0)
        end
        dike.sleep(o.overhead + o.per_row * n)
        local ys = {}
        for i = 1, n do ys[i] = 2 * xs[i] + 1 end
        model.rows = model.rows + n
        sizes[n] = (sizes[n] or 0) + 1
        return ys
    end)
    local attempt, bounded, breaker = run_model, nil, nil
    if o.timeout > 0 then
        bounded = dike.timeout{ seconds = o.timeout, name = "model" }(attempt)
        attempt = bounded
    end
    if o.breaker then
        breaker = dike.circuit_breaker{ window = 20, minimum_calls = 10, failure_rate = 0.5,
                                        open_for = o.open_for, name = "model" }
        attempt = breaker(attempt)
    end
    -- Only the model's own failures are retried: an open circuit or a timeout is not.
    local backend = dike.retry{ attempts = o.attempts, delay = o.retry_delay, backoff = 2,
                                exception_types = "injected", logger = function() end }(attempt)
    local batched, predict_one
    if o.batch then
        batched = dike.batch{ target_batch_size = o.batch_size, max_batch_size = o.max_batch,
                              max_waiting_time = o.max_wait }(backend)
        predict_one = function(x) return batched({ x })[1] end
    else
        predict_one = function(x) return backend({ x })[1] end
    end
    local predict = dike.limit_jobs{ limit = o.limit, queue = o.queue, name = "predict" }(predict_one)

    local app = { options = o }

    function app.stats()
        local hist = {}
        for size, n in pairs(sizes) do hist[tostring(size)] = n end
        return {
            options = o,
            server = app.server and app.server.counters or nil,
            limit_jobs = dike.stats(predict),
            batch = batched and dike.stats(batched) or nil,
            retry = dike.stats(backend),
            device = dike.stats(run_model), -- the model's own limit_jobs (model_slots)
            model = model,
            circuit_breaker = breaker and dike.stats(breaker) or nil,
            timeout = bounded and dike.stats(bounded) or nil,
            outage = o.outage_for > 0 and outage or nil,
            lua = { heap_kib = collectgarbage("count") }, -- this process's Lua heap
            batch_sizes = hist,
        }
    end

    --- GET /metrics: Prometheus' text format.
    function app.metrics()
        local s = app.stats()
        local layers = {
            { tool = "limit_jobs", name = "predict", stats = s.limit_jobs },
            { tool = "retry", name = "model", stats = s.retry },
            { tool = "limit_jobs", name = "model", stats = s.device },
        }
        if s.batch then layers[#layers + 1] = { tool = "batch", name = "model", stats = s.batch } end
        if s.circuit_breaker then
            layers[#layers + 1] = { tool = "circuit_breaker", name = "model", stats = s.circuit_breaker }
        end
        if s.timeout then layers[#layers + 1] = { tool = "timeout", name = "model", stats = s.timeout } end
        local responses = {}
        local codes = {}
        for code in pairs(s.server and s.server.responses or {}) do codes[#codes + 1] = code end
        table.sort(codes)
        for _, code in ipairs(codes) do
            responses[#responses + 1] = { metrics.labels("code", code), s.server.responses[code] }
        end
        return registry:render(layers, {
            { "demo_http_responses_total", "counter", "HTTP responses by status code.", responses },
            { "demo_model_calls_total", "counter", "Calls of the simulated model.", { { "", model.calls } } },
            { "demo_model_failures_total", "counter", "Injected model failures.", { { "", model.failures } } },
            { "demo_model_rows_total", "counter", "Rows the model computed.", { { "", model.rows } } },
            { "demo_lua_heap_bytes", "gauge", "This process's Lua heap.", { { "", collectgarbage("count") * 1024 } } },
        })
    end

    local function get_predict(req)
        local x = req.query.x
        if x == nil then return json_reply(400, { error = "missing query parameter x" }) end
        if #x > 32 or not (x:find(NUMBER) or x:find(EXPONENT)) then
            return json_reply(400, { error = "x must be a decimal number" })
        end
        local n = tonumber(x)
        if n == huge or n == -huge then return json_reply(400, { error = "x is out of range" }) end
        local ok, y = pcall(predict, n)
        if ok then
            if outage.recovered_after == nil and o.outage_for > 0 then
                local now = dike.now()
                if now >= outage_to then outage.recovered_after = now - outage_to end
            end
            return json_reply(200, { x = n, y = y })
        end
        if dike.TooManyCalls.is(y) then
            -- As Python dike's example service answers.
            return json_reply(503, { status = 503, title = "Service unavailable",
                                     detail = "Too many concurrent requests" })
        end
        if dike.CircuitOpen.is(y) then
            local after = y.retry_after < huge and math.max(1, math.ceil(y.retry_after)) or 3600
            local headers = { JSON[1], { "Retry-After", tostring(after) } }
            return 503, headers, json.encode({ status = 503, title = "Service unavailable", detail = y.message })
        end
        return json_reply(500, { status = 500, title = "Internal Server Error", detail = tostring(y) })
    end

    local routes = {
        ["/predict"] = get_predict,
        ["/stats"] = function(req)
            local s = app.stats()
            if req.query.gc == "1" then -- the live heap: what a full collection leaves
                collectgarbage("collect")
                s.lua.live_kib = collectgarbage("count")
            end
            return json_reply(200, s)
        end,
        ["/health"] = function() return json_reply(200, { ok = true }) end,
        ["/metrics"] = function()
            return 200, { { "Content-Type", "text/plain; version=0.0.4; charset=utf-8" } }, app.metrics()
        end,
    }

    --- The server's handler: routes a parsed request.
    function app.handler(req)
        local path, query = require("service.http").split_target(req.target)
        if not path then return 400, JSON, server_mod.error_body(400, query) end
        local route = routes[path]
        if not route then return 404, JSON, server_mod.error_body(404, "no route for " .. path) end
        if req.method ~= "GET" then
            return 405, { JSON[1], { "Allow", "GET" } }, server_mod.error_body(405, "use GET")
        end
        req.path, req.query = path, query
        return route(req)
    end

    return app
end

--- Start the service on 127.0.0.1:port (0: any free port). Returns the server (server.port,
--- server:close()) and the app, or nil and an error.
function M.start(port, opts, server_opts)
    local app = M.new(opts)
    local so = { port = port, handler = app.handler }
    for k, v in pairs(server_opts or {}) do so[k] = v end
    local server, err = server_mod.listen(so)
    if not server then return nil, err end
    app.server = server
    return server, app
end

--- One line summing up a run, from app.stats().
function M.summary(s)
    local r = s.server and s.server.responses or {}
    local parts = {}
    local codes = {}
    for code in pairs(r) do codes[#codes + 1] = code end
    table.sort(codes)
    for _, code in ipairs(codes) do parts[#parts + 1] = code .. " x " .. r[code] end
    local batches = s.batch and s.batch.batches or s.model.calls - s.model.failures
    local mean = batches > 0 and s.model.rows / batches or 0
    local line = format("%d requests (%s); %d model calls for %d rows (%d batches, mean size %.1f);"
        .. " %d retries, %d failed calls",
        s.server and s.server.requests or 0, #parts > 0 and table.concat(parts, ", ") or "none",
        s.model.calls, s.model.rows, batches, mean, s.retry.retries, s.retry.failures)
    if s.outage then
        line = line .. format("; outage %g s: %d model calls while down, 200s again %s after it",
            s.outage.seconds, s.outage.model_calls,
            s.outage.recovered_after and format("%.3f s", s.outage.recovered_after) or "never")
    end
    if s.circuit_breaker then
        line = line .. format("; breaker opened %d times, %d calls rejected", s.circuit_breaker.opened,
                              s.circuit_breaker.rejected)
    end
    return line
end

return M
