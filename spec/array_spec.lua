-- Typed arrays of the C core (docs/array.md, plus slice / concat / is_array).
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
        err_of(function() a.type(core.batchq()) end), 1, true)
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

  describe("array_concat", function()
    it("concatenates rows in order", function()
      for _, t in ipairs(TYPES) do
        local a = core.array({ 0, 1 }, t, 2)
        local e = core.array({}, t, 2)
        local b = core.array({ 2, 3, 4, 5, 6, 7 }, t, 2)
        local c = core.array({ 8, 9, 10, 11 }, t, 2)
        local out = core.array_concat({ a, e, b, c })
        assert.equal(t, out:type())
        assert.equal(2, out:width())
        assert.equal(6, #out)
        assert.same({ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 }, out:totable())
      end
    end)

    it("copies a single array", function()
      local a = core.array({ 1, 2 })
      local out = core.array_concat({ a })
      assert.are_not.equal(a, out)
      assert.same({ 1, 2 }, out:totable())
      assert.equal(0, #core.array_concat({ core.array({}) }))
    end)

    it("refuses mismatched types or widths, naming both", function()
      local d1 = core.array({ 1, 2 })
      local d2 = core.array({ 1, 2 }, "double", 2)
      local i1 = core.array({ 1, 2 }, "int32")
      assert.equal("bad argument #1 to 'array_concat' (arrays differ: element 1 is double x1, "
        .. "element 3 is int32 x1)", err_of(function() core.array_concat({ d1, d1, i1 }) end))
      assert.equal("bad argument #1 to 'array_concat' (arrays differ: element 1 is double x1, "
        .. "element 2 is double x2)", err_of(function() core.array_concat({ d1, d2 }) end))
    end)

    it("refuses lists that are not lists of arrays", function()
      assert.equal("bad argument #1 to 'array_concat' (list must hold at least one array)",
        err_of(function() core.array_concat({}) end))
      assert.equal("bad argument #1 to 'array_concat' (element 2 must be a dike.array, got table)",
        err_of(function() core.array_concat({ core.array({ 1 }), { 2 } }) end))
      assert.equal("bad argument #1 to 'array_concat' (element 1 must be a dike.array, got "
        .. "userdata)", err_of(function() core.array_concat({ core.batchq() }) end))
      assert.equal("bad argument #1 to 'array_concat' (table expected, got userdata)",
        err_of(function() core.array_concat(core.array({ 1 })) end))
    end)
  end)

  describe("is_array", function()
    it("recognises arrays only", function()
      assert.is_true(core.is_array(core.array({})))
      for _, x in ipairs({ 1, "s", {}, core.batchq(), core.backoff(1, 2), io.stdout }) do
        assert.is_false(core.is_array(x))
      end
      assert.is_false(core.is_array(nil))
      assert.is_false(core.is_array())
    end)
  end)
end)
