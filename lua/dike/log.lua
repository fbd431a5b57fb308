--- Logging (docs/errors-logging-stats.md): one replaceable default logger, fn(level, message).
--
-- A logger is user code and may raise or yield; neither may reach dike's caller or the loop.
-- So a logger other than the built-in one runs in a coroutine of its own (a yield then ends
-- up here instead of suspending the caller); if it raises or yields, the built-in logger
-- writes that message instead, with a note saying why. Loggers are not a hot path.
local io, type, error, tostring, pcall, setmetatable, rawget, _G =
    io, type, error, tostring, pcall, setmetatable, rawget, _G
local co_create, co_resume, co_yield, co_running =
    coroutine.create, coroutine.resume, coroutine.yield, coroutine.running
local describe = require("dike.errors").describe

local M = {}

local LEVELS = { debug = "DEBUG", info = "INFO", warning = "WARNING", error = "ERROR" }

-- io.stderr is looked up per message, so that whoever replaces it (a test, an embedding
-- application) gets the messages.
local function write(level, message)
    io.stderr:write(LEVELS[level] or tostring(level):upper(), ":dike:", message, "\n")
end

--- The built-in logger: `WARNING:dike:<message>` and a newline on stderr. (A closed or
--- broken stderr loses the message rather than raising into dike.)
local function builtin(level, message)
    pcall(write, level, message)
end

local current = builtin

-- Loggers run in a coroutine of dike's, reused while they return normally (creating one per
-- message made a retry that logs 15% slower). One that raised is dead; one that yielded is
-- abandoned (whoever resumes it later just lets it finish). Inside nginx a coroutine belongs
-- to the request or timer that made it (resuming it from another crashes the worker), so
-- there each message gets a fresh one; and where nginx lets no coroutine be made (its
-- phases that cannot yield) the logger is called under pcall (a yield raises there anyway).
local ngx = rawget(_G, "ngx")
local KEEP_RUNNER = not (type(ngx) == "table" and ngx.get_phase ~= nil)
local DONE = {} -- what the runner passes back after a logger returned: no logger can yield it
local abandoned = setmetatable({}, { __mode = "k" })
local runner = nil -- the idle runner, if any

local function runner_body(fn, level, message)
    local self = co_running()
    while true do
        fn(level, message)
        if not KEEP_RUNNER or abandoned[self] then return DONE end
        -- An idle runner keeps neither this logger nor its message alive.
        fn, level, message = nil, nil, nil -- luacheck: ignore 311
        fn, level, message = co_yield(DONE)
    end
end

local function bypass(level, message, why)
    builtin(level, message .. "\n(written by dike's built-in logger: " .. why .. ")")
end

-- Run `fn(level, message)`; if it raises or yields, the built-in logger writes the message.
local function run(fn, level, message)
    if fn == builtin then return builtin(level, message) end
    local co = runner
    if co then
        runner = nil -- busy: a logger that logs through dike gets a runner of its own
    else
        local made
        made, co = pcall(co_create, runner_body)
        if not made then
            local ok, err = pcall(fn, level, message)
            if not ok then bypass(level, message, "the logger raised an error: " .. describe(err)) end
            return
        end
    end
    local ok, r = co_resume(co, fn, level, message)
    if not ok then return bypass(level, message, "the logger raised an error: " .. describe(r)) end
    if r == DONE then
        if KEEP_RUNNER then runner = co end
        return
    end
    abandoned[co] = true
    bypass(level, message, "the logger yielded")
end

--- Log through the default logger.
function M.log(level, message)
    run(current, level, message)
end

--- Log through `logger` when given, else the default one (looked up now, so
-- set_logger affects wrappers made earlier).
function M.log_with(logger, level, message)
    run(logger or current, level, message)
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
