--- Workload 15, limits shared by nginx's workers: a private nginx with four workers
-- (spec/ngx_store/nginx.conf.in) and a private redis-server, under `wrk -t 2 -c 50 -d N s`;
-- requests that do nothing but pass their guard:
--   IMPL none   no guard
--   IMPL bare   a bare ngx.shared.DICT:incr counter (+1, compare, -1: the mechanism of
--               lua-resty-limit-traffic's limit.conn, which Debian does not package)
--   IMPL sd     dike.limit_jobs{store = dike.store.shared_dict("dike")}: a lease taken with
--               dict:add, released with get + delete
--   IMPL rd     dike.limit_jobs{store = dike.store.redis{...}} inside nginx (lua-resty-redis): two
--               round trips to Redis per request (the release in a light thread of dike's)
-- The limit (100,000) is never reached: every request is admitted. ops = requests, seconds = N.
local common = require("lua.common")
local redis_server = require("spec.redis_server")
local nginx = require("spec.ngx_store.nginx")

local impl, n = common.args("ngx_store.lua none|bare|sd|rd SECONDS")
local target = ({ none = "/none", bare = "/bare", sd = "/bench_sd", rd = "/bench_rd" })[impl]
if not target then error("ngx_store.lua: unknown IMPL " .. impl, 0) end

local build = (os.getenv("LUA_CPATH") or "build/?.so"):match("^([^;]*)/%?%.so") or "build"
local server = redis_server.start()
local ok, err = pcall(function()
    local port = nginx.start{ build = build, redis = server.path }
    local p = assert(io.popen(("wrk -t 2 -c 50 -d %ds http://127.0.0.1:%d%s 2>&1"):format(n, port, target)))
    local out = p:read("*a")
    p:close()
    local requests = tonumber(out:match("(%d+) requests in"))
    local seconds = out:match("requests in ([%d.]+)(m?s)")
    local unit = out:match("requests in [%d.]+(m?s)")
    if not requests or not seconds then error("wrk failed:\n" .. out, 0) end
    seconds = tonumber(seconds) / (unit == "ms" and 1000 or 1)
    local bad = tonumber(out:match("Non%-2xx or 3xx responses: (%d+)")) or 0
    common.check("non-2xx responses", bad, 0)
    common.report{ ops = requests, seconds = seconds }
end)
nginx.stop()
server:destroy()
if not ok then error(err, 0) end
