-- dike.batch: 10 "requests" arrive at random moments; each asks the model for one
-- prediction. The model is called once per batch, not once per request; the last,
-- smaller batch is sent by the timer, max_waiting_time after its first call.
-- Run: make demo   (or: luajit examples/batch.lua with the build tree on the paths)
local dike = require("dike")

local clock0 = dike.now()
local function t() return ("%5.1f ms"):format((dike.now() - clock0) * 1000) end

-- The "model": a fixed cost per call plus a small cost per row.
local predict = dike.batch{ target_batch_size = 4, max_waiting_time = 0.02 }(function(xs)
    print(("%s  model called with %d rows: {%s}"):format(t(), #xs, table.concat(xs, ", ")))
    dike.sleep(0.005 + 0.001 * #xs)
    local out = {}
    for i = 1, #xs do out[i] = xs[i] * xs[i] end
    return out
end)

dike.run(function()
    print("== dike.batch: target_batch_size = 4, max_waiting_time = 20 ms")
    math.randomseed(1)
    local requests = {}
    for i = 1, 10 do
        requests[i] = function()
            dike.sleep(math.random() * 0.03)
            local y = predict({ i })
            print(("%s  request %2d got %3d"):format(t(), i, y[1]))
            return y[1]
        end
    end
    dike.gather(requests)
    local s = dike.stats(predict)
    print(("-- %d requests served by %d model calls (nothing left queued: %d)"):format(
        s.calls, s.batches, s.queued_calls))
end)
