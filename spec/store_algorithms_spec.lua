-- dike.store.algorithms: the GCRA step and the circuit breaker's state machine that the Redis
-- scripts and the shared-dict store both run (the same source), tested here in-process with
-- chosen clocks. spec/store_redis_spec.lua runs them inside Redis.
local algorithms = require("dike.store.algorithms")

local A = algorithms.load()

describe("dike.store.algorithms gcra", function()
    -- rate 10 per second (T = 0.1), burst 3
    local T, burst = 0.1, 3

    -- The theoretical arrival time of a state.
    local function tat(debt, last) return last + debt * T end

    it("admits a burst at once, then spaces calls T apart", function()
        local debt, last
        local now = 100
        for i = 1, 3 do
            local ok, d, l, wait = A.gcra(debt, last, now, T, burst, 1, 0)
            assert.is_true(ok, "call " .. i)
            assert.equal(0, wait)
            debt, last = d, l
        end
        assert.equal(3, debt) -- whole units add up exactly
        assert.near(100.3, tat(debt, last), 1e-9)
        local ok, d, l, retry_after = A.gcra(debt, last, now, T, burst, 1, 0)
        assert.is_false(ok)
        assert.same({ 3, 100 }, { d, l }) -- nothing changed
        assert.near(0.1, retry_after, 1e-9)
        -- 100 + 0.1 is not exact in binary: a hair later, its turn has come
        ok = A.gcra(debt, last, now + 0.1 + 1e-9, T, burst, 1, 0)
        assert.is_true(ok)
    end)

    it("reserves a turn within max_wait and reports the wait", function()
        local _, debt, last = A.gcra(nil, nil, 0, T, burst, 3, 0) -- the burst is used up
        local ok, wait
        ok, debt, last, wait = A.gcra(debt, last, 0, T, burst, 1, 0.25)
        assert.is_true(ok)
        assert.near(0.1, wait, 1e-9)
        assert.near(0.4, tat(debt, last), 1e-9)
        ok, debt, last, wait = A.gcra(debt, last, 0, T, burst, 1, 0.25)
        assert.is_true(ok)
        assert.near(0.2, wait, 1e-9)
        local d3 = debt
        ok, debt, last, wait = A.gcra(debt, last, 0, T, burst, 1, 0.25)
        assert.is_false(ok)
        assert.equal(d3, debt)
        assert.near(0.3, wait, 1e-9)
        -- max_wait < 0: no bound
        ok, _, _, wait = A.gcra(debt, last, 0, T, burst, 1, -1)
        assert.is_true(ok)
        assert.near(0.3, wait, 1e-9)
    end)

    it("forgets an idle past: a debt paid back by time counts as none", function()
        local ok, debt, last, wait = A.gcra(2, 5, 1000, T, burst, 2, 0)
        assert.is_true(ok)
        assert.equal(0, wait)
        assert.same({ 2, 1000 }, { debt, last })
    end)

    it("keeps the debt when the clock goes back", function()
        local _, debt, last = A.gcra(nil, nil, 50, T, burst, 3, 0)
        local ok, d, l, retry_after = A.gcra(debt, last, 20, T, burst, 1, 0)
        assert.is_false(ok)
        assert.same({ 3, 20 }, { d, l }) -- the same debt, counted from the new reading
        assert.near(0.1, retry_after, 1e-9)
    end)

    it("lets a whole burst through where seconds would not add up (100 calls of 0.6 s)", function()
        local debt, last, admitted = nil, nil, 0
        for _ = 1, 100 do
            local ok, d, l = A.gcra(debt, last, 1.7e9, 0.6, 100, 1, 0)
            if ok then admitted, debt, last = admitted + 1, d, l end
        end
        assert.equal(100, admitted)
    end)

    it("admits rate * time + burst calls over a span, within one", function()
        local debt, last, admitted = nil, nil, 0
        for step = 0, 9999 do -- 10 s in steps of 1 ms, one try per step
            local ok, d, l = A.gcra(debt, last, step / 1000, T, burst, 1, 0)
            if ok then
                admitted = admitted + 1
                debt, last = d, l
            end
        end
        assert.is_true(math.abs(admitted - (10 * 10 + burst)) <= 1, "admitted " .. admitted)
    end)

    it("saturates as the C core does: T and a full burst capped at 1e9 s", function()
        local ok, d, _, wait = A.gcra(nil, nil, 0, 1e12, 5, 5, 0) -- T capped at 1e9: capacity 1
        assert.is_true(ok)
        assert.same({ 1, 0 }, { d, wait })
        ok, d, _, wait = A.gcra(d, 0, 0, 1e12, 5, 1, -1) -- a wait of 1e9 s is the longest allowed
        assert.is_true(ok)
        assert.same({ 2, 1e9 }, { d, wait })
        ok, _, _, wait = A.gcra(d, 0, 0, 1e12, 5, 1, -1) -- 2e9 s: refused even with no bound
        assert.is_false(ok)
        assert.equal(2e9, wait)
    end)

    it("encodes its state exactly", function()
        local d, l = 1 / 3, 1.7e9 + 1 / 7
        assert.same({ d, l }, { A.gcra_decode(A.gcra_encode(d, l)) })
        assert.same({}, { A.gcra_decode(nil) })
        assert.same({}, { A.gcra_decode("1712345678.25") }) -- not ours (an older layout): none
    end)

    -- The property: the store's step and the C core's (dike.core.gcra, the process-local
    -- limiter's) decide alike on random inputs: costs (whole and fractional), clocks (small,
    -- and seconds since 1970, standing still or moving by whole and odd fractions of T), and
    -- max_wait (0, around the wait, math.huge).
    it("agrees with the C core (dike.core.gcra) on random inputs", function()
        local core = require("dike.core")
        local seed = os.time()
        math.randomseed(seed)
        local rnd = math.random
        local sequences, steps, admitted, refused = 1500, 0, 0, 0
        for seq = 1, sequences do
            local rate = ({ 1, 3.3, 7, 10, 100, 1000, 1e6, 0.01 })[rnd(8)]
            local per = ({ 1, 60, 0.5, 0.1, 3600 })[rnd(5)]
            local b = rnd() < 0.7 and rnd(1, 100) or 1 + rnd() * 50
            local g = core.gcra(rate, per, b)
            local t = per / rate
            local debt, last
            local now = ({ 0, 1000, 1.7e9 + rnd() })[rnd(3)]
            for step = 1, 60 do
                local r = rnd()
                if r >= 0.7 then now = now + rnd() * t * 3
                elseif r >= 0.3 then now = now + rnd(0, 20) * t / 4 end -- quarters of T: exact boundaries
                -- (else the same instant)
                local cost = rnd() < 0.7 and rnd(1, math.floor(b)) or rnd() * b
                if cost <= 0 then cost = 1 end
                local mw = ({ 0, 0, t, 10 * t, rnd() * 5 * t, math.huge })[rnd(6)]
                local cw, c_retry = core.gcra_reserve(g, now, cost, mw)
                local ok, d, l, wait = A.gcra(debt, last, now, t, b, cost, mw == math.huge and -1 or mw)
                local c_ok = cw ~= false
                local c_wait = c_ok and cw or c_retry
                local started, c_last, c_debt = g:state()
                local agree = c_ok == ok and math.abs(c_wait - wait) <= 1e-9 * math.max(1, c_wait)
                    and (started or not ok)
                    and (not started or (math.abs(c_debt - d) <= 1e-9 * math.max(1, c_debt) and c_last == l))
                if not agree then -- the message is made only for a failure (this loop runs 90,000 times)
                    assert.is_true(agree, ("seed %d, sequence %d, step %d: rate %s, per %s, burst %s, now %.17g,"
                        .. " cost %s, max_wait %s: C %s %.17g (debt %.17g, last %.17g), store %s %.17g (debt %.17g,"
                        .. " last %.17g)"):format(seed, seq, step, rate, per, b, now, cost, mw, tostring(c_ok), c_wait,
                        c_debt, c_last, tostring(ok), wait, d, l))
                end
                debt, last = d, l
                steps = steps + 1
                if ok then admitted = admitted + 1 else refused = refused + 1 end
            end
        end
        -- both outcomes were exercised, many times
        assert.is_true(admitted > steps / 10 and refused > steps / 10,
            ("admitted %d, refused %d"):format(admitted, refused))
    end)
end)

describe("dike.store.algorithms circuit breaker", function()
    local conf = { failure_rate = 0.5, minimum_calls = 4, window = 6, open_for = 10, open_backoff = 2,
                   max_open_for = 25, half_open_calls = 2 }

    local function fresh() return A.cb_decode(nil, conf) end

    -- Record a call admitted in the current period.
    local function rec(st, t, c, failed, slow, trial)
        return A.cb_record(st, t, c, failed, slow, trial, st.gen)
    end

    it("stays closed before minimum_calls, opens at the failure rate", function()
        local st = fresh()
        assert.equal("closed", st.state)
        assert.is_nil((rec(st, 1, conf, true, false, false)))
        assert.is_nil((rec(st, 2, conf, true, false, false)))
        assert.is_nil((rec(st, 3, conf, false, false, false)))
        local changed, reason, rate, n = rec(st, 4, conf, false, false, false)
        assert.equal("open", changed)
        assert.equal("failure", reason)
        assert.equal(0.5, rate)
        assert.equal(4, n)
        assert.equal("open", st.state)
        assert.equal(4, st.opened_at)
        assert.equal(0, st.n) -- the window starts empty again
    end)

    it("counts the last `window` calls only", function()
        local c = { failure_rate = 0.5, minimum_calls = 4, window = 3, open_for = 10, open_backoff = 1,
                    half_open_calls = 1 }
        local st = A.cb_decode(nil, c)
        rec(st, 1, c, true, false, false)
        rec(st, 2, c, false, false, false)
        rec(st, 3, c, false, false, false)
        assert.equal(3, st.n)
        assert.equal(1, st.f)
        rec(st, 4, c, false, false, false) -- the failure leaves the window
        assert.equal(3, st.n)
        assert.equal(0, st.f)
        assert.equal("000", st.win)
    end)

    it("rejects while open, with retry_after, and turns half-open after open_for", function()
        local st = fresh()
        for _ = 1, 4 do rec(st, 0, conf, true, false, false) end
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
        for _ = 1, 4 do rec(st, 0, conf, true, false, false) end
        local ok1, _, changed, trial1, gen1 = A.cb_admit(st, 10, conf)
        assert.is_true(ok1)
        assert.equal("half_open", changed)
        assert.is_true(trial1)
        assert.equal(st.gen, gen1)
        local ok2, _, _, trial2 = A.cb_admit(st, 10, conf)
        assert.is_true(ok2 and trial2)
        local ok3, retry_after = A.cb_admit(st, 10, conf)
        assert.is_false(ok3)
        assert.equal(0, retry_after) -- the trials may end any moment
        assert.is_nil((A.cb_record(st, 11, conf, false, false, true, gen1)))
        assert.equal("closed", (A.cb_record(st, 11, conf, false, false, true, gen1)))
        assert.same({ "closed", 0, 0, 10 }, { st.state, st.n, st.trials, st.open_for })
    end)

    it("opens again from half-open on a failed trial, open_for times open_backoff, capped", function()
        local st = fresh()
        for _ = 1, 4 do rec(st, 0, conf, true, false, false) end
        A.cb_admit(st, 10, conf)
        assert.same({ "open", "trial", 0, 0 }, { rec(st, 10, conf, true, false, true) })
        assert.equal(20, st.open_for)
        A.cb_admit(st, 30, conf)
        rec(st, 30, conf, true, false, true)
        assert.equal(25, st.open_for) -- 40, capped by max_open_for
        assert.equal(30, st.opened_at)
    end)

    it("opens again from half-open when the trials' slow call rate is reached", function()
        local c = { failure_rate = 0.5, minimum_calls = 2, window = 4, slow_call_rate = 0.5, open_for = 10,
                    open_backoff = 3, half_open_calls = 2 }
        local st = A.cb_decode(nil, c)
        rec(st, 0, c, true, false, false)
        rec(st, 0, c, true, false, false)
        A.cb_admit(st, 10, c)
        A.cb_admit(st, 10, c)
        assert.is_nil((rec(st, 11, c, false, true, true))) -- one slow success, one trial to go
        assert.same({ "open", "slow", 0.5, 2 }, { rec(st, 11, c, false, false, true) })
        assert.equal(30, st.open_for)
        -- without a slow_call_rate, slow trials close it as any other success
        local c2 = { failure_rate = 0.5, minimum_calls = 2, window = 4, open_for = 10, open_backoff = 1,
                     half_open_calls = 1 }
        st = A.cb_decode(nil, c2)
        rec(st, 0, c2, true, false, false)
        rec(st, 0, c2, true, false, false)
        A.cb_admit(st, 10, c2)
        assert.equal("closed", (rec(st, 11, c2, false, true, true)))
    end)

    it("gives a cancelled trial's place back, and forgets trials that never report", function()
        local st = fresh()
        for _ = 1, 4 do rec(st, 0, conf, true, false, false) end
        local _, _, _, _, gen = A.cb_admit(st, 10, conf)
        A.cb_admit(st, 10, conf)
        assert.is_false((A.cb_admit(st, 10, conf)))
        A.cb_release_trial(st, gen - 1) -- a trial of another period: nothing to give back
        assert.is_false((A.cb_admit(st, 10, conf)))
        A.cb_release_trial(st, gen)
        assert.is_true((A.cb_admit(st, 11, conf)))
        assert.is_false((A.cb_admit(st, 12, conf)))
        local ok, _, changed, trial, gen2 = A.cb_admit(st, 20, conf) -- open_for after it became half-open
        assert.same({ true, nil, true }, { ok, changed, trial })
        assert.equal(gen + 1, gen2) -- a new period: the lost trials' reports no longer count
        assert.is_nil((A.cb_record(st, 20, conf, false, false, true, gen)))
        assert.equal(0, st.trial_ok)
    end)

    it("opens on the slow call rate when one is configured", function()
        local c = { failure_rate = 1, minimum_calls = 2, window = 5, slow_call_rate = 0.5, open_for = 1,
                    open_backoff = 1, half_open_calls = 1 }
        local st = A.cb_decode(nil, c)
        rec(st, 0, c, false, true, false)
        local changed, reason, rate, n = rec(st, 0, c, false, false, false)
        assert.same({ "open", "slow", 0.5, 2 }, { changed, reason, rate, n })
    end)

    it("counts a time window by whole seconds", function()
        local c = { failure_rate = 0.5, minimum_calls = 3, window_seconds = 2, open_for = 1, open_backoff = 1,
                    half_open_calls = 1 }
        local st = A.cb_decode(nil, c)
        rec(st, 100.1, c, true, false, false)
        rec(st, 100.2, c, true, false, false)
        assert.equal("100:2:2:0;", st.buckets)
        rec(st, 102.5, c, false, false, false) -- second 100 has left the window
        assert.equal("102:1:0:0;", st.buckets)
        assert.equal(1, st.n)
        rec(st, 103.0, c, true, false, false)
        local changed, reason, rate, n = rec(st, 103.9, c, true, false, false)
        assert.same({ "open", "failure", 2 / 3, 3 }, { changed, reason, rate, n })
    end)

    it("isolates until reset, which closes it with an empty window", function()
        local st = fresh()
        rec(st, 0, conf, true, false, false)
        assert.equal("isolated", A.cb_force(st, 1, conf, "isolated"))
        assert.is_nil(A.cb_force(st, 1, conf, "isolated"))
        local allowed, retry_after = A.cb_admit(st, 1000, conf)
        assert.is_false(allowed)
        assert.equal(-1, retry_after)
        assert.equal("closed", A.cb_force(st, 2, conf, "closed"))
        assert.equal(0, st.n)
    end)

    it("reset while closed empties the window; calls admitted before no longer count", function()
        local st = fresh()
        local _, _, _, _, gen = A.cb_admit(st, 0, conf)
        rec(st, 0, conf, true, false, false)
        rec(st, 0, conf, true, false, false)
        assert.is_nil(A.cb_force(st, 1, conf, "closed")) -- no state change to log
        assert.same({ "closed", 0, "" }, { st.state, st.n, st.win })
        assert.is_nil((A.cb_record(st, 1, conf, true, false, false, gen)))
        assert.equal(0, st.n)
    end)

    it("ignores calls that finish after the state changed under them", function()
        local st = fresh()
        local _, _, _, _, gen = A.cb_admit(st, 0, conf)
        for _ = 1, 4 do rec(st, 0, conf, true, false, false) end
        assert.is_nil((A.cb_record(st, 1, conf, true, false, false, gen)))
        assert.equal(0, st.n)
        -- ... even when it is closed again by then
        A.cb_admit(st, 10, conf)
        A.cb_admit(st, 10, conf)
        rec(st, 10, conf, false, false, true)
        rec(st, 10, conf, false, false, true)
        assert.equal("closed", st.state)
        assert.is_nil((A.cb_record(st, 11, conf, true, false, false, gen)))
        assert.equal(0, st.n)
    end)

    it("encodes and decodes a record exactly", function()
        local st = fresh()
        rec(st, 1 / 3, conf, true, true, false)
        local text = A.cb_encode(st)
        assert.same(st, A.cb_decode(text, conf))
        assert.same(fresh(), A.cb_decode("garbage", conf))
    end)
end)
