--- The `exception_types` option of retry and circuit_breaker: which errors a tool acts on.
--
-- A spec is an error class (a table: matches errors whose metatable is it), a string (a Lua
-- pattern matched against tostring(err)), a predicate function(err) -> boolean, or a list
-- of these (a table t with t[1] ~= nil). nil means every error but dike.CancelledError.
-- dike.CancelledError matches only when that class itself is given: patterns and
-- predicates never see it, so a cancellation is never retried or counted by accident.
--
-- Matching runs user code on the caller's path. An error's __tostring cannot break it:
-- patterns are matched against errors.describe(err). A predicate that raises raises out of the
-- matcher: the tool decides what that means (retry and circuit_breaker give that error to
-- the caller, as if the function had raised it). Metatables are compared with rawequal, so no
-- __eq of the user's runs.
local errors = require("dike.errors")
local options = require("dike.options")

local type, getmetatable, rawget, rawequal, error, pcall, format, find =
    type, getmetatable, rawget, rawequal, error, pcall, string.format, string.find
local CancelledError = errors.CancelledError
local describe = errors.describe

local M = {}

local function cancelled(e)
    return rawequal(getmetatable(e), CancelledError)
end

local function not_cancelled(e)
    return not cancelled(e)
end

-- Errors about the spec blame the caller of the tool: level 4 from matcher_of
-- (matcher_of < compile < the tool's constructor < its caller), one more from bad_spec.
local function bad_spec(fname, v)
    error(fname .. ": exception_types must be an error class, a pattern string, a predicate or a list"
          .. " of these, got " .. options.show(v), 5)
end

-- One matcher from one element of exception_types.
local function matcher_of(fname, spec)
    local ts = type(spec)
    if ts == "string" then
        local ok, msg = pcall(find, "", spec)
        if not ok then
            error(fname .. ": exception_types pattern " .. format("%q", spec) .. " is invalid: " .. msg, 4)
        end
        return function(e) return not cancelled(e) and find(describe(e), spec) ~= nil end
    elseif ts == "function" then
        return function(e) return not cancelled(e) and spec(e) and true or false end
    elseif ts == "table" then
        return function(e) return rawequal(getmetatable(e), spec) end
    end
    bad_spec(fname, spec)
end

--- A predicate deciding which errors `fname` acts on (see the top of this file).
---@param fname string the tool, for messages ("dike.retry")
---@param spec any the option's value
---@return fun(err: any): boolean
function M.compile(fname, spec)
    if spec == nil then return not_cancelled end
    if type(spec) ~= "table" or rawget(spec, 1) == nil then
        local m = matcher_of(fname, spec) -- not a tail call: the error levels count this frame
        return m
    end
    local list = {}
    for i = 1, #spec do list[i] = matcher_of(fname, spec[i]) end
    if #list == 1 then return list[1] end
    return function(e)
        for i = 1, #list do
            if list[i](e) then return true end
        end
        return false
    end
end

return M
