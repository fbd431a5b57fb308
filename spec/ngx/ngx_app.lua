-- The OpenResty integration test's application (spec/ngx/nginx.conf.in): concurrent
-- requests of one worker are batched with dike.batch into a "model", guarded by
-- dike.limit_jobs, the model wrapped in dike.retry against injected failures.
local dike = require("dike")
local json = require("service.json")

local M = {}

local sizes = {}        -- batch size -> how many model calls had it
local model_calls = 0
local failed_once = setmetatable({}, { __mode = "k" })

-- The model: y = 2x + 1 for each row; a fixed cost per call plus a little per row. Every
-- fifth call fails ("injected"), but never twice for one batch: retry has work to do and
-- every request succeeds.
local model = dike.retry{ attempts = 2, delay = 0.001, exception_types = "injected",
                          log_exception_info = false }(function(xs)
    model_calls = model_calls + 1
    if model_calls % 5 == 0 and not failed_once[xs] then
        failed_once[xs] = true
        error("injected failure", 0)
    end
    dike.sleep(0.005 + 0.0002 * #xs)
    local ys = {}
    for i = 1, #xs do ys[i] = 2 * xs[i] + 1 end
    sizes[#xs] = (sizes[#xs] or 0) + 1
    return ys
end)

local batched = dike.batch{ target_batch_size = 16, max_waiting_time = 0.01 }(model)
local limiter = dike.limit_jobs{ limit = 200, name = "predict" }
local predict = limiter(function(x) return batched({ x })[1] end)

-- Two slots, no queue: the third concurrent request is shed with 503. (Half a second: long
-- enough for all five test requests to arrive while the first two hold the slots.)
local slow = dike.limit_jobs{ limit = 2, name = "slow" }(function()
    dike.sleep(0.5)
    return "done"
end)

local function reply(status, body)
    local text = json.encode(body)
    ngx.status = status
    ngx.header.content_length = #text
    ngx.print(text)
end

-- dike.TooManyCalls -> 503 with a JSON body, as Python dike's example service answers.
local function unavailable()
    reply(503, { status = 503, title = "Service unavailable", detail = "Too many concurrent requests" })
end

dike.set_logger(function(level, message)
    if level ~= "warning" then ngx.log(ngx.ERR, "dike ", level, ": ", message) end
end)

function M.predict()
    local x = tonumber(ngx.var.arg_x)
    if not x then return reply(400, { error = "x must be a number" }) end
    local ok, y = pcall(predict, x)
    if ok then return reply(200, { x = x, y = y }) end
    if dike.TooManyCalls.is(y) then return unavailable() end
    reply(500, { error = tostring(y) })
end

function M.slow()
    local ok, r = pcall(slow)
    if ok then return reply(200, { result = r }) end
    if dike.TooManyCalls.is(r) then return unavailable() end
    reply(500, { error = tostring(r) })
end

---------------------------------------------------------------- user code that misbehaves
-- (README: Errors, dike.batch; spec/ngx/check.lua checks the answers and that dike's
-- worker timer still serves requests afterwards.)

-- GET /unhandled?tostring=raises|nil: a task nobody joins fails with an error whose
-- __tostring fails. Its report goes through the logger (nginx's error log) from dike's worker.
local BAD_TOSTRING = {
    raises = function() error("x", 0) end,
    ["nil"] = function() return nil end,
}
function M.unhandled()
    local how = BAD_TOSTRING[ngx.var.arg_tostring]
    if not how then return reply(400, { error = "tostring must be raises or nil" }) end
    dike.spawn(function()
        dike.sleep(0.001)
        error(setmetatable({}, { __tostring = how }))
    end)
    reply(200, { spawned = true })
end

-- GET /mutate?by=timer|size: two queued calls, one of whose argument table loses its field
-- before the batch is sent (by its timer, or by a third call filling it). Every caller gets
-- a dike.batch error; the answer lists them and the batcher's counters.
local mutated = dike.batch{ target_batch_size = 3, max_waiting_time = 0.02 }(function(kw)
    local out = {}
    for i = 1, #kw.x do out[i] = kw.x[i] end
    return out
end)
function M.mutate()
    local by = ngx.var.arg_by
    if by ~= "timer" and by ~= "size" then return reply(400, { error = "by must be timer or size" }) end
    local req = { x = { 1 } }
    local tasks = {
        dike.spawn(function() return { pcall(mutated, { x = { 1 } }) } end),
        dike.spawn(function() return { pcall(mutated, req) } end),
    }
    req.x = nil
    local errs = {}
    if by == "size" then
        local ok, err = pcall(mutated, { x = { 2 } })
        errs[3] = ok and "returned" or tostring(err)
    end
    for i, t in ipairs(tasks) do
        local r = t:join()
        errs[i] = r[1] and "returned" or tostring(r[2])
    end
    reply(200, { errors = errs, stats = dike.stats(mutated) })
end

function M.stats()
    local hist = {}
    for size, n in pairs(sizes) do hist[tostring(size)] = n end
    reply(200, {
        runtime = require("dike.runtime").name,
        limit_jobs = dike.stats(predict),
        batch = dike.stats(batched),
        retry = dike.stats(model),
        model_calls = model_calls,
        batch_sizes = hist,
        pending = require("dike.runtime").pending(),
        ngx_timers = { pending = ngx.timer.pending_count(), running = ngx.timer.running_count() },
    })
end

return M
