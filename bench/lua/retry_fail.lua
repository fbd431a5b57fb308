--- Workload 4, retry under failure: N sequential calls from one task, each failing once and
-- succeeding on its second attempt; delay 0 (so each retry yields to the loop once).
--   IMPL dike     dike.retry{attempts = 2, delay = 0, logger = <discard>}(f): default
--                 options otherwise, so each retry logs a warning with the traceback
--   IMPL minimal  the same job by hand on luv: xpcall with a traceback handler, the same
--                 warning built and handed to a logger that discards it, one yield to the
--                 loop (an idle handle), the second call
local common = require("lua.common")

local impl, n = common.args("retry_fail.lua dike|minimal N")
local uv = common.uv

local fail_next = true
local function f(x)
    if fail_next then
        fail_next = false
        error("transient failure")
    end
    fail_next = true
    return x + 1
end
local function discard() end

local call, run
if impl == "dike" then
    local dike = require("dike")
    call = dike.retry{ attempts = 2, delay = 0, logger = discard }(f)
    run = dike.run
elseif impl == "minimal" then
    local co_running, co_yield, co_resume = coroutine.running, coroutine.yield, coroutine.resume
    local tostring, format, xpcall, traceback = tostring, string.format, xpcall, debug.traceback
    local idle, parked = uv.new_idle(), nil
    local function on_idle()
        idle:stop()
        local co = parked
        parked = nil
        assert(co_resume(co))
    end
    local function yield_to_loop()
        parked = co_running()
        idle:start(on_idle)
        co_yield()
    end
    local caught
    local function keep_traceback(e)
        caught = traceback("", 2):sub(2)
        return e
    end
    call = function(x)
        local ok, v = xpcall(f, keep_traceback, x)
        if ok then return v end
        discard("warning", "Caught exception " .. tostring(v) .. ". Retrying in " .. format("%.3g", 0)
                .. "s ...\n" .. caught)
        yield_to_loop()
        return f(x)
    end
    run = function(fn)
        local result
        assert(co_resume(coroutine.create(function() result = fn() end)))
        uv.run()
        idle:close()
        uv.run()
        return result
    end
else
    error("retry_fail.lua: unknown IMPL " .. impl, 0)
end

local seconds = run(function()
    local acc = 0
    local t0 = common.now()
    for i = 1, n do acc = acc + call(i) end
    local s = common.now() - t0
    common.check("sum of results", acc, n * (n + 1) / 2 + n)
    return s
end)
common.report{ ops = n, seconds = seconds }
