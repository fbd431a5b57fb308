--- Workloads 2, 3 and 7, the cost of a wrapper on a call that does not wait: N sequential
-- calls of a trivial function from one task (inside dike.run), summing the results.
--   IMPL bare             f(i)
--   IMPL pcall            pcall(f, i)
--   IMPL limit_jobs       dike.limit_jobs{limit = 10}(f)(i)
--   IMPL retry            dike.retry{attempts = 3}(f)(i)   (every call succeeds at once)
--   IMPL circuit_breaker  dike.circuit_breaker{}(f)(i)      (closed: every call succeeds)
--   IMPL timeout          dike.timeout{seconds = 10}(f)(i)  (every call returns in time)
-- and, for calls that wait once (w(i): dike.sleep(0), then i + 1), where a timeout matters:
--   IMPL pcall_wait       pcall(w, i)
--   IMPL timeout_wait     dike.timeout{seconds = 10}(w)(i)
-- Each IMPL first runs N/10 untimed calls, so every variant is timed with warm traces.
local common = require("lua.common")

local impl, n = common.args("overhead.lua bare|pcall|limit_jobs|retry N")
local dike = require("dike")
local pcall = pcall

local function f(x) return x + 1 end
local function w(x)
    dike.sleep(0)
    return x + 1
end

-- Each loop is written out (not shared through a function value) so that every variant
-- is compiled as the plain loop a user would write.
local loops = {
    bare = function(m)
        local acc = 0
        for i = 1, m do acc = acc + f(i) end
        return acc
    end,
    pcall = function(m)
        local acc = 0
        for i = 1, m do
            local _, v = pcall(f, i)
            acc = acc + v
        end
        return acc
    end,
    pcall_wait = function(m)
        local acc = 0
        for i = 1, m do
            local _, v = pcall(w, i)
            acc = acc + v
        end
        return acc
    end,
}

local function wrapped_loop(g)
    return function(m)
        local acc = 0
        for i = 1, m do acc = acc + g(i) end
        return acc
    end
end
-- Only the measured wrapper is made: a wrapper's code compiled for another would share the
-- loop's trace with it.
local makers = {
    limit_jobs = function() return dike.limit_jobs{ limit = 10 }(f) end,
    retry = function() return dike.retry{ attempts = 3 }(f) end,
    circuit_breaker = function() return dike.circuit_breaker{}(f) end,
    timeout = function() return dike.timeout{ seconds = 10 }(f) end,
    timeout_wait = function() return dike.timeout{ seconds = 10 }(w) end,
}
if makers[impl] then loops[impl] = wrapped_loop(makers[impl]()) end

local loop = loops[impl] or error("overhead.lua: unknown IMPL " .. impl, 0)
local seconds = dike.run(function()
    local warm = math.max(1, math.floor(n / 10))
    common.check("warm-up sum", loop(warm), warm * (warm + 1) / 2 + warm)
    local t0 = common.now()
    local acc = loop(n)
    local s = common.now() - t0
    common.check("sum of results", acc, n * (n + 1) / 2 + n)
    return s
end)
common.report{ ops = n, seconds = seconds }
