--- dike.stats: counters of wrapped functions and limiters, kept weakly so that wrappers
-- nobody references any more can be collected (a state never references its wrapper).
local setmetatable, error = setmetatable, error
local show = require("dike.options").show

local M = {}

local registry = setmetatable({}, { __mode = "k" })

--- Remember `state` (which has a snapshot() method) as the counters of `obj`.
function M.register(obj, state)
    registry[obj] = state
end

--- A fresh table of counters for a wrapped function or a limiter.
---@param f function|table
---@return table
function M.stats(f)
    local state = registry[f]
    if state == nil then
        error("dike.stats: expected a function wrapped by dike or a limiter, got " .. show(f), 2)
    end
    return state:snapshot()
end

return M
