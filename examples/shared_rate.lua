--- Two processes share one rate limit through Redis (docs/sharing.md).
--
--   luajit examples/shared_rate.lua [REDIS]
--
-- REDIS is a unix socket path (/tmp/redis.sock) or host:port (default 127.0.0.1:6379), e.g.
-- a throwaway server: `redis-server --port 6390 --save '' --appendonly no` and
-- `luajit examples/shared_rate.lua 127.0.0.1:6390`. (Run from the repository root after
-- `make build`, with LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;".)
--
-- It starts two worker processes of itself. Each sends 20 messages through
-- rate_limit{rate = 20, burst = 4, max_wait = math.huge, name = "sms", store = redis}: across
-- both processes at most 20 messages a second (after a burst of 4), each caller waiting for its
-- turn. So the 40 messages take about (40 - 4) / 20 = 1.8 s, where each process alone, or two
-- unshared limiters, would be done in (20 - 4) / 20 = 0.8 s.
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
    local send = dike.rate_limit{ rate = 20, burst = 4, max_wait = math.huge, name = "sms", store = store }(
        function(i)
            return i -- the message would go out here
        end)
    local t0 = uv.hrtime()
    dike.run(function()
        local calls = {}
        for i = 1, 20 do calls[i] = function() return send(i) end end
        dike.gather(calls)
    end)
    local st = dike.stats(send)
    print(("worker %d: %d messages in %.2f s, %d of them waited for their turn; store errors %d"):format(
        uv.os_getpid(), st.admitted, (uv.hrtime() - t0) / 1e9, st.delayed, st.store_errors))
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
print(("2 processes x 20 messages through one shared rate of 20/s (burst 4): %.2f s (at least %.2f s)"):format(
    seconds, (40 - 4) / 20))
os.exit((failed or left > 0) and 1 or 0)
