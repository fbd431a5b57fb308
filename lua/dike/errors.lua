--- Error classes raised by dike (docs/errors-logging-stats.md).
-- An error `e` of class C satisfies getmetatable(e) == C, has a string field `message`,
-- and tostring(e) == e.message.
local setmetatable, getmetatable = setmetatable, getmetatable

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

--- The message every "must wait" function raises outside a task.
---@param fname string
function M.outside_task(fname)
    return fname .. ": must be called inside a coroutine (start one with dike.run or dike.spawn)"
end

return M
