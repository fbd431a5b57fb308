-- The demo (`make demo`): dike's tools on a real luv loop, from dike tasks and from plain
-- coroutines (coroutines.lua), then a short run of the demo HTTP service.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
for _, name in ipairs({ "batch", "limit_jobs", "retry", "circuit_breaker", "coroutines", "service/demo" }) do
    dofile(here .. name .. ".lua")
    print()
end
