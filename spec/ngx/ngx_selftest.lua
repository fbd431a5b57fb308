-- Checks of the ngx runtime (lua/dike/runtime/ngx.lua) run inside a real nginx request
-- (GET /selftest, spec/ngx/nginx.conf.in): tasks, sleep, cancellation, wake-once,
-- limit_jobs, batch, retry, gather, wrap, error reporting, and the one-worker timers.
-- The response lists "ok - name" / "not ok - name: why" and ends "N passed, N failed".
local dike = require("dike")
local rt = require("dike.runtime")

local M = {}

local tests = {}
local function test(name, fn) tests[#tests + 1] = { name = name, fn = fn } end

local function eq(actual, expected, what)
    if actual ~= expected then
        error(("%s: expected %s, got %s"):format(what or "value", tostring(expected), tostring(actual)), 2)
    end
end

local function within(x, lo, hi, what)
    if not (x >= lo and x <= hi) then
        error(("%s: expected within [%g, %g], got %g"):format(what or "value", lo, hi, x), 2)
    end
end

local function error_of(fn, ...)
    local ok, e = pcall(fn, ...)
    if ok then return nil end
    return e
end

local function capture_logs()
    local logs = {}
    local previous = dike.set_logger(function(level, message) logs[#logs + 1] = level .. ":" .. message end)
    return logs, function() dike.set_logger(previous) end
end

test("dike picks the ngx runtime inside nginx", function()
    eq(rt.name, "ngx", "runtime")
end)

test("spawn runs until the first wait; join returns every value", function()
    local order = {}
    local t = dike.spawn(function(a, b)
        order[#order + 1] = "start"
        dike.sleep(0.01)
        order[#order + 1] = "end"
        return a + b, "two"
    end, 1, 2)
    order[#order + 1] = "spawned"
    eq(t:done(), false, "done before join")
    local x, y = t:join()
    eq(x, 3, "first value")
    eq(y, "two", "second value")
    eq(table.concat(order, ","), "start,spawned,end", "order")
    eq(t:done(), true, "done after join")
end)

test("sleep waits about the time asked, on nginx's clock", function()
    local t0 = dike.now()
    dike.sleep(0.05)
    within(dike.now() - t0, 0.045, 1, "slept")
end)

test("sleep(0) lets other threads run once", function()
    local flag = false
    local t = dike.spawn(function()
        dike.sleep(0)
        flag = true
    end)
    eq(flag, false, "flag right after spawn")
    t:join()
    eq(flag, true, "flag after join")
end)

test("cancel: CancelledError is raised where the task waits, at once", function()
    local reached = false
    local t = dike.spawn(function()
        dike.sleep(10)
        reached = true
    end)
    local t0 = dike.now()
    t:cancel()
    local e = error_of(t.join, t)
    eq(getmetatable(e), dike.CancelledError, "error class")
    eq(tostring(e), "Task was cancelled", "message")
    eq(reached, false, "code after the sleep ran")
    eq(t:done(), true, "done")
    within(dike.now() - t0, 0, 1, "seconds until the cancelled task ended")
end)

test("limit_jobs: one runs, one queues, the third is rejected; a cancelled queued caller leaves", function()
    local f = dike.limit_jobs{ limit = 1, queue = 1, name = "one" }(function(s)
        dike.sleep(s)
        return s
    end)
    local a = dike.spawn(f, 0.05)
    local b = dike.spawn(f, 0)
    local e = error_of(f, 0)
    eq(getmetatable(e), dike.TooManyCalls, "error class")
    eq(e.message, "Too many calls to function one! limit=1 exceeded", "message")
    local s = dike.stats(f)
    eq(s.running, 1, "running")
    eq(s.queued, 1, "queued")
    b:cancel()
    eq(dike.stats(f).queued, 0, "queued after cancel")
    eq(a:join(), 0.05, "a's result")
    eq(getmetatable(error_of(b.join, b)), dike.CancelledError, "b's error")
    s = dike.stats(f)
    eq(s.running, 0, "running at the end")
    eq(s.rejected, 1, "rejected")
end)

test("wake once: a slot handed to a queued caller comes back if it is cancelled before it runs", function()
    local w
    local f
    f = dike.limit_jobs{ limit = 1, queue = 1 }(function(kind)
        if kind == "main" then w = dike.spawn(f, "waiter") end -- queues: the slot is ours
        return kind
    end)
    eq(f("main"), "main", "result")
    -- Our return handed the slot to w (woken, not yet run); cancel it before it runs.
    eq(dike.stats(f).running, 1, "running after the hand-over")
    w:cancel()
    eq(dike.stats(f).running, 0, "running after cancel")
    eq(getmetatable(error_of(w.join, w)), dike.CancelledError, "waiter's error")
    eq(f("again"), "again", "the slot is free")
end)

test("limit_jobs: queue_timeout rejects a caller that waited too long", function()
    local f = dike.limit_jobs{ limit = 1, queue = 1, queue_timeout = 0.05, name = "q" }(function()
        dike.sleep(0.5)
    end)
    local a = dike.spawn(f)
    local t0 = dike.now()
    local e = error_of(f)
    within(dike.now() - t0, 0.04, 1, "seconds queued")
    eq(getmetatable(e), dike.TooManyCalls, "error class")
    a:join()
    eq(dike.stats(f).running, 0, "running")
end)

test("batch: concurrent calls share one call; a cancelled queued caller's rows are not sent", function()
    local seen = {}
    local add = dike.batch{ target_batch_size = 3, max_waiting_time = 0.05 }(function(xs)
        seen[#seen + 1] = table.concat(xs, ",")
        local out = {}
        for i = 1, #xs do out[i] = xs[i] * 10 end
        return out
    end)
    local t1 = dike.spawn(add, { 1 })
    local t2 = dike.spawn(add, { 2, 3 })
    eq(t1:join()[1], 10, "t1")
    local r2 = t2:join()
    eq(r2[1] .. "," .. r2[2], "20,30", "t2")
    local c1 = dike.spawn(add, { 4 })
    local c2 = dike.spawn(add, { 5 })
    c1:cancel()
    local t0 = dike.now()
    eq(add({ 6 })[1], 60, "caller")
    within(dike.now() - t0, 0.03, 1, "seconds until the timer sent the batch")
    eq(c2:join()[1], 50, "c2")
    eq(getmetatable(error_of(c1.join, c1)), dike.CancelledError, "c1")
    eq(table.concat(seen, " | "), "1,2,3 | 5,6", "batches")
    local s = dike.stats(add)
    eq(s.batches, 2, "batches")
    eq(s.queued_calls + s.queued_rows + s.running_batches + s.waiting, 0, "gauges")
end)

test("batch: max_processing_time raises TimeoutError for every caller, the batch task is cancelled", function()
    local cancelled = false
    local slow = dike.batch{ target_batch_size = 2, max_waiting_time = 0.01, max_processing_time = 0.05 }(
        function(xs)
            local ok, e = pcall(dike.sleep, 5)
            if not ok and dike.CancelledError.is(e) then cancelled = true end
            return xs
        end)
    local t = dike.spawn(slow, { 1 })
    local e = error_of(slow, { 2 })
    eq(getmetatable(e), dike.TimeoutError, "caller's error")
    eq(getmetatable(error_of(t.join, t)), dike.TimeoutError, "other caller's error")
    dike.sleep(0.01)
    eq(cancelled, true, "batch task cancelled")
    local s = dike.stats(slow)
    eq(s.running_batches + s.waiting, 0, "gauges")
end)

test("retry: delays grow by backoff, each retry is logged", function()
    local logs, restore = capture_logs()
    local n = 0
    local f = dike.retry{ attempts = 3, delay = 0.02, backoff = 2, log_exception_info = false }(function()
        n = n + 1
        if n < 3 then error("flaky", 0) end
        return "ok"
    end)
    local t0 = dike.now()
    local ok, r = pcall(f)
    restore()
    eq(ok, true, "succeeded")
    eq(r, "ok", "result")
    within(dike.now() - t0, 0.055, 1, "seconds")
    eq(logs[1], "warning:Caught exception flaky. Retrying in 0.02s ...", "first log")
    eq(logs[2], "warning:Caught exception flaky. Retrying in 0.04s ...", "second log")
    eq(dike.stats(f).retries, 2, "retries")
end)

test("gather: results in order; an error is raised as soon as it happens", function()
    local r = dike.gather({
        function() dike.sleep(0.02) return "a" end,
        function() return "b" end,
    })
    eq(r.n, 2, "n")
    eq(r[1] .. r[2], "ab", "results")
    local e = error_of(dike.gather, { function() dike.sleep(0.01) error("boom", 0) end })
    eq(e, "boom", "error")
end)

test("wrap: a callback from another nginx context (a timer) resumes the task", function()
    local after = dike.wrap(function(seconds, cb)
        ngx.timer.at(seconds, function() cb("fired") end)
    end)
    eq(after(0.01), "fired", "value")
end)

test("an error in a task nobody joins is logged", function()
    local logs, restore = capture_logs()
    dike.spawn(function() error("lost", 0) end)
    dike.sleep(0.05)
    restore()
    eq(#logs >= 1 and logs[1]:match("^error:Unhandled error in task: lost\n") ~= nil, true, "log " .. tostring(logs[1]))
end)

test("dike.run runs its function in a task and returns its values", function()
    eq(dike.run(function(a) dike.sleep(0.01) return a * 2 end, 21), 42, "result")
end)

test("one nginx timer serves many dike timers", function()
    local fns, tasks = {}, {}
    for i = 1, 300 do
        fns[i] = dike.batch{ target_batch_size = 10, max_waiting_time = 0.05 }(function(xs) return xs end)
        tasks[i] = dike.spawn(fns[i], { i })
    end
    eq(rt.pending().timers, 300, "dike timers")
    within(ngx.timer.pending_count() + ngx.timer.running_count(), 0, 3, "nginx timers")
    for i = 1, 300 do eq(tasks[i]:join()[1], i, "result " .. i) end
end)

test("with every nginx timer taken, dike serves its timers from the waiting request itself", function()
    -- Let dike's worker timer end (it does after an idle second).
    local t0 = dike.now()
    while ngx.timer.running_count() > 0 and dike.now() - t0 < 3 do ngx.sleep(0.05) end
    eq(ngx.timer.running_count(), 0, "running nginx timers")
    local taken = 0
    while ngx.timer.at(0.2, function() end) do taken = taken + 1 end
    within(taken, 1, 64, "timers taken")
    local double = dike.batch{ target_batch_size = 10, max_waiting_time = 0.02 }(function(xs)
        dike.sleep(0)
        return { xs[1] * 2 }
    end)
    eq(double({ 21 })[1], 42, "result")
    eq(select(2, ngx.timer.at(0, function() end)), "too many pending timers", "nginx timers still taken")
    t0 = dike.now() -- give them back before the next test
    while ngx.timer.pending_count() > 0 and dike.now() - t0 < 3 do dike.sleep(0.05) end
end)

test("a coroutine the request made (coroutine.wrap) waits in dike: sleep, a batched call, a join", function()
    local batched = dike.batch{ target_batch_size = 2, max_waiting_time = 0.05 }(function(xs)
        local out = {}
        for i = 1, #xs do out[i] = xs[i] + 100 end
        return out
    end)
    local t = dike.spawn(function() dike.sleep(0.005); return "joined" end)
    local got = {}
    for i = 1, 2 do
        coroutine.wrap(function()
            dike.sleep(0.002)
            local r = batched({ i })[1]
            got[i] = r .. ":" .. t:join()
        end)()
    end
    -- (In nginx a user coroutine's wait suspends the thread that resumed it too: each
    -- coroutine.wrap call above returns once its coroutine has ended.)
    local deadline = ngx.now() + 2
    while not (got[1] and got[2]) and ngx.now() < deadline do
        ngx.sleep(0.002)
        ngx.update_time()
    end
    eq(got[1], "101:joined", "first coroutine")
    eq(got[2], "102:joined", "second coroutine")
end)

test("timeout ends a sleep, a queued limit_jobs call and a batched call at the deadline", function()
    local quick = dike.timeout{ seconds = 0.02, name = "q" }(dike.sleep)
    local t0 = dike.now()
    eq(tostring(error_of(quick, 10)), "Call to function q timed out after 0.02s", "sleep")
    within(dike.now() - t0, 0.015, 1, "seconds")
    local lim = dike.limit_jobs{ limit = 1, queue = 1 }
    local hold = lim(function() dike.sleep(0.2) end)
    local holder = dike.spawn(hold)
    local queued = dike.timeout{ seconds = 0.02 }(lim(function() return "ran" end))
    eq(getmetatable(error_of(queued)), dike.TimeoutError, "queued call")
    eq(dike.stats(lim).queued, 0, "queue after the timeout")
    holder:join()
    eq(dike.stats(lim).running, 0, "running")
    local batched = dike.batch{ target_batch_size = 10, max_waiting_time = 0.2 }(function(xs) return xs end)
    eq(getmetatable(error_of(dike.timeout{ seconds = 0.02 }(batched), { 1 })), dike.TimeoutError, "batched call")
    eq(dike.stats(batched).queued_rows, 0, "rows withdrawn")
end)

test("circuit_breaker opens, rejects, half-opens and closes; events reach the observer", function()
    local logs, restore = capture_logs()
    local seen = {}
    local previous = dike.on_event(function(e) seen[#seen + 1] = e.from .. ">" .. e.to end)
    local cb = dike.circuit_breaker{ window = 2, minimum_calls = 2, open_for = 0.05, name = "ngx" }
    local f = cb(function(ok) if not ok then error("down", 0) end return "up" end)
    error_of(f, false)
    error_of(f, false)
    local e = error_of(f, true)
    eq(getmetatable(e), dike.CircuitOpen, "rejected")
    dike.sleep(0.06)
    eq(f(true), "up", "trial")
    dike.on_event(previous)
    restore()
    eq(table.concat(seen, ","), "closed>open,open>half_open,half_open>closed", "events")
    eq(logs[1], "warning:Circuit ngx opened: failure rate 1 over 2 calls", "log")
end)

test("nothing is left behind", function()
    dike.sleep(0.02)
    local p = rt.pending()
    eq(p.timers, 0, "timers")
    eq(p.ready, 0, "tasks not started")
    eq(p.unreported, 0, "unreported errors")
end)

function M.run()
    local out, passed, failed = {}, 0, 0
    for _, t in ipairs(tests) do
        local ok, err = xpcall(t.fn, debug.traceback)
        if ok then
            passed = passed + 1
            out[#out + 1] = "ok - " .. t.name
        else
            failed = failed + 1
            out[#out + 1] = "not ok - " .. t.name .. ": " .. tostring(err)
        end
    end
    out[#out + 1] = ("%d passed, %d failed"):format(passed, failed)
    local body = table.concat(out, "\n") .. "\n"
    ngx.header.content_type = "text/plain"
    ngx.header.content_length = #body
    ngx.print(body)
end

return M
