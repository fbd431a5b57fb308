-- What a finished test (spec/helper.lua) or stress round (spec/stress/) left behind: a list of
-- problems, empty when nothing is left. A luv handle other than dike's own, one of dike's own
-- that is still active, and any dike timer, queued task or unreported error count.
--   local problems = require("spec.leftovers")(uv)
-- Every loaded copy of dike (busted loads one per spec file) has its own handles: the ones
-- seen are remembered, so an earlier copy's idle handles are not taken for a leak.
local known = setmetatable({}, { __mode = "k" })

return function(uv)
    local rt = package.loaded["dike.runtime"]
    if rt and rt.host then
        for _, h in pairs(rt.host.handles()) do known[h] = true end
    end
    -- The Redis client's SIGPIPE watcher (lua/dike/store/client_luv.lua): kept, unref'd, for the
    -- life of the process.
    local sigpipe = debug.getregistry()["dike.store.sigpipe"]
    local problems = {}
    uv.walk(function(h)
        if h == sigpipe then return end
        if known[h] then
            if h:is_active() then problems[#problems + 1] = "dike's " .. tostring(h) .. " is still active" end
        elseif not h:is_closing() then
            problems[#problems + 1] = tostring(h) .. " was left open"
        end
    end)
    -- Let closing handles finish (their close callbacks must run before the state ends).
    uv.run("nowait")
    if rt and rt.pending then
        for k, v in pairs(rt.pending()) do
            if v ~= 0 then problems[#problems + 1] = ("%d %s left in dike's runtime"):format(v, k) end
        end
    end
    return problems
end
