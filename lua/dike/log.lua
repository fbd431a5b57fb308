--- Logging (docs/errors-logging-stats.md): one replaceable default logger, fn(level, message).
local io_stderr, type, error, tostring = io.stderr, type, error, tostring

local M = {}

local LEVELS = { debug = "DEBUG", info = "INFO", warning = "WARNING", error = "ERROR" }

--- The built-in logger: `WARNING:dike:<message>` and a newline on stderr.
local function builtin(level, message)
    io_stderr:write(LEVELS[level] or tostring(level):upper(), ":dike:", message, "\n")
end

local current = builtin

--- Log through the default logger.
function M.log(level, message)
    current(level, message)
end

--- Log through `logger` when given, else the default one (looked up now, so
-- set_logger affects wrappers made earlier).
function M.log_with(logger, level, message)
    (logger or current)(level, message)
end

--- Install the default logger; nil restores the built-in one. Returns the previous one.
---@param fn fun(level: string, message: string)|nil
---@return fun(level: string, message: string)
function M.set_logger(fn)
    if fn ~= nil and type(fn) ~= "function" then
        error("dike.set_logger: logger must be a function or nil, got " .. type(fn), 2)
    end
    local previous = current
    current = fn or builtin
    return previous
end

return M
