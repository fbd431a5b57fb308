--- A small HTTP/1.1 client on luv for dike tasks (the demo's load, the specs, the nginx
-- test): one keep-alive connection, responses read in order, waiting through dike.wrap.
local uv = require("luv")
local dike = require("dike")
local http = require("service.http")

local M = {}

local Conn = {}
Conn.__index = Conn

-- Suspend the calling task until conn.deliver(value, err) is called.
local wait_for = dike.wrap(function(conn, callback) conn.waiter = callback end)

local function deliver(conn, value, err)
    local w = conn.waiter
    if w then
        conn.waiter = nil
        w(value, err)
    end
end

local function on_read(conn, err, data)
    if err or not data then
        conn.closed = true
        conn.tcp:read_stop()
        local msg, perr = conn.parser:close()
        if msg then conn.ready[#conn.ready + 1] = msg end
        deliver(conn, nil, err or (perr and perr.message) or "closed")
        return
    end
    conn.parser:feed(data)
    while true do
        local msg, perr = conn.parser:next()
        if not msg then
            if perr then
                conn.failed = perr.message
                deliver(conn, nil, perr.message)
            end
            break
        end
        conn.ready[#conn.ready + 1] = msg
    end
    if conn.ready[1] then deliver(conn, true) end
end

--- Connect to host:port (inside a dike task). Returns a connection, or nil and an error.
function M.connect(host, port)
    local tcp = uv.new_tcp()
    local conn = setmetatable({ tcp = tcp, host = host .. ":" .. port, ready = {},
                                parser = http.parser("response") }, Conn)
    local connect = dike.wrap(function(cb) tcp:connect(host, port, cb) end)
    local err = connect()
    if err then
        tcp:close()
        return nil, err
    end
    tcp:read_start(function(e, data) on_read(conn, e, data) end)
    return conn
end

--- Send raw bytes (a request, or garbage for tests).
function Conn:send(bytes)
    if self.closed then return nil, "closed" end
    self.tcp:write(bytes)
    return true
end

--- The next response: a table {status, headers, body, keep_alive}, or nil and an error
--- ("closed" when the server closed the connection first). Waits at most `timeout` s.
function Conn:receive(timeout)
    local function take()
        local msg = table.remove(self.ready, 1)
        return msg
    end
    local msg = take()
    if msg then return msg end
    if self.failed then return nil, self.failed end
    if self.closed then return nil, "closed" end
    local timer
    if timeout then
        timer = uv.new_timer()
        timer:start(math.floor(timeout * 1000), 0, function() deliver(self, nil, "timeout") end)
    end
    local _, err = wait_for(self)
    if timer then timer:close() end
    msg = take()
    if msg then return msg end
    return nil, err
end

--- GET `target` and wait for the response.
function Conn:get(target, timeout)
    local ok, err = self:send(http.request(target, self.host))
    if not ok then return nil, err end
    return self:receive(timeout)
end

function Conn:close()
    if not self.tcp:is_closing() then self.tcp:close() end
    self.closed = true
end

--- One request on a fresh connection (inside a dike task).
function M.get(host, port, target, timeout)
    local conn, err = M.connect(host, port)
    if not conn then return nil, err end
    local res, rerr = conn:get(target, timeout)
    conn:close()
    return res, rerr
end

return M
