-- dike.limit_jobs: at most 2 downloads at once, 1 more may wait; the rest are shed
-- with dike.TooManyCalls (an HTTP service would answer 503).
local dike = require("dike")

local download = dike.limit_jobs{ limit = 2, queue = 1, name = "download" }(function(i)
    dike.sleep(0.02)
    return "file" .. i
end)

dike.run(function()
    print("== dike.limit_jobs: limit = 2, queue = 1; 5 concurrent calls")
    local calls = {}
    for i = 1, 5 do calls[i] = function() return download(i) end end
    local results = dike.gather(calls, { return_errors = true })
    for i = 1, results.n do
        local r = results[i]
        if getmetatable(r) == dike.TooManyCalls then
            print(("call %d rejected: %s"):format(i, r.message))
        else
            print(("call %d -> %s"):format(i, r))
        end
    end
    local s = dike.stats(download)
    print(("-- %d calls, %d rejected, %d still running"):format(s.calls, s.rejected, s.running))
end)
