-- Loaded by busted before the specs (see .busted). After every test it checks that the
-- test left nothing behind on the loop: no luv handle except dike's own (which must be
-- inactive), and no dike timer, queued task or unreported error. A leftover turns into
-- an error attributed to that test.
local busted = require("busted")

-- Loaded here, outside busted's per-file insulation, so that luv stays loaded for the whole
-- run: a spec file that first required luv would otherwise unload it at its end, and the
-- collected module closes the default loop under everyone's handles (a crash).
local uv_loaded, uv_module = pcall(require, "luv")

local problems_of = require("spec.leftovers")

local function leftovers()
    if not uv_loaded then return nil end
    local problems = problems_of(uv_module)
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
