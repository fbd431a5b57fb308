-- The C binding dike.core: module loading, error codes, backoff, batch queue.
-- (Arrays: spec/array_spec.lua.) Tests require "dike.core" only.
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
      for _, name in ipairs({ "backoff", "over_budget", "batchq", "array", "array_concat",
                              "is_array", "errname", "strerror", "gcra", "gcra_reserve" }) do
        assert.is_function(core[name], name)
      end
      assert.equal(1e9, core.BACKOFF_MAX_DELAY)
      assert.equal(1e9, core.GCRA_MAX_SECONDS)
    end)

    it("loads again, and objects from the first load keep working", function()
      local bo = core.backoff(0.5, 2, nil, "none", 1)
      local q = core.batchq()
      local a = core.array({ 1, 2 })
      package.loaded["dike.core"] = nil
      local core2 = require("dike.core")
      package.loaded["dike.core"] = core -- leave the first table in place
      assert.are_not.equal(core, core2)
      assert.is_true(core2.is_array(a))
      assert.is_true(core.is_array(core2.array({ 1 })))
      assert.equal(0.5, (bo:next()))
      assert.equal(1, (q:append(1)))
      assert.equal(2, core2.array_concat({ a, core2.array({ 3 }) })[2])
      assert.equal(4, #core.array_concat({ a, core2.array({ 3, 4 }) }))
    end)
  end)

  describe("errname / strerror", function()
    it("name and describe every code", function()
      local codes = { EINVAL = -1, ENOMEM = -2, ERANGE = -3, EOVERFLOW = -4, EINDEX = -5,
                      EMISMATCH = -6, ELIMITED = -7 }
      for name, code in pairs(codes) do
        assert.equal(code, core[name])
        assert.equal(name, core.errname(code))
        assert.is_string(core.strerror(code))
        assert.are_not.equal("unknown error", core.strerror(code))
      end
      assert.equal("invalid argument", core.strerror(-1))
      assert.equal("OK", core.errname(0))
      assert.equal("success", core.strerror(0))
      assert.equal("EUNKNOWN", core.errname(-999))
      assert.equal("unknown error", core.strerror(42))
    end)

    it("check their argument", function()
      assert.equal("bad argument #1 to 'errname' (number expected, got string)",
        err_of(function() core.errname("EINVAL") end))
      assert.equal("bad argument #1 to 'strerror' (code must be an integer in "
        .. "[-2147483648, 2147483647], got 1.5)", err_of(function() core.strerror(1.5) end))
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

    it("is reproducible for a seed; seed() restarts the sequence", function()
      for _, jitter in ipairs({ "full", "equal", "decorrelated" }) do
        local a = draws(core.backoff(0.1, 2, 30, jitter, 42), 20)
        local b = core.backoff(0.1, 2, 30, jitter, 42)
        assert.same(a, draws(b, 20))
        b:seed(42)
        assert.same(a, draws(b, 20))
        b:seed(43)
        assert.are_not.same(a, draws(b, 20))
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

    it("checks self and the state arguments of next and seed", function()
      local bo = core.backoff(1, 2)
      assert.equal("bad argument #1 to 'next' (number expected, got string)",
        err_of(function() bo:next("x") end))
      assert.equal("bad argument #2 to 'next' (number expected, got table)",
        err_of(function() bo:next(1, {}) end))
      assert.equal("bad argument #1 to 'seed' (seed must be an integer, got 0.5)",
        err_of(function() bo:seed(0.5) end))
      assert.equal("bad argument #1 to 'seed' (number expected, got no value)",
        err_of(function() bo:seed() end))
      local q = core.batchq()
      assert.matches("dike.backoff expected, got userdata",
        err_of(function() bo.next(q) end), 1, true)
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
                      coroutine.create(function() end), core.batchq(), core.array({ 1 }),
                      core.backoff(1, 2), io.stdout, -0.0)
    local seed = 99
    local function pick()
      seed = (seed * 1103515245 + 12345) % 2147483648
      return junk[seed % junk.n + 1]
    end

    it("never crashes a module function", function()
      for _, name in ipairs({ "backoff", "over_budget", "batchq", "array", "array_concat",
                              "is_array", "errname", "strerror", "gcra", "gcra_reserve" }) do
        for _ = 1, 400 do
          pcall(core[name], pick(), pick(), pick(), pick(), pick())
        end
      end
      for _ = 1, 400 do
        pcall(core.array_concat, { pick(), pick() })
        pcall(core.array, { pick(), pick(), pick(), pick() }, pick(), pick())
      end
    end)

    it("never crashes a method, whatever self is", function()
      local objects = { core.backoff(0.1, 2, 5, "decorrelated", 1), core.batchq(),
                        core.array({ 1, 2, 3, 4 }, "int32", 2), core.array({ 1.5 }),
                        core.gcra(3, 2, 5) }
      for _, obj in ipairs(objects) do
        local mt = getmetatable(obj)
        for _, name in ipairs({ "next", "seed", "append", "cancel", "rows", "count", "take",
                                "get", "totable", "type", "width", "slice", "reserve", "state",
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
      -- __gc called by hand, then the object used again: still safe
      local q = core.batchq()
      q:append(3)
      getmetatable(q).__gc(q)
      assert.equal(0, q:count())
      assert.equal(1, (q:append(2)))
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

  describe("batchq", function()
    local function take(q)
      local out = {}
      local n, rows = q:take(out)
      local segs = {}
      for i = 1, n do segs[i] = { out[3 * i - 2], out[3 * i - 1], out[3 * i] } end
      return segs, rows
    end

    it("appends, counts and takes in arrival order with 0-based offsets", function()
      local q = core.batchq()
      assert.equal(0, q:rows())
      assert.equal(0, q:count())
      assert.equal(0, q:take({})) -- a fresh queue owns no memory yet
      assert.same({ 1, 3 }, { q:append(3) }) -- the id, and the rows now queued
      assert.same({ 2, 4 }, { q:append(1) })
      assert.same({ 3, 9 }, { q:append(5) })
      assert.equal(9, q:rows())
      assert.equal(3, q:count())
      local segs, rows = take(q)
      assert.same({ { 1, 3, 0 }, { 2, 1, 3 }, { 3, 5, 4 } }, segs)
      assert.equal(9, rows)
      assert.equal(0, q:rows())
      assert.equal(0, q:count())
      assert.same({}, (take(q)))
    end)

    it("cancels first, middle and last calls", function()
      local q = core.batchq()
      for r = 1, 5 do q:append(r) end
      assert.is_true(q:cancel(1))
      assert.is_true(q:cancel(3))
      assert.is_true(q:cancel(5))
      assert.equal(6, q:rows())
      assert.equal(2, q:count())
      assert.same({ { 2, 2, 0 }, { 4, 4, 2 } }, (take(q)))
    end)

    it("cancels every call, then starts again from id 1", function()
      local q = core.batchq()
      q:append(2)
      q:append(3)
      assert.is_true(q:cancel(2))
      assert.is_true(q:cancel(1))
      assert.equal(0, q:rows())
      assert.equal(0, q:count())
      assert.equal(1, (q:append(7)))
      assert.same({ { 1, 7, 0 } }, (take(q)))
    end)

    it("returns false for ids that are not queued", function()
      local q = core.batchq()
      q:append(1)
      q:append(1)
      assert.is_true(q:cancel(2))
      assert.is_false(q:cancel(2))
      for _, id in ipairs({ 0, -1, 3, 1.5, 2 ^ 53, 1e300, INF, -INF, 0 / 0 }) do
        assert.is_false(q:cancel(id))
      end
      assert.equal(1, q:count())
      take(q)
      assert.is_false(q:cancel(1)) -- taken
    end)

    it("reuses a cancelled id at the end of the arrival order", function()
      local q = core.batchq()
      q:append(1)
      q:append(2)
      q:append(3)
      q:cancel(1)
      assert.equal(1, (q:append(4)))
      assert.same({ { 2, 2, 0 }, { 3, 3, 2 }, { 1, 4, 5 } }, (take(q)))
    end)

    it("fills a reused out table, leaving stale entries beyond 3n", function()
      local q = core.batchq()
      local out = { "a", "b", "c", "d", "e", "f", "g" }
      q:append(2)
      q:append(2)
      local n = q:take(out)
      assert.equal(2, n)
      assert.same({ 1, 2, 0, 2, 2, 2, "g" }, out)
      q:append(9)
      assert.equal(1, q:take(out))
      assert.same({ 1, 9, 0, 2, 2, 2, "g" }, out)
      assert.equal(0, q:take(out))
    end)

    it("matches a simple model over random operations", function()
      local q = core.batchq()
      local live = {} -- { id, rows } in arrival order
      local total = 0
      local seed = 12345
      local function rand(n) -- a small LCG: the same run everywhere
        seed = (seed * 1103515245 + 12345) % 2147483648
        return seed % n
      end
      for _ = 1, 20000 do
        local op = rand(10)
        if op < 5 then
          local rows = rand(9) + 1
          local id = q:append(rows)
          for _, c in ipairs(live) do check(c[1] ~= id, "id %d given twice", id) end
          live[#live + 1] = { id, rows }
          total = total + rows
        elseif op < 8 then
          local pick = rand(#live + 2) + 1 -- sometimes not a live id
          local id = live[pick] and live[pick][1] or 1000 + pick
          check((live[pick] ~= nil) == q:cancel(id), "cancel(%d)", id)
          if live[pick] then
            total = total - live[pick][2]
            table.remove(live, pick)
          end
        else
          local segs, rows = take(q)
          check(total == rows, "take: %d rows, want %d", rows, total)
          check(#live == #segs, "take: %d segments, want %d", #segs, #live)
          local offset = 0
          for i, c in ipairs(live) do
            local s = segs[i] or {}
            check(s[1] == c[1] and s[2] == c[2] and s[3] == offset, "take: segment %d is {%s, %s, %s},"
                  .. " want {%d, %d, %d}", i, s[1], s[2], s[3], c[1], c[2], offset)
            offset = offset + c[2]
          end
          live, total = {}, 0
        end
        check(#live == q:count(), "count %d, want %d", q:count(), #live)
        check(total == q:rows(), "rows %d, want %d", q:rows(), total)
      end
    end)

    it("checks its arguments", function()
      local q = core.batchq()
      assert.equal("bad argument #1 to 'append' (rows must be an integer >= 1, got 0)",
        err_of(function() q:append(0) end))
      assert.equal("bad argument #1 to 'append' (rows must be an integer >= 1, got -3)",
        err_of(function() q:append(-3) end))
      assert.equal("bad argument #1 to 'append' (rows must be an integer >= 1, got 1.5)",
        err_of(function() q:append(1.5) end))
      assert.equal("bad argument #1 to 'append' (rows must be an integer >= 1, got nan)",
        err_of(function() q:append(0 / 0) end))
      assert.equal("bad argument #1 to 'append' (rows must be an integer >= 1, got inf)",
        err_of(function() q:append(INF) end))
      assert.equal("bad argument #1 to 'append' (rows must be an integer >= 1, got 1e+300)",
        err_of(function() q:append(1e300) end))
      assert.equal("bad argument #1 to 'append' (number expected, got string)",
        err_of(function() q:append("2") end))
      assert.equal("bad argument #1 to 'cancel' (number expected, got nil)",
        err_of(function() q:cancel(nil) end))
      assert.equal("bad argument #1 to 'take' (table expected, got no value)",
        err_of(function() q:take() end))
      assert.matches("dike.batchq expected, got table",
        err_of(function() q.rows({}) end), 1, true)
      assert.equal(0, q:count()) -- nothing queued by the failed calls
      assert.equal(1, q:append(2 ^ 53))
      assert.equal(2 ^ 53, q:rows())
    end)

    it("takes large batches", function()
      local q = core.batchq()
      for i = 1, 1000 do q:append(i) end
      for i = 2, 1000, 2 do q:cancel(i) end
      local segs, rows = take(q)
      assert.equal(500, #segs)
      assert.equal(250000, rows)
      local offset = 0
      for k, seg in ipairs(segs) do
        assert.same({ 2 * k - 1, 2 * k - 1, offset }, seg)
        offset = offset + seg[2]
      end
    end)

    it("has a tostring and is collected", function()
      local q = core.batchq()
      q:append(2)
      q:append(3)
      assert.equal("dike.batchq(2 calls, 5 rows)", tostring(q))
      for _ = 1, 200 do
        local tmp = core.batchq()
        for r = 1, 50 do tmp:append(r) end
      end
      collectgarbage()
      collectgarbage()
      assert.equal(2, q:count())
    end)
  end)
end)
