--- Error classes raised by dike, and how dike describes any error value in a message
-- (docs/errors-logging-stats.md).
-- An error `e` of class C satisfies getmetatable(e) == C, has a string field `message`,
-- and tostring(e) == e.message.
local setmetatable, getmetatable, pcall, tostring, type = setmetatable, getmetatable, pcall, tostring, type

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
    --- Whether `e` is an error of this class.
    function C.is(e)
        return getmetatable(e) == C
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

--- The message every function that must wait raises outside a coroutine.
---@param fname string
function M.outside_coroutine(fname)
    return fname .. ": must be called inside a coroutine (start one with dike.run or dike.spawn)"
end

--- tostring(err) for a message, never raising: a value whose __tostring fails (raises, or
--- returns something other than a string) is shown as `<type name> (its __tostring failed...)`.
---@return string
function M.describe(err)
    if type(err) == "string" then return err end
    local ok, s = pcall(tostring, err)
    if ok and type(s) == "string" then return s end
    if ok then
        return "<" .. type(err) .. "> (its __tostring failed: it returned a " .. type(s) .. ")"
    end
    local ok2, why = pcall(tostring, s)
    return "<" .. type(err) .. "> (its __tostring failed: " .. (ok2 and type(why) == "string" and why or "?") .. ")"
end

return M
