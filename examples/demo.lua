-- The demo (`make demo`): dike's three tools on a real luv loop.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
for _, name in ipairs({ "batch", "limit_jobs", "retry", "service/demo" }) do
    dofile(here .. name .. ".lua")
    print()
end
