-- Garbage collection (issue: "nothing is kept"): wrappers, limiters and batchers that become
-- unreachable are collected, and so are the tasks, arguments, results and errors of their
-- calls, also after they were used in every way: queued, batched, retried, timed out,
-- cancelled, rejected. dike.stats' registry holds its wrappers weakly.
--
-- Each case builds and uses its objects inside a function of its own and puts them into a
-- weak table; only then is the garbage collected, so no stale slot of the test's own stack
-- frame can keep them alive. LuaJIT's compiled traces keep the closures they were
-- specialised on until they are flushed (that is LuaJIT's reference, not dike's): flush first.
local dike = require("dike")
local support = require("spec.support")

local function collect()
    if jit then jit.flush() end
    collectgarbage("collect")
    collectgarbage("collect")
end

-- Names of what survived a collection.
local function survivors(weak)
    collect()
    local names = {}
    for name in pairs(weak) do names[#names + 1] = name end
    table.sort(names)
    return names
end

local function new_weak()
    return setmetatable({}, { __mode = "v" })
end

describe("garbage collection", function()
    it("retry wrappers are collected after retries, exhausted attempts and a cancelled delay", function()
        local weak = new_weak()
        local function use()
            local logs, restore = support.capture_logs(dike)
            local err = { "always" }
            local n = 0
            local flaky = function() n = n + 1 if n % 3 ~= 0 then error("flaky", 0) end return { n } end
            local raise, again, logger = function() error(err) end, function() error("again", 0) end, function() end
            local ok_fn = dike.retry{ attempts = 5, delay = 0.001, jitter = "full" }(flaky)
            local bad_fn = dike.retry{ attempts = 2 }(raise)
            local slow_fn = dike.retry{ delay = 10, logger = logger }(again)
            weak.retry_ok, weak.retry_bad, weak.retry_slow, weak.flaky, weak.err = ok_fn, bad_fn, slow_fn, flaky, err
            weak.raise, weak.again, weak.logger = raise, again, logger
            dike.run(function()
                weak.result = ok_fn()
                assert.equal(err, support.error_of(bad_fn))
                local t = dike.spawn(slow_fn)
                weak.task = t
                dike.sleep(0.005) -- now in its 10 s delay
                t:cancel()
                assert.equal(dike.CancelledError, getmetatable(support.error_of(t.join, t)))
            end)
            assert.equal(2, dike.stats(ok_fn).retries)
            restore()
            assert.is_true(#logs >= 3)
        end
        use()
        assert.same({}, survivors(weak))
    end)

    it("limiters and their functions are collected after running, queueing, queue timeouts, cancellations"
       .. " and rejections", function()
        local weak = new_weak()
        local function use()
            -- The slot is held until `gate` opens, so only the queue timeout itself is timed
            -- (a lower bound): this also runs under valgrind.
            local lim = dike.limit_jobs{ limit = 1, queue = 2, queue_timeout = 0.05 }
            local gate = false
            local slow_fn = function(s)
                while not gate do dike.sleep(0.001) end
                return { s }
            end
            local quick_fn = function() return "quick" end
            local slow, quick = lim(slow_fn), lim(quick_fn)
            weak.limiter, weak.slow, weak.quick, weak.slow_fn, weak.quick_fn = lim, slow, quick, slow_fn, quick_fn
            dike.run(function()
                local running = dike.spawn(slow, 1)       -- holds the slot until the gate opens
                local timed_out = dike.spawn(quick)       -- queued, times out after 0.05 s
                local cancelled = dike.spawn(quick)       -- queued, then cancelled
                weak.rejected = support.error_of(quick)   -- the queue is full
                cancelled:cancel()
                assert.equal(dike.TooManyCalls, getmetatable(support.error_of(timed_out.join, timed_out)))
                local granted = dike.spawn(quick)         -- queued, gets the slot once running returns
                gate = true
                weak.running, weak.timed_out, weak.cancelled, weak.granted = running, timed_out, cancelled, granted
                assert.equal("quick", granted:join())
                weak.result = running:join()
            end)
            local s = dike.stats(lim)
            assert.same({ 0, 0 }, { s.running, s.queued })
        end
        use()
        assert.same({}, survivors(weak))
    end)

    it("batchers are collected after batches sent by size and by time, cancellations, timeouts and errors",
       function()
        local weak = new_weak()
        local function use()
            -- the batch functions too: a batcher keeps its function, so they live exactly as long
            local add_fn = function(a, b)
                local out = {}
                for i = 1, #a do out[i] = a[i] == 13 and dike.fail("thirteen") or a[i] + b[i] end
                return out
            end
            local stuck_fn = function(xs) dike.sleep(10) return xs end
            local broken_fn = function() error({ "down" }) end
            local add = dike.batch{ target_batch_size = 3, max_waiting_time = 0.01, max_batch_size = 4 }(add_fn)
            local stuck = dike.batch{ target_batch_size = 1, max_waiting_time = 1,
                                      max_processing_time = 0.01 }(stuck_fn)
            local broken = dike.batch{ target_batch_size = 2, max_waiting_time = 1 }(broken_fn)
            weak.add, weak.stuck, weak.broken = add, stuck, broken
            weak.add_fn, weak.stuck_fn, weak.broken_fn = add_fn, stuck_fn, broken_fn
            dike.run(function()
                local args = { { 1 }, { 2 } }
                weak.args = args
                local r = dike.gather({
                    function() return add(args[1], args[2]) end,         -- sent by size
                    function() return add({ 2, 3 }, { 1, 1 }) end,
                    function() return add({ 13 }, { 0 }) end,            -- a dike.fail row (next batch)
                    function() return stuck({ 1 }) end,                  -- times out
                    function() return broken({ 1 }) end,                 -- raises, both callers
                    function() return broken({ 2 }) end,
                }, { return_errors = true })
                weak.results = r
                assert.same({ 3 }, r[1])
                assert.equal("thirteen", r[3])
                assert.equal(dike.TimeoutError, getmetatable(r[4]))
                assert.equal(r[5], r[6])
                -- cancelled while queued, and cancelled after its batch was sent
                local queued = dike.spawn(add, { 7 }, { 7 })
                queued:cancel()
                local sent = dike.spawn(add, { 8, 8, 8 }, { 0, 0, 0 })
                sent:cancel()
                weak.queued, weak.sent = queued, sent
                dike.sleep(0.02)
            end)
        end
        use()
        assert.same({}, survivors(weak))
    end)

    it("array-mode batchers and their arrays are collected", function()
        local weak = new_weak()
        local function use()
            local double_fn = function(a)
                local out = {}
                for i = 1, #a do out[i] = a[i] * 2 end
                return dike.array(out)
            end
            local double = dike.batch{ target_batch_size = 2, max_waiting_time = 0.01, argument_type = "array" }(
                double_fn)
            weak.double, weak.double_fn = double, double_fn
            dike.run(function()
                local a, b = dike.array({ 1 }), dike.array({ 2, 3 })
                weak.a, weak.b = a, b
                local r = dike.gather({ function() return double(a) end, function() return double(b) end })
                weak.r1, weak.r2 = r[1], r[2]
                assert.same({ 4, 6 }, r[2]:totable())
            end)
        end
        use()
        assert.same({}, survivors(weak))
    end)

    it("circuit breakers, their functions and errors are collected in every state", function()
        local weak = new_weak()
        local function use()
            local logs, restore = support.capture_logs(dike)
            local seen = {}
            dike.on_event(function(e) seen[#seen + 1] = e end)
            local t = 0
            local clock = function() return t end
            local cb = dike.circuit_breaker{ window = 2, minimum_calls = 2, open_for = 1, clock = clock }
            local timed = dike.circuit_breaker{ window_seconds = 10, minimum_calls = 1, slow_call_seconds = 1,
                                                half_open_calls = 2, open_for = 1, clock = clock }
            local fail_fn = function() error({ "down" }) end
            local ok_fn = function(x) return { x } end
            local fail, ok = cb(fail_fn), cb(ok_fn)
            local tfail, tok = timed(fail_fn), timed(ok_fn)
            weak.cb, weak.timed, weak.fail, weak.ok, weak.tfail, weak.tok = cb, timed, fail, ok, tfail, tok
            weak.fail_fn, weak.ok_fn, weak.clock = fail_fn, ok_fn, clock
            weak.result = ok(1)
            weak.err = support.error_of(fail)
            pcall(fail)
            weak.open_err = support.error_of(ok, 2) -- CircuitOpen
            t = 1
            assert.same({ 3 }, ok(3))                -- half-open trial: closes
            pcall(tfail)
            t = 2
            assert.same({ 4 }, tok(4))
            timed:isolate()
            weak.isolated_err = support.error_of(tok, 5)
            dike.on_event(nil)
            weak.event = seen[1]
            restore()
            assert.is_true(#logs >= 5)
        end
        use()
        assert.same({}, survivors(weak))
    end)

    it("timeout wrappers are collected after calls in time, timed out, late and cancelled", function()
        local weak = new_weak()
        local function use()
            local fn = function(d) dike.sleep(d) return { d } end
            local g = dike.timeout{ seconds = 0.2 }(fn)
            weak.g, weak.fn = g, fn
            dike.run(function()
                weak.result = g(0.001)
                weak.err = support.error_of(g, 10)
                local t = dike.spawn(g, 10)
                dike.sleep(0)
                t:cancel()
                weak.task = t
                assert.equal(dike.CancelledError, getmetatable(support.error_of(t.join, t)))
            end)
            assert.same({ calls = 3, timeouts = 1 }, dike.stats(g))
        end
        use()
        assert.same({}, survivors(weak))
    end)

    it("dike.stats' registry does not keep wrappers alive, even many of them", function()
        local weak = new_weak()
        local function use()
            for i = 1, 200 do
                local f = dike.retry{}(function() return i end)
                f()
                assert.equal(1, dike.stats(f).calls)
                weak[i] = f
            end
        end
        use()
        assert.same({}, survivors(weak))
    end)
end)
