--- The demo service's application: GET /predict?x=N batched into a simulated model.
--
--   limit_jobs{limit, queue}            sheds load: TooManyCalls -> 503 with a JSON body
--     batch{target_batch_size, ...}     collects concurrent requests into one model call
--       retry{attempts, delay, ...}     retries the model's injected failures
--         device limit_jobs             the model runs `model_slots` calls at a time (one
--           model(xs)                   GPU, a pool...): a fixed cost per call plus a small
--                                       cost per row, simulated with dike.sleep; y = 2x + 1
--
-- With batching off, each request calls the retried model alone. GET /stats returns the
-- dike.stats of every layer, the server's counters, the batch-size histogram and the Lua
-- heap (collectgarbage("count"), KiB); GET /stats?gc=1 also runs a full collection and adds
-- the live heap it leaves (examples/service/soak.lua watches both).
local dike = require("dike")
local json = require("service.json")
local server_mod = require("service.server")

local tonumber, tostring, pairs, format, huge = tonumber, tostring, pairs, string.format, math.huge

local M = {}

M.DEFAULTS = {
    batch = true,        -- batch requests with dike.batch
    batch_size = 32,     -- target_batch_size
    max_batch = 128,     -- max_batch_size
    max_concurrent = 0,  -- max_concurrent_batches (0: no cap)
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

    local device = dike.limit_jobs{ limit = o.model_slots, queue = huge, name = "model" }
    local run_model = device(function(xs)
        local n = #xs
        model.calls = model.calls + 1
        if random() < o.fail_rate then
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
    local backend = dike.retry{ attempts = o.attempts, delay = o.retry_delay, backoff = 2,
                                exception_types = "injected", logger = function() end }(run_model)
    local batched, predict_one
    if o.batch then
        batched = dike.batch{ target_batch_size = o.batch_size, max_batch_size = o.max_batch,
                              max_concurrent_batches = o.max_concurrent > 0 and o.max_concurrent or nil,
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
            lua = { heap_kib = collectgarbage("count") }, -- this process's Lua heap
            batch_sizes = hist,
        }
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
        if ok then return json_reply(200, { x = n, y = y }) end
        if dike.TooManyCalls.is(y) then
            -- As Python dike's example service answers.
            return json_reply(503, { status = 503, title = "Service unavailable",
                                     detail = "Too many concurrent requests" })
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
    return format("%d requests (%s); %d model calls for %d rows (%d batches, mean size %.1f);"
        .. " %d retries, %d failed calls",
        s.server and s.server.requests or 0, #parts > 0 and table.concat(parts, ", ") or "none",
        s.model.calls, s.model.rows, batches, mean, s.retry.retries, s.retry.failures)
end

return M
