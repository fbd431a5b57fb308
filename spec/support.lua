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

return M
