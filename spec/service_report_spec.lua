-- examples/service/harness.lua: the load report's batch-size histogram (make demo-service, make
-- soak). Its labels are the same on every interpreter: 2 ^ b is a float on Lua 5.3+, where
-- tostring and `..` would show "1.0" and "16.0-31.0" and push the bars out of their column.
local harness = require("service.harness")

describe("service report", function()
    it("labels the batch-size buckets with integers, in one column", function()
        -- GET /stats sends sizes as JSON object keys: strings.
        local lines = harness.histogram({ ["1"] = 2, ["3"] = 1, ["20"] = 4, ["31"] = 4 })
        assert.same({
            "1       |##########                               2",
            "2-3     |#####                                    1",
            "4-7     |                                         0",
            "8-15    |                                         0",
            "16-31   |######################################## 8",
        }, lines)
    end)
end)
