-- dike.limit_jobs (docs/limit_jobs.md).
local dike = require("dike")
local support = require("spec.support")

local function sleeper(seconds)
    return function(x)
        dike.sleep(seconds)
        return x
    end
end

describe("dike.limit_jobs", function()
    it("limit = 2: three concurrent calls give two results and one TooManyCalls", function()
        local limited = dike.limit_jobs{ limit = 2 }(sleeper(0.01))
        local r = dike.run(function()
            return dike.gather({
                function() return limited(1) end,
                function() return limited(2) end,
                function() return limited(3) end,
            }, { return_errors = true })
        end)
        assert.equal(1, r[1])
        assert.equal(2, r[2])
        local e = r[3]
        assert.equal(dike.TooManyCalls, getmetatable(e))
        assert.matches("^Too many calls to function spec/limit_jobs_spec.lua:%d+! limit=2 exceeded$", e.message)
        assert.equal(e.message, tostring(e))
        assert.same({ calls = 3, running = 0, queued = 0, rejected = 1, limit = 2 }, dike.stats(limited))
    end)

    it("names the function as short_src:linedefined, or by the name option", function()
        local line = debug.getinfo(1, "l").currentline + 1
        local f = function() end
        local lim = dike.limit_jobs{ limit = 0 }
        local e = support.error_of(lim(f))
        assert.equal(("Too many calls to function spec/limit_jobs_spec.lua:%d! limit=0 exceeded"):format(line),
                     e.message)
        e = support.error_of(dike.limit_jobs{ limit = 0, name = "fetch" }(f))
        assert.equal("Too many calls to function fetch! limit=0 exceeded", e.message)
    end)

    it("limit 0 always rejects and never calls fn", function()
        local called = 0
        local g = dike.limit_jobs{ limit = 0 }(function() called = called + 1 end)
        for _ = 1, 3 do assert.equal(dike.TooManyCalls, getmetatable(support.error_of(g))) end
        assert.equal(0, called)
        assert.same({ calls = 3, running = 0, queued = 0, rejected = 3, limit = 0 }, dike.stats(g))
    end)

    it("math.huge never rejects and prints as inf", function()
        local g = dike.limit_jobs{ limit = math.huge }(sleeper(0.001))
        local r = dike.run(function()
            local items = {}
            for i = 1, 50 do items[i] = function() return g(i) end end
            return dike.gather(items)
        end)
        assert.equal(50, r.n)
        assert.equal(50, r[50])
    end)

    it("releases the slot on success, on error and on cancellation", function()
        local lim = dike.limit_jobs{ limit = 1 }
        local ok_fn = lim(function() return "ok" end)
        local bad_fn = lim(function() error("bad", 0) end)
        local slow_fn = lim(sleeper(10))
        dike.run(function()
            assert.equal("ok", ok_fn())
            assert.equal("bad", support.error_of(bad_fn))
            local t = dike.spawn(slow_fn, 1)
            assert.equal(1, dike.stats(lim).running)
            assert.equal(dike.TooManyCalls, getmetatable(support.error_of(ok_fn)))
            t:cancel()
            dike.sleep(0)
            assert.equal(0, dike.stats(lim).running)
            assert.equal("ok", ok_fn())
        end)
    end)

    it("errors from fn pass through unchanged", function()
        local e = {}
        local g = dike.limit_jobs{ limit = 1 }(function() error(e) end)
        assert.equal(e, support.error_of(g))
        assert.equal("s", support.error_of(dike.limit_jobs{ limit = 1 }(function() error("s", 0) end)))
    end)

    it("one limiter shared by two functions shares its slots", function()
        local lim = dike.limit_jobs{ limit = 1 }
        local a, b = lim(sleeper(0.01)), lim(sleeper(0.01))
        local r = dike.run(function()
            return dike.gather({ function() return a("a") end, function() return b("b") end }, { return_errors = true })
        end)
        assert.equal("a", r[1])
        assert.equal(dike.TooManyCalls, getmetatable(r[2]))
        assert.same({ calls = 2, running = 0, queued = 0, rejected = 1, limit = 1 }, dike.stats(lim))
        assert.same(dike.stats(lim), dike.stats(a))
    end)

    it("queues up to `queue` callers and serves them in FIFO order", function()
        local order = {}
        local g = dike.limit_jobs{ limit = 1, queue = 3 }(function(x)
            order[#order + 1] = x
            dike.sleep(0.002)
            return x
        end)
        local r = dike.run(function()
            local items = {}
            for i = 1, 5 do items[i] = function() return g(i) end end
            return dike.gather(items, { return_errors = true })
        end)
        assert.same({ 1, 2, 3, 4 }, order)
        assert.same({ 1, 2, 3, 4 }, { r[1], r[2], r[3], r[4] })
        assert.equal(dike.TooManyCalls, getmetatable(r[5]))
        assert.same({ calls = 5, running = 0, queued = 0, rejected = 1, limit = 1 }, dike.stats(g))
    end)

    it("a queued caller waits at most queue_timeout, then gets TooManyCalls", function()
        local g = dike.limit_jobs{ limit = 1, queue = 1, queue_timeout = 0.02 }(sleeper(0.2))
        dike.run(function()
            local first = dike.spawn(g, 1)
            local t0 = support.clock()
            local err = support.error_of(g, 2)
            local waited = support.clock() - t0
            assert.equal(dike.TooManyCalls, getmetatable(err))
            assert.is_true(waited >= 0.019 and waited < 0.15, tostring(waited))
            assert.equal(1, dike.stats(g).running)
            assert.equal(0, dike.stats(g).queued)
            first:cancel()
            assert.equal(dike.CancelledError, getmetatable(support.error_of(first.join, first)))
        end)
        assert.same({ calls = 2, running = 0, queued = 0, rejected = 1, limit = 1 }, dike.stats(g))
    end)

    it("a cancelled queued caller leaves the queue at once; the next one moves up", function()
        local g = dike.limit_jobs{ limit = 1, queue = 5 }(sleeper(0.01))
        dike.run(function()
            local t1 = dike.spawn(g, 1)
            local t2 = dike.spawn(g, 2)
            local t3 = dike.spawn(g, 3)
            assert.equal(2, dike.stats(g).queued)
            t2:cancel()
            assert.equal(1, dike.stats(g).queued) -- before cancel() returned
            assert.equal(1, t1:join())
            assert.equal(dike.CancelledError, getmetatable(support.error_of(t2.join, t2)))
            assert.equal(3, t3:join())
        end)
        assert.same({ calls = 3, running = 0, queued = 0, rejected = 0, limit = 1 }, dike.stats(g))
    end)

    it("a caller handed a slot but cancelled before it resumes gives the slot back", function()
        local lim = dike.limit_jobs{ limit = 1, queue = 2 }
        local hold = lim(sleeper(0.01))
        local quick = lim(function(x) return x end)
        dike.run(function()
            local t2
            local t1 = dike.spawn(function()
                hold("hold")    -- returning hands the slot to t2, which has not resumed yet
                assert.equal(1, dike.stats(lim).running)
                t2:cancel()     -- so t2 gives it back, and t3 gets it
            end)
            t2 = dike.spawn(quick, "two")
            local t3 = dike.spawn(quick, "three")
            t1:join()
            assert.equal("three", t3:join())
            assert.equal(dike.CancelledError, getmetatable(support.error_of(t2.join, t2)))
        end)
        assert.same({ calls = 3, running = 0, queued = 0, rejected = 0, limit = 1 }, dike.stats(lim))
    end)

    it("queueing needs a coroutine; a call with a free slot does not", function()
        local g = dike.limit_jobs{ limit = 1, queue = 1 }(function(x) return x * 2 end)
        assert.equal(4, g(2))
        local h = dike.limit_jobs{ limit = 0, queue = 1 }(function() end)
        assert.equal("dike.limit_jobs: must be called inside a coroutine (start one with dike.run or dike.spawn)",
                     support.error_of(h))
    end)

    it("rejects invalid options when the limiter is made", function()
        local ABOVE_2_53 = " (integers above 2^53 are not exact)"
        local bad = {
            { {}, "dike.limit_jobs: limit must be an integer >= 0 or math.huge, got nil" },
            { { limit = -1 }, "limit must be an integer >= 0 or math.huge, got -1" },
            { { limit = 1.5 }, "limit must be an integer >= 0 or math.huge, got 1.5" },
            { { limit = 0 / 0 }, "limit must be an integer >= 0 or math.huge" },
            { { limit = "2" }, "limit must be an integer >= 0 or math.huge, got \"2\"" },
            { { limit = 1, queue = -1 }, "queue must be an integer >= 0" },
            { { limit = 1e300 }, "limit must be an integer >= 0 or math.huge, got 1e+300" .. ABOVE_2_53 },
            { { limit = 2 ^ 63 }, "limit must be an integer >= 0 or math.huge, got 9.2233720368548e+18" .. ABOVE_2_53 },
            { { limit = 1, queue = 2 ^ 53 + 2 },
              "queue must be an integer >= 0 or math.huge, got 9.007199254741e+15" .. ABOVE_2_53 },
            { { limit = 1, queue_timeout = 0 }, "queue_timeout must be a number > 0, got 0" },
            { { limit = 1, name = 3 }, "name must be a string, got 3" },
            { { limit = 1, max = 3 }, "dike.limit_jobs: unknown option \"max\"" },
            { nil, "dike.limit_jobs: options must be a table, got nil" },
        }
        for _, case in ipairs(bad) do
            local err = support.error_of(dike.limit_jobs, case[1])
            assert.is_string(err, case[2])
            assert.matches(case[2], err, 1, true)
        end
        assert.matches("dike.limit_jobs: expected a function to wrap, got 3",
                       support.error_of(dike.limit_jobs{ limit = 1 }, 3), 1, true)
    end)
end)
