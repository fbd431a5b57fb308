-- dike.store.algorithms: the GCRA step and the circuit breaker's state machine that the Redis
-- scripts and the shared-dict store both run (the same source), tested here in-process with
-- chosen clocks. spec/store_redis_spec.lua runs them inside Redis.
local algorithms = require("dike.store.algorithms")

local A = algorithms.load()

describe("dike.store.algorithms gcra", function()
    -- rate 10 per second (T = 0.1), burst 3
    local T, burst = 0.1, 3

    it("admits a burst at once, then spaces calls T apart", function()
        local tat
        local now = 100
        for i = 1, 3 do
            local ok, new_tat, wait = A.gcra(tat, now, T, burst, 1, 0)
            assert.is_true(ok, "call " .. i)
            assert.equal(0, wait)
            tat = new_tat
        end
        assert.near(100.3, tat, 1e-9)
        local ok, same, retry_after = A.gcra(tat, now, T, burst, 1, 0)
        assert.is_false(ok)
        assert.equal(tat, same) -- nothing changed
        assert.near(0.1, retry_after, 1e-9)
        ok = A.gcra(tat, now + 0.1, T, burst, 1, 0)
        assert.is_true(ok)
    end)

    it("reserves a turn within max_wait and reports the wait", function()
        local _, tat = A.gcra(nil, 0, T, burst, 3, 0) -- the burst is used up
        local ok, new_tat, wait = A.gcra(tat, 0, T, burst, 1, 0.25)
        assert.is_true(ok)
        assert.near(0.1, wait, 1e-9)
        assert.near(0.4, new_tat, 1e-9)
        ok, new_tat, wait = A.gcra(new_tat, 0, T, burst, 1, 0.25)
        assert.is_true(ok)
        assert.near(0.2, wait, 1e-9)
        local tat3 = new_tat
        ok, new_tat, wait = A.gcra(tat3, 0, T, burst, 1, 0.25)
        assert.is_false(ok)
        assert.equal(tat3, new_tat)
        assert.near(0.3, wait, 1e-9)
        -- max_wait < 0: no bound
        ok, _, wait = A.gcra(tat3, 0, T, burst, 1, -1)
        assert.is_true(ok)
        assert.near(0.3, wait, 1e-9)
    end)

    it("forgets an idle past: a tat before now counts as now", function()
        local ok, new_tat, wait = A.gcra(5, 1000, T, burst, 2, 0)
        assert.is_true(ok)
        assert.equal(0, wait)
        assert.near(1000.2, new_tat, 1e-9)
    end)

    it("admits rate * time + burst calls over a span, within one", function()
        local tat, admitted = nil, 0
        for step = 0, 9999 do -- 10 s in steps of 1 ms, one try per step
            local ok, new_tat = A.gcra(tat, step / 1000, T, burst, 1, 0)
            if ok then
                admitted = admitted + 1
                tat = new_tat
            end
        end
        assert.is_true(math.abs(admitted - (10 * 10 + burst)) <= 1, "admitted " .. admitted)
    end)
end)

describe("dike.store.algorithms circuit breaker", function()
    local conf = { failure_rate = 0.5, minimum_calls = 4, window = 6, open_for = 10, open_backoff = 2,
                   max_open_for = 25, half_open_calls = 2 }

    local function fresh() return A.cb_decode(nil, conf) end

    it("stays closed before minimum_calls, opens at the failure rate", function()
        local st = fresh()
        assert.equal("closed", st.state)
        assert.is_nil((A.cb_record(st, 1, conf, true, false, false)))
        assert.is_nil((A.cb_record(st, 2, conf, true, false, false)))
        assert.is_nil((A.cb_record(st, 3, conf, false, false, false)))
        local changed, reason, rate, n = A.cb_record(st, 4, conf, false, false, false)
        assert.equal("open", changed)
        assert.equal("failure", reason)
        assert.equal(0.5, rate)
        assert.equal(4, n)
        assert.equal("open", st.state)
        assert.equal(4, st.opened_at)
        assert.equal(0, st.n) -- the window starts empty again
    end)

    it("counts the last `window` calls only", function()
        local st = fresh()
        for t = 1, 3 do A.cb_record(st, t, conf, true, false, false) end -- would open at the 4th...
        -- ... but first: successes push the failures out
        local c = { failure_rate = 0.5, minimum_calls = 4, window = 3, open_for = 10, open_backoff = 1,
                    half_open_calls = 1 }
        st = A.cb_decode(nil, c)
        A.cb_record(st, 1, c, true, false, false)
        A.cb_record(st, 2, c, false, false, false)
        A.cb_record(st, 3, c, false, false, false)
        assert.equal(3, st.n)
        assert.equal(1, st.f)
        A.cb_record(st, 4, c, false, false, false) -- the failure leaves the window
        assert.equal(3, st.n)
        assert.equal(0, st.f)
        assert.equal("000", st.win)
    end)

    it("rejects while open, with retry_after, and turns half-open after open_for", function()
        local st = fresh()
        for _ = 1, 4 do A.cb_record(st, 0, conf, true, false, false) end
        assert.equal("open", st.state)
        local allowed, retry_after, changed = A.cb_admit(st, 4, conf)
        assert.is_false(allowed)
        assert.equal(6, retry_after)
        assert.is_nil(changed)
        local state, ra, ch = A.cb_state(st, 10, conf)
        assert.same({ "half_open", 0, "half_open" }, { state, ra, ch })
        -- only the step that changed it reports the change
        assert.is_nil(select(3, A.cb_state(st, 10.5, conf)))
    end)

    it("admits half_open_calls trials; all succeeding closes it with an empty window", function()
        local st = fresh()
        for _ = 1, 4 do A.cb_record(st, 0, conf, true, false, false) end
        local ok1, _, changed, trial1 = A.cb_admit(st, 10, conf)
        assert.is_true(ok1)
        assert.equal("half_open", changed)
        assert.is_true(trial1)
        local ok2, _, _, trial2 = A.cb_admit(st, 10, conf)
        assert.is_true(ok2 and trial2)
        local ok3, retry_after = A.cb_admit(st, 10, conf)
        assert.is_false(ok3)
        assert.equal(10, retry_after)
        assert.is_nil((A.cb_record(st, 11, conf, false, false, true)))
        assert.equal("closed", (A.cb_record(st, 11, conf, false, false, true)))
        assert.same({ "closed", 0, 0, 10 }, { st.state, st.n, st.trials, st.open_for })
    end)

    it("opens again from half-open on a failed trial, open_for times open_backoff, capped", function()
        local st = fresh()
        for _ = 1, 4 do A.cb_record(st, 0, conf, true, false, false) end
        A.cb_admit(st, 10, conf)
        assert.same({ "open", "trial", 0, 0 }, { A.cb_record(st, 10, conf, true, false, true) })
        assert.equal(20, st.open_for)
        A.cb_admit(st, 30, conf)
        A.cb_record(st, 30, conf, true, false, true)
        assert.equal(25, st.open_for) -- 40, capped by max_open_for
        assert.equal(30, st.opened_at)
    end)

    it("gives a cancelled trial's place back, and forgets trials that never report", function()
        local st = fresh()
        for _ = 1, 4 do A.cb_record(st, 0, conf, true, false, false) end
        A.cb_admit(st, 10, conf)
        A.cb_admit(st, 10, conf)
        assert.is_false((A.cb_admit(st, 10, conf)))
        A.cb_release_trial(st)
        assert.is_true((A.cb_admit(st, 11, conf)))
        assert.is_false((A.cb_admit(st, 12, conf)))
        assert.is_true((A.cb_admit(st, 20, conf))) -- open_for after it became half-open
    end)

    it("opens on the slow call rate when one is configured", function()
        local c = { failure_rate = 1, minimum_calls = 2, window = 5, slow_call_rate = 0.5, open_for = 1,
                    open_backoff = 1, half_open_calls = 1 }
        local st = A.cb_decode(nil, c)
        A.cb_record(st, 0, c, false, true, false)
        local changed, reason, rate, n = A.cb_record(st, 0, c, false, false, false)
        assert.same({ "open", "slow", 0.5, 2 }, { changed, reason, rate, n })
    end)

    it("counts a time window by whole seconds", function()
        local c = { failure_rate = 0.5, minimum_calls = 3, window_seconds = 2, open_for = 1, open_backoff = 1,
                    half_open_calls = 1 }
        local st = A.cb_decode(nil, c)
        A.cb_record(st, 100.1, c, true, false, false)
        A.cb_record(st, 100.2, c, true, false, false)
        assert.equal("100:2:2:0;", st.buckets)
        A.cb_record(st, 102.5, c, false, false, false) -- second 100 has left the window
        assert.equal("102:1:0:0;", st.buckets)
        assert.equal(1, st.n)
        A.cb_record(st, 103.0, c, true, false, false)
        local changed, reason, rate, n = A.cb_record(st, 103.9, c, true, false, false)
        assert.same({ "open", "failure", 2 / 3, 3 }, { changed, reason, rate, n })
    end)

    it("isolates until reset, which closes it with an empty window", function()
        local st = fresh()
        A.cb_record(st, 0, conf, true, false, false)
        assert.equal("isolated", A.cb_force(st, 1, conf, "isolated"))
        assert.is_nil(A.cb_force(st, 1, conf, "isolated"))
        local allowed, retry_after = A.cb_admit(st, 1000, conf)
        assert.is_false(allowed)
        assert.equal(-1, retry_after)
        assert.equal("closed", A.cb_force(st, 2, conf, "closed"))
        assert.equal(0, st.n)
    end)

    it("ignores calls that finish after the state changed under them", function()
        local st = fresh()
        for _ = 1, 4 do A.cb_record(st, 0, conf, true, false, false) end
        assert.is_nil((A.cb_record(st, 1, conf, true, false, false)))
        assert.equal(0, st.n)
    end)

    it("encodes and decodes a record exactly", function()
        local st = fresh()
        A.cb_record(st, 1 / 3, conf, true, true, false)
        local text = A.cb_encode(st)
        assert.same(st, A.cb_decode(text, conf))
        assert.same(fresh(), A.cb_decode("garbage", conf))
    end)
end)
