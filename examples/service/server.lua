--- A small HTTP/1.1 server on luv TCP whose handlers run as dike tasks.
--
-- Each request becomes a task (dike.spawn) calling handler(request) -> status, headers,
-- body; the handler may wait (batch, limit_jobs, retry...). Requests of one connection may
-- be in flight together (pipelining, up to max_pipeline; reading pauses beyond that, and
-- while the peer leaves more than max_unsent bytes of responses unread), and their
-- responses are written in request order. Keep-alive is HTTP/1.1's default;
-- "Connection: close" and HTTP/1.0 (without keep-alive) close after the response. Input
-- that is not HTTP gets its 4xx/5xx (http.lua) in order, then the connection closes. An idle
-- connection closes after idle_timeout; one that sends a partial request for head_timeout
-- gets 408. A handler that raises answers 500: nothing the peer sends can stop the server.
local uv = require("luv")
local dike = require("dike")
local http = require("service.http")
local json = require("service.json")

local pcall, tostring, pairs, type, setmetatable, floor = pcall, tostring, pairs, type, setmetatable, math.floor

local M = {}

local Server = {}
Server.__index = Server

local JSON = { { "Content-Type", "application/json" } }

--- A JSON error response for `status`.
function M.error_body(status, detail)
    return json.encode({ status = status, title = http.REASONS[status] or "Error", detail = detail })
end

local function count(server, status)
    local r = server.counters.responses
    local k = tostring(status)
    r[k] = (r[k] or 0) + 1
end

local function close_conn(server, conn)
    if conn.closed then return end
    conn.closed = true
    server.conns[conn] = nil
    server.open = server.open - 1
    conn.timer:close()
    if not conn.tcp:is_closing() then conn.tcp:close() end
    if server.open == 0 and server.on_drained then server.on_drained() end
end

-- Half-close after the last response is out, then close.
local function finish_conn(server, conn)
    if conn.closed or conn.finishing then return end
    conn.finishing = true
    conn.tcp:read_stop()
    conn.tcp:shutdown(function() close_conn(server, conn) end)
end

local function arm_timer(server, conn)
    if conn.closed then return end
    local seconds = conn.parser:buffered() > 0 and server.head_timeout or server.idle_timeout
    conn.timer:start(floor(seconds * 1000), 0, conn.on_timer)
end

local drain

-- Reading paused (too many requests in flight, or a peer that does not read its responses):
-- go on once both are back under their limits.
local function resume(server, conn)
    if not conn.paused or conn.closed or conn.last then return end
    if conn.inflight >= server.max_pipeline or conn.tcp:get_write_queue_size() > server.max_unsent then return end
    conn.paused = false
    drain(server, conn)
    if not conn.paused and not conn.last then conn.tcp:read_start(conn.on_read) end
end

-- Write the responses that are ready, in request order.
local function flush(server, conn)
    local slots = conn.slots
    while true do
        local s = slots[conn.head]
        if not s or not s.data then break end
        slots[conn.head] = nil
        conn.head = conn.head + 1
        conn.inflight = conn.inflight - 1
        if not conn.closed then conn.tcp:write(s.data, conn.on_written) end
    end
    if conn.closed then return end
    if conn.last then
        if conn.inflight == 0 then finish_conn(server, conn) end
    else
        resume(server, conn)
    end
    if conn.inflight == 0 then arm_timer(server, conn) end
end

local function respond(server, conn, slot, status, headers, body, keep_alive, version)
    count(server, status)
    slot.data = http.response(status, headers, body, keep_alive, version)
    flush(server, conn)
end

local function handle(server, conn, slot, req)
    local ok, status, headers, body = pcall(server.handler, req)
    if not ok or type(status) ~= "number" or type(body) ~= "string" then
        local detail = ok and "handler returned no status and body" or tostring(status)
        status, headers, body = 500, JSON, M.error_body(500, detail)
    end
    respond(server, conn, slot, status, headers or JSON, body, req.keep_alive and not server.stopping, req.version)
end

local function new_slot(conn)
    conn.tail = conn.tail + 1
    conn.inflight = conn.inflight + 1
    local slot = {}
    conn.slots[conn.tail] = slot
    return slot
end

-- Start a task for every complete request buffered (pausing at max_pipeline).
function drain(server, conn)
    while not conn.last do
        if conn.inflight >= server.max_pipeline or conn.tcp:get_write_queue_size() > server.max_unsent then
            conn.paused = true
            conn.tcp:read_stop()
            return
        end
        local req, err = conn.parser:next()
        if err then
            server.counters.bad_requests = server.counters.bad_requests + 1
            conn.last = true
            conn.tcp:read_stop()
            respond(server, conn, new_slot(conn), err.status, JSON, M.error_body(err.status, err.message), false)
            return
        end
        if not req then return end
        server.counters.requests = server.counters.requests + 1
        if not req.keep_alive or server.stopping then
            conn.last = true
            conn.tcp:read_stop()
        end
        dike.spawn(handle, server, conn, new_slot(conn), req)
    end
end

local function on_read(server, conn, err, data)
    if conn.closed then return end
    if err then return close_conn(server, conn) end
    if not data then -- the peer is done sending: answer what it asked, then close
        conn.last = true
        conn.tcp:read_stop()
        if conn.parser:buffered() > 0 and conn.inflight == 0 then
            return respond(server, conn, new_slot(conn), 400, JSON,
                           M.error_body(400, "connection closed mid-request"), false)
        end
        if conn.inflight == 0 then finish_conn(server, conn) end
        return
    end
    conn.timer:stop()
    conn.parser:feed(data)
    drain(server, conn)
    if conn.inflight == 0 then arm_timer(server, conn) end
end

local function on_timer(server, conn)
    if conn.closed or conn.inflight > 0 then return end
    if conn.parser:buffered() > 0 then
        conn.last = true
        conn.tcp:read_stop()
        return respond(server, conn, new_slot(conn), 408, JSON,
                       M.error_body(408, "request not complete in time"), false)
    end
    close_conn(server, conn)
end

local function on_connection(server)
    local tcp = uv.new_tcp()
    if not server.handle:accept(tcp) then
        tcp:close()
        return
    end
    tcp:nodelay(true)
    local conn = { tcp = tcp, timer = uv.new_timer(), parser = http.parser("request", server.limits),
                   slots = {}, head = 1, tail = 0, inflight = 0 }
    conn.on_read = function(err, data) on_read(server, conn, err, data) end
    conn.on_timer = function() on_timer(server, conn) end
    conn.on_written = function() resume(server, conn) end
    server.conns[conn] = true
    server.open = server.open + 1
    server.counters.connections = server.counters.connections + 1
    if server.stopping then return finish_conn(server, conn) end
    tcp:read_start(conn.on_read)
    arm_timer(server, conn)
end

--- Listen on 127.0.0.1. opts: port (0: the OS picks; read server.port), handler,
--- limits (for http.parser), max_pipeline (16), max_unsent (bytes of responses the peer has
--- not taken yet before reading pauses, 1 MiB), idle_timeout (30 s), head_timeout (10 s).
---@return table|nil server, string|nil error
function M.listen(opts)
    local server = setmetatable({
        handler = opts.handler, limits = opts.limits, max_pipeline = opts.max_pipeline or 16,
        max_unsent = opts.max_unsent or 1048576,
        idle_timeout = opts.idle_timeout or 30, head_timeout = opts.head_timeout or 10,
        conns = {}, open = 0,
        counters = { connections = 0, requests = 0, bad_requests = 0, responses = {} },
    }, Server)
    local listener = uv.new_tcp()
    local ok, err = listener:bind("127.0.0.1", opts.port or 0)
    if ok then ok, err = listener:listen(256, function(e) if not e then on_connection(server) end end) end
    if not ok then
        listener:close()
        return nil, err
    end
    server.handle = listener
    server.port = listener:getsockname().port
    return server
end

--- Stop accepting; finish the requests in flight, then close every connection. Call it
--- inside a dike task: it waits (at most `timeout` seconds, default 5) until all are closed.
function Server:close(timeout)
    if not self.stopping then
        self.stopping = true
        self.handle:close()
        for conn in pairs(self.conns) do
            if conn.inflight == 0 then close_conn(self, conn) else conn.last = true end
        end
    end
    local deadline = dike.now() + (timeout or 5)
    while self.open > 0 and dike.now() < deadline do dike.sleep(0.01) end
    for conn in pairs(self.conns) do close_conn(self, conn) end
end

return M
