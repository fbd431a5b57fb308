-- Typed arrays of the C core (docs/array.md, plus slice, is_array and the batch buffers).
-- Tests require "dike.core" only.
local core = require("dike.core")

local function err_of(f)
  local ok, e = pcall(f)
  assert.is_false(ok, "expected an error")
  return (tostring(e):gsub("^[^\n]-:%d+: ", ""))
end

local INF = math.huge
local NAN = 0 / 0
-- Lua 5.3+ has integers: integer element types come back as integers there.
local has_int = math.type ~= nil

local TYPES = { "double", "float", "int32", "int64", "uint8" }

describe("dike.core arrays", function()
  describe("array()", function()
    it("builds an array of every type", function()
      for _, t in ipairs(TYPES) do
        local a = core.array({ 1, 2, 3 }, t)
        assert.is_true(core.is_array(a))
        assert.equal(3, #a)
        assert.equal(t, a:type())
        assert.equal(1, a:width())
        assert.equal(1, a[1])
        assert.equal(3, a[3])
        assert.equal(2, a:get(2))
        assert.equal(2, a:get(2, 1))
        assert.same({ 1, 2, 3 }, a:totable())
        assert.equal("dike.array<" .. t .. " x1>(3 rows)", tostring(a))
      end
    end)

    it("defaults to double, width 1", function()
      local a = core.array({ 0.5, -2.25 })
      assert.equal("double", a:type())
      assert.equal(1, a:width())
      assert.equal(0.5, a[1])
      assert.equal(-2.25, a[2])
      assert.equal("dike.array<double x1>(2 rows)", tostring(core.array({ 1, 2 }, nil, nil)))
    end)

    it("holds rows of several elements", function()
      for _, t in ipairs(TYPES) do
        local a = core.array({ 1, 2, 3, 4, 5, 6 }, t, 3)
        assert.equal(2, #a)
        assert.equal(3, a:width())
        assert.equal(1, a:get(1, 1))
        assert.equal(3, a:get(1, 3))
        assert.equal(4, a:get(2, 1))
        assert.equal(6, a:get(2, 3))
        assert.equal(4, a:get(2)) -- col defaults to 1
        assert.same({ 1, 2, 3, 4, 5, 6 }, a:totable())
        assert.equal("dike.array<" .. t .. " x3>(2 rows)", tostring(a))
      end
    end)

    it("may be empty", function()
      local a = core.array({})
      assert.equal(0, #a)
      assert.same({}, a:totable())
      assert.equal(0, #core.array({}, "uint8", 4))
      assert.equal("dike.array<uint8 x4>(0 rows)", tostring(core.array({}, "uint8", 4)))
    end)

    it("keeps the edges of each integer type", function()
      assert.same({ 0, 255 }, core.array({ 0, 255 }, "uint8"):totable())
      assert.same({ -2147483648, 2147483647 },
        core.array({ -2147483648, 2147483647 }, "int32"):totable())
      assert.same({ -2 ^ 53, 2 ^ 53 }, core.array({ -2 ^ 53, 2 ^ 53 }, "int64"):totable())
      assert.equal(-2 ^ 63, core.array({ -2 ^ 63 }, "int64")[1])
    end)

    it("returns integers for integer types on Lua 5.3+", function()
      if not has_int then return end
      assert.equal("integer", math.type(core.array({ 1 }, "int32")[1]))
      assert.equal("integer", math.type(core.array({ 1.0 }, "uint8")[1]))
      assert.equal("integer", math.type(core.array({ 1 }, "int64"):totable()[1]))
      assert.equal("float", math.type(core.array({ 1 }, "double")[1]))
      assert.equal("float", math.type(core.array({ 1 }, "float"):get(1)))
      -- int64 keeps all 64 bits of a Lua integer
      local big = math.maxinteger
      assert.equal(big, core.array({ big }, "int64")[1])
      assert.equal(math.mininteger, core.array({ math.mininteger }, "int64")[1])
      assert.equal("bad argument #1 to 'array' (element 1 must fit int32, got 2147483648)",
        err_of(function() core.array({ 2147483648 }, "int32") end))
    end)

    it("rounds floats and keeps NaN and inf in floating types", function()
      local f = core.array({ 0.1, INF, -INF, NAN, 3.4028234663852886e38 }, "float")
      assert.are_not.equal(0.1, f[1])
      assert.is_true(math.abs(f[1] - 0.1) < 1e-8)
      assert.equal(INF, f[2])
      assert.equal(-INF, f[3])
      assert.is_true(f[4] ~= f[4])
      assert.equal(3.4028234663852886e38, f[5])
      local d = core.array({ NAN, INF, 1e308, 5e-324 })
      assert.is_true(d[1] ~= d[1])
      assert.equal(INF, d[2])
      assert.equal(1e308, d[3])
      assert.equal(5e-324, d[4])
    end)

    it("refuses values that do not fit the element type", function()
      local cases = {
        { "uint8", 300, "300" }, { "uint8", -1, "-1" }, { "uint8", 256, "256" },
        { "uint8", 0.5, "0.5" }, { "int32", 1.5, "1.5" }, { "int32", NAN, "nan" },
        { "int32", INF, "inf" }, { "int32", -2147483649, "-2147483649" },
        { "int64", 2 ^ 63, "9.2233720368548e+18" }, { "int64", -INF, "-inf" },
        { "int64", NAN, "nan" }, { "float", 1e300, "1e+300" }, { "float", -1e39, "-1e+39" },
      }
      for _, c in ipairs(cases) do
        assert.equal("bad argument #1 to 'array' (element 2 must fit " .. c[1] .. ", got "
          .. c[3] .. ")", err_of(function() core.array({ 1, c[2] }, c[1]) end))
      end
    end)

    it("refuses values that are not numbers", function()
      assert.equal("bad argument #1 to 'array' (element 2 must be a number, got string)",
        err_of(function() core.array({ 1, "2" }) end))
      assert.equal("bad argument #1 to 'array' (element 1 must be a number, got boolean)",
        err_of(function() core.array({ true }) end))
      assert.equal("bad argument #1 to 'array' (element 3 must be a number, got table)",
        err_of(function() core.array({ 1, 2, {} }, "int32") end))
      assert.equal("bad argument #1 to 'array' (table expected, got no value)",
        err_of(function() core.array() end))
      assert.equal("bad argument #1 to 'array' (table expected, got string)",
        err_of(function() core.array("123") end))
    end)

    it("refuses a list with a hole wherever # stops", function()
      local beyond = { 1 } -- # is 1 everywhere: element 3 lives past the border
      beyond[3] = 3
      for _, list in ipairs({ beyond, { 1, nil, 3 } }) do -- # of the second: 3 on 5.4, 1 on LuaJIT
        assert.equal("bad argument #1 to 'array' (element 2 must be a number, got nil)",
          err_of(function() core.array(list) end))
      end
      assert.equal("bad argument #1 to 'array' (element 1 must be a number, got nil)",
        err_of(function() core.array({ nil, 2 }) end))
      assert.equal("bad argument #1 to 'array' (element 3 must be a number, got nil)",
        err_of(function() core.array({ 1, 2, [2 ^ 40] = 3 }) end))
      -- keys that are not positive integers are not elements
      local a = core.array({ 1, 2, n = 2, [0] = 9, [-1] = 9, [1.5] = 9 })
      assert.same({ 1, 2 }, a:totable())
    end)

    it("checks elemtype and width", function()
      assert.equal("bad argument #2 to 'array' (elemtype must be one of double, float, int32, "
        .. "int64, uint8, got 'int16')", err_of(function() core.array({ 1 }, "int16") end))
      assert.equal("bad argument #2 to 'array' (elemtype must be one of double, float, int32, "
        .. "int64, uint8, got 'Double')", err_of(function() core.array({ 1 }, "Double") end))
      assert.equal("bad argument #2 to 'array' (string expected, got number)",
        err_of(function() core.array({ 1 }, 1) end))
      for _, w in ipairs({ { 0, "0" }, { -1, "-1" }, { 1.5, "1.5" }, { NAN, "nan" },
                           { INF, "inf" }, { 2 ^ 31, "2147483648" }, { 1e300, "1e+300" } }) do
        assert.equal("bad argument #3 to 'array' (width must be an integer in [1, 2147483647], "
          .. "got " .. w[2] .. ")", err_of(function() core.array({ 1 }, "double", w[1]) end))
      end
      assert.equal("bad argument #3 to 'array' (number expected, got string)",
        err_of(function() core.array({ 1 }, "double", "1") end))
      assert.equal("bad argument #1 to 'array' (#list must be a multiple of width 2, got 3)",
        err_of(function() core.array({ 1, 2, 3 }, "int32", 2) end))
      assert.equal("bad argument #1 to 'array' (#list must be a multiple of width 4, got 1)",
        err_of(function() core.array({ 1 }, "double", 4) end))
    end)

    it("builds a large array", function()
      local list = {}
      for i = 1, 100000 do list[i] = i % 256 end
      local a = core.array(list, "uint8", 10)
      assert.equal(10000, #a)
      assert.equal(list[100000], a:get(10000, 10))
      local t = a:totable()
      assert.equal(100000, #t)
      assert.equal(list[54321], t[54321])
    end)
  end)

  describe("indexing", function()
    local a = core.array({ 10, 20, 30 }, "int32")

    it("raises for an index out of range or not an integer", function()
      for _, i in ipairs({ { 0, "0" }, { 4, "4" }, { -1, "-1" }, { 1.5, "1.5" }, { NAN, "nan" },
                           { INF, "inf" } }) do
        assert.equal("dike.array: index must be an integer in [1, 3], got " .. i[2],
          err_of(function() return a[i[1]] end))
      end
      assert.equal("dike.array: index must be an integer in [1, 0], got 1",
        err_of(function() return core.array({})[1] end))
    end)

    it("a[i] needs width 1", function()
      local b = core.array({ 1, 2, 3, 4 }, "double", 2)
      assert.equal("dike.array: a[i] needs width 1, got width 2 (use a:get(row, col))",
        err_of(function() return b[1] end))
    end)

    it("other keys are methods or nil; arrays are read-only", function()
      assert.is_function(a.get)
      assert.is_nil(a.nope)
      assert.is_nil(a[true])
      -- the message names the problem on every interpreter (not "attempt to index a userdata")
      assert.equal("dike.array: arrays are read-only (cannot set a[1])", err_of(function() a[1] = 5 end))
      assert.equal("dike.array: arrays are read-only (cannot set a.x)", err_of(function() a.x = 5 end))
      assert.equal("dike.array: arrays are read-only (cannot set a[boolean])",
        err_of(function() a[true] = 5 end))
      assert.equal(10, a[1])
    end)

    it("get checks row and col", function()
      local b = core.array({ 1, 2, 3, 4, 5, 6 }, "uint8", 3)
      assert.equal("bad argument #1 to 'get' (row must be an integer in [1, 2], got 3)",
        err_of(function() b:get(3, 1) end))
      assert.equal("bad argument #1 to 'get' (row must be an integer in [1, 2], got 0)",
        err_of(function() b:get(0, 1) end))
      assert.equal("bad argument #2 to 'get' (col must be an integer in [1, 3], got 4)",
        err_of(function() b:get(1, 4) end))
      assert.equal("bad argument #2 to 'get' (col must be an integer in [1, 3], got 0.5)",
        err_of(function() b:get(1, 0.5) end))
      assert.equal("bad argument #1 to 'get' (number expected, got no value)",
        err_of(function() b:get() end))
      assert.equal("bad argument #1 to 'get' (row must be an integer in [1, 0], got 1)",
        err_of(function() core.array({}):get(1) end))
    end)

    it("methods check self", function()
      for _, m in ipairs({ "get", "totable", "type", "width", "slice" }) do
        assert.matches("dike.array expected, got table",
          err_of(function() a[m]({}) end), 1, true)
      end
      assert.matches("dike.array expected, got userdata",
        err_of(function() a.type(core.backoff(1, 2)) end), 1, true)
    end)
  end)

  describe("slice", function()
    local a = core.array({ 1, 2, 3, 4, 5, 6, 7, 8 }, "int64", 2) -- 4 rows

    it("copies rows at the edges and in the middle", function()
      assert.same({ 1, 2, 3, 4, 5, 6, 7, 8 }, a:slice(1, 4):totable())
      assert.same({ 1, 2 }, a:slice(1, 1):totable())
      assert.same({ 7, 8 }, a:slice(4, 1):totable())
      assert.same({ 3, 4, 5, 6 }, a:slice(2, 2):totable())
      local s = a:slice(2, 2)
      assert.equal("int64", s:type())
      assert.equal(2, s:width())
      assert.equal(2, #s)
      assert.equal(0, #a:slice(5, 0))
      assert.equal(0, #a:slice(1, 0))
      assert.equal(0, #core.array({}):slice(1, 0))
    end)

    it("is independent of its source", function()
      local s = core.array({ 1, 2, 3 }):slice(2, 2) -- the source is garbage at once
      collectgarbage()
      collectgarbage()
      assert.same({ 2, 3 }, s:totable())
    end)

    it("checks the rows", function()
      assert.equal("bad argument #1 to 'slice' (first_row must be an integer in [1, 5], got 0)",
        err_of(function() a:slice(0, 1) end))
      assert.equal("bad argument #1 to 'slice' (first_row must be an integer in [1, 5], got 6)",
        err_of(function() a:slice(6, 0) end))
      assert.equal("bad argument #2 to 'slice' (nrows must be an integer in [0, 3], got 4)",
        err_of(function() a:slice(2, 4) end))
      assert.equal("bad argument #2 to 'slice' (nrows must be an integer in [0, 0], got 1)",
        err_of(function() a:slice(5, 1) end))
      assert.equal("bad argument #2 to 'slice' (nrows must be an integer in [0, 4], got -1)",
        err_of(function() a:slice(1, -1) end))
      assert.equal("bad argument #2 to 'slice' (nrows must be an integer in [0, 4], got 1.5)",
        err_of(function() a:slice(1, 1.5) end))
      assert.equal("bad argument #2 to 'slice' (number expected, got no value)",
        err_of(function() a:slice(1) end))
    end)
  end)

  describe("batch buffers", function()
    -- What dike.batch's array mode does with them: a buffer with rows to spare, each call's
    -- array appended as it arrives, a cancelled call's rows removed, the buffer handed to the
    -- function as is, the result split among the callers.
    it("fill in order, every type", function()
      for _, t in ipairs(TYPES) do
        local buf = core.array_buffer(core.array({ 0, 0 }, t, 2), 6)
        assert.equal(0, #buf)
        assert.equal(t, buf:type())
        assert.equal(2, buf:width())
        local parts = { core.array({ 0, 1 }, t, 2), core.array({}, t, 2), core.array({ 2, 3, 4, 5, 6, 7 }, t, 2),
                        core.array({ 8, 9, 10, 11 }, t, 2) }
        local rows = {}
        for i, a in ipairs(parts) do
          local b, r = core.array_append(buf, a)
          assert.equal(buf, b) -- room to spare: the same buffer
          rows[i] = r
        end
        assert.same({ 1, 0, 3, 2 }, rows)
        assert.equal(6, #buf)
        assert.same({ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 }, buf:totable())
        assert.equal(10, buf:get(6, 1))
      end
    end)

    it("grow into a new buffer when full, keeping every row", function()
      local buf = core.array_buffer(core.array({ 0 }), 2)
      local b1 = core.array_append(buf, core.array({ 1, 2 }))
      assert.equal(buf, b1)
      local b2, r = core.array_append(b1, core.array({ 3, 4, 5 }))
      assert.are_not.equal(b1, b2)
      assert.equal(3, r)
      assert.same({ 1, 2, 3, 4, 5 }, b2:totable())
      assert.same({ 1, 2 }, b1:totable()) -- the old one is left as it was
      local b3 = b2
      for i = 6, 40 do b3 = core.array_append(b3, core.array({ i })) end
      assert.equal(40, #b3)
      assert.equal(40, b3[40])
    end)

    it("refuse what is not an array of their type and width, changing nothing", function()
      local buf = core.array_buffer(core.array({ 0, 0 }, "int32", 2), 4)
      core.array_append(buf, core.array({ 1, 2 }, "int32", 2))
      for _, x in ipairs({ core.array({ 1, 2 }, "double", 2), core.array({ 1, 2 }, "int32", 1), { 1, 2 },
                           "x", 7, io.stdout, buf }) do
        local b, code = core.array_append(buf, x)
        assert.is_nil(b)
        assert.equal(core.is_array(x) and core.EMISMATCH or core.EINVAL, code)
      end
      assert.same({ 1, 2 }, buf:totable())
      assert.equal("bad argument #1 to 'array_append' (dike.array expected, got table)",
        err_of(function() core.array_append({}, buf) end))
      assert.equal("bad argument #2 to 'array_buffer' (caprows must be an integer >= 1, got 0)",
        err_of(function() core.array_buffer(buf, 0) end))
    end)

    it("take a cancelled call's rows out", function()
      local buf = core.array_buffer(core.array({ 0 }, "uint8"), 8)
      core.array_append(buf, core.array({ 1, 2 }, "uint8"))
      core.array_append(buf, core.array({ 3 }, "uint8"))
      core.array_append(buf, core.array({ 4, 5, 6 }, "uint8"))
      core.array_remove(buf, 3, 1) -- the middle call
      assert.same({ 1, 2, 4, 5, 6 }, buf:totable())
      core.array_remove(buf, 3, 3) -- the last
      core.array_remove(buf, 1, 2) -- the first
      assert.equal(0, #buf)
      core.array_append(buf, core.array({ 7 }, "uint8"))
      assert.same({ 7 }, buf:totable())
      assert.equal("bad argument #3 to 'array_remove' (nrows must be an integer in [0, 0], got 1)",
        err_of(function() core.array_remove(buf, 2, 1) end))
      assert.equal("bad argument #2 to 'array_remove' (first_row must be an integer in [1, 2], got 3)",
        err_of(function() core.array_remove(buf, 3, 0) end))
    end)

    it("split into the callers' rows, skipping those not wanted", function()
      local a = core.array({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, "int64", 2) -- 5 rows
      local parts = core.array_split(a, { 2, 0, 1, 2 }, 4, { true, true, false, 1 })
      assert.same({ 1, 2, 3, 4 }, parts[1]:totable())
      assert.is_nil(parts[2]) -- no rows: nothing
      assert.is_nil(parts[3]) -- not wanted (its caller left)
      assert.same({ 7, 8, 9, 10 }, parts[4]:totable())
      assert.equal("int64", parts[4]:type())
      assert.equal(2, parts[4]:width())
      assert.equal("dike.array: split: the parts hold 4 rows, the array 5",
        err_of(function() core.array_split(a, { 2, 2 }, 2, { true, true }) end))
      assert.equal("dike.array: split: rows of part 2 do not fit (3 rows left)",
        err_of(function() core.array_split(a, { 2, 4 }, 2, { true, true }) end))
      assert.equal("dike.array: split: rows of part 1 do not fit (5 rows left)",
        err_of(function() core.array_split(a, { -1 }, 1, {}) end))
    end)

    it("array_slice is slice as a function", function()
      local a = core.array({ 1, 2, 3 })
      assert.same({ 2, 3 }, core.array_slice(a, 2, 2):totable())
      assert.equal("bad argument #1 to 'array_slice' (dike.array expected, got table)",
        err_of(function() core.array_slice({}, 1, 1) end))
    end)

    it("the FFI's append (LuaJIT) is the core's", function()
      local ok, ffi = pcall(require, "ffi")
      if not ok then
        assert.is_nil(jit) -- only LuaJIT has it
        return
      end
      local api = ffi.cast("const struct { uint32_t magic, version; double (*append)(void *, const void *); } *",
                           core.array_ffi())
      assert.equal(0x79617261, api.magic)
      assert.equal(1, api.version)
      local vp = ffi.typeof("void *")
      local buf = core.array_buffer(core.array({ 0 }), 3)
      assert.equal(2, api.append(ffi.cast(vp, buf), ffi.cast(vp, core.array({ 1, 2 }))))
      assert.equal(core.EFULL, api.append(ffi.cast(vp, buf), ffi.cast(vp, core.array({ 3, 4 }))))
      assert.equal(core.EMISMATCH, api.append(ffi.cast(vp, buf), ffi.cast(vp, core.array({ 3 }, "float"))))
      assert.equal(core.EMISMATCH, api.append(ffi.cast(vp, buf), ffi.cast(vp, buf)))
      assert.same({ 1, 2 }, buf:totable())
    end)
  end)

  describe("array_doubles", function()
    it("makes a zeroed array of doubles, nrows x width", function()
      local a = core.array_doubles(3, 2)
      assert.same({ 3, 2, "double" }, { #a, a:width(), a:type() })
      assert.same({ 0, 0, 0, 0, 0, 0 }, a:totable())
      assert.equal(0, #core.array_doubles(0, 4))
    end)

    it("checks its arguments", function()
      assert.equal("bad argument #1 to 'array_doubles' (nrows must be an integer in [0, 2147483647], got -1)",
        err_of(function() local a = core.array_doubles(-1, 1); return a end))
      assert.equal("bad argument #2 to 'array_doubles' (width must be an integer in [1, 2147483647], got 0)",
        err_of(function() local a = core.array_doubles(1, 0); return a end))
      assert.equal("bad argument #1 to 'array_doubles' (too many elements (65536 rows of width 65536))",
        err_of(function() local a = core.array_doubles(65536, 65536); return a end))
    end)
  end)

  describe("is_array", function()
    it("recognises arrays only", function()
      assert.is_true(core.is_array(core.array({})))
      for _, x in ipairs({ 1, "s", {}, core.backoff(1, 2), io.stdout }) do
        assert.is_false(core.is_array(x))
      end
      assert.is_false(core.is_array(nil))
      assert.is_false(core.is_array())
    end)
  end)

  describe("a[i] and #a through dike.array (LuaJIT: read through the FFI)", function()
    local array_mod = require("dike.array")

    it("is in use on LuaJIT only", function()
      assert.equal(jit ~= nil, array_mod.ffi)
      -- (on LuaJIT dike.array is its own function in front of the core's: below)
      assert.equal(jit == nil, core.array == array_mod.array)
    end)

    it("reads every type as a:get does, and #a", function()
      local cases = {
        double = { 1.5, -0.0, INF, -INF, 1e300, 5e-324 },
        float = { 0.1, -2.5, INF, 3.4e38 },
        int32 = { -2147483648, 2147483647, 0, -1 },
        int64 = { 2 ^ 40, -(2 ^ 53), 7, 0 },
        uint8 = { 0, 255, 200, 1 },
      }
      for t, values in pairs(cases) do
        local a = array_mod.array(values, t)
        assert.equal(#values, #a)
        for i = 1, #values do
          local v = a[i]
          assert.equal(a:get(i), v, t .. " element " .. i)
          assert.equal(1 / a:get(i), 1 / v) -- the sign of zero too
        end
      end
      local nan = array_mod.array({ NAN })[1]
      assert.is_true(nan ~= nan)
      assert.equal(0, #array_mod.array({}))
      assert.equal(3, #array_mod.array({ 1, 2, 3, 4, 5, 6 }, "int32", 2))
    end)

    it("leaves everything else to the core, with its messages", function()
      local a = array_mod.array({ 10, 20, 30 })
      local w = array_mod.array({ 1, 2, 3, 4 }, "int32", 2)
      assert.equal("dike.array: index must be an integer in [1, 3], got 0", err_of(function() return a[0] end))
      assert.equal("dike.array: index must be an integer in [1, 3], got 4", err_of(function() return a[4] end))
      assert.equal("dike.array: index must be an integer in [1, 3], got 1.5", err_of(function() return a[1.5] end))
      assert.equal("dike.array: index must be an integer in [1, 3], got nan", err_of(function() return a[NAN] end))
      assert.equal("dike.array: a[i] needs width 1, got width 2 (use a:get(row, col))",
        err_of(function() return w[1] end))
      assert.is_nil(a.nope)
      assert.is_nil(a[{}])
      assert.equal(20, a:get(2))
      assert.same({ 10, 20, 30 }, a:totable())
      assert.equal("double", a:type())
      -- called on something else than an array, the metamethods refuse it (never read it)
      local mt = getmetatable(a)
      for _, x in ipairs({ io.stdout, core.backoff(1, 2), {}, 1, "s" }) do
        assert.is_false((pcall(mt.__index, x, 1)))
        assert.is_false((pcall(mt.__index, x, "get")))
        assert.is_false((pcall(mt.__len, x)))
      end
    end)

    it("makes from a list the array the core makes, and reads it back with a:totable()", function()
      local lists = {
        { {} }, { { 1.5 } }, { { 1, 2, 3, 4, 5, 6 }, nil, 2 }, { { 1, 2, 3, 4, 5, 6 }, "double", 3 },
        { { -0.0, 0.0, INF, -INF, 1e300, 5e-324, -2 ^ 53, 2 ^ 63 } }, { { 0.1, 2 }, "float" },
        { { 1, 2, 3, 4 }, "int32", 2 }, { { 2 ^ 40, -7 }, "int64" }, { { 0, 255 }, "uint8" },
        { setmetatable({ 1, 2 }, { __len = function() return 7 end }) }, -- read raw, as the core does
        { setmetatable({}, { __index = function(_, i) return i end }) }, -- a proxy: empty
      }
      for n, case in ipairs(lists) do
        local list, elemtype, width = case[1], case[2], case[3]
        local mine, its = array_mod.array(list, elemtype, width), core.array(list, elemtype, width)
        local what = "list " .. n
        assert.is_true(core.is_array(mine), what)
        assert.same({ #its, its:width(), its:type() }, { #mine, mine:width(), mine:type() }, what)
        local t = mine:totable()
        assert.equal(#its * its:width(), #t, what)
        for row = 1, #its do
          for col = 1, its:width() do
            local i = (row - 1) * its:width() + col
            local want = its:get(row, col) -- the core's read
            assert.equal(want, mine:get(row, col), what)
            assert.equal(want, t[i], what)
            assert.equal(1 / want, 1 / t[i], what) -- the sign of zero too
          end
        end
      end
      local nan = array_mod.array({ NAN, 1 })
      assert.is_true(nan:totable()[1] ~= nan:totable()[1])
      assert.is_true(nan:get(1) ~= nan:get(1))
    end)

    it("refuses what the core refuses, with its messages, blaming the caller's line", function()
      local cases = {
        { "no list" }, { 5 }, { { 1, "x" } }, { { 1, 2, 3 }, "double", 2 }, { { 1, nil, 3 } },
        { { [2] = 1 } }, { { 1, 2 }, "double", 0 }, { { 1 }, nil, 1.5 }, { { 1 }, "quad" },
        { { 1.5 }, "int32" }, { { 1, 2, {} } }, { { 1, 2 }, "double", "2" },
      }
      for n, case in ipairs(cases) do
        local list, elemtype, width = case[1], case[2], case[3]
        -- (not tail calls: a function called by a tail call has no name in the message)
        if list == "no list" then
          assert.equal(err_of(function() local a = core.array(); return a end),
            err_of(function() local a = array_mod.array(); return a end))
        else
          local want = err_of(function() local a = core.array(list, elemtype, width); return a end)
          assert.equal(want, err_of(function() local a = array_mod.array(list, elemtype, width); return a end),
            "case " .. n)
        end
      end
      local ok, e = pcall(function() local a = array_mod.array({ 1, "x" }); return a end)
      assert.is_false(ok)
      assert.matches("array_spec%.lua:%d+: bad argument #1 to 'array' %(element 2 must be a number, got string%)$", e)
      local a = array_mod.array({ 1 })
      ok, e = pcall(function() local t = a.totable({}); return t end)
      assert.is_false(ok)
      assert.matches("array_spec%.lua:%d+: bad argument #1 to 'totable' %(dike.array expected, got table%)$", e)
    end)

    it("reads a batch buffer's rows in use only", function()
      local buf = core.array_buffer(array_mod.array({ 0 }), 8)
      core.array_append(buf, array_mod.array({ 4, 5 }))
      assert.equal(2, #buf)
      assert.equal(5, buf[2])
      assert.equal("dike.array: index must be an integer in [1, 2], got 3", err_of(function() return buf[3] end))
    end)
  end)
end)
