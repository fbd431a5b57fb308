-- defer(fn): run fn when the current busted test ends, after any fn deferred later in it
-- (busted's own `finally` keeps only the last function given). Not a spec itself. busted
-- gives `finally` to the spec file's environment, so a spec passes it in:
--   local defer = require("spec.defer")(function(fn) finally(fn) end)
return function(finally)
    local pending = {}

    local function run_all()
        local list = pending
        pending = {}
        local first_error
        for i = #list, 1, -1 do
            local ok, err = pcall(list[i])
            if not ok and first_error == nil then first_error = err end
        end
        if first_error ~= nil then error(first_error, 0) end
    end

    return function(fn)
        pending[#pending + 1] = fn
        finally(run_all)
    end
end
