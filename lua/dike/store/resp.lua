--- RESP2, the Redis wire protocol: command encoding and an incremental reply parser.
-- Pure functions over strings (no I/O), shared by dike's luv client and its specs.
--
-- Replies map to Lua values: simple string -> string, integer -> number, bulk string -> string,
-- array -> sequence (with field n, the element count: a nil element would hide the rest),
-- nil bulk or nil array -> resp.null, error -> an ErrorReply (getmetatable(e) ==
-- resp.ErrorReply, e.message the text after "-", tostring(e) == e.message). An error may sit
-- inside an array (a script's error table, EXEC), so errors are values here; the client turns
-- a top-level one into a failed call.
--
-- parse(buf, pos) reads one reply starting at byte `pos`. It returns the value and the
-- position after it, or nil when `buf` holds only the beginning of a reply (call again with
-- more bytes, from the same `pos`); it raises a string starting with "protocol error" for
-- bytes that are not RESP2 (the connection must then be closed: where the next reply starts
-- is lost). A partial reply is parsed again from its start when more bytes come; replies are
-- small here (script results), so that costs nothing worth a resumable parser.
local type, tonumber, tostring, setmetatable, error, select, format, concat =
    type, tonumber, tostring, setmetatable, error, select, string.format, table.concat
local find, sub, byte, match = string.find, string.sub, string.byte, string.match
local floor, huge = math.floor, math.huge

local M = {}

--- A nil bulk string or nil array ("$-1", "*-1").
M.null = setmetatable({}, { __tostring = function() return "resp.null" end, __name = "resp.null" })
local null = M.null

local ErrorReply = { __name = "dike.store.ErrorReply" }
ErrorReply.__index = ErrorReply
ErrorReply.__tostring = function(e) return e.message end
M.ErrorReply = ErrorReply

--- An error reply value (the text after "-").
function M.error_reply(message)
    return setmetatable({ message = message }, ErrorReply)
end

-- Arrays nested deeper than this are refused: the parser recurses once per level.
local MAX_DEPTH = 32
-- Redis's own limit for a bulk string (proto-max-bulk-len).
local MAX_BULK = 512 * 1024 * 1024

local B_PLUS, B_MINUS, B_COLON, B_DOLLAR, B_STAR = byte("+-:$*", 1, 5)

local function protocol_error(what, buf, pos)
    error(format("protocol error: %s at byte %d (%q)", what, pos, sub(buf, pos, pos + 15)), 0)
end

-- The integer in buf[pos..e-1] (an optional '-' then digits), or a protocol error.
local function integer(buf, pos, e, what)
    local s = sub(buf, pos, e - 1)
    if not match(s, "^%-?%d+$") or #s > 20 then protocol_error("bad " .. what, buf, pos) end
    return tonumber(s)
end

local parse

parse = function(buf, pos, depth)
    local e = find(buf, "\r\n", pos, true)
    if e == nil then
        -- Nothing but a line's beginning; a line that can never end (no type byte) is refused
        -- at once instead of waiting for bytes that would not help.
        local b = byte(buf, pos)
        if b ~= nil and b ~= B_PLUS and b ~= B_MINUS and b ~= B_COLON and b ~= B_DOLLAR
            and b ~= B_STAR then
            protocol_error("unknown reply type", buf, pos)
        end
        return nil
    end
    local b = byte(buf, pos)
    if b == B_PLUS then
        return sub(buf, pos + 1, e - 1), e + 2
    elseif b == B_COLON then
        return integer(buf, pos + 1, e, "integer"), e + 2
    elseif b == B_DOLLAR then
        local len = integer(buf, pos + 1, e, "bulk length")
        if len == -1 then return null, e + 2 end
        if len < 0 or len > MAX_BULK then protocol_error("bad bulk length", buf, pos) end
        local first = e + 2
        local last = first + len - 1
        if last + 2 > #buf then return nil end
        if sub(buf, last + 1, last + 2) ~= "\r\n" then
            protocol_error("bulk string not ended by CRLF", buf, last + 1)
        end
        return sub(buf, first, last), last + 3
    elseif b == B_STAR then
        local count = integer(buf, pos + 1, e, "array length")
        if count == -1 then return null, e + 2 end
        if count < 0 then protocol_error("bad array length", buf, pos) end
        depth = (depth or 0) + 1
        if depth > MAX_DEPTH then protocol_error("arrays nested too deep", buf, pos) end
        local list = { n = count }
        local p = e + 2
        for i = 1, count do
            local v, np = parse(buf, p, depth)
            if v == nil then return nil end
            list[i], p = v, np
        end
        return list, p
    elseif b == B_MINUS then
        return setmetatable({ message = sub(buf, pos + 1, e - 1) }, ErrorReply), e + 2
    end
    protocol_error("unknown reply type", buf, pos)
end

--- Parse one reply at `pos` (default 1): value, next position; nil if incomplete; raises a
--- "protocol error ..." string on bytes that are not RESP2.
---@param buf string
---@param pos? integer
---@return any|nil value
---@return integer|nil next_pos
function M.parse(buf, pos)
    return parse(buf, pos or 1, 0)
end

-- A command argument as Redis reads it: strings as they are, numbers in decimal (integers
-- without a fraction or exponent, others with 17 significant digits, which read back exactly).
local function arg_string(v)
    local t = type(v)
    if t == "string" then return v end
    if t == "number" then
        if v ~= v or v == huge or v == -huge then
            error("dike.store.redis: cannot send the number " .. tostring(v) .. " to Redis", 3)
        end
        if v == floor(v) and v >= -2 ^ 53 and v <= 2 ^ 53 then return format("%d", v) end
        return format("%.17g", v)
    end
    error("dike.store.redis: command arguments must be strings or numbers, got " .. t, 3)
end
M.arg_string = arg_string

--- Encode a command (an array of bulk strings): command(n, list) with list[1..n].
---@param n integer
---@param list any[]
---@return string
function M.command(n, list)
    local parts = { "*" .. n .. "\r\n" }
    for i = 1, n do
        local s = arg_string(list[i])
        parts[i + 1] = "$" .. #s .. "\r\n" .. s .. "\r\n"
    end
    return concat(parts)
end

--- Encode a command given as arguments: encode("SET", "k", 1).
---@return string
function M.encode(...)
    return M.command(select("#", ...), { ... })
end

return M
