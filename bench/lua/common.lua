--- Shared by the Lua workloads: the clock, memory readings and the one result line the
-- driver (bench/run.lua) parses.
--
-- Every workload is a script `bench/lua/<name>.lua IMPL N [mem]`, run in a fresh process
-- (so one measurement never inherits another's heap or JIT traces). It prints exactly one
-- line `result ops=<n> seconds=<s> [bytes_per_caller=<b>] ...` on stdout; anything else it
-- prints is ignored. A wrong answer (a checksum that does not match) raises instead.
local uv = require("luv")

local hrtime = uv.hrtime
local collectgarbage, tonumber, error, pairs, format, sort, concat =
    collectgarbage, tonumber, error, pairs, string.format, table.sort, table.concat

local M = {}

M.uv = uv

--- Wall-clock seconds (monotonic).
function M.now()
    return hrtime() * 1e-9
end

--- Live Lua heap in bytes after a full collection.
function M.heap_bytes()
    collectgarbage()
    collectgarbage()
    return collectgarbage("count") * 1024
end

--- The workload's command line: IMPL, N (an integer >= 1) and an optional "mem" flag.
---@return string impl, integer n, boolean mem
function M.args(usage)
    local impl, n, flag = arg[1], tonumber(arg[2]), arg[3]
    if not impl or not n or n < 1 or n % 1 ~= 0 or (flag ~= nil and flag ~= "mem") then
        error("usage: " .. usage, 0)
    end
    return impl, n, flag == "mem"
end

--- Raise unless `got == want` (the workload did the job it claims to measure).
function M.check(what, got, want)
    if got ~= want then
        error(format("%s: got %s, want %s", what, tostring(got), tostring(want)), 0)
    end
end

--- Print the result line: fields sorted by name so the output is stable.
---@param fields table<string, number|string>
function M.report(fields)
    local keys = {}
    for k in pairs(fields) do keys[#keys + 1] = k end
    sort(keys)
    local parts = { "result" }
    for _, k in ipairs(keys) do
        local v = fields[k]
        parts[#parts + 1] = k .. "=" .. (type(v) == "number" and format("%.9g", v) or tostring(v))
    end
    io.stdout:write(concat(parts, " "), "\n")
end

return M
