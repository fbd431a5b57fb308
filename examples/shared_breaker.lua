--- Two processes share one circuit breaker through Redis (docs/sharing.md).
--
--   luajit examples/shared_breaker.lua [REDIS]
--
-- REDIS is a unix socket path (/tmp/redis.sock) or host:port (default 127.0.0.1:6379), e.g.
-- a throwaway server: `redis-server --port 6390 --save '' --appendonly no` and
-- `luajit examples/shared_breaker.lua 127.0.0.1:6390`. (Run from the repository root after
-- `make build`, with LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;".)
--
-- It starts two worker processes of itself, one after the other, with the same breaker:
-- circuit_breaker{window = 5, minimum_calls = 5, open_for = 1, name = "backend", store = redis}.
-- Worker A's backend is down: its 5 calls fail, and the breaker opens. Worker B's backend is
-- fine, but B never reaches it while the breaker is open: B's call is refused at once with
-- CircuitOpen. After open_for (1 s) B's next call is the half-open trial; it succeeds, and the
-- breaker closes, for every process.
local uv = require("luv")

local where = arg[2] and arg[1] or (arg[1] or "127.0.0.1:6379")
local function store_options()
    local host, port = where:match("^(.+):(%d+)$")
    if host then return { host = host, port = tonumber(port) } end
    return { path = where }
end

local role = arg[2]
if role == "A" or role == "B" then
    local dike = require("dike")
    dike.set_logger(function(_, message) print(role .. " logs: " .. message) end)
    local store = dike.store.redis(store_options())
    local breaker = dike.circuit_breaker{ window = 5, minimum_calls = 5, open_for = 1, name = "backend",
                                          store = store }
    local backend_up = role == "B"
    local get = breaker(function(id)
        if not backend_up then error("connection refused", 0) end
        return "user " .. id
    end)
    dike.run(function()
        if role == "A" then
            breaker:reset() -- start from closed (a run before this one may have left it open)
            for i = 1, 5 do print("A: " .. select(2, pcall(get, i))) end
            dike.sleep(0.01) -- the last outcome reaches Redis
            print("A: the breaker is " .. breaker:state())
        else
            local ok, err = pcall(get, 6)
            print(("B: %s (retry_after %.1f s)"):format(ok and err or err.message, ok and 0 or err.retry_after))
            dike.sleep(err.retry_after or 0)
            print("B: " .. get(7) .. "; the breaker is " .. breaker:state())
        end
    end)
    store:close()
    os.exit(0)
end

-- The parent: worker A, then worker B.
for _, who in ipairs({ "A", "B" }) do
    local code
    local handle = uv.spawn(arg[-1] or "luajit", { args = { arg[0], where, who }, stdio = { nil, 1, 2 } },
        function(c) code = c end)
    assert(handle, "cannot start a worker")
    while code == nil do uv.run("once") end
    handle:close()
    uv.run("nowait")
    if code ~= 0 then os.exit(1) end
end
