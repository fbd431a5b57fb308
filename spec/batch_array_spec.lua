-- dike.batch with argument_type = "array" (docs/batch.md, docs/array.md): dike.array arguments are
-- concatenated and results sliced by the C core.
local dike = require("dike")

local function concurrently(fns)
    return dike.run(function() return dike.gather(fns, { return_errors = true }) end)
end

local function assert_idle(f)
    local s = dike.stats(f)
    assert.same({ 0, 0, 0, 0 }, { s.queued_calls, s.queued_rows, s.running_batches, s.waiting })
end

-- Row sums of a width-w array, as a width-1 array of the same element type.
local function row_sums(a)
    local flat, w, out = a:totable(), a:width(), {}
    for r = 1, #a do
        local s = 0
        for c = 1, w do s = s + flat[(r - 1) * w + c] end
        out[r] = s
    end
    return dike.array(out, a:type(), 1)
end

describe("dike.batch array mode", function()
    it("concatenates the callers' arrays and gives each caller its rows as an array", function()
        local seen = {}
        local f = dike.batch{ target_batch_size = 4, max_waiting_time = 10, argument_type = "array" }(function(a)
            seen[#seen + 1] = a
            return row_sums(a)
        end)
        local r = concurrently({
            function() return f(dike.array({ 1, 2 }, "double", 2)) end,
            function() return f(dike.array({ 3, 4, 5, 6, 7, 8 }, "double", 2)) end,
        })
        assert.equal(1, #seen)
        assert.equal(2, seen[1]:width())
        assert.same({ 1, 2, 3, 4, 5, 6, 7, 8 }, seen[1]:totable())
        assert.is_true(getmetatable(r[1]) == getmetatable(seen[1]))
        assert.same({ 3 }, r[1]:totable())
        assert.same({ 7, 11, 15 }, r[2]:totable())
        assert.equal("double", r[2]:type())
        assert_idle(f)
    end)

    it("keeps every element type through concatenation and slicing", function()
        for _, case in ipairs({ { "float", 0.5 }, { "int32", -7 }, { "int64", 2 ^ 40 }, { "uint8", 200 } }) do
            local etype, v = case[1], case[2]
            local f = dike.batch{ target_batch_size = 3, max_waiting_time = 10, argument_type = "array" }(
                function(a) return a end)
            local r = concurrently({
                function() return f(dike.array({ v, v }, etype, 2)) end,
                function() return f(dike.array({ v, v, v, v }, etype, 2)) end,
            })
            assert.equal(etype, r[1]:type())
            assert.equal(2, r[2]:width())
            assert.equal(2, #r[2])
            assert.same({ v, v, v, v }, r[2]:totable())
            assert_idle(f)
        end
    end)

    it("accepts named tables of arrays, and a sequence as the result", function()
        local f = dike.batch{ target_batch_size = 4, max_waiting_time = 10, argument_type = "array" }(function(kw)
            local out = {}
            for i = 1, #kw.x do out[i] = kw.x[i] < 0 and dike.fail("neg") or kw.x[i] + kw.y[i] end
            return out
        end)
        local r = concurrently({
            function() return f({ x = dike.array({ 1 }), y = dike.array({ 10 }) }) end,
            function() return f({ y = dike.array({ 20, 30 }), x = dike.array({ 2, -3 }) }) end,
            function() return f({ x = dike.array({ 4 }), y = dike.array({ 40 }) }) end,
        })
        assert.same({ 11 }, r[1])
        assert.equal("neg", r[2])
        assert.same({ 44 }, r[3])
        assert_idle(f)
    end)

    it("refuses calls whose element type, width or kind differ from the batch's, to that caller alone", function()
        local f = dike.batch{ target_batch_size = 3, max_waiting_time = 0.01, argument_type = "array" }(
            function(a) return a end)
        local r = concurrently({
            function() return f(dike.array({ 1, 2 }, "double", 2)) end,
            function() return f(dike.array({ 1 }, "int32", 1)) end,
            function() return f(dike.array({ 1, 2, 3 }, "double", 3)) end,
            function() return f({ 1, 2 }) end,
            function() return f(dike.array({ 3, 4 }, "double", 2)) end,
        })
        assert.same({ 1, 2 }, r[1]:totable())
        assert.equal("dike.batch: argument 1 is a dike.array of int32 x1, but the calls queued for this batch"
                     .. " pass a dike.array of double x2", r[2])
        assert.equal("dike.batch: argument 1 is a dike.array of double x3, but the calls queued for this batch"
                     .. " pass a dike.array of double x2", r[3])
        assert.equal("dike.batch: argument 1 must be a dike.array (argument_type \"array\"), got a table", r[4])
        assert.same({ 3, 4 }, r[5]:totable())
        assert_idle(f)
    end)

    it("checks the row count of an array result", function()
        local f = dike.batch{ target_batch_size = 2, max_waiting_time = 10, argument_type = "array" }(
            function() return dike.array({ 1 }) end)
        local r = concurrently({
            function() return f(dike.array({ 1 })) end,
            function() return f(dike.array({ 2 })) end,
        })
        assert.matches("returned 1 results for a batch of 2 rows", r[1])
        assert.equal(r[1], r[2])
        assert_idle(f)
    end)
end)
