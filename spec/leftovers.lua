-- What a finished test (spec/helper.lua) or stress round (spec/stress/) left behind: a list of
-- problems, empty when nothing is left. A luv handle other than dike's own, one of dike's own
-- that is still active, and any dike timer, queued task or unreported error count.
--   local problems = require("spec.leftovers")(uv)
return function(uv)
    local driver = debug.getregistry()["dike.runtime.luv.driver"]
    -- The Redis client's SIGPIPE watcher (lua/dike/store/client_luv.lua): kept for the life
    -- of the process, unref'd.
    local sigpipe = debug.getregistry()["dike.store.sigpipe"]
    local own = {}
    if driver then
        for _, h in pairs(driver.handles()) do own[h] = true end
    end
    local problems = {}
    uv.walk(function(h)
        if h == sigpipe then return end
        if own[h] then
            if h:is_active() then problems[#problems + 1] = "dike's " .. tostring(h) .. " is still active" end
        elseif not h:is_closing() then
            problems[#problems + 1] = tostring(h) .. " was left open"
        end
    end)
    -- Let closing handles finish (their close callbacks must run before the state ends).
    uv.run("nowait")
    if driver and driver.pending then
        for k, v in pairs(driver.pending()) do
            if v ~= 0 then problems[#problems + 1] = ("%d %s left in dike's runtime"):format(v, k) end
        end
    end
    return problems
end
