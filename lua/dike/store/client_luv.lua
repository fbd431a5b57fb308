--- dike's Redis client on luv (and Neovim's vim.uv / vim.loop): one connection, pipelined.
--
-- Why not Debian's lua-redis (redis-lua 2.0.5) over a socket of dike's? It accepts any
-- socket object with send/receive, so a socket whose receive suspends the coroutine would
-- drive it, but only one command at a time per connection: it reads a reply by several
-- receive calls (a line, then each element), so two coroutines waiting on one connection
-- would take each other's pieces. It also raises on an error reply in the middle of reading
-- an array (the rest stays unread: the connection is out of step), runs pub/sub and MULTI in
-- coroutines of its own (a suspending socket cannot serve those), is packaged for Lua 5.1-5.3
-- only (dike also runs on 5.4) and has not changed since 2014. This client is what dike
-- needs and no more: RESP2 (store/resp.lua), any number of coroutines pipelining commands on
-- one connection, replies handed back in order.
--
-- A request is written at once (or, while connecting, as soon as the connection is up) and
-- its reply goes to its waiting coroutine (call) or callback (send). Every request has a
-- deadline `timeout` seconds after it was made; one dike timer watches the oldest one. When
-- a reply is late, the connection cannot be trusted any more (its reply may still come, and
-- every later reply would go to the wrong caller): it is closed and every pending request
-- fails with the same error. So does a refused connection, a closed socket, a protocol
-- error, or a failed handshake (AUTH, SELECT: pipelined ahead of the first commands). The
-- next request connects again: the client reconnects on its own.
--
-- An idle connection is unref'd: it never keeps a loop alive (uv.run() returns when
-- everything else is done).
local rt = require("dike.runtime")
local resp = require("dike.store.resp")
local log = require("dike.log")

local setmetatable, getmetatable, pcall, xpcall, tostring, format, sub, match =
    setmetatable, getmetatable, pcall, xpcall, tostring, string.format, string.sub, string.match
local traceback = debug.traceback
local parse, ErrorReply, command = resp.parse, resp.ErrorReply, resp.command

local M = {}

local Failure = { __name = "dike.store.Failure" }
Failure.__index = Failure
Failure.__tostring = function(f) return f.message end
M.Failure = Failure

local Client = {}
Client.__index = Client

local function uv_module()
    return require("dike.runtime.luv").find_uv()
end

--- A client (not connected yet: the first request connects).
---@param cfg {host?: string, port?: integer, path?: string, username?: string, password?: string, db?: integer, timeout: number, label: string}
function M.new(cfg)
    local handshake, n = {}, 0
    if cfg.password then
        n = n + 1
        handshake[n] = cfg.username and resp.encode("AUTH", cfg.username, cfg.password)
            or resp.encode("AUTH", cfg.password)
    end
    if cfg.db and cfg.db ~= 0 then
        n = n + 1
        handshake[n] = resp.encode("SELECT", cfg.db)
    end
    return setmetatable({
        host = cfg.host, port = cfg.port, path = cfg.path, timeout = cfg.timeout,
        label = cfg.label, handshake = handshake,
        state = "closed", handle = nil, gen = 0, hs_pending = 0,
        q = {}, qh = 1, qt = 0, -- pending requests, oldest first
        outq = {},               -- encoded requests waiting for the connection
        buf = "", pos = 1,       -- bytes read and not parsed yet: buf[pos..]
        timer = nil,
        connects = 0,            -- connections made (tests, benchmarks)
        sent = 0,                -- requests written (round trips, for the benchmarks)
    }, Client)
end

-- Run a callback of dike's own from a luv callback: an error in it must not end the process.
local function contained(fn, a, b, c)
    local ok, err = xpcall(fn, traceback, a, b, c)
    if not ok then log.log("error", "dike.store.redis: internal error: " .. tostring(err)) end
end

local function deliver(req, value)
    local w = req.w
    if w then
        rt.wake(w, true, value)
    elseif req.cb then
        if getmetatable(value) == Failure then
            contained(req.cb, req.a, nil, value.message)
        elseif getmetatable(value) == ErrorReply then
            contained(req.cb, req.a, nil, value.message)
        else
            contained(req.cb, req.a, value, nil)
        end
    end
end

-- Writing to a socket whose peer has gone raises SIGPIPE, which ends a process that has not
-- set a handler (libuv sets none; nginx and Neovim ignore SIGPIPE, a luv script does not). With
-- its first socket the client starts a luv signal watcher for SIGPIPE, so that such a write
-- fails with EPIPE instead. The watcher is unref'd (it never keeps the loop alive) and kept
-- for the life of the process, in the Lua registry (shared by every load of dike): closing it
-- would reset SIGPIPE to its default, whatever the program had set before.
local SIGPIPE_KEY = "dike.store.sigpipe"

local function ignore_sigpipe(uv)
    if rawget(_G, "vim") ~= nil then return end -- Neovim ignores it already
    local registry = debug.getregistry()
    local h = registry[SIGPIPE_KEY]
    if h and not h:is_closing() then return end
    h = uv.new_signal()
    h:start("sigpipe", function() end)
    h:unref()
    registry[SIGPIPE_KEY] = h
end

local function close_handle(c)
    local h = c.handle
    c.handle = nil
    if h and not h:is_closing() then
        pcall(h.read_stop, h)
        h:close()
    end
end

local function stop_timer(c)
    if c.timer then
        rt.cancel_timer(c.timer)
        c.timer = nil
    end
end

--- Close the connection and fail every pending request with `message`.
local function fail_all(c, message)
    local q, qh, qt = c.q, c.qh, c.qt
    c.q, c.qh, c.qt = {}, 1, 0
    c.outq, c.hs_pending = {}, 0
    c.buf, c.pos = "", 1
    c.state = "closed"
    c.gen = c.gen + 1
    stop_timer(c)
    close_handle(c)
    local failure = setmetatable({ message = message }, Failure)
    for i = qh, qt do deliver(q[i], failure) end
end
M.fail_all = fail_all

local on_timer

local function arm(c, delay)
    c.timer = rt.timer(delay, on_timer, c)
end

-- The oldest request is due: fail everything, or wait on for it.
on_timer = function(c)
    c.timer = nil
    if c.qt < c.qh then return end
    local due = c.q[c.qh].deadline - rt.now()
    if due > 0 then return arm(c, due) end
    fail_all(c, format("%s: no reply within %gs", c.label, c.timeout))
end

local function idle(c)
    stop_timer(c)
    local h = c.handle
    if h and not h:is_closing() then h:unref() end
end

local function on_reply(c, value)
    if c.hs_pending > 0 then
        c.hs_pending = c.hs_pending - 1
        if getmetatable(value) == ErrorReply then
            fail_all(c, c.label .. ": " .. value.message)
        end
        return
    end
    local qh = c.qh
    if qh > c.qt then
        return fail_all(c, c.label .. ": a reply nobody asked for (protocol out of step)")
    end
    local req = c.q[qh]
    c.q[qh] = nil
    c.qh = qh + 1
    if qh == c.qt then
        c.qh, c.qt = 1, 0
        idle(c)
    end
    deliver(req, value)
end

local function on_read(c, gen, err, chunk)
    if gen ~= c.gen then return end
    if err then return fail_all(c, c.label .. ": " .. tostring(err)) end
    if chunk == nil then return fail_all(c, c.label .. ": connection closed by the server") end
    local buf = c.buf
    if c.pos > #buf then buf = chunk else buf = sub(buf, c.pos) .. chunk end
    local pos = 1
    while true do
        local ok, v, np = pcall(parse, buf, pos)
        if not ok then return fail_all(c, c.label .. ": " .. tostring(v)) end
        if v == nil then break end
        pos = np
        on_reply(c, v)
        if gen ~= c.gen then return end -- a failed handshake closed it
    end
    c.buf, c.pos = buf, pos
end

-- A luv request (write, connect) returns its request object, or nil and a message, or raises
-- (a handle closed by user code): nil when it was made, else the message.
local function uv_call(fn, ...)
    local ok, res, err = pcall(fn, ...)
    if not ok then return tostring(res) end
    if res == nil then return tostring(err) end
    return nil
end

local function on_connected(c, gen, err)
    if gen ~= c.gen then return end
    if err then
        return fail_all(c, format("%s: cannot connect: %s", c.label, tostring(err)))
    end
    local h = c.handle
    c.state = "open"
    if h.nodelay then pcall(h.nodelay, h, true) end
    local reader = function(e, chunk) on_read(c, gen, e, chunk) end
    local rerr = uv_call(h.read_start, h, reader)
    if rerr then return fail_all(c, c.label .. ": " .. rerr) end
    local out, n = {}, 0
    for i = 1, #c.handshake do n = n + 1; out[n] = c.handshake[i] end
    c.hs_pending = #c.handshake
    for i = 1, #c.outq do n = n + 1; out[n] = c.outq[i] end
    c.outq = {}
    if n > 0 then
        local werr = uv_call(h.write, h, out)
        if werr then return fail_all(c, c.label .. ": cannot write: " .. werr) end
    end
    if c.qt < c.qh then idle(c) end
end

local function is_ip(host)
    return match(host, "^%d+%.%d+%.%d+%.%d+$") ~= nil or match(host, ":") ~= nil
end

local function connect(c)
    local uv = uv_module()
    c.gen = c.gen + 1
    c.state = "connecting"
    c.connects = c.connects + 1
    c.buf, c.pos = "", 1
    local gen = c.gen
    local function done(err) on_connected(c, gen, err) end
    local err
    if c.path then
        local h = uv.new_pipe(false)
        c.handle = h
        ignore_sigpipe(uv)
        err = uv_call(h.connect, h, c.path, done)
    elseif is_ip(c.host) then
        local h = uv.new_tcp()
        c.handle = h
        ignore_sigpipe(uv)
        err = uv_call(h.connect, h, c.host, c.port, done)
    else
        err = uv_call(uv.getaddrinfo, c.host, tostring(c.port), { socktype = "stream" }, function(e, res)
            if gen ~= c.gen then return end
            if e or not res or not res[1] then
                return fail_all(c, format("%s: cannot resolve %s: %s", c.label, c.host, tostring(e or "no address")))
            end
            local h = uv.new_tcp()
            c.handle = h
            ignore_sigpipe(uv)
            local cerr = uv_call(h.connect, h, res[1].addr, res[1].port or c.port, done)
            if cerr then fail_all(c, format("%s: cannot connect: %s", c.label, cerr)) end
        end)
    end
    if err then
        -- Fail from the loop, not here: the caller has then queued its request and waits.
        local message = format("%s: cannot connect: %s", c.label, err)
        rt.timer(0, function() if gen == c.gen then fail_all(c, message) end end)
    end
end

local function submit(c, req, deadline)
    local h = c.handle
    if c.state ~= "closed" and (h == nil or h:is_closing()) then
        -- its handle was closed under it (user code's uv.walk(close)): what was sent on it
        -- will never be answered
        fail_all(c, c.label .. ": connection closed")
        h = nil
    end
    req.deadline = deadline or rt.now() + c.timeout
    local qt = c.qt + 1
    c.qt = qt
    c.q[qt] = req
    c.sent = c.sent + 1
    if c.state == "open" then
        if qt == c.qh then h:ref() end
        local err = uv_call(h.write, h, req.cmd)
        if err then
            local gen = c.gen
            local message = c.label .. ": cannot write: " .. err
            rt.timer(0, function() if gen == c.gen then fail_all(c, message) end end)
        end
    else
        c.outq[#c.outq + 1] = req.cmd
        if c.state == "closed" then connect(c) end
        h = c.handle
        if h and not h:is_closing() then h:ref() end
    end
    if not c.timer then arm(c, req.deadline - rt.now()) end
end

local function abandon(_, req)
    req.w = nil -- the reply (or failure) goes to req.cb, if any: the caller left
end

--- Send a command (list[1..n]: strings and numbers) and wait for its reply (in a coroutine).
--- Returns the reply, or nil, message, kind ("reply": Redis answered with an error; "io": no
--- answer). If the caller is cancelled meanwhile, the reply goes to orphan(orphan_arg, reply,
--- err) instead.
---@param fname string the name in the "must be called inside a coroutine" error
---@param deadline? number absolute (rt.now()) deadline; default now + timeout
function Client:call(list, n, fname, orphan, orphan_arg, deadline)
    local w = rt.waiter(fname)
    local req = { cmd = command(n, list), w = w, cb = orphan, a = orphan_arg }
    submit(self, req, deadline)
    local v = rt.suspend(w, abandon, req)
    local mt = getmetatable(v)
    if mt == ErrorReply then return nil, v.message, "reply" end
    if mt == Failure then return nil, v.message, "io" end
    return v
end

--- Send a command without waiting; cb(a, reply) or cb(a, nil, message) runs from the loop
--- when it is answered or fails (cb may be nil: the reply is dropped).
function Client:send(list, n, cb, a)
    submit(self, { cmd = command(n, list), cb = cb, a = a })
end

--- Requests waiting for their replies.
function Client:pending()
    return self.qt - self.qh + 1
end

--- Close the connection; pending requests fail with "closed". Outside a running loop, the
--- loop runs once (without blocking) so that the socket's close completes: a handle still
--- closing when the Lua state ends can crash the process at exit.
function Client:close()
    local had = self.handle
    fail_all(self, self.label .. ": closed")
    if had then
        local host = rt.host
        if host and host.loop_running and not host.loop_running() then uv_module().run("nowait") end
    end
end

return M
