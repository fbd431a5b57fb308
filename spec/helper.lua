-- Loaded by busted before the specs (see .busted). After every test it checks that the
-- test left nothing behind on the loop: no luv handle except dike's own (which must be
-- inactive), and no dike timer, queued task or unreported error. A leftover turns into
-- an error attributed to that test.
local busted = require("busted")

-- Loaded here, outside busted's per-file insulation, so that luv stays loaded for the whole
-- run: a spec file that first required luv would otherwise unload it at its end, and the
-- collected module closes the default loop under everyone's handles (a crash).
local uv_loaded, uv_module = pcall(require, "luv")

local function find_uv()
    return uv_loaded and uv_module or nil
end

local function leftovers()
    local uv = find_uv()
    if not uv then return nil end
    local driver = debug.getregistry()["dike.runtime.luv.driver"]
    local own = {}
    if driver then
        for _, h in pairs(driver.handles()) do own[h] = true end
    end
    local problems = {}
    uv.walk(function(h)
        if own[h] then
            if h:is_active() then problems[#problems + 1] = "dike's " .. tostring(h) .. " is still active" end
        elseif not h:is_closing() then
            problems[#problems + 1] = tostring(h) .. " was left open"
        end
    end)
    -- Let closing handles finish (their close callbacks must run before the state ends).
    uv.run("nowait")
    if driver and driver.pending then
        local p = driver.pending()
        for k, v in pairs(p) do
            if v ~= 0 then problems[#problems + 1] = ("%d %s left in dike's runtime"):format(v, k) end
        end
    end
    if #problems > 0 then return table.concat(problems, "; ") end
    return nil
end

busted.subscribe({ "test", "end" }, function(element)
    local problem = leftovers()
    if problem then
        error(("test %q left state behind: %s"):format(element.name or "?", problem), 0)
    end
    return nil, true
end)

return true
