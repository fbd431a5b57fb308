-- Shared helpers for the specs (not a spec itself).
local M = {}

--- Install a logger that records (level, message) pairs; returns the list and a restore function.
function M.capture_logs(dike)
    local logs = {}
    local previous = dike.set_logger(function(level, message)
        logs[#logs + 1] = { level = level, message = message }
    end)
    return logs, function() dike.set_logger(previous) end
end

--- Monotonic seconds.
function M.clock()
    return require("luv").hrtime() * 1e-9
end

--- The error value raised by fn(...), or nil (plus the results) when it did not raise.
function M.error_of(fn, ...)
    local ok, err = pcall(fn, ...)
    if ok then return nil end
    return err
end

--- Replace dike's sleep with one that records the seconds asked for and yields once;
--- returns the list of recorded delays and a restore function.
function M.record_sleeps()
    local rt = require("dike.runtime")
    local real = rt.sleep
    local asked = {}
    rt.sleep = function(seconds, fname)
        asked[#asked + 1] = seconds
        return real(0, fname)
    end
    return asked, function() rt.sleep = real end
end

--- In a task: wait until cond() is true or `seconds` (default 3) pass, checking every `step`
--- seconds (default 0.01). Returns cond()'s last answer.
function M.eventually(cond, seconds, step)
    local dike = require("dike")
    local t0 = dike.now()
    while not cond() and dike.now() - t0 < (seconds or 3) do dike.sleep(step or 0.01) end
    return cond()
end

--- A TCP server on a free loopback port that accepts connections and does what
--- `on_data(conn, chunk)` says with what it reads (without on_data: never answers, like a
--- Redis that hangs). Returns the port and a function that closes it and its connections.
function M.fake_server(on_data)
    local uv = require("luv")
    local srv = uv.new_tcp()
    srv:bind("127.0.0.1", 0)
    local conns = {}
    srv:listen(16, function()
        local c = uv.new_tcp()
        srv:accept(c)
        conns[#conns + 1] = c
        c:read_start(function(_, chunk)
            if chunk and on_data then on_data(c, chunk) end
        end)
    end)
    return srv:getsockname().port, function()
        for _, c in ipairs(conns) do if not c:is_closing() then c:close() end end
        srv:close()
    end
end

return M
