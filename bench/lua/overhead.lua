--- Workloads 2 and 3, the cost of a wrapper on a call that does not wait: N sequential
-- calls of a trivial function from one task (inside dike.run), summing the results.
--   IMPL bare        f(i)
--   IMPL pcall       pcall(f, i)
--   IMPL limit_jobs  dike.limit_jobs{limit = 10}(f)(i)
--   IMPL retry       dike.retry{attempts = 3}(f)(i)   (every call succeeds at once)
-- Each IMPL first runs N/10 untimed calls, so every variant is timed with warm traces.
local common = require("lua.common")

local impl, n = common.args("overhead.lua bare|pcall|limit_jobs|retry N")
local dike = require("dike")
local pcall = pcall

local function f(x) return x + 1 end

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
}

local function wrapped_loop(g)
    return function(m)
        local acc = 0
        for i = 1, m do acc = acc + g(i) end
        return acc
    end
end
loops.limit_jobs = wrapped_loop(dike.limit_jobs{ limit = 10 }(f))
loops.retry = wrapped_loop(dike.retry{ attempts = 3 }(f))

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
