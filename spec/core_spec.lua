-- The C binding dike.core: module loading, error codes, backoff. (Arrays and batch buffers:
-- spec/array_spec.lua.) Tests require "dike.core" only.
local core = require("dike.core")

-- The message of the error raised by f, without the "file:line: " prefix
-- that luaL_error adds. (Call the core inside a closure, never as a tail
-- call or through pcall directly: then the function has no name and the
-- message says '?'.)
local function err_of(f)
  local ok, e = pcall(f)
  assert.is_false(ok, "expected an error")
  return (tostring(e):gsub("^[^\n]-:%d+: ", ""))
end

local function is_nan(x) return x ~= x end
local INF = math.huge

-- For checks inside long loops: busted's assert runs only when the check fails. (One assert
-- costs more than a whole iteration; under valgrind these loops took most of the run.)
local function check(ok, fmt, ...)
  if not ok then assert.is_true(ok, fmt:format(...)) end
end

describe("dike.core", function()
  describe("module", function()
    it("has the documented functions", function()
      for _, name in ipairs({ "backoff", "over_budget", "array", "is_array", "array_slice", "array_buffer",
                              "array_append", "array_remove", "array_split", "array_ffi",
                              "gcra", "gcra_reserve" }) do
        assert.is_function(core[name], name)
      end
      assert.equal(1e9, core.BACKOFF_MAX_DELAY)
      assert.equal(1e9, core.GCRA_MAX_SECONDS)
    end)

    it("exports the error codes", function()
      assert.same({ -1, -2, -3, -4, -5, -6, -7, -8 }, { core.EINVAL, core.ENOMEM, core.ERANGE, core.EOVERFLOW,
                                                        core.EINDEX, core.EMISMATCH, core.EFULL, core.ELIMITED })
    end)

    it("loads again, and objects from the first load keep working", function()
      local bo = core.backoff(0.5, 2, nil, "none", 1)
      local a = core.array({ 1, 2 })
      package.loaded["dike.core"] = nil
      local core2 = require("dike.core")
      package.loaded["dike.core"] = core -- leave the first table in place
      assert.are_not.equal(core, core2)
      assert.is_true(core2.is_array(a))
      assert.is_true(core.is_array(core2.array({ 1 })))
      assert.equal(0.5, (bo:next()))
      -- a buffer made by one load takes arrays made by the other
      local buf = core2.array_buffer(a, 4)
      assert.equal(2, select(2, core.array_append(buf, a)))
      assert.equal(1, select(2, core2.array_append(buf, core.array({ 3 }))))
      assert.same({ 1, 2, 3 }, buf:totable())
    end)
  end)

  describe("backoff", function()
    it("without jitter is bit for bit d = d * factor", function()
      for _, case in ipairs({ { 0.1, 2 }, { 0.1, 1.5 }, { 0.3, 1.1 }, { 0.7, 0.9 }, { 1, 1 },
                              { 0, 2 }, { 1e-3, 3.3 } }) do
        local delay, factor = case[1], case[2]
        local bo = core.backoff(delay, factor, nil, "none")
        local d, raw, prev = delay, nil, nil
        for _ = 1, 29 do
          local got
          got, raw, prev = bo:next(raw, prev)
          assert.equal(math.min(d, core.BACKOFF_MAX_DELAY), got)
          assert.equal(got, prev)
          d = d * factor
        end
      end
    end)

    it("caps at max_delay", function()
      local bo = core.backoff(0.1, 2, 1, "none")
      local raw, prev, got
      local want = { 0.1, 0.2, 0.4, 0.8, 1, 1, 1 }
      for i = 1, #want do
        got, raw, prev = bo:next(raw, prev)
        assert.equal(want[i], got)
      end
      assert.equal(1, raw)
      -- a first delay above the cap is capped too
      assert.equal(2, (core.backoff(5, 2, 2):next()))
    end)

    it("treats nil and math.huge max_delay as no cap", function()
      for _, cap in ipairs({ false, INF }) do
        local bo = core.backoff(1, 10, cap or nil, "none")
        local got, raw, prev
        for _ = 1, 9 do got, raw, prev = bo:next(raw, prev) end
        assert.equal(1e8, got)
        got, raw, prev = bo:next(raw, prev)
        assert.equal(1e9, got)
        got = bo:next(raw, prev)
        assert.equal(core.BACKOFF_MAX_DELAY, got)
      end
    end)

    it("never yields inf or NaN, even with huge factors", function()
      for _, jitter in ipairs({ "none", "full", "equal", "decorrelated" }) do
        for _, cap in ipairs({ false, 5, 1e308 }) do
          for _, factor in ipairs({ 1e300, 1.7976931348623157e308, 1e10 }) do
            local bo = core.backoff(1, factor, cap or nil, jitter, 7)
            local limit = cap or core.BACKOFF_MAX_DELAY
            local raw, prev, got
            for _ = 1, 200 do
              got, raw, prev = bo:next(raw, prev)
              check(not (is_nan(got) or got == INF or got < 0), "%s: delay %s", jitter, got)
              check(got <= limit and raw <= limit, "%s: %s or %s above %s", jitter, got, raw, limit)
              check(not (is_nan(prev) or prev == INF), "%s: prev %s", jitter, prev)
            end
          end
        end
      end
      -- base 0 stays 0 (0 * huge is 0, not NaN)
      local bo = core.backoff(0, 1e300)
      local first, raw, prev = bo:next()
      assert.equal(0, first)
      local got
      got, raw, prev = bo:next(raw, prev)
      assert.equal(0, got)
      assert.equal(0, (bo:next(raw, prev)))
    end)

    it("restarts from a corrupt state instead of returning NaN", function()
      local bo = core.backoff(0.5, 2, 10, "none")
      assert.equal(0.5, (bo:next(0 / 0, -1)))
      assert.equal(10, (bo:next(INF, INF)))
    end)

    it("full jitter stays in [0, b_k) and spreads", function()
      local bo = core.backoff(0.1, 2, 3, "full", 1)
      local lo, hi = INF, -INF
      for _ = 1, 2000 do
        local raw, prev, got
        local b = 0.1
        for k = 1, 8 do
          got, raw, prev = bo:next(raw, prev)
          local whole = math.min(b, 3)
          check(got >= 0 and got < whole, "retry %d: %s not in [0, %s)", k, got, whole)
          if k == 1 then lo, hi = math.min(lo, got / whole), math.max(hi, got / whole) end
          b = b * 2
        end
      end
      assert.is_true(lo < 0.01 and hi > 0.99)
    end)

    it("equal jitter stays in [b_k/2, b_k]", function()
      local bo = core.backoff(0.1, 2, 3, "equal", 2)
      local lo, hi = INF, -INF
      for _ = 1, 2000 do
        local raw, prev, got
        local b = 0.1
        for k = 1, 8 do
          got, raw, prev = bo:next(raw, prev)
          local whole = math.min(b, 3)
          check(got >= whole / 2 and got <= whole, "retry %d: %s not in [%s, %s]", k, got, whole / 2, whole)
          if k == 1 then lo, hi = math.min(lo, got / whole), math.max(hi, got / whole) end
          b = b * 2
        end
      end
      assert.is_true(lo < 0.51 and hi > 0.99)
    end)

    it("decorrelated jitter stays in [delay, min(cap, 3 * prev)]", function()
      local bo = core.backoff(0.1, 2, 2, "decorrelated", 3)
      local grew = false
      for _ = 1, 1000 do
        local raw, prev, got
        local last = 0.1
        for _ = 1, 20 do
          got, raw, prev = bo:next(raw, prev)
          check(got >= 0.1 and got <= math.min(2, 3 * last), "%s not in [0.1, min(2, 3 * %s)]", got, last)
          check(got == prev, "prev %s is not the delay %s", prev, got)
          if got > 1 then grew = true end
          last = got
        end
      end
      assert.is_true(grew)
    end)

    local function draws(bo, n)
      local t, raw, prev = {}, nil, nil
      for i = 1, n do t[i], raw, prev = bo:next(raw, prev) end
      return t
    end

    it("is reproducible for a seed", function()
      for _, jitter in ipairs({ "full", "equal", "decorrelated" }) do
        local a = draws(core.backoff(0.1, 2, 30, jitter, 42), 20)
        assert.same(a, draws(core.backoff(0.1, 2, 30, jitter, 42), 20))
        assert.are_not.same(a, draws(core.backoff(0.1, 2, 30, jitter, 43), 20))
        -- negative and zero seeds are seeds too
        assert.same(draws(core.backoff(1, 2, nil, jitter, -5), 5),
                    draws(core.backoff(1, 2, nil, jitter, -5), 5))
        assert.same(draws(core.backoff(1, 2, nil, jitter, 0), 5),
                    draws(core.backoff(1, 2, nil, jitter, 0), 5))
      end
    end)

    it("seeds itself when no seed is given", function()
      local a = draws(core.backoff(1, 2, nil, "full"), 10)
      local b = draws(core.backoff(1, 2, nil, "full"), 10)
      assert.are_not.same(a, b)
    end)

    it("defaults jitter to none", function()
      local bo = core.backoff(0.25, 4)
      assert.equal(0.25, (bo:next()))
      assert.equal("dike.backoff(delay=0.25, factor=4, max_delay=none, jitter=none)",
        tostring(bo))
      assert.equal("dike.backoff(delay=0.1, factor=1.5, max_delay=30, jitter=decorrelated)",
        tostring(core.backoff(0.1, 1.5, 30, "decorrelated", 1)))
    end)

    it("names the bad argument", function()
      -- (a local call, not a tail call: a tail call loses the function's name)
      local function msg(...)
        local n, args = select("#", ...), { ... }
        return err_of(function()
          local b = core.backoff((table.unpack or unpack)(args, 1, n))
          return b
        end)
      end
      assert.equal("bad argument #2 to 'backoff' (factor must be > 0, got -1)", msg(1, -1))
      assert.equal("bad argument #2 to 'backoff' (factor must be > 0, got 0)", msg(1, 0))
      assert.equal("bad argument #2 to 'backoff' (factor must be > 0, got nan)", msg(1, 0 / 0))
      assert.equal("bad argument #2 to 'backoff' (factor must be finite, got inf)", msg(1, INF))
      assert.equal("bad argument #2 to 'backoff' (number expected, got no value)", msg(1))
      assert.equal("bad argument #1 to 'backoff' (delay must be >= 0, got -0.5)", msg(-0.5, 2))
      assert.equal("bad argument #1 to 'backoff' (delay must be >= 0, got nan)", msg(0 / 0, 2))
      assert.equal("bad argument #1 to 'backoff' (delay must be finite, got inf)", msg(INF, 2))
      assert.equal("bad argument #1 to 'backoff' (number expected, got string)", msg("1", 2))
      assert.equal("bad argument #3 to 'backoff' (max_delay must be > 0, got 0)", msg(1, 2, 0))
      assert.equal("bad argument #3 to 'backoff' (max_delay must be > 0, got -inf)",
        msg(1, 2, -INF))
      assert.equal("bad argument #3 to 'backoff' (number expected, got table)", msg(1, 2, {}))
      assert.equal("bad argument #4 to 'backoff' (jitter must be one of none, full, equal, "
        .. "decorrelated, got 'Full')", msg(1, 2, nil, "Full"))
      assert.equal("bad argument #4 to 'backoff' (jitter must be one of none, full, equal, "
        .. "decorrelated, got 'full')", msg(1, 2, nil, "full\0x"))
      assert.equal("bad argument #4 to 'backoff' (string expected, got boolean)",
        msg(1, 2, nil, true))
      assert.equal("bad argument #5 to 'backoff' (seed must be an integer, got 1.5)",
        msg(1, 2, nil, "full", 1.5))
      assert.equal("bad argument #5 to 'backoff' (seed must be an integer, got 1e+300)",
        msg(1, 2, nil, "full", 1e300))
      assert.equal("bad argument #5 to 'backoff' (number expected, got string)",
        msg(1, 2, nil, "full", "7"))
    end)

    it("checks self and the state arguments of next", function()
      local bo = core.backoff(1, 2)
      assert.equal("bad argument #1 to 'next' (number expected, got string)",
        err_of(function() bo:next("x") end))
      assert.equal("bad argument #2 to 'next' (number expected, got table)",
        err_of(function() bo:next(1, {}) end))
      assert.is_nil(bo.seed) -- seeds are given when it is made
      assert.matches("dike.backoff expected, got userdata",
        err_of(function() bo.next(core.array({ 1 })) end), 1, true)
      assert.matches("dike.backoff expected, got no value",
        err_of(function() bo.next() end), 1, true)
    end)
  end)

  describe("over_budget", function()
    it("is elapsed + next_delay >= max_elapsed", function()
      assert.is_true(core.over_budget(1, 2, 3))
      assert.is_true(core.over_budget(1, 2.5, 3))
      assert.is_false(core.over_budget(1, 1.5, 3))
    end)

    it("has no budget for nil, <= 0, inf or NaN", function()
      assert.is_false(core.over_budget(1e9, 1e9))
      assert.is_false(core.over_budget(1e9, 1e9, nil))
      assert.is_false(core.over_budget(1e9, 1e9, 0))
      assert.is_false(core.over_budget(1e9, 1e9, -1))
      assert.is_false(core.over_budget(1e9, 1e9, INF))
      assert.is_false(core.over_budget(1e9, 1e9, 0 / 0))
    end)

    it("checks its arguments", function()
      assert.equal("bad argument #1 to 'over_budget' (number expected, got nil)",
        err_of(function() core.over_budget(nil, 1, 2) end))
      assert.equal("bad argument #3 to 'over_budget' (number expected, got string)",
        err_of(function() core.over_budget(1, 1, "2") end))
    end)
  end)

  describe("any argument", function()
    -- Whatever the arguments, a call returns or raises a Lua error: it never
    -- crashes the process, and a delay is always a finite number >= 0.
    local function pack(...) return { n = select("#", ...), ... } end
    local junk = pack(nil, true, false, 0, -1, 1, 1.5, 2 ^ 31, 2 ^ 53, 2 ^ 63, -2 ^ 63, 1e300,
                      INF, -INF, 0 / 0, "", "full", "int32", {}, { 1, 2, 3 }, print,
                      coroutine.create(function() end), core.array_buffer(core.array({ 1 }), 2), core.array({ 1 }),
                      core.backoff(1, 2), io.stdout, -0.0)
    local seed = 99
    local function pick()
      seed = (seed * 1103515245 + 12345) % 2147483648
      return junk[seed % junk.n + 1]
    end

    it("never crashes a module function", function()
      for _, name in ipairs({ "backoff", "over_budget", "array", "is_array", "array_slice", "array_buffer",
                              "array_append", "array_remove", "array_split", "array_ffi",
                              "gcra", "gcra_reserve" }) do
        for _ = 1, 400 do
          pcall(core[name], pick(), pick(), pick(), pick(), pick())
        end
      end
      for _ = 1, 400 do
        pcall(core.array_split, core.array({ 1, 2, 3 }), { pick(), pick() }, pick(), { pick(), pick() })
        pcall(core.array, { pick(), pick(), pick(), pick() }, pick(), pick())
      end
    end)

    it("never crashes a method, whatever self is", function()
      local objects = { core.backoff(0.1, 2, 5, "decorrelated", 1), core.array_buffer(core.array({ 1 }), 3),
                        core.array({ 1, 2, 3, 4 }, "int32", 2), core.array({ 1.5 }),
                        core.gcra(3, 2, 5) }
      for _, obj in ipairs(objects) do
        local mt = getmetatable(obj)
        for _, name in ipairs({ "next", "get", "totable", "type", "width", "slice", "reserve", "state",
                                "params" }) do
          local fn = obj[name]
          if fn then
            for _ = 1, 200 do
              pcall(fn, obj, pick(), pick(), pick())
              pcall(fn, pick(), pick(), pick())
            end
          end
        end
        for _, meta in ipairs({ "__index", "__newindex", "__len", "__tostring", "__gc" }) do
          if type(mt[meta]) == "function" then
            for _ = 1, 200 do
              pcall(mt[meta], obj, pick())
              pcall(mt[meta], pick(), pick())
            end
          end
        end
      end
    end)

    it("always returns finite delays from next", function()
      for _, jitter in ipairs({ "none", "full", "equal", "decorrelated" }) do
        local bo = core.backoff(0.1, 3, nil, jitter, 5)
        for _ = 1, 500 do
          local ok, d, raw, prev = pcall(bo.next, bo, pick(), pick())
          if ok then
            for _, x in ipairs({ d, raw, prev }) do
              assert.is_true(x >= 0 and x <= core.BACKOFF_MAX_DELAY)
            end
          end
        end
      end
    end)
  end)

  describe("gcra", function()
    -- rate 4 per second, burst 4: T = 0.25 s, tolerance 1 s (exact binary fractions).
    it("admits a burst, then reserves turns T apart, and refuses beyond max_wait", function()
      local g = core.gcra(4, 1, 4)
      for _ = 1, 4 do assert.equal(0, core.gcra_reserve(g, 10, 1, 0)) end
      local w, retry_after = core.gcra_reserve(g, 10, 1, 0)
      assert.equal(false, w)
      assert.equal(0.25, retry_after)
      assert.equal(0.25, core.gcra_reserve(g, 10, 1, 1))
      assert.equal(0.5, g:reserve(10, 1, 1))
      assert.same({ false, 1 }, { g:reserve(10, 2, 0.5) }) -- refused: nothing changes
      assert.same({ true, 10, 6 }, { g:state() }) -- the debt in cost units
      assert.equal(0, core.gcra_reserve(g, 20, 4, 0)) -- idle: the bucket is full again
    end)

    it("saturates huge parameters and keeps a bad clock's debt", function()
      local g = core.gcra(1e-300, 1, 1)
      assert.same({ core.GCRA_MAX_SECONDS, 1, 1 }, { g:params() })
      assert.equal(0, core.gcra_reserve(g, 0, 1, INF))
      assert.equal(core.GCRA_MAX_SECONDS, core.gcra_reserve(g, 0, 1, INF))
      assert.same({ false, 2 * core.GCRA_MAX_SECONDS }, { core.gcra_reserve(g, 0, 1, INF) })
      assert.same({ 0, 1, 1 }, { core.gcra(INF, 1, 1):params() })
      assert.same({ 1, 1e300, core.GCRA_MAX_SECONDS }, { core.gcra(1, 1, 1e300):params() })
      local h = core.gcra(4, 1, 4)
      assert.equal(0, h:reserve(100, 4, 0))
      assert.equal(0.25, h:reserve(50, 1, 1))   -- backwards: the debt is kept
      assert.equal(0.5, h:reserve(0 / 0, 1, 1)) -- NaN: the last reading
      assert.same({ true, 50, 6 }, { h:state() })
    end)

    it("checks its arguments", function()
      assert.equal("bad argument #1 to 'gcra' (rate must be > 0, got 0)",
        err_of(function() core.gcra(0, 1, 1) end))
      assert.equal("bad argument #1 to 'gcra' (rate must be > 0, got nan)",
        err_of(function() core.gcra(0 / 0, 1, 1) end))
      assert.equal("bad argument #2 to 'gcra' (per must be a finite number > 0, got inf)",
        err_of(function() core.gcra(1, INF, 1) end))
      assert.equal("bad argument #3 to 'gcra' (burst must be a finite number >= 1, got 0.5)",
        err_of(function() core.gcra(1, 1, 0.5) end))
      assert.equal("bad argument #3 to 'gcra' (number expected, got string)",
        err_of(function() core.gcra(1, 1, "2") end))
      local g = core.gcra(2, 1, 3)
      assert.equal("bad argument #3 to 'gcra_reserve' (cost must be a number in [0, burst = 3], got 4)",
        err_of(function() core.gcra_reserve(g, 0, 4, 0) end))
      assert.equal("bad argument #3 to 'gcra_reserve' (cost must be a number in [0, burst = 3], got nan)",
        err_of(function() core.gcra_reserve(g, 0, 0 / 0, 0) end))
      assert.equal("bad argument #4 to 'gcra_reserve' (max_wait must be >= 0, got -1)",
        err_of(function() core.gcra_reserve(g, 0, 1, -1) end))
      assert.equal("bad argument #2 to 'gcra_reserve' (number expected, got nil)",
        err_of(function() core.gcra_reserve(g, nil, 1, 0) end))
      assert.equal("bad argument #1 to 'gcra_reserve' (dike.gcra expected, got table)",
        err_of(function() core.gcra_reserve({}, 0, 1, 0) end))
      assert.same({ false, 0, 0 }, { g:state() }) -- untouched by the bad calls
      assert.equal("dike.gcra(interval=0.5, burst=3)", tostring(g))
    end)
  end)

end)
