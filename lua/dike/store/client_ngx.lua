--- dike's Redis client inside nginx: lua-resty-redis (OpenResty's client; Debian packages it
-- as lua-nginx-redis, module "nginx.redis"), on nginx's cosockets.
--
-- A cosocket belongs to the light thread that made it, so each call takes a connection from
-- nginx's keepalive pool (per worker; the pool name carries the database, so SELECT stays
-- right), runs one command and puts the connection back; AUTH and SELECT run once per new
-- connection. The whole call (connect, handshake, command) gets `timeout` seconds: each step
-- is given what is left. Calls without a waiting caller (send) run in a light thread of
-- dike's (rt.spawn_soon), so a request never waits for a release or a renewal.
--
-- Same interface as client_luv.lua: call(list, n, ...) and send(list, n, cb, a) take the
-- command as a list of strings and numbers; replies are Lua values (ngx.null for nil).
local rt = require("dike.runtime")

local setmetatable, tostring, type, pcall, ceil, lower =
    setmetatable, tostring, type, pcall, math.ceil, string.lower
local unpack = table.unpack or unpack -- luacheck: ignore 143

local M = {}

local POOL_SIZE, BACKLOG = 32, 4096

local redis_module
local function module()
    if redis_module then return redis_module end
    local ok, mod = pcall(require, "resty.redis")
    if not ok then ok, mod = pcall(require, "nginx.redis") end
    if not ok then
        error("dike.store.redis: inside nginx it needs lua-resty-redis (module resty.redis; Debian: "
              .. "lua-nginx-redis, module nginx.redis)", 0)
    end
    redis_module = mod
    return mod
end

local Client = {}
Client.__index = Client

function M.new(cfg)
    module() -- fail now (at construction) when the library is missing
    local pool = (cfg.path or (cfg.host .. ":" .. cfg.port)) .. "/" .. (cfg.db or 0)
        .. (cfg.username and ("/" .. cfg.username) or "")
    return setmetatable({
        host = cfg.host, port = cfg.port, path = cfg.path, timeout = cfg.timeout, label = cfg.label,
        username = cfg.username, password = cfg.password, db = cfg.db,
        -- At most POOL_SIZE connections per worker; more callers wait for one (BACKLOG of them)
        -- within their timeout, instead of opening hundreds of connections at once.
        connect_opts = { pool = "dike:" .. pool, pool_size = POOL_SIZE, backlog = BACKLOG },
        sent = 0, connects = 0,
    }, Client)
end

local function ms(seconds)
    local v = ceil(seconds * 1000)
    if v < 1 then v = 1 end
    return v
end

-- One command on a pooled connection; every step within `deadline`.
local function run(c, list, n, deadline)
    local red, err = module():new()
    if not red then return nil, tostring(err), "io" end
    red:set_timeout(ms(deadline - rt.now()))
    local ok
    if c.path then
        ok, err = red:connect("unix:" .. c.path, c.connect_opts)
    else
        ok, err = red:connect(c.host, c.port, c.connect_opts)
    end
    if not ok then return nil, c.label .. ": cannot connect: " .. tostring(err), "io" end
    if red:get_reused_times() == 0 then
        c.connects = c.connects + 1
        local res
        if c.password then
            red:set_timeout(ms(deadline - rt.now()))
            if c.username then res, err = red:auth(c.username, c.password)
            else res, err = red:auth(c.password) end
            if not res then
                red:close()
                return nil, c.label .. ": " .. tostring(err), res == false and "reply" or "io"
            end
        end
        if c.db and c.db ~= 0 then
            red:set_timeout(ms(deadline - rt.now()))
            res, err = red:select(c.db)
            if not res then
                red:close()
                return nil, c.label .. ": " .. tostring(err), res == false and "reply" or "io"
            end
        end
    end
    local left = deadline - rt.now()
    if left <= 0 then
        red:close()
        return nil, c.label .. ": no reply within " .. c.timeout .. "s", "io"
    end
    red:set_timeout(ms(left))
    c.sent = c.sent + 1
    local res
    res, err = red[lower(list[1])](red, unpack(list, 2, n))
    if res == nil then
        red:close() -- a timed-out or broken connection must not go back to the pool
        if err == "timeout" then err = "no reply within " .. c.timeout .. "s" end
        return nil, c.label .. ": " .. tostring(err), "io"
    end
    red:set_keepalive(60000, POOL_SIZE)
    if res == false then return nil, tostring(err), "reply" end
    if type(res) == "table" then res.n = #res end
    return res
end

--- Run a command and wait for its reply (in a light thread). Returns the reply, or nil,
--- message, kind ("reply" or "io").
function Client:call(list, n, fname, _, _, deadline)
    rt.waiter(fname)
    return run(self, list, n, deadline or rt.now() + self.timeout)
end

local function background(c, req)
    local res, err = run(c, req.list, req.n, rt.now() + c.timeout)
    if req.cb then req.cb(req.a, res, err) end
end

--- Run a command in a light thread of dike's; cb(a, reply) or cb(a, nil, message) after.
function Client:send(list, n, cb, a)
    rt.spawn_soon(background, self, { list = list, n = n, cb = cb, a = a })
end

--- Requests waiting for their replies: none kept here (each runs in its own light thread).
function Client.pending()
    return 0
end

--- Nothing to close: connections go back to nginx's pool after each command.
function Client.close()
end

return M
