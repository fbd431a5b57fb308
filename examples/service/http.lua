--- HTTP/1.1 message parsing and writing (RFC 9112), for the demo service and its clients.
-- Pure Lua, no I/O: feed() bytes as they arrive, next() returns one complete message at a
-- time (so pipelined requests come out in order), or nil while more bytes are needed, or
-- nil plus an error {status = 4xx/5xx, message = "..."} for input that is not HTTP. After an
-- error the parser stays failed: the connection must be closed.
--
-- Careful, not lenient: a request line is METHOD SP target SP HTTP/1.x; header names are
-- tokens with no space before the colon; obs-fold, bare CR, control characters, a second
-- Host, conflicting Content-Length, and Content-Length with Transfer-Encoding are rejected
-- (400); a head larger than max_head is 431 (414 while still in the request line);
-- HTTP/2+ is 505; a request body's transfer coding other than chunked is 501.
-- Lines may end in CRLF or a bare LF (RFC 9112 §2.2); empty lines before a request line
-- are skipped.
local find, sub, byte, lower, format, gsub, gmatch, char =
    string.find, string.sub, string.byte, string.lower, string.format, string.gsub, string.gmatch, string.char
local tonumber, setmetatable, concat, type, pairs = tonumber, setmetatable, table.concat, type, pairs

local M = {}

M.REASONS = {
    [200] = "OK", [400] = "Bad Request", [404] = "Not Found", [405] = "Method Not Allowed",
    [408] = "Request Timeout", [413] = "Content Too Large", [414] = "URI Too Long",
    [429] = "Too Many Requests", [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
    [501] = "Not Implemented", [502] = "Bad Gateway", [503] = "Service Unavailable",
    [505] = "HTTP Version Not Supported",
}

local DEFAULTS = { max_head = 8192, max_headers = 64, max_body = 1048576 }

local TOKEN = "^[%w!#%$%%&'%*%+%-%.%^_`|~]+$"

local function fail(status, message)
    return { status = status, message = message }
end

---------------------------------------------------------------- targets and queries

local function unhex(h) return char(tonumber(h, 16)) end

--- Percent-decode `s` ('+' is a space in queries); nil when an escape is malformed.
function M.unescape(s, plus)
    local i = find(s, "%", 1, true)
    while i do
        if not find(s, "^%x%x", i + 1) then return nil end
        i = find(s, "%", i + 3, true)
    end
    if plus then s = gsub(s, "+", " ") end
    return (gsub(s, "%%(%x%x)", unhex))
end

--- Split a request target into its path and a table of query parameters (the first value
--- of a repeated name wins). Returns nil and a message when the target is malformed.
function M.split_target(target)
    local path, query = target, nil
    local q = find(target, "?", 1, true)
    if q then path, query = sub(target, 1, q - 1), sub(target, q + 1) end
    local absolute = path:match("^[hH][tT][tT][pP][sS]?://[^/]*(.*)$")
    if absolute then path = absolute == "" and "/" or absolute end
    local decoded = M.unescape(path, false)
    if decoded == nil then return nil, "malformed percent-escape in the path" end
    local params = {}
    if query then
        for pair in gmatch(query, "[^&]+") do
            local k, v = pair:match("^([^=]*)=?(.*)$")
            local dk, dv = M.unescape(k, true), M.unescape(v, true)
            if dk == nil or dv == nil then return nil, "malformed percent-escape in the query" end
            if params[dk] == nil then params[dk] = dv end
        end
    end
    return decoded, params
end

---------------------------------------------------------------- the parser

local Parser = {}
Parser.__index = Parser

--- A parser for "request" or "response" messages; `limits` overrides max_head (bytes of
--- the start line and headers), max_headers (count) and max_body (bytes).
function M.parser(kind, limits)
    local p = setmetatable({ kind = kind, buf = "", pos = 1, scanned = 1 }, Parser)
    for k, v in pairs(DEFAULTS) do p[k] = limits and limits[k] or v end
    return p
end

function Parser:feed(data)
    if self.err then return end
    local buf, pos = self.buf, self.pos
    if pos > 1 then
        self.scanned = self.scanned - pos + 1
        buf, self.pos = sub(buf, pos), 1
    end
    self.buf = buf .. data
end

--- Bytes received but not consumed by complete messages.
function Parser:buffered()
    return #self.buf - self.pos + 1
end

local function set_error(self, status, message)
    self.err = fail(status, message)
    return nil, self.err
end

-- Split the head (without its final empty line) into lines, rejecting bare CR.
local function head_lines(head)
    local lines = {}
    for line in gmatch(head, "([^\n]*)\n") do
        if byte(line, -1) == 13 then line = sub(line, 1, -2) end
        if find(line, "\r", 1, true) then return nil end
        lines[#lines + 1] = line
    end
    lines[#lines] = nil -- the empty line that ends the head
    return lines
end

local function parse_start(self, line)
    if self.kind == "request" then
        local method, target, major, minor = line:match("^(%S+) (%S+) HTTP/(%d)%.(%d)$")
        if not method then
            if line:match("^%S+ %S+ HTTP/%d%d+%.%d+$") then
                return fail(505, "unsupported HTTP version")
            end
            return fail(400, "malformed request line")
        end
        if not find(method, TOKEN) then return fail(400, "malformed method") end
        if find(target, "[%c\128-\255]") then return fail(400, "malformed request target") end
        if major ~= "1" then return fail(505, "unsupported HTTP version " .. major .. "." .. minor) end
        if byte(target) ~= 47 and target ~= "*" and not target:match("^[hH][tT][tT][pP][sS]?://") then
            return fail(400, "malformed request target")
        end
        return nil, { method = method, target = target, version = minor == "0" and "1.0" or "1.1" }
    end
    local major, minor, status, reason = line:match("^HTTP/(%d)%.(%d) (%d%d%d) ?(.*)$")
    if not major or major ~= "1" then return fail(400, "malformed status line") end
    return nil, { status = tonumber(status), reason = reason, version = minor == "0" and "1.0" or "1.1" }
end

local function parse_headers(self, lines, msg)
    local headers, count = {}, 0
    for i = 2, #lines do
        local line = lines[i]
        local c = byte(line)
        if c == 32 or c == 9 then return fail(400, "obsolete line folding in headers") end
        local name, value = line:match("^([^:]*):[ \t]*(.-)[ \t]*$")
        if not name or not find(name, TOKEN) then return fail(400, "malformed header line") end
        if find(value, "[%z\1-\8\10-\31\127]") then return fail(400, "control character in a header value") end
        count = count + 1
        if count > self.max_headers then return fail(431, "too many header fields") end
        name = lower(name)
        local old = headers[name]
        if old == nil then
            headers[name] = value
        elseif name == "content-length" then
            if old ~= value then return fail(400, "conflicting Content-Length headers") end
        elseif name == "host" then
            return fail(400, "more than one Host header")
        else
            headers[name] = old .. ", " .. value
        end
    end
    msg.headers = headers
    return nil
end

-- Which tokens the Connection header holds ("close", "keep-alive").
local function connection_has(headers, token)
    local v = headers.connection
    if not v then return false end
    for t in gmatch(lower(v), "[^,%s]+") do
        if t == token then return true end
    end
    return false
end

-- How the body is framed: sets msg.length (bytes), msg.chunked, or msg.until_close.
local function framing(self, msg)
    local h = msg.headers
    local te, cl = h["transfer-encoding"], h["content-length"]
    if te then
        if cl then return fail(400, "both Transfer-Encoding and Content-Length") end
        if lower(te):match("^%s*chunked%s*$") then
            msg.chunked = true
            return nil
        end
        if self.kind == "request" then return fail(501, "unsupported transfer coding " .. te) end
        msg.until_close = true
        return nil
    end
    if cl then
        if not find(cl, "^%d+$") or #cl > 15 then return fail(400, "malformed Content-Length") end
        local n = tonumber(cl)
        if n > self.max_body then return fail(413, "body larger than " .. self.max_body .. " bytes") end
        msg.length = n
        return nil
    end
    if self.kind == "response" and not (msg.status == 204 or msg.status == 304 or msg.status < 200) then
        msg.until_close = true
    else
        msg.length = 0
    end
    return nil
end

-- Parse the head if it is complete; returns the message, nil (more needed) or nil, err.
local function take_head(self)
    local buf, pos = self.buf, self.pos
    if self.kind == "request" then -- skip empty lines before a request line
        local s, e = find(buf, "^\r?\n", pos)
        while s do
            pos = e + 1
            s, e = find(buf, "^\r?\n", pos)
        end
        self.pos = pos
        if self.scanned < pos then self.scanned = pos end
    end
    local from = self.scanned > pos + 2 and self.scanned - 2 or pos
    local _, e = find(buf, "\n\r?\n", from)
    if not e then
        local pending = #buf - pos + 1
        self.scanned = #buf + 1
        if pending > self.max_head then
            if self.kind == "request" and not find(buf, "\n", pos, true) then
                return set_error(self, 414, "request line longer than " .. self.max_head .. " bytes")
            end
            return set_error(self, 431, "header section larger than " .. self.max_head .. " bytes")
        end
        return nil
    end
    if e - pos + 1 > self.max_head then
        return set_error(self, 431, "header section larger than " .. self.max_head .. " bytes")
    end
    local lines = head_lines(sub(buf, pos, e))
    if not lines then return set_error(self, 400, "bare CR in the header section") end
    local err, msg = parse_start(self, lines[1])
    if err then return set_error(self, err.status, err.message) end
    err = parse_headers(self, lines, msg)
    if err then return set_error(self, err.status, err.message) end
    if self.kind == "request" and msg.version == "1.1" and msg.headers.host == nil then
        return set_error(self, 400, "HTTP/1.1 request without Host")
    end
    err = framing(self, msg)
    if err then return set_error(self, err.status, err.message) end
    if msg.version == "1.1" then
        msg.keep_alive = not connection_has(msg.headers, "close")
    else
        msg.keep_alive = connection_has(msg.headers, "keep-alive")
    end
    self.pos, self.scanned = e + 1, e + 1
    self.msg, self.parts, self.body_n = msg, {}, 0
    return msg
end

-- Read chunked body data; true when the last chunk and trailers are in.
local function take_chunks(self)
    local buf = self.buf
    while true do
        local pos = self.pos
        if self.chunk_left then
            local need = self.chunk_left
            if #buf - pos + 1 < need + 1 then return false end
            local data_end = pos + need - 1
            local s, e = find(buf, "^\r?\n", data_end + 1)
            if not s then
                if #buf - data_end >= 2 then return set_error(self, 400, "chunk data not followed by CRLF") end
                return false
            end
            self.parts[#self.parts + 1] = sub(buf, pos, data_end)
            self.pos, self.chunk_left = e + 1, nil
        elseif self.in_trailers then
            local s, e = find(buf, "\n", pos, true)
            if not s then
                if #buf - pos > self.max_head then return set_error(self, 431, "trailer section too large") end
                return false
            end
            local line = sub(buf, pos, s - 1)
            self.pos = e + 1
            if line == "" or line == "\r" then return true end
        else
            local s = find(buf, "\n", pos, true)
            if not s then
                if #buf - pos > 64 then return set_error(self, 400, "malformed chunk size line") end
                return false
            end
            local hex, ext = sub(buf, pos, s - 1):match("^(%x+)[ \t]*(.-)\r?$")
            if not hex or #hex > 12 or (ext ~= "" and byte(ext) ~= 59) or find(ext, "[\r%z]") then
                return set_error(self, 400, "malformed chunk size line")
            end
            local n = tonumber(hex, 16)
            self.pos = s + 1
            self.body_n = self.body_n + n
            if self.body_n > self.max_body then
                return set_error(self, 413, "body larger than " .. self.max_body .. " bytes")
            end
            if n == 0 then self.in_trailers = true else self.chunk_left = n end
        end
    end
end

local function complete(self)
    local msg = self.msg
    if msg.body == nil then msg.body = concat(self.parts) end
    self.msg, self.parts, self.in_trailers = nil, nil, nil
    self.scanned = self.pos
    return msg
end

--- The next complete message, nil when more bytes are needed, or nil and an error.
function Parser:next()
    if self.err then return nil, self.err end
    local msg = self.msg
    if not msg then
        local err
        msg, err = take_head(self)
        if not msg then return nil, err end
    end
    if msg.length then
        local pos = self.pos
        if #self.buf - pos + 1 < msg.length then return nil end
        msg.body = sub(self.buf, pos, pos + msg.length - 1)
        self.pos = pos + msg.length
        return complete(self)
    elseif msg.chunked then
        local done, err = take_chunks(self)
        if done then return complete(self) end
        return nil, err
    end
    return nil -- until_close: see close()
end

--- The peer closed: a response delimited by the close is complete now; anything else
--- half-received is an error (nil when nothing was pending).
function Parser:close()
    local msg = self.msg
    if msg and msg.until_close then
        msg.body = sub(self.buf, self.pos)
        self.pos = #self.buf + 1
        return complete(self)
    end
    if msg or self:buffered() > 0 then return nil, fail(400, "connection closed mid-message") end
    return nil
end

---------------------------------------------------------------- writing

--- Serialize a response. `headers` is a list of {name, value}; Content-Length and
--- Connection are added (keep_alive false: "close"; an HTTP/1.0 keep-alive: "keep-alive").
function M.response(status, headers, body, keep_alive, version)
    local out = { format("HTTP/1.1 %d %s\r\n", status, M.REASONS[status] or "Unknown") }
    for i = 1, #headers do
        local h = headers[i]
        out[#out + 1] = h[1] .. ": " .. h[2] .. "\r\n"
    end
    out[#out + 1] = "Content-Length: " .. #body .. "\r\n"
    if not keep_alive then
        out[#out + 1] = "Connection: close\r\n"
    elseif version == "1.0" then
        out[#out + 1] = "Connection: keep-alive\r\n"
    end
    out[#out + 1] = "\r\n"
    out[#out + 1] = body
    return concat(out)
end

--- Serialize a request (used by the demo's clients): GET unless `method` is given.
function M.request(target, host, headers, method, body)
    local out = { (method or "GET") .. " " .. target .. " HTTP/1.1\r\nHost: " .. host .. "\r\n" }
    if type(headers) == "table" then
        for i = 1, #headers do out[#out + 1] = headers[i][1] .. ": " .. headers[i][2] .. "\r\n" end
    end
    if body then out[#out + 1] = "Content-Length: " .. #body .. "\r\n" end
    out[#out + 1] = "\r\n"
    out[#out + 1] = body or ""
    return concat(out)
end

return M
