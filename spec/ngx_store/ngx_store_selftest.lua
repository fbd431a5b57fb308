-- The stores' checks inside an nginx request (GET /selftest of spec/ngx_store/nginx.conf.in):
-- the shared-dict store's slots, GCRA and breaker, and the Redis store on lua-resty-redis
-- (scripts, error replies, a refused connection, NOSCRIPT, limit_jobs). One line per check,
-- "N passed, N failed" last.
local dike = require("dike")

local M = {}

function M.run(redis_path)
    local passed, failed = 0, 0
    local function check(ok, what, detail)
        if ok then
            passed = passed + 1
            ngx.say("ok - ", what)
        else
            failed = failed + 1
            ngx.say("not ok - ", what, detail ~= nil and (": " .. tostring(detail)) or "")
        end
    end
    local function near(x, want, tol) return type(x) == "number" and math.abs(x - want) <= tol end

    local logs = {}
    local previous = dike.set_logger(function(level, message) logs[#logs + 1] = level .. ": " .. message end)
    local ok, err = pcall(function()
        ------------------------------------------------------------ shared dict
        local e = select(2, pcall(dike.store.shared_dict, "nope"))
        check(tostring(e):find('no lua_shared_dict named "nope" (declare it in nginx.conf: lua_shared_dict nope 1m;)',
            1, true) ~= nil, "shared_dict: an unknown dictionary is named", e)
        e = select(2, pcall(dike.store.shared_dict, "dike", { bogus = 1 }))
        check(tostring(e):find('unknown option "bogus"', 1, true) ~= nil, "shared_dict: unknown options raise", e)

        local sd = dike.store.shared_dict("dike", { prefix = "selftest:" })
        local J = sd:jobs("st", 3, 0.2)
        local a, b, c, d = J:acquire("a"), J:acquire("b"), J:acquire("c"), J:acquire("d")
        check(a and b and c and d == false, "shared_dict jobs: 3 slots, the 4th caller gets none")
        check(J:count() == 3, "shared_dict jobs: count 3")
        J:release("b")
        check(J:acquire("d") == true, "shared_dict jobs: a released slot is taken again")
        ngx.sleep(0.12)
        local lost
        J:renew({ "a" }, 1, function(_, n) lost = n end)
        check(lost == 0, "shared_dict jobs: renewing a held lease loses nothing", lost)
        ngx.sleep(0.13)
        check(J:count() == 1, "shared_dict jobs: leases expire, the renewed one stays", J:count())
        local granted
        J:grant("a", { "x", "y", "z", "w" }, 4, function(_, g) granted = g end)
        check(granted == 3, "shared_dict jobs: grant releases, then takes the free slots in order", granted)
        for _, id in ipairs({ "x", "y", "z" }) do J:release(id) end
        check(J:count() == 0, "shared_dict jobs: all released")

        local R = sd:rate("r")
        local r1, w1 = R:acquire(0.1, 2, 1, 0)
        local r2 = R:acquire(0.1, 2, 1, 0)
        local r3, w3 = R:acquire(0.1, 2, 1, 0)
        check(r1 == true and w1 == 0 and r2 == true and r3 == false and near(w3, 0.1, 0.002),
            "shared_dict gcra: burst 2 at once, then retry_after T", w3)
        local r4, w4 = R:acquire(0.1, 2, 1, 0.5)
        check(r4 == true and near(w4, 0.1, 0.002), "shared_dict gcra: a turn reserved within max_wait", w4)

        local conf = { failure_rate = 0.5, minimum_calls = 2, window = 4, open_for = 0.2, open_backoff = 2,
                       half_open_calls = 1 }
        local B = sd:breaker("cb", conf)
        check((B:admit()) == true, "shared_dict breaker: closed admits")
        B:record(true, false, false, 0)
        local state, changed, reason, rate, n = B:record(true, false, false, 0)
        check(state == "open" and changed == "open" and reason == "failure" and rate == 1 and n == 2,
            "shared_dict breaker: opens on the failure rate", tostring(state) .. " " .. tostring(changed))
        local allowed, st2, retry_after = B:admit()
        check(allowed == false and st2 == "open" and near(retry_after, 0.2, 0.01),
            "shared_dict breaker: open rejects with retry_after", retry_after)
        ngx.sleep(0.21)
        local ok3, st3, _, ch3, trial, period = B:admit()
        check(ok3 and st3 == "half_open" and ch3 == "half_open" and trial and period == 2,
            "shared_dict breaker: half-open trial (its period: the second change)")
        check(B:record(false, false, true, period) == "closed", "shared_dict breaker: a good trial closes it")
        check(select(2, B:force("isolated")) == "isolated" and select(3, B:admit()) == math.huge,
            "shared_dict breaker: isolated, retry_after math.huge")
        check(B:force("closed") == "closed", "shared_dict breaker: reset")

        ------------------------------------------------------------ Redis through lua-resty-redis
        local rd = dike.store.redis{ path = redis_path, timeout = 1, prefix = "selftest:" }
        check(rd.client.connect_opts ~= nil, "redis: inside nginx the store uses lua-resty-redis")
        local RJ = rd:jobs("st", 2)
        local ga, gb, gc = RJ:acquire(rd:new_id(), false, "t"), RJ:acquire(rd:new_id(), false, "t"),
            RJ:acquire(rd:new_id(), false, "t")
        check(ga == true and gb == true and gc == false, "redis jobs: 2 slots, the 3rd caller gets none")
        check(RJ:count() == 2, "redis jobs: count 2")
        local v, msg, kind = rd.client:call({ "NOPE" }, 1, "t")
        check(v == nil and kind == "reply" and tostring(msg):find("unknown command", 1, true),
            "redis: an error reply is nil, message, 'reply'", msg)
        rd.client:call({ "SCRIPT", "FLUSH" }, 2, "t")
        check(RJ:acquire(rd:new_id(), false, "t") == false, "redis: NOSCRIPT, then EVAL again")
        local RR = rd:rate("r")
        local q1, q2, q3 = RR:acquire(0.1, 2, 1, 0), RR:acquire(0.1, 2, 1, 0), RR:acquire(0.1, 2, 1, 0)
        check(q1 == true and q2 == true and q3 == false, "redis gcra: burst 2, then rejected")
        local RB = rd:breaker("cb", conf)
        RB:record(true, false, false, 0)
        check(RB:record(true, false, false, 0) == "open" and (RB:admit()) == false, "redis breaker: opens, rejects")

        local lim = dike.limit_jobs{ limit = 1, name = "st-lim", store = rd }
        local f = lim(function(x) return x * 2 end)
        check(f(21) == 42, "redis limit_jobs: a call inside a request")
        ngx.sleep(0.05) -- the release runs in a light thread of dike's
        check(rd:jobs("st-lim", 1):count() == 0, "redis limit_jobs: the slot is released")
        check(dike.stats(f).calls == 1 and dike.stats(f).store_errors == 0, "redis limit_jobs: stats")

        logs = {}
        local gone = dike.store.redis{ path = redis_path .. ".missing", timeout = 0.2, on_failure = "closed" }
        local gf = dike.limit_jobs{ limit = 1, name = "gone", store = gone }(function() return "ran" end)
        local t0 = ngx.now()
        local e1 = select(2, pcall(gf))
        local e2 = select(2, pcall(gf))
        ngx.update_time()
        check(getmetatable(e1) == dike.TooManyCalls and getmetatable(e2) == dike.TooManyCalls,
            'redis: a refused connection with on_failure = "closed" rejects')
        check(ngx.now() - t0 < 0.5, "redis: at once", ngx.now() - t0)
        check(#logs == 1 and logs[1]:find("cannot connect", 1, true) ~= nil, "redis: one log line", logs[1])
        check(dike.stats(gf).store_errors == 1 and dike.stats(gf).fallback_calls == 2,
            "redis: store_errors 1 (the second call did not try), fallback_calls 2")
        gone:close()
        rd:close()
    end)
    dike.set_logger(previous)
    if not ok then check(false, "the self-test ran to its end", err) end
    ngx.say(passed, " passed, ", failed, " failed")
end

return M
