-- The shared-store integration test inside nginx (ctest: integration.ngx_store). From the
-- repository root:
--   luajit spec/ngx_store/run.lua [--build DIR]
-- It starts a private redis-server (spec/redis_server.lua) and a private nginx with four
-- workers (spec/ngx_store/nginx.conf.in, loopback only), then checks:
--   the stores inside a request (GET /selftest: shared dict, Redis on lua-resty-redis);
--   2,000 concurrent requests through one limit_jobs{limit = 10} shared by the four workers,
--   through the shared-dict store and through Redis, without a queue and with one (100 per
--   worker, whose callers poll the store for freed slots): every answer is 200 or 503,
--   at most 10 requests hold a slot at once across the workers (each counts itself in a
--   shared dict while it holds one), several workers took requests, nothing is left running;
--   a shared dike.rate_limit (200/s, burst 50) hit from 50 connections for 2 s, per store: the
--   requests admitted are within 2% of rate x time + burst;
--   a shared dike.circuit_breaker per store: 10 failing requests spread over the workers open it
--   (no worker saw 10), then it refuses requests in every worker, and after open_for (2 s) one trial
--   closes it for every worker; each change is logged once across the workers;
--   nginx's error log has no error beyond the expected refused connection.
-- Both servers are stopped by their pids, also on failure. Prints "N passed, N failed" last.
local dike = require("dike")
local client = require("service.client")
local redis_server = require("spec.redis_server")
local nginx = require("spec.ngx_store.nginx")

local opts = { build = "build" }
do
    local i = 1
    while i <= #arg do
        local a = arg[i]
        if a == "--build" then i = i + 1; opts.build = arg[i]
        else error("run.lua: unknown argument " .. a, 0) end
        i = i + 1
    end
end

local HOST, LIMIT = "127.0.0.1", 10

local passed, failed = 0, 0
local function check(ok, what, detail)
    if ok then
        passed = passed + 1
        print("ok - " .. what)
    else
        failed = failed + 1
        print("not ok - " .. what .. (detail ~= nil and (": " .. tostring(detail)) or ""))
    end
end

local function read(path)
    local f = io.open(path, "rb")
    if not f then return "" end
    local s = f:read("*a")
    f:close()
    return s
end

---------------------------------------------------------------- checks

local function get(port, target)
    local res, err = client.get(HOST, port, target, 30)
    if not res then return { status = 0, body = tostring(err) } end
    return res
end

local function stats(port)
    local t = {}
    for k, v in get(port, "/stats").body:gmatch("(%S+) (%S+)\n") do t[k] = tonumber(v) or v end
    return t
end

local function selftest(port)
    local st = get(port, "/selftest")
    check(st.status == 200, "GET /selftest answers 200", st.status)
    for line in st.body:gmatch("[^\n]+") do
        local good, bad = line:match("^ok %- (.*)$"), line:match("^not ok %- (.*)$")
        if good then check(true, "nginx: " .. good) end
        if bad then check(false, "nginx: " .. bad) end
    end
    check(st.body:match("\n(%d+) passed, 0 failed\n$") ~= nil, "the self-test ran to its end", st.body:sub(-300))
end

local function concurrent(port, kind, n)
    get(port, "/reset")
    local statuses = {}
    local items = {}
    for i = 1, n do
        items[i] = function() return get(port, "/" .. kind).status end
    end
    local r = dike.gather(items)
    for i = 1, n do statuses[r[i]] = (statuses[r[i]] or 0) + 1 end
    local ok200, busy = statuses[200] or 0, statuses[503] or 0
    local what = ("%s: %d concurrent requests"):format(
        ({ sd = "shared dict", rd = "redis", sdq = "shared dict, queue 100", rdq = "redis, queue 100" })[kind], n)
    check(ok200 + busy == n, what .. " each answered 200 or 503",
        ("200: %d, 503: %d, other: %d"):format(ok200, busy, n - ok200 - busy))
    local st = stats(port)
    local most, workers, served, serving = 0, 0, 0, 0
    for k, v in pairs(st) do
        if k:find("^" .. kind .. ":max:") then most = math.max(most, v) end
        if k:find("^" .. kind .. ":served:") then
            serving = serving + 1
            served = served + v
        end
        if k:find("^" .. kind .. ":seen:") then workers = workers + 1 end
    end
    print(("#   %s: 200 x %d, 503 x %d; at most %d at once; %d workers took requests, %d served some"):format(
        kind, ok200, busy, most, workers, serving))
    check(most <= LIMIT and most >= 2, what .. (": at most %d hold a slot at once across the workers"):format(LIMIT),
        "at once " .. most)
    -- several workers took requests (which of them got the slots is the kernel's and the
    -- scheduler's luck: on a loaded machine one worker may hold all ten the whole time)
    check(workers >= 2, what .. ": several workers took requests", workers)
    check(served == ok200 and (st[kind .. ":rejected"] or 0) == busy and st[kind .. ":errors"] == nil,
        what .. ": the workers' counts agree",
        ("served %d, rejected %s"):format(served, tostring(st[kind .. ":rejected"])))
    check((st[kind .. ":active"] or 0) == 0, what .. ": nothing left running")
end

local function rate(port, kind)
    get(port, "/reset")
    local seconds = 2
    local t0 = dike.now()
    local first, last
    local items = {}
    for i = 1, 50 do
        items[i] = function()
            while dike.now() - t0 < seconds do
                local s = dike.now()
                local status = get(port, "/rate_" .. kind).status
                if status == 200 then
                    first = math.min(first or s, s)
                    last = dike.now()
                end
            end
        end
    end
    dike.gather(items)
    local st = stats(port)
    local admitted = st[kind .. ":rate_admitted"] or 0
    local span = (last or t0) - (first or t0)
    local want = 200 * span + 50
    print(("#   %s rate: %d admitted over %.2f s, want %.1f"):format(kind, admitted, span, want))
    check(st[kind .. ":rate_errors"] == nil and st[kind .. ":rate_store_errors"] == nil,
        kind .. " rate: no store errors")
    check(math.abs(admitted - want) <= 0.02 * want + 1,
        (kind == "sd" and "shared dict" or "redis")
            .. " rate across 4 workers: admitted within 2% of rate x time + burst",
        ("admitted %d, want %.1f"):format(admitted, want))
end

-- The requests' answers: counts by status, and the workers (pids) that gave them.
local function burst_of(port, target, n)
    local items = {}
    for i = 1, n do items[i] = function() return get(port, target) end end
    local r = dike.gather(items)
    local statuses, pids, per_pid = {}, {}, {}
    local npids = 0
    for i = 1, n do
        statuses[r[i].status] = (statuses[r[i].status] or 0) + 1
        local pid = r[i].body:match(" (%d+)\n?$")
        if pid then
            if not pids[pid] then npids = npids + 1 end
            pids[pid] = true
            per_pid[pid] = (per_pid[pid] or 0) + 1
        end
    end
    local most = 0
    for _, c in pairs(per_pid) do most = math.max(most, c) end
    return statuses, npids, most
end

local function breaker(port, kind)
    get(port, "/reset")
    local target = "/cb_" .. kind
    local what = (kind == "sd" and "shared dict" or "redis") .. " breaker"
    check(get(port, target .. "?reset=1").body:match("^true ") ~= nil, what .. ": reset")
    get(port, "/reset") -- (its log line, if any)
    -- 10 failing requests at once: the window (10 calls) fills across the workers
    local statuses, workers, most = burst_of(port, target .. "?fail=1", 10)
    print(("#   %s: 10 failing requests: 502 x %d, served by %d workers (at most %d by one)"):format(kind,
        statuses[502] or 0, workers, most))
    check(statuses[502] == 10, what .. ": the backend's failures reach the callers (502 x 10)")
    check(workers >= 2 and most < 10, what .. ": no worker saw 10 failures alone (the window is shared)",
        ("%d workers, at most %d by one"):format(workers, most))
    dike.sleep(0.1) -- the last outcomes are recorded (Redis: from a light thread of dike's)
    local t0 = dike.now()
    statuses, workers = burst_of(port, target, 40)
    local took = dike.now() - t0
    print(("#   %s: open: 503 x %d of 40 from %d workers in %.2f s"):format(kind, statuses[503] or 0, workers, took))
    -- (open_for is 2 s: 40 requests take far less, even on a loaded machine)
    check(statuses[503] == 40 and workers >= 2 and took < 2, what .. ": open for every worker",
        ("503 x %s, %d workers, %.2f s"):format(tostring(statuses[503]), workers, took))
    dike.sleep(math.max(0, t0 + 2.1 - dike.now()))
    check(get(port, target).status == 200, what .. ": after open_for a trial request passes")
    dike.sleep(0.1)
    statuses, workers = burst_of(port, target, 40)
    check(statuses[200] == 40 and workers >= 2, what .. ": closed again for every worker",
        ("200 x %s, %d workers"):format(tostring(statuses[200]), workers))
    local st = stats(port)
    local name = "cb-" .. kind
    local function lines(message) return st[("log:warning:" .. message):gsub(" ", "_")] end
    local opened = lines("Circuit " .. name .. " opened: failure rate 1 over 10 calls")
    local half = lines("Circuit " .. name .. " half-open")
    local closed = lines("Circuit " .. name .. " closed")
    print(("#   %s: log lines across the workers: opened %s, half-open %s, closed %s"):format(kind, tostring(opened),
        tostring(half), tostring(closed)))
    check(opened == 1 and half == 1 and closed == 1, what .. ": each change logged once across the workers")
    check(st[kind .. ":cb_store_errors"] == nil, what .. ": no store errors")
end

local function error_log_clean()
    local bad = {}
    for line in read(nginx.prefix .. "/logs/error.log"):gmatch("[^\n]+") do
        -- the self-test's refused connection is logged by nginx itself ([crit] for a unix socket)
        if (line:find("%[emerg%]") or line:find("%[alert%]") or line:find("%[crit%]") or line:find("%[error%]"))
            and not line:find("redis.sock.missing", 1, true) then
            bad[#bad + 1] = line
        end
    end
    check(#bad == 0, "nginx's error log has no unexpected error", bad[1])
end

---------------------------------------------------------------- main

local server
local ok, err = pcall(function()
    server = redis_server.start()
    local port = nginx.start{ build = opts.build, redis = server.path, limit = LIMIT }
    print(("# nginx (pid %d, 4 workers) on %s:%d, prefix %s; redis on %s"):format(nginx.pid, HOST, port,
        nginx.prefix, server.path))
    dike.run(function()
        selftest(port)
        concurrent(port, "sd", 2000)
        concurrent(port, "rd", 2000)
        concurrent(port, "sdq", 2000)
        concurrent(port, "rdq", 2000)
        rate(port, "sd")
        rate(port, "rd")
        breaker(port, "sd")
        breaker(port, "rd")
    end)
    error_log_clean()
end)
if not ok then check(false, "the suite ran to its end", err) end
if failed > 0 and nginx.prefix then
    print("# nginx error log (last lines):")
    local lines = {}
    for line in read(nginx.prefix .. "/logs/error.log"):gmatch("[^\n]+") do lines[#lines + 1] = line end
    for i = math.max(1, #lines - 30), #lines do print("#   " .. lines[i]) end
end
nginx.stop()
if server then server:destroy() end
print(("%d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
