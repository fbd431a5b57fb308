-- The application of the shared-store integration test (spec/ngx_store/nginx.conf.in): one
-- limit_jobs per store, shared by nginx's four workers. Each admitted request counts itself
-- in the `test` dictionary while it holds its slot (1-5 ms), so the driver can see how many
-- ran at once across workers; /bare and /none are the benchmark's baselines. Per store also a
-- rate_limit (200/s, burst 50) and a circuit_breaker (window 10, minimum_calls 10, open_for
-- 2 s) shared by the workers; dike's log lines are counted in the `test` dictionary too.
local dike = require("dike")

local M = {}

local counts = ngx.shared.test
local limit
local limited = {}
local bench_sd, bench_rd
local rates = {}
local breakers, guarded = {}, {}

local function body(kind)
    local active, served = kind .. ":active", kind .. ":served:"
    return function()
        local n = counts:incr(active, 1, 0)
        local key = kind .. ":max:" .. ngx.worker.pid()
        if n > (counts:get(key) or 0) then counts:set(key, n) end
        counts:incr(served .. ngx.worker.pid(), 1, 0)
        dike.sleep(0.001 + math.random() * 0.004)
        counts:incr(active, -1)
        return "ok"
    end
end

--- In init_by_lua: the stores and limiters.
function M.init(redis_path, n)
    limit = n
    local sd = dike.store.shared_dict("dike", { lease = 5 })
    local rd = dike.store.redis{ path = redis_path, timeout = 1, lease = 5 }
    limited.sd = dike.limit_jobs{ limit = limit, name = "sd", store = sd }(body("sd"))
    limited.rd = dike.limit_jobs{ limit = limit, name = "rd", store = rd }(body("rd"))
    -- the same with a queue per worker: waiters poll their store for freed slots
    limited.sdq = dike.limit_jobs{ limit = limit, queue = 100, queue_timeout = 10, name = "sdq",
                                   store = sd }(body("sdq"))
    limited.rdq = dike.limit_jobs{ limit = limit, queue = 100, queue_timeout = 10, name = "rdq",
                                   store = rd }(body("rdq"))
    -- 200 per second, burst 50 (a quarter second: a stall of the loaded machine shorter than
    -- that loses none of the rate), across the workers
    local function ok() return "ok" end
    rates.sd = dike.rate_limit{ rate = 200, burst = 50, name = "rate", store = sd }(ok)
    rates.rd = dike.rate_limit{ rate = 200, burst = 50, name = "rate", store = rd }(ok)
    -- one breaker per store; ?fail=1 makes its backend fail
    local function backend(fail)
        if fail then error("backend down", 0) end
        return "ok"
    end
    for kind, st in pairs({ sd = sd, rd = rd }) do
        breakers[kind] = dike.circuit_breaker{ window = 10, minimum_calls = 10, failure_rate = 0.5, open_for = 2,
                                               name = "cb-" .. kind, store = st }
        guarded[kind] = breakers[kind](backend)
    end
    -- every line dike logs, counted by level and message across the workers (spaces as "_": the
    -- driver reads "key value" lines)
    dike.set_logger(function(level, message)
        counts:incr((("log:" .. level .. ":" .. message):gsub(" ", "_")), 1, 0)
    end)
    -- the benchmark: no work, a limit no load reaches
    bench_sd = dike.limit_jobs{ limit = 100000, name = "bench", store = sd }(function() return "ok" end)
    bench_rd = dike.limit_jobs{ limit = 100000, name = "bench", store = rd }(function() return "ok" end)
end

function M.limited(kind)
    -- which workers took requests (admitted or refused): the limit is shared only if several did
    counts:incr(kind .. ":seen:" .. ngx.worker.pid(), 1, 0)
    local ok, err = pcall(limited[kind])
    if ok then
        ngx.say("ok")
    elseif getmetatable(err) == dike.TooManyCalls then
        counts:incr(kind .. ":rejected", 1, 0)
        ngx.status = 503
        ngx.say("busy")
    else
        counts:incr(kind .. ":errors", 1, 0)
        ngx.log(ngx.ERR, "unexpected: ", tostring(err))
        ngx.status = 500
        ngx.say(tostring(err))
    end
end

--- A call through the shared rate_limit: 200, or 429 (RateLimited).
function M.rate(kind)
    local ok, err = pcall(rates[kind])
    if ok then
        counts:incr(kind .. ":rate_admitted", 1, 0)
        ngx.say("ok")
    elseif getmetatable(err) == dike.RateLimited then
        ngx.status = 429
        ngx.say("later")
    else
        counts:incr(kind .. ":rate_errors", 1, 0)
        ngx.log(ngx.ERR, "unexpected: ", tostring(err))
        ngx.status = 500
        ngx.say(tostring(err))
    end
    local st = dike.stats(rates[kind])
    if st.store_errors > 0 or st.fallback_calls > 0 then counts:set(kind .. ":rate_store_errors", 1) end
end

--- A call through the shared breaker (?fail=1: its backend fails): 200 "ok <pid>", 502 "failed
--- <pid>" (the backend's error), 503 "open <pid>" (CircuitOpen). ?reset=1 resets the breaker.
function M.breaker(kind)
    local args = ngx.req.get_uri_args()
    local pid = ngx.worker.pid()
    if args.reset then
        ngx.say(tostring(breakers[kind]:reset()), " ", pid)
        return
    end
    local ok, err = pcall(guarded[kind], args.fail ~= nil)
    if ok then
        ngx.say("ok ", pid)
    elseif err == "backend down" then
        ngx.status = 502
        ngx.say("failed ", pid)
    elseif getmetatable(err) == dike.CircuitOpen then
        ngx.status = 503
        ngx.say("open ", pid)
    else
        ngx.log(ngx.ERR, "unexpected: ", tostring(err))
        ngx.status = 500
        ngx.say(tostring(err))
    end
    local st = dike.stats(guarded[kind])
    if st.store_errors > 0 or st.fallback_calls > 0 then counts:set(kind .. ":cb_store_errors", 1) end
end

--- lua-resty-limit-traffic's limit.conn mechanism, bare: one shared counter.
function M.bare()
    local n = counts:incr("bare:conn", 1, 0)
    if n > 100000 then
        counts:incr("bare:conn", -1)
        ngx.status = 503
        ngx.say("busy")
        return
    end
    counts:incr("bare:conn", -1)
    ngx.say("ok")
end

function M.none()
    ngx.say("ok")
end

function M.bench(kind)
    local ok, err = pcall(kind == "sd" and bench_sd or bench_rd)
    if ok then ngx.say("ok") else ngx.status = 503; ngx.say(tostring(err)) end
end

--- Every counter, "key value" per line.
function M.stats()
    local keys = counts:get_keys(0)
    table.sort(keys)
    for _, k in ipairs(keys) do ngx.say(k, " ", counts:get(k)) end
end

function M.reset()
    counts:flush_all()
    ngx.say("ok")
end

return M
