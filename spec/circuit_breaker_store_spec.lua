-- dike.circuit_breaker with a store (docs/sharing.md), in one process against a real
-- redis-server: two stores stand for two processes sharing one breaker (state, window, trial
-- places, isolate/reset), each change logged once by the process whose step made it; the
-- outcome recorded without waiting; cancellation; and the on_failure policies while the
-- server is down or silent. spec/shared/run.lua runs a breaker across processes.
local dike = require("dike")
local support = require("spec.support")
local redis_server = require("spec.redis_server")
local defer = require("spec.defer")(function(fn) finally(fn) end)
local shared = require("dike.circuit_breaker_shared")
local uv = require("luv")

local TIMEOUT = 3 -- valgrind runs this file too; the tests of the timeout set their own

local server

local function store(extra)
    local o = { timeout = TIMEOUT }
    for k, v in pairs(extra or {}) do o[k] = v end
    local s = dike.store.redis(server:store_options(o))
    defer(function() s:close(); server:cli("FLUSHALL") end)
    return s
end

local eventually = support.eventually

local function messages(logs)
    local out = {}
    for i, l in ipairs(logs) do out[i] = l.level .. ": " .. l.message end
    return out
end

-- A backend that fails while `down[1]` is true.
local function backend(down)
    return function(x)
        if down[1] then error("backend down", 0) end
        return x
    end
end

local function is_open(e) return getmetatable(e) == dike.CircuitOpen end

setup(function()
    server = redis_server.start()
end)

teardown(function()
    server:destroy()
end)

describe("dike.circuit_breaker with a store", function()
    -- open_for 1 s: long enough that what a test expects to find open (or half-open, its trials
    -- running) still is when it looks, under valgrind too
    local OPTS = { window = 4, minimum_calls = 4, failure_rate = 0.5, open_for = 1 }
    local unquiet -- the state changes' log lines, kept out of the test output

    before_each(function() unquiet = select(2, support.capture_logs(dike)) end)
    after_each(function() unquiet() end)

    local function breaker(s, extra)
        local o = { name = "cb", store = s }
        for k, v in pairs(OPTS) do o[k] = v end
        for k, v in pairs(extra or {}) do o[k] = v end
        return dike.circuit_breaker(o)
    end

    it("checks its options", function()
        local s = store()
        local e = support.error_of(dike.circuit_breaker, { store = s })
        assert.matches("dike.circuit_breaker: name is required with a store %(it is the key the processes share%)$", e)
        e = support.error_of(dike.circuit_breaker, { name = "x", store = 5 })
        assert.matches("dike.circuit_breaker: store must be a store %(dike.store.redis{...} or "
            .. "dike.store.shared_dict%(name%)%), got 5$", e)
        e = support.error_of(dike.circuit_breaker, { name = "x", store = s, clock = os.clock })
        assert.matches("dike.circuit_breaker: clock cannot be given with a store %(the store's clock times the "
            .. "breaker%)$", e)
        e = support.error_of(dike.circuit_breaker, { name = "x", store = s, window = 3, minimum_calls = 4 })
        assert.matches("dike.circuit_breaker: minimum_calls must be <= window %(3%), got 4$", e)
        local cb = breaker(s)
        assert.equal("dike.circuit_breaker(name=cb, store=" .. s.label .. ")", tostring(cb))
        e = support.error_of(cb.state, {})
        assert.matches("dike.circuit_breaker: call state as breaker:state%(%), got a table as self$", e)
    end)

    it("opens for every process when one sees the failures; logs each change once, where it was made", function()
        local logs, restore = support.capture_logs(dike)
        defer(restore)
        local events = {}
        local previous = dike.on_event(function(e)
            events[#events + 1] = e.tool .. " " .. e.name .. " " .. e.event .. " " .. e.from .. ">" .. e.to
        end)
        defer(function() dike.on_event(previous) end)
        local a, b = store(), store()
        local down = { true }
        local cba, cbb = breaker(a), breaker(b)
        local fa, fb = cba(backend(down)), cbb(backend(down))
        dike.run(function()
            for _ = 1, 4 do assert.equal("backend down", support.error_of(fa, 1)) end
            -- the other process sees it (once the last outcome, sent without waiting on a's
            -- connection, has reached the server: this asks on b's)
            assert.is_true(eventually(function() return cbb:state() == "open" end))
            local e = support.error_of(fb, 1)
            assert.is_true(is_open(e))
            assert.matches("^Circuit open for function cb! retry after [%d.]+s$", e.message)
            assert.is_true(e.retry_after > 0 and e.retry_after <= 1, e.retry_after)
            -- half-open once open_for has passed, with no call needed: b looks first, b logs it
            dike.sleep(1.01)
            assert.equal("half_open", cbb:state())
            assert.equal("half_open", cba:state())
            down[1] = false
            assert.equal(7, fa(7)) -- the trial call
            assert.is_true(eventually(function() return cbb:state() == "closed" end))
            assert.equal(8, fb(8))
        end)
        assert.same({ "warning: Circuit cb opened: failure rate 1 over 4 calls", "warning: Circuit cb half-open",
                      "warning: Circuit cb closed" }, messages(logs))
        assert.same({ "circuit_breaker cb state closed>open", "circuit_breaker cb state open>half_open",
                      "circuit_breaker cb state half_open>closed" }, events)
        assert.same({ calls = 5, failures = 4, slow = 0, rejected = 0, opened = 1, state = "closed", store_errors = 0,
                      fallback_calls = 0 }, dike.stats(fa))
        assert.same({ calls = 2, failures = 0, slow = 0, rejected = 1, opened = 0, state = "closed", store_errors = 0,
                      fallback_calls = 0 }, dike.stats(cbb))
    end)

    it("waits for one round trip a call: the outcome goes out without waiting (or with, if asked)", function()
        local s = store()
        local f = breaker(s)(function(x) return x end)
        dike.run(function()
            f(0) -- connected, script loaded
            assert.is_true(eventually(function() return s.client:pending() == 0 end))
            local before = dike.stats(s).commands
            assert.equal(1, f(1))
            assert.equal(1, s.client:pending()) -- its record is on its way
            assert.is_true(eventually(function() return s.client:pending() == 0 end))
            assert.equal(2, dike.stats(s).commands - before)
            shared.async_record = false
            defer(function() shared.async_record = true end)
            assert.equal(2, f(2))
            assert.equal(0, s.client:pending()) -- it waited for the record's answer
            assert.equal(4, dike.stats(s).commands - before)
        end)
    end)

    it("admits half_open_calls trials across processes; the rest are refused with retry_after 0", function()
        local a, b = store(), store()
        local cba, cbb = breaker(a, { half_open_calls = 2 }), breaker(b, { half_open_calls = 2 })
        local down = { true }
        local gate = false
        local fa = cba(function()
            if down[1] then error("down", 0) end
            while not gate do dike.sleep(0.01) end
            return "trial"
        end)
        local fb = cbb(function() return "b" end)
        dike.run(function()
            for _ = 1, 4 do support.error_of(fa) end
            assert.is_true(eventually(function() return a.client:pending() == 0 end)) -- it opened (then)
            dike.sleep(1.01)
            down[1] = false
            local t1, t2 = dike.spawn(fa), dike.spawn(fa) -- the two trial places
            assert.is_true(eventually(function() return dike.stats(fa).calls == 6 end))
            dike.sleep(0.05)
            local e = support.error_of(fb)
            assert.is_true(is_open(e))
            assert.equal("Circuit open for function cb! retry after 0s", e.message)
            assert.equal(0, e.retry_after)
            gate = true
            assert.same({ "trial", "trial" }, { t1:join(), t2:join() })
            assert.is_true(eventually(function() return cbb:state() == "closed" end))
            assert.equal("b", fb())
        end)
    end)

    it("opens again on a failed trial, for open_for times open_backoff (capped)", function()
        local logs, restore = support.capture_logs(dike)
        defer(restore)
        local s = store()
        local cb = breaker(s, { open_for = 1, open_backoff = 3, max_open_for = 2.5 })
        local f = cb(backend({ true }))
        dike.run(function()
            for _ = 1, 4 do support.error_of(f) end
            assert.is_true(eventually(function() return s.client:pending() == 0 end)) -- it opened (then)
            dike.sleep(1.01)
            assert.equal("backend down", support.error_of(f)) -- the trial fails
            assert.is_true(eventually(function() return dike.stats(f).opened == 2 end))
            local e = support.error_of(f)
            assert.is_true(e.retry_after > 1 and e.retry_after <= 2.5, e.retry_after) -- 3, capped at 2.5
        end)
        assert.same({ "warning: Circuit cb opened: failure rate 1 over 4 calls", "warning: Circuit cb half-open",
                      "warning: Circuit cb opened: trial call failed" }, messages(logs))
    end)

    it("counts slow calls (slow_call_seconds) and opens on their rate", function()
        local logs, restore = support.capture_logs(dike)
        defer(restore)
        local s = store()
        local cb = breaker(s, { slow_call_seconds = 0.2, slow_call_rate = 0.5, failure_rate = 1 })
        local f = cb(function(seconds) dike.sleep(seconds) return seconds end)
        dike.run(function()
            f(0)
            f(0.25)
            f(0)
            f(0.25) -- 2 slow of 4
            assert.is_true(eventually(function() return dike.stats(f).opened == 1 end))
        end)
        assert.same({ "warning: Circuit cb opened: slow call rate 0.5 over 4 calls" }, messages(logs))
        assert.same({ 2, 0, "open" }, { dike.stats(f).slow, dike.stats(f).failures, dike.stats(f).state })
    end)

    it("counts only the errors exception_types names; a predicate that raises is the call's error", function()
        local s = store()
        local cb = breaker(s, { exception_types = function(e)
            if e == "bad predicate" then error("predicate broke", 0) end
            return e == "counts"
        end })
        local f = cb(function(e) error(e, 0) end)
        dike.run(function()
            for _ = 1, 4 do assert.equal("ignored", support.error_of(f, "ignored")) end
            assert.equal("closed", cb:state())
            assert.equal("predicate broke", support.error_of(f, "bad predicate"))
            -- 2 failures of the last 4: it opens, and the next call is refused
            assert.equal("counts", support.error_of(f, "counts"))
            assert.is_true(is_open(support.error_of(f, "counts")))
            assert.equal("open", cb:state())
        end)
        assert.same({ 2, 1 }, { dike.stats(f).failures, dike.stats(f).rejected })
    end)

    it("counts a cancelled call neither way, and gives a cancelled trial's place back", function()
        local s = store()
        local cb = breaker(s, { window = 2, minimum_calls = 2 })
        local started = 0
        local f = cb(function() started = started + 1 dike.sleep(10) end)
        local quick = cb(function() return "ok" end)
        local failing = cb(function() error("down", 0) end)
        dike.run(function()
            local t = dike.spawn(f)
            assert.is_true(eventually(function() return started == 1 end))
            t:cancel()
            support.error_of(failing)
            assert.equal("closed", cb:state()) -- 1 failure in the window, not 2 calls
            support.error_of(failing)
            assert.is_true(eventually(function() return cb:state() == "open" end))
            dike.sleep(1.01)
            local trial = dike.spawn(f) -- takes the only trial place
            assert.is_true(eventually(function() return started == 2 end))
            assert.is_true(is_open(support.error_of(quick)))
            trial:cancel()
            assert.equal(dike.CancelledError, getmetatable(select(2, pcall(trial.join, trial))))
            assert.equal("ok", quick()) -- the place was given back: this is the trial, and it closes it
            assert.is_true(eventually(function() return cb:state() == "closed" end))
        end)
        assert.same({ 2, 1 }, { dike.stats(cb).failures, dike.stats(cb).rejected })
    end)

    it("isolates and resets across processes", function()
        local logs, restore = support.capture_logs(dike)
        defer(restore)
        local a, b = store(), store()
        local cba, cbb = breaker(a), breaker(b)
        local fb = cbb(function() return "ran" end)
        dike.run(function()
            assert.is_true(cba:isolate())
            local e = support.error_of(fb)
            assert.is_true(is_open(e))
            assert.equal("Circuit open for function cb! isolated", e.message)
            assert.equal(math.huge, e.retry_after)
            assert.equal("isolated", cbb:state())
            assert.is_true(cbb:reset())
            assert.equal("ran", fb())
            assert.is_true(cba:reset()) -- closed already: nothing to log
        end)
        assert.same({ "warning: Circuit cb isolated", "warning: Circuit cb closed" }, messages(logs))
    end)

    it("does not count a call admitted before the state changed", function()
        local a, b = store(), store()
        local cba, cbb = breaker(a), breaker(b)
        local gate = false
        local slow_fail = cba(function()
            while not gate do dike.sleep(0.01) end
            error("late failure", 0)
        end)
        local fb = cbb(function(x) return x end)
        dike.run(function()
            local t = dike.spawn(slow_fail) -- admitted while closed
            assert.is_true(eventually(function()
                return a.client:pending() == 0 and dike.stats(slow_fail).calls == 1
            end))
            assert.is_true(cbb:isolate())
            assert.is_true(cbb:reset()) -- closed again, with an empty window
            gate = true
            assert.equal("late failure", select(2, pcall(t.join, t)))
            assert.is_true(eventually(function() return a.client:pending() == 0 end))
            for i = 1, 3 do assert.equal(i, fb(i)) end -- three successes: the window holds 3 calls, not 4
            assert.equal("closed", cbb:state())
        end)
        local record = require("dike.store.algorithms").load().cb_decode(server:cli("GET 'dike:{cb}:cb'"), OPTS)
        assert.same({ 3, 0 }, { record.n, record.f })
    end)

    it("must be called inside a coroutine to ask Redis (state, isolate and reset too)", function()
        local s = store()
        local cb = breaker(s)
        local f = cb(function() end)
        local outside = ": must be called inside a coroutine (start one with dike.run or dike.spawn)"
        assert.has_error(f, "dike.circuit_breaker" .. outside)
        assert.has_error(function() cb:state() end, "breaker:state" .. outside)
        assert.has_error(function() cb:isolate() end, "breaker:isolate" .. outside)
        assert.has_error(function() cb:reset() end, "breaker:reset" .. outside)
        dike.run(f)
        assert.equal(2, dike.stats(f).calls - 0) -- the failed call counted (as a call), then this one
    end)
end)

describe("dike.circuit_breaker with a store that fails", function()
    local OPTS = { window = 4, minimum_calls = 4, failure_rate = 0.5, open_for = 30 }

    -- 6 failing calls while the server is stopped.
    local function outage(policy)
        local logs, restore = support.capture_logs(dike)
        defer(restore)
        local s = store{ timeout = TIMEOUT, on_failure = policy }
        local o = { name = "down-" .. policy, store = s }
        for k, v in pairs(OPTS) do o[k] = v end
        local cb = dike.circuit_breaker(o)
        local down = { false }
        local f = cb(backend(down))
        dike.run(function() assert.equal(0, f(0)) end) -- connected, script loaded
        server:stop()
        defer(function() if not server.pid then server:start() end end)
        down[1] = true
        local t0 = uv.hrtime()
        local errs = dike.run(function()
            local out = {}
            for i = 1, 6 do out[i] = support.error_of(f, i) end
            out.state = cb:state()
            return out
        end)
        local took = (uv.hrtime() - t0) / 1e9
        down[1] = false
        return errs, dike.stats(f), logs, s, cb, f, took
    end

    it('on_failure = "local": a process-local breaker with the same options until the store is back', function()
        local errs, st, logs, s, cb, f, took = outage("local")
        for i = 1, 4 do assert.equal("backend down", errs[i]) end
        for i = 5, 6 do
            assert.is_true(is_open(errs[i]))
            assert.matches("^Circuit open for function down%-local! retry after %d+%.?%d*s$", errs[i].message)
        end
        assert.equal("open", errs.state) -- the local breaker's
        assert.is_true(took < TIMEOUT, took)
        assert.is_true(st.store_errors >= 1 and st.store_errors <= 2, st.store_errors)
        assert.same({ 7, 6, 4, 2, 1, "open" }, { st.calls, st.fallback_calls, st.failures, st.rejected, st.opened,
                                                 st.state })
        local m = messages(logs)
        assert.equal(2, #m)
        assert.matches("^warning: dike.store.redis .*on_failure policy until it answers again$", m[1])
        assert.equal("warning: Circuit down-local opened: failure rate 1 over 4 calls", m[2]) -- the local one
        server:start()
        dike.run(function()
            assert.is_true(eventually(function() return s:available() end))
            assert.equal("closed", cb:state()) -- the shared state again
            assert.equal(9, f(9))
        end)
        assert.equal("info", logs[3].level)
    end)

    it('on_failure = "open": calls run (unrecorded)', function()
        local errs, st, logs = outage("open")
        for i = 1, 6 do assert.equal("backend down", errs[i]) end
        assert.equal("closed", errs.state)
        assert.same({ 7, 6, 0, 0 }, { st.calls, st.fallback_calls, st.failures, st.rejected })
        assert.equal(1, #logs)
    end)

    it('on_failure = "closed": calls raise CircuitOpen, retry_after = the store\'s recheck (0.5 s)', function()
        local errs, st, logs = outage("closed")
        for i = 1, 6 do
            assert.is_true(is_open(errs[i]))
            assert.equal("Circuit open for function down-closed! retry after 0.5s", errs[i].message)
            assert.equal(0.5, errs[i].retry_after)
        end
        assert.equal("open", errs.state)
        assert.same({ 7, 6, 6, "open" }, { st.calls, st.fallback_calls, st.rejected, st.state })
        assert.equal(1, #logs)
    end)

    it("isolate and reset fall back to the local breaker, and say so", function()
        local logs, restore = support.capture_logs(dike)
        defer(restore)
        local s = store{ timeout = TIMEOUT }
        local cb = dike.circuit_breaker{ name = "iso", store = s }
        local f = cb(function() return "ran" end)
        server:stop()
        defer(function() if not server.pid then server:start() end end)
        dike.run(function()
            local ok, message = cb:isolate()
            assert.is_false(ok)
            assert.matches("cannot connect", message)
            assert.is_true(is_open(support.error_of(f)))
            assert.equal("isolated", cb:state())
            ok, message = cb:reset()
            assert.is_false(ok)
            assert.matches("unavailable$", message)
            assert.equal("ran", f())
        end)
        assert.same({ "warning: Circuit iso isolated", "warning: Circuit iso closed" },
            { logs[2].level .. ": " .. logs[2].message, logs[3].level .. ": " .. logs[3].message })
    end)

    it("a breaker last seen isolated stays isolated through an outage", function()
        local s = store{ timeout = TIMEOUT }
        local cb = dike.circuit_breaker{ name = "iso2", store = s }
        local f = cb(function() return "ran" end)
        defer(select(2, support.capture_logs(dike)))
        dike.run(function() assert.is_true(cb:isolate()) end)
        server:stop()
        defer(function() if not server.pid then server:start() end end)
        dike.run(function()
            local e = support.error_of(f)
            assert.is_true(is_open(e))
            assert.equal("Circuit open for function iso2! isolated", e.message)
        end)
        assert.equal("isolated", dike.stats(f).state)
    end)

    it("no call waits longer than the store's timeout for a server that does not answer", function()
        local port, close = support.fake_server() -- reads, never answers
        defer(function()
            close()
            uv.run("nowait")
        end)
        local logs, restore = support.capture_logs(dike)
        defer(restore)
        local s = dike.store.redis{ host = "127.0.0.1", port = port, timeout = 0.2,
                                    on_failure = "open" }
        defer(function() s:close() end)
        local f = dike.circuit_breaker{ name = "hang", store = s }(function(x) return x end)
        local took = {}
        dike.run(function()
            local items = {}
            for i = 1, 5 do
                items[i] = function()
                    local t0 = dike.now()
                    local v = f(i)
                    took[i] = dike.now() - t0
                    return v
                end
            end
            local r = dike.gather(items)
            for i = 1, 5 do assert.equal(i, r[i]) end
        end)
        -- the first waited the whole timeout; the late reply failed every pending command (the
        -- others asked a little later, so they waited a little less); none waited longer
        assert.is_true(took[1] >= 0.19, "took " .. took[1])
        for i = 1, 5 do assert.is_true(took[i] < 0.2 + 1, "took " .. took[i]) end
        assert.same({ 5, 5 }, { dike.stats(f).store_errors, dike.stats(f).fallback_calls })
        assert.equal(1, #logs)
        assert.matches("no reply within 0.2s", logs[1].message)
    end)
end)
