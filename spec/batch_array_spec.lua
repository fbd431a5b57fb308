-- dike.batch with argument_type = "array" (docs/batch.md, docs/array.md): each call's rows are
-- appended to the open batch's typed buffers in the C core, the buffers are what the function
-- gets, results are split by the core. On LuaJIT every case runs twice: appends through the
-- FFI (the default there) and through the Lua C API (what PUC Lua uses).
local dike = require("dike")
local columns = require("dike.batch.columns")
local support = require("spec.support")

local function concurrently(fns)
    return dike.run(function() return dike.gather(fns, { return_errors = true }) end)
end

local function assert_idle(f)
    local s = dike.stats(f)
    assert.same({ 0, 0, 0, 0, 0 }, { s.queued_calls, s.queued_rows, s.held_batches, s.running_batches, s.waiting })
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

local PATHS = columns.ffi and { "the FFI", "the Lua C API" } or { "the Lua C API" }
for _, path in ipairs(PATHS) do
describe("dike.batch array mode, appending through " .. path, function()
    local saved = columns.ffi
    before_each(function() columns.ffi = path == "the FFI" end)
    after_each(function() columns.ffi = saved end)

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

    it("a caller cancelled before the send takes its rows out of the buffer", function()
        local seen = {}
        local f = dike.batch{ target_batch_size = 5, max_waiting_time = 0.02, argument_type = "array" }(function(a)
            seen[#seen + 1] = a:totable()
            return a
        end)
        dike.run(function()
            local t1 = dike.spawn(f, dike.array({ 1, 2 }, "int32", 2))
            local t2 = dike.spawn(f, dike.array({ 3, 4, 5, 6 }, "int32", 2))
            local t3 = dike.spawn(f, dike.array({ 7, 8 }, "int32", 2))
            t2:cancel()
            assert.equal(2, dike.stats(f).queued_rows)
            local t4 = dike.spawn(f, dike.array({ 9, 10 }, "int32", 2))
            assert.same({ 1, 2 }, t1:join():totable())
            assert.same({ 7, 8 }, t3:join():totable())
            assert.same({ 9, 10 }, t4:join():totable())
            support.error_of(t2.join, t2)
            t1 = dike.spawn(f, dike.array({ 11, 12 }, "int32", 2))
            t1:cancel() -- the only one: nothing is sent
            support.error_of(t1.join, t1)
        end)
        assert.same({ { 1, 2, 7, 8, 9, 10 } }, seen)
        assert_idle(f)
    end)

    it("a buffer grows past its first size, keeping every row", function()
        -- held by max_concurrent_batches, the open batch takes every call
        local sizes = {}
        local f = dike.batch{ target_batch_size = 2, max_waiting_time = 10, argument_type = "array",
                              max_concurrent_batches = 1 }(function(a)
            sizes[#sizes + 1] = #a
            dike.sleep(0.01)
            return a
        end)
        dike.run(function()
            local t = {}
            for i = 1, 50 do t[i] = dike.spawn(f, dike.array({ i, -i, i, -i, i, -i }, "double", 3)) end
            for i = 1, 50 do assert.same({ i, -i, i, -i, i, -i }, t[i]:join():totable()) end
        end)
        assert.same({ 2, 98 }, sizes) -- the first call's 2 rows reach the target: sent alone
        assert_idle(f)
    end)

    it("max_batch_size: a call that does not fit starts the next batch", function()
        local seen = {}
        local f = dike.batch{ target_batch_size = 3, max_batch_size = 3, max_waiting_time = 0.01,
                              argument_type = "array" }(function(a)
            seen[#seen + 1] = a:totable()
            return a
        end)
        local r = concurrently({
            function() return f(dike.array({ 1, 2 })) end,
            function() return f(dike.array({ 3, 4 })) end,   -- 4 > 3: the open batch goes first
            function() return f(dike.array({ 5 })) end,
            function() return f(dike.array({ 6, 7, 8, 9 })) end, -- larger than the cap: alone
        })
        assert.same({ { 1, 2 }, { 3, 4, 5 }, { 6, 7, 8, 9 } }, seen)
        assert.same({ 6, 7, 8, 9 }, r[4]:totable())
        assert_idle(f)
    end)

    it("several arguments and named ones fill a buffer each", function()
        local f = dike.batch{ target_batch_size = 3, max_waiting_time = 10, argument_type = "array" }(
            function(a, kw)
                assert.equal(3, #a)
                assert.equal(3, #kw.w)
                local out = {}
                for i = 1, #a do out[i] = a[i] * kw.w[i] + kw.b[i] end
                return dike.array(out)
            end)
        local r = concurrently({
            function() return f(dike.array({ 1, 2 }), { w = dike.array({ 10, 10 }), b = dike.array({ 1, 2 }) }) end,
            function() return f(dike.array({ 3 }), { b = dike.array({ 3 }), w = dike.array({ 100 }) }) end,
        })
        assert.same({ 11, 22 }, r[1]:totable())
        assert.same({ 303 }, r[2]:totable())
        assert_idle(f)
    end)

    it("a named table changed while queued fails the batch, even with an array of the same shape", function()
        local f = dike.batch{ target_batch_size = 3, max_waiting_time = 0.01, argument_type = "array" }(
            function(kw) return kw.x end)
        dike.run(function()
            local req = { x = dike.array({ 1 }) }
            local t1 = dike.spawn(f, { x = dike.array({ 5 }) })
            local t2 = dike.spawn(f, req)
            req.x = dike.array({ 2 }) -- its rows were copied when it was called
            local e1, e2 = support.error_of(t1.join, t1), support.error_of(t2.join, t2)
            assert.matches('argument 1 field "x" of a queued call changed before its batch was sent %(it now holds'
                           .. " another dike.array %(array rows are copied when the call is made%)%)", e1)
            assert.equal(e1, e2)
        end)
        assert_idle(f)
    end)

    it("anything but an array of the batch's type and width is refused without touching the buffer", function()
        local f = dike.batch{ target_batch_size = 3, max_waiting_time = 0.01, argument_type = "array" }(
            function(a) return a end)
        local r = concurrently({
            function() return f(dike.array({ 1 })) end,
            function() return f(io.stdout) end,
            function() return f(dike.array({})) end,
            function() return f(dike.array({ 1 }, "float")) end,
            function() return f(dike.array({ 2 })) end,
        })
        assert.same({ 1 }, r[1]:totable())
        assert.equal("dike.batch: argument 1 must be a dike.array (argument_type \"array\"), got a userdata", r[2])
        assert.equal("dike.batch: argument 1 is empty: a call needs at least one row", r[3])
        assert.equal("dike.batch: argument 1 is a dike.array of float x1, but the calls queued for this batch pass"
                     .. " a dike.array of double x1", r[4])
        assert.same({ 2 }, r[5]:totable())
        assert_idle(f)
    end)
end)
end
