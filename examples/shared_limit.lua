--- Two processes share one concurrency limit through Redis (README "Sharing limits").
--
--   luajit examples/shared_limit.lua [REDIS]
--
-- REDIS is a unix socket path (/tmp/redis.sock) or host:port (default 127.0.0.1:6379), e.g.
-- a throwaway server: `redis-server --port 6390 --save '' --appendonly no` and
-- `luajit examples/shared_limit.lua 127.0.0.1:6390`. (Run from the repository root after
-- `make build`, with LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;".)
--
-- It starts two worker processes of itself. Each calls `fetch` 10 times at once; fetch takes
-- 0.1 s and is wrapped by limit_jobs{limit = 3, name = "backend", store = redis}: across both
-- processes at most 3 calls run at any moment, the others wait in their process's queue. So
-- the 20 calls take about 20 / 3 x 0.1 = 0.7 s, where each process alone, or two unshared
-- limiters, would be done in 0.4 s.
local uv = require("luv")

local where = arg[2] == "worker" and arg[1] or (arg[1] or "127.0.0.1:6379")
local function store_options()
    local host, port = where:match("^(.+):(%d+)$")
    if host then return { host = host, port = tonumber(port) } end
    return { path = where }
end

if arg[2] == "worker" then
    local dike = require("dike")
    local store = dike.store.redis(store_options())
    local running, most = 0, 0
    local fetch = dike.limit_jobs{ limit = 3, queue = 10, name = "backend", store = store }(function(i)
        running = running + 1
        most = math.max(most, running)
        dike.sleep(0.1) -- the backend call
        running = running - 1
        return i
    end)
    local t0 = uv.hrtime()
    dike.run(function()
        local calls = {}
        for i = 1, 10 do calls[i] = function() return fetch(i) end end
        dike.gather(calls)
        dike.sleep(0.01) -- the last release reaches Redis
    end)
    local st = dike.stats(fetch)
    print(("worker %d: %d calls in %.2f s, at most %d running here; store errors %d"):format(
        uv.os_getpid(), st.calls, (uv.hrtime() - t0) / 1e9, most, st.store_errors))
    store:close()
    os.exit(st.store_errors == 0 and 0 or 1)
end

-- The parent: two workers at once, then the total time.
local t0 = uv.hrtime()
local left, failed = 2, false
for _ = 1, 2 do
    local handle
    handle = uv.spawn(arg[-1] or "luajit", { args = { arg[0], where, "worker" }, stdio = { nil, 1, 2 } },
        function(code)
            failed = failed or code ~= 0
            left = left - 1
            handle:close()
        end)
    assert(handle, "cannot start a worker")
end
uv.run()
local seconds = (uv.hrtime() - t0) / 1e9
print(("2 processes x 10 calls of 0.1 s through one shared limit of 3: %.2f s (at least %.2f s if never"
    .. " more than 3 run at once)"):format(seconds, 20 / 3 * 0.1))
os.exit((failed or left > 0) and 1 or 0)
