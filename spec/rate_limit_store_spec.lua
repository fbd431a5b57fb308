-- dike.rate_limit with a store (docs/sharing.md), in one process against a real redis-server:
-- one atomic step per admission in Redis, waits and call order, refusals, acquire/try, costs,
-- cancellation, events, two stores sharing a budget, and the on_failure policies while the
-- server is down or silent. A fake store (the interface of store/init.lua, answered by hand)
-- checks the call order when the store answers out of order (as it can inside nginx).
-- spec/shared/run.lua runs a shared rate across processes (make test's integration.shared).
local dike = require("dike")
local support = require("spec.support")
local redis_server = require("spec.redis_server")
local defer = require("spec.defer")(function(fn) finally(fn) end)
local client_luv = require("dike.store.client_luv")
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

-- The server's clock (TIME), in seconds, through a connection of its own.
local function server_time(probe)
    local t = probe:call({ "TIME" }, 1, "spec")
    return tonumber(t[1]) + tonumber(t[2]) / 1e6
end

local function probe_client()
    local c = client_luv.new{ path = server.path, timeout = TIMEOUT, label = "probe" }
    defer(function() c:close() end)
    return c
end

local eventually = support.eventually

local function is_rate_limited(e)
    return getmetatable(e) == dike.RateLimited
end

setup(function()
    server = redis_server.start()
end)

teardown(function()
    server:destroy()
end)

describe("dike.rate_limit with a store", function()
    it("checks its options", function()
        local s = store()
        local e = support.error_of(dike.rate_limit, { rate = 1, store = s })
        assert.matches("dike.rate_limit: name is required with a store %(it is the key the processes share%)$", e)
        e = support.error_of(dike.rate_limit, { rate = 1, name = "x", store = {} })
        assert.matches("dike.rate_limit: store must be a store %(dike.store.redis{...} or "
            .. "dike.store.shared_dict%(name%)%), got a table$", e)
        e = support.error_of(dike.rate_limit, { rate = 1, name = "x", store = s, cost = 2 })
        assert.matches("dike.rate_limit: cost 2 exceeds burst 1: such a call could never run$", e)
        local rl = dike.rate_limit{ rate = 5, per = 2, burst = 3, name = "shown", store = s }
        assert.equal("dike.rate_limit(rate=5/2s, burst=3, name=shown, store=" .. s.label .. ")", tostring(rl))
    end)

    it("admits the burst at once, then refuses with the contract's message; one round trip a call", function()
        local s = store()
        local rl = dike.rate_limit{ rate = 1, per = 10, burst = 3, name = "burst", store = s }
        local f = rl(function(x) return x, "more" end)
        local before
        dike.run(function()
            assert.same({ 1, "more" }, { f(1) }) -- the script is loaded: one EVAL, one SCRIPT LOAD
            assert.is_true(eventually(function() return s.client:pending() == 0 end))
            before = dike.stats(s).commands
            assert.same({ 2, "more" }, { f(2) })
            assert.same({ 3, "more" }, { f(3) })
            local e = support.error_of(f, 4)
            assert.is_true(is_rate_limited(e))
            assert.equal("Rate limit exceeded for function burst! rate=1/10s", e.message)
            assert.is_true(e.retry_after > 9 and e.retry_after <= 10, e.retry_after)
            local ok, retry_after = rl:try()
            assert.is_false(ok)
            assert.is_true(retry_after > 9 and retry_after <= 10, retry_after)
        end)
        assert.equal(4, dike.stats(s).commands - before) -- one EVALSHA per call, refused ones too
        assert.same({ calls = 5, admitted = 3, delayed = 0, rejected = 2, waiting = 0, store_errors = 0,
                      fallback_calls = 0 }, dike.stats(rl))
        assert.same(dike.stats(rl), dike.stats(f))
        -- the state in Redis: a debt of 3 units at the last reading (the refusals kept it, less
        -- what the time since paid back), as the C core keeps it
        local debt = tonumber((server:cli("GET 'dike:{burst}:rl'"):match("^(%S+) ")))
        assert.is_true(debt > 2.9 and debt <= 3, debt)
    end)

    it("waits for its turn (max_wait), in call order, never before its turn on the server's clock", function()
        local s = store()
        local probe = probe_client()
        local T = 0.05 -- 20 a second, burst 1
        local rl = dike.rate_limit{ rate = 20, burst = 1, max_wait = 5, name = "turns", store = s }
        local order, started = {}, {}
        local f = rl(function(i)
            order[#order + 1] = i
            started[i] = server_time(probe)
            return i
        end)
        local before
        dike.run(function()
            before = server_time(probe)
            local items = {}
            for i = 1, 6 do items[i] = function() return f(i) end end
            local r = dike.gather(items)
            for i = 1, 6 do assert.equal(i, r[i]) end
        end)
        assert.same({ 1, 2, 3, 4, 5, 6 }, order)
        -- the first was admitted at once at some server time >= before; the i-th's turn is
        -- (i - 1) x T after it, and it starts no earlier (a lower bound: a slow run is later)
        for i = 2, 6 do
            assert.is_true(started[i] >= before + (i - 1) * T - 1e-6,
                ("call %d started %.4f s after the first asked, its turn is %.2f s"):format(i, started[i] - before,
                    (i - 1) * T))
        end
        assert.is_true(started[6] - before < (5 * T) + 2, started[6] - before)
        assert.same({ calls = 6, admitted = 6, delayed = 5, rejected = 0, waiting = 0, store_errors = 0,
                      fallback_calls = 0 }, dike.stats(rl))
    end)

    it("refuses a call whose turn is beyond max_wait, and changes nothing", function()
        local s = store()
        local rl = dike.rate_limit{ rate = 1, per = 10, burst = 1, max_wait = 5, name = "far", store = s }
        dike.run(function()
            rl:acquire()
            local state = server:cli("GET 'dike:{far}:rl'")
            local e = support.error_of(rl.acquire, rl)
            assert.is_true(is_rate_limited(e))
            assert.equal("Rate limit exceeded for function far! rate=1/10s", e.message)
            assert.is_true(e.retry_after > 9 and e.retry_after <= 10, e.retry_after)
            -- the schedule stays (the debt is the same, counted from the refusal's reading)
            local debt = server:cli("GET 'dike:{far}:rl'"):match("^(%S+) ")
            assert.is_true(tonumber(debt) <= tonumber(state:match("^(%S+) ")), debt)
        end)
        assert.same({ 2, 1, 1 }, { dike.stats(rl).calls, dike.stats(rl).admitted, dike.stats(rl).rejected })
    end)

    it("weighs calls by cost (a number, a function of the arguments, acquire's and try's argument)", function()
        local s = store()
        local rl = dike.rate_limit{ rate = 1, per = 10, burst = 10, name = "costs", store = s,
                                    cost = function(items) return #items end }
        local f = rl(function(items) return #items end)
        dike.run(function()
            assert.equal(4, f({ 1, 2, 3, 4 }))
            rl:acquire(3)
            assert.same({ true, 0 }, { rl:try(2) })
            local ok, retry_after = rl:try(2) -- 9 units used: 2 more are 1 unit (10 s) away
            assert.is_false(ok)
            assert.is_true(retry_after > 9 and retry_after <= 10, retry_after)
            assert.same({ true, 0 }, { rl:try(1) })
            local e = support.error_of(f, { 1 })
            assert.is_true(is_rate_limited(e))
            e = support.error_of(f, {})
            assert.matches("dike.rate_limit: the cost function's result must be a finite number > 0, got 0$", e)
            e = support.error_of(rl.acquire, rl, 11)
            assert.matches("limiter:acquire: cost 11 exceeds burst 10: such a call could never run$", e)
            e = support.error_of(rl.try, rl, "x")
            assert.matches('limiter:try: cost must be a finite number > 0, got "x"$', e)
        end)
        local st = dike.stats(rl)
        assert.same({ 6, 4, 2 }, { st.calls, st.admitted, st.rejected })
    end)

    it("shares one budget between stores (processes)", function()
        local a, b = store(), store()
        local ra = dike.rate_limit{ rate = 1, per = 10, burst = 4, name = "both", store = a }
        local rb = dike.rate_limit{ rate = 1, per = 10, burst = 4, name = "both", store = b }
        local admitted = 0
        dike.run(function()
            for i = 1, 10 do
                if (i % 2 == 0 and ra or rb):try() then admitted = admitted + 1 end
            end
        end)
        assert.equal(4, admitted)
        assert.same({ 5, 2, 3 }, { dike.stats(ra).calls, dike.stats(ra).admitted, dike.stats(ra).rejected })
    end)

    it("emits delayed (wait) and rejected (retry_after) events", function()
        local s = store()
        local seen = {}
        local previous = dike.on_event(function(e)
            seen[#seen + 1] = { e.tool, e.name, e.event, e.wait or e.retry_after }
        end)
        defer(function() dike.on_event(previous) end)
        local rl = dike.rate_limit{ rate = 20, burst = 1, max_wait = 0.06, name = "ev", store = s }
        local f = rl(function() end)
        dike.run(function()
            dike.gather({ f, f, f }, { return_errors = true })
        end)
        local waits = {}
        for _, e in ipairs(seen) do
            assert.same({ "rate_limit", "ev" }, { e[1], e[2] })
            waits[#waits + 1] = e[3]
        end
        assert.same({ "delayed", "rejected" }, waits) -- the second waits 0.05 s; the third's 0.1 s is refused
        assert.is_true(seen[1][4] > 0 and seen[1][4] <= 0.05, seen[1][4])
        assert.is_true(seen[2][4] > 0.06 and seen[2][4] <= 0.1, seen[2][4])
    end)

    it("lets a cancelled waiter leave without running (its turn stays taken); the others run in order", function()
        local s = store()
        local probe = probe_client()
        local T = 0.2 -- 5 a second, burst 1: turns at 0, T, 2T, 3T
        local rl = dike.rate_limit{ rate = 5, burst = 1, max_wait = 5, name = "cancel", store = s }
        local order, started = {}, {}
        local f = rl(function(i)
            order[#order + 1] = i
            started[i] = server_time(probe)
        end)
        local before
        dike.run(function()
            before = server_time(probe)
            local tasks = {}
            for i = 1, 4 do tasks[i] = dike.spawn(f, i) end
            assert.is_true(eventually(function() return dike.stats(rl).waiting == 3 end))
            tasks[2]:cancel()
            assert.equal(2, dike.stats(rl).waiting)
            for i = 1, 4 do pcall(tasks[i].join, tasks[i]) end
            -- cancelled while the store answers: nothing is left behind
            local t = dike.spawn(f, 9)
            t:cancel()
            assert.equal(dike.CancelledError, getmetatable(select(2, pcall(t.join, t))))
            assert.is_true(eventually(function() return s.client:pending() == 0 end))
        end)
        assert.same({ 1, 3, 4 }, order)
        -- the cancelled caller's turn was not given back: the last ran 3 turns after the first was
        -- admitted (a lower bound on the server's clock), not 2
        assert.is_true(started[4] >= before + 3 * T - 1e-6, ("%.4f s"):format(started[4] - before))
        local st = dike.stats(rl)
        assert.same({ 0, 3, 2 }, { st.waiting, st.admitted, st.delayed })
    end)

    it("must be called inside a coroutine to ask Redis (try and acquire too)", function()
        local s = store()
        local rl = dike.rate_limit{ rate = 10, name = "co", store = s }
        local f = rl(function() end)
        assert.has_error(f,
            "dike.rate_limit: must be called inside a coroutine (start one with dike.run or dike.spawn)")
        assert.has_error(function() rl:try() end,
            "limiter:try: must be called inside a coroutine (start one with dike.run or dike.spawn)")
        assert.has_error(function() rl:acquire() end,
            "limiter:acquire: must be called inside a coroutine (start one with dike.run or dike.spawn)")
        assert.equal(0, dike.stats(rl).waiting)
        dike.run(f) -- and it works afterwards
        assert.equal(1, dike.stats(rl).admitted)
    end)
end)

describe("dike.rate_limit with a store answering out of order", function()
    -- The store interface answered by hand: acquire waits until the spec releases it, and
    -- then says what the spec says.
    local function fake_store(policy)
        local pending = {}
        local S = { kind = "fake", on_failure = policy or "local", recheck = 0.5, timeout = 1, label = "fake",
                    up = true }
        function S.available() return S.up end
        function S.rate()
            return { acquire = function(_, T, burst, cost, max_wait)
                local w = require("dike.runtime").waiter("fake")
                local entry = { w = w, T = T, burst = burst, cost = cost, max_wait = max_wait }
                pending[#pending + 1] = entry
                local answer = require("dike.runtime").suspend(w, function() entry.gone = true end)
                return answer[1], answer[2], answer[3]
            end }
        end
        -- answer the n-th request made (in the order they were made)
        function S.answer(n, a, b, c)
            require("dike.runtime").wake(pending[n].w, true, { a, b, c })
        end
        S.pending = pending
        return S
    end

    it("runs callers in the order they called when the answers come back the other way round", function()
        local S = fake_store()
        local rl = dike.rate_limit{ rate = 100, burst = 100, max_wait = 1, name = "ooo", store = S }
        local order = {}
        local f = rl(function(i) order[#order + 1] = i end)
        dike.run(function()
            local t = {}
            for i = 1, 4 do t[i] = dike.spawn(pcall, f, i) end
            assert.equal(4, #S.pending)
            S.answer(4, true, 0)
            S.answer(3, true, 0.02) -- later than its turn would be (it waits anyway)
            dike.sleep(0.05)
            assert.same({}, order) -- 1 and 2 still wait for their answers: 3 and 4 wait for them
            S.answer(2, false, 0.5) -- refused
            dike.sleep(0.01)
            assert.same({}, order)
            S.answer(1, true, 0)
            assert.same({ true, false, true, true }, { t[1]:join(), (t[2]:join()), t[3]:join(), t[4]:join() })
        end)
        assert.same({ 1, 3, 4 }, order)
        assert.same({ calls = 4, admitted = 3, delayed = 2, rejected = 1, waiting = 0, store_errors = 0,
                      fallback_calls = 0 }, dike.stats(rl))
    end)

    it("keeps a failing caller's place: the policy's answer runs it in order", function()
        local S = fake_store("open")
        local rl = dike.rate_limit{ rate = 1, burst = 1, name = "ooo2", store = S }
        local order = {}
        local f = rl(function(i) order[#order + 1] = i end)
        dike.run(function()
            local t = {}
            for i = 1, 3 do t[i] = dike.spawn(f, i) end
            S.answer(3, true, 0)
            S.answer(2, nil, "boom", "io") -- "open": admitted, after 1
            dike.sleep(0.02)
            assert.same({}, order)
            S.answer(1, true, 0)
            for i = 1, 3 do t[i]:join() end
        end)
        assert.same({ 1, 2, 3 }, order)
        assert.same({ 1, 1 }, { dike.stats(rl).store_errors, dike.stats(rl).fallback_calls })
    end)
end)

describe("dike.rate_limit with a store that fails", function()
    -- rate 1 per 10 s, burst 2: 5 calls (max_wait 0) while the server is stopped.
    local function outage(policy)
        local logs, restore = support.capture_logs(dike)
        defer(restore)
        local s = store{ timeout = TIMEOUT, on_failure = policy }
        local rl = dike.rate_limit{ rate = 1, per = 10, burst = 2, name = "down-" .. policy, store = s }
        local f = rl(function(x) return x end)
        dike.run(function() assert.equal(0, f(0)) end) -- connected, script loaded; 1 unit of 2 used
        server:stop()
        defer(function() if not server.pid then server:start() end end)
        local t0 = uv.hrtime()
        local r = dike.run(function()
            local items = {}
            for i = 1, 5 do items[i] = function() return f(i) end end
            return dike.gather(items, { return_errors = true })
        end)
        local took = (uv.hrtime() - t0) / 1e9
        return r, dike.stats(rl), logs, s, rl, took
    end

    local function outcomes(r)
        local ran, refused = 0, 0
        for i = 1, r.n do
            if r[i] == i then ran = ran + 1
            elseif is_rate_limited(r[i]) then refused = refused + 1 end
        end
        return ran, refused
    end

    it('on_failure = "local": a process-local limiter with the same options until the store is back', function()
        local r, st, logs, s, rl, took = outage("local")
        -- the local limiter starts with a full burst of 2: two pass, three are refused
        assert.same({ 2, 3 }, { outcomes(r) })
        assert.equal("Rate limit exceeded for function down-local! rate=1/10s", r[5].message)
        assert.is_true(r[5].retry_after > 0 and r[5].retry_after <= 10, r[5].retry_after)
        assert.is_true(took < TIMEOUT, took) -- a refused connection fails at once
        assert.is_true(st.store_errors >= 1 and st.store_errors <= 5, st.store_errors)
        assert.same({ 5, 3, 6 }, { st.fallback_calls, st.rejected, st.calls })
        assert.equal(1, #logs)
        assert.equal("warning", logs[1].level)
        assert.matches("limiters and breakers sharing it use their on_failure policy until it answers again$",
            logs[1].message)
        server:start()
        dike.run(function()
            assert.is_true(eventually(function() return s:available() end))
            -- shared again: Redis's state (1 unit of 2 used before the outage: its debt has been
            -- paid back meanwhile, or not, depending on the machine's speed) decides again
            assert.is_true((rl:try()))
            assert.is_true(eventually(function() return server:cli("EXISTS 'dike:{down-local}:rl'") == "1" end))
        end)
        assert.equal(2, #logs)
        assert.equal("info", logs[2].level)
        assert.equal(5, dike.stats(rl).fallback_calls)
    end)

    it('on_failure = "open": every call is admitted', function()
        local r, st, logs = outage("open")
        assert.same({ 5, 0 }, { outcomes(r) })
        assert.is_true(st.store_errors >= 1 and st.store_errors <= 5, st.store_errors)
        assert.same({ 5, 0, 6 }, { st.fallback_calls, st.rejected, st.admitted })
        assert.equal(1, #logs)
    end)

    it('on_failure = "closed": every call raises RateLimited, retry_after = the store\'s recheck (0.5 s)', function()
        local r, st, logs = outage("closed")
        assert.same({ 0, 5 }, { outcomes(r) })
        assert.equal("Rate limit exceeded for function down-closed! rate=1/10s", r[1].message)
        assert.equal(0.5, r[1].retry_after)
        assert.equal(0.5, r[5].retry_after)
        assert.same({ 5, 5 }, { st.fallback_calls, st.rejected })
        assert.equal(1, #logs)
    end)

    it("try follows the policy too", function()
        local logs, restore = support.capture_logs(dike)
        defer(restore)
        local s = store{ timeout = TIMEOUT, on_failure = "closed" }
        local rl = dike.rate_limit{ rate = 1, per = 10, burst = 2, name = "try-down", store = s }
        server:stop()
        defer(function() if not server.pid then server:start() end end)
        dike.run(function()
            assert.same({ false, 0.5 }, { rl:try() })
            assert.same({ false, 0.5 }, { rl:try() })
        end)
        assert.same({ calls = 2, admitted = 0, delayed = 0, rejected = 2, waiting = 0, store_errors = 1,
                      fallback_calls = 2 }, dike.stats(rl))
        assert.equal(1, #logs)
    end)

    it("no call waits longer than the store's timeout for a server that does not answer", function()
        local port, close = support.fake_server() -- reads, never answers
        defer(function()
            close()
            uv.run("nowait")
        end)
        local logs, restore = support.capture_logs(dike)
        defer(restore)
        local s = dike.store.redis{ host = "127.0.0.1", port = port, timeout = 0.2 }
        defer(function() s:close() end)
        local rl = dike.rate_limit{ rate = 100, name = "hang", store = s }
        local f = rl(function(x) return x end)
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
        assert.same({ 5, 5, 5 }, { dike.stats(rl).store_errors, dike.stats(rl).fallback_calls,
                                   dike.stats(rl).admitted })
        assert.equal(1, #logs)
        assert.matches("no reply within 0.2s", logs[1].message)
    end)
end)
