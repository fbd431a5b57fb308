--- Error classes raised by dike, and how dike describes any error value in a message
-- (docs/errors-logging-stats.md).
-- An error `e` of class C satisfies getmetatable(e) == C, has a string field `message`,
-- and tostring(e) == e.message.
local setmetatable, getmetatable, rawget, rawequal, type, tostring, pcall =
    setmetatable, getmetatable, rawget, rawequal, type, tostring, pcall
local debug_getmetatable = debug.getmetatable
local co_create, co_resume, co_status = coroutine.create, coroutine.resume, coroutine.status

local M = {}

local function tostring_message(e) return e.message end

---@param name string
local function class(name)
    local C = { __name = name, __tostring = tostring_message }
    C.__index = C
    --- Make an error of this class.
    ---@param message string
    function C.new(message)
        return setmetatable({ message = message }, C)
    end
    --- Whether `e` is an error of this class. (rawequal: a user's metatable is never asked
    --- to compare itself through its own metatable's __eq.)
    function C.is(e)
        return rawequal(getmetatable(e), C)
    end
    return C
end

---@class dike.TooManyCalls
---@field message string
M.TooManyCalls = class("dike.TooManyCalls")
---@class dike.TimeoutError
---@field message string
M.TimeoutError = class("dike.TimeoutError")
---@class dike.CancelledError
---@field message string
M.CancelledError = class("dike.CancelledError")
---@class dike.CircuitOpen
---@field message string
---@field retry_after number seconds until the breaker lets a call through (math.huge: isolated)
M.CircuitOpen = class("dike.CircuitOpen")

---------------------------------------------------------------- describing any value

-- A __tostring metamethod is user code: it may raise, return a non-string, or yield. It runs
-- in a coroutine of its own, so that a yield ends up here instead of suspending the caller
-- (LuaJIT's tostring passes a yield through, and a pcall would too). It is called directly,
-- not through tostring, so that every interpreter sees the same thing (PUC Lua 5.3+ raises
-- for a non-string, 5.2 and LuaJIT return it).
local function call_tostring(mm, v)
    return mm(v)
end

-- v's text, or nil and why its __tostring failed.
local function attempt(v)
    local tv = type(v)
    if tv == "string" then return v end
    if tv == "number" then return tostring(v) end
    local mt = debug_getmetatable(v)
    local mm = mt and rawget(mt, "__tostring")
    if mm == nil then return tostring(v) end -- no user code runs (at most __name is read)
    if mm == tostring_message and tv == "table" then -- dike's own error classes
        local m = rawget(v, "message")
        if type(m) == "string" then return m end
    end
    local made, co = pcall(co_create, call_tostring)
    local ok, s
    if made then
        ok, s = co_resume(co, mm, v)
        if ok and co_status(co) ~= "dead" then return nil, "it yielded" end
    else -- where the host lets no coroutine be made (nginx's phases that cannot yield)
        ok, s = pcall(call_tostring, mm, v)
    end
    if not ok then return nil, s, true end
    local ts = type(s)
    if ts == "string" then return s end
    if ts == "number" then return tostring(s) end
    return nil, "it returned " .. (s == nil and "nil" or "a " .. ts) .. ", not a string"
end

--- `tostring(v)`, for any value, that never raises and never yields. When v's `__tostring`
--- raises, yields, or returns something other than a string or a number, the text is
--- `<type name> (its __tostring failed: <why>)`; `<why>` is the error it raised (described the
--- same way once more, then only by its type), `it yielded`, or `it returned nil, not a string`
--- (`a table`, ...).
---@param v any
---@return string
function M.describe(v)
    local s, why, raised = attempt(v)
    if s then return s end
    if raised then
        local s2 = attempt(why)
        why = s2 or "<" .. type(why) .. ">"
    end
    return "<" .. type(v) .. "> (its __tostring failed: " .. why .. ")"
end

--- The message every function that must wait raises outside a coroutine.
---@param fname string
function M.outside_coroutine(fname)
    return fname .. ": must be called inside a coroutine (start one with dike.run or dike.spawn)"
end

return M
