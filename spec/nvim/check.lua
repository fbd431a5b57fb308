-- The Neovim integration test (scripts/check-nvim.sh): dike loaded from the build tree into
-- a headless Neovim runs retry, limit_jobs and batch on Neovim's own loop (vim.loop), the
-- loop driven by Neovim (tasks are started with dike.spawn and awaited with vim.wait).
-- By default dike resumes waiting code from Neovim's main loop, so vim.api works after any
-- wait and in loggers; dike.set_runtime("luv") gives back resumption from libuv callbacks.
-- Prints "ok - ..." lines and "N passed, N failed"; exits with :cquit on any failure.
local root, cpath = os.getenv("DIKE_ROOT"), os.getenv("DIKE_CPATH")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = cpath .. "/?.so;" .. package.cpath

local out = io.stdout
local passed, failed = 0, 0

local function report(ok, name, err)
    if ok then
        passed = passed + 1
        out:write("ok - ", name, "\n")
    else
        failed = failed + 1
        out:write("not ok - ", name, ": ", tostring(err), "\n")
    end
end

local function eq(actual, expected, what)
    if actual ~= expected then
        error(("%s: expected %s, got %s"):format(what or "value", vim.inspect(expected), vim.inspect(actual)), 2)
    end
end

local function test(name, fn)
    local ok, err = xpcall(fn, debug.traceback)
    report(ok, name, err)
end

--- Run fn in a dike task while Neovim drives the loop; wait (vim.wait) until it ends.
local function in_task(dike, fn, seconds)
    local t = dike.spawn(fn)
    if not vim.wait((seconds or 5) * 1000, function() return t:done() end, 1) then
        t:cancel()
        error("the task did not finish in time", 2)
    end
    return t
end

local function main()
    local dike = require("dike")
    local rt = require("dike.runtime")

    test("dike runs on Neovim's own loop, resuming from its main loop", function()
        eq(rt.host.uv, vim.loop, "the luv module dike uses")
        eq(rt.name, "nvim", "runtime")
    end)

    test("retry: two failures, delays of 10 and 20 ms, then the value; the logger uses vim.notify", function()
        local logs = {}
        local notify = vim.notify
        vim.notify = function(msg, level)
            logs[#logs + 1] = msg
            eq(level, vim.log.levels.WARN, "notify level")
        end
        local previous = dike.set_logger(function(level, message)
            -- refused in a libuv callback (E5560): here it must work
            vim.api.nvim_get_current_buf()
            vim.notify(level .. ":" .. message, vim.log.levels.WARN)
        end)
        local n = 0
        local flaky = dike.retry{ attempts = 3, delay = 0.01, backoff = 2, log_exception_info = false }(function(x)
            n = n + 1
            if n < 3 then error("not yet", 0) end
            return x * 2
        end)
        local result, elapsed
        in_task(dike, function()
            local t0 = dike.now()
            result = flaky(21)
            elapsed = dike.now() - t0
        end)
        dike.set_logger(previous)
        vim.notify = notify
        eq(result, 42, "result")
        eq(logs[1], "warning:Caught exception not yet. Retrying in 0.01s ...", "first warning")
        eq(logs[2], "warning:Caught exception not yet. Retrying in 0.02s ...", "second warning")
        if not (elapsed >= 0.028 and elapsed < 2) then error("elapsed " .. elapsed) end
        eq(dike.stats(flaky).retries, 2, "retries")
    end)

    test("limit_jobs: two run, one queues, the fourth is rejected", function()
        local get = dike.limit_jobs{ limit = 2, queue = 1, name = "get" }(function(i)
            dike.sleep(0.02)
            return "r" .. i
        end)
        local results
        in_task(dike, function()
            local calls = {}
            for i = 1, 4 do calls[i] = function() return get(i) end end
            results = dike.gather(calls, { return_errors = true })
        end)
        eq(results[1] .. results[2] .. results[3], "r1r2r3", "served")
        eq(getmetatable(results[4]), dike.TooManyCalls, "rejected")
        eq(results[4].message, "Too many calls to function get! limit=2 exceeded", "message")
        local s = dike.stats(get)
        eq(s.running + s.queued, 0, "gauges")
        eq(s.rejected, 1, "rejected count")
    end)

    test("batch: callers write their results into a buffer right after the wait", function()
        local buf = vim.api.nvim_create_buf(false, true)
        local calls = {}
        local square = dike.batch{ target_batch_size = 3, max_waiting_time = 0.02 }(function(xs)
            calls[#calls + 1] = #xs
            local ys = {}
            for i = 1, #xs do ys[i] = xs[i] * xs[i] end
            return ys
        end)
        vim.api.nvim_buf_set_lines(buf, 0, -1, false, { "", "", "", "", "" })
        local written = 0
        for i = 1, 5 do
            dike.spawn(function()
                local y = square({ i })[1]
                vim.api.nvim_buf_set_lines(buf, i - 1, i, false, { ("%d^2 = %d"):format(i, y) })
                written = written + 1
            end)
        end
        if not vim.wait(5000, function() return written == 5 end, 1) then error("results not delivered") end
        eq(table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "|"),
           "1^2 = 1|2^2 = 4|3^2 = 9|4^2 = 16|5^2 = 25", "buffer")
        eq(table.concat(calls, ","), "3,2", "batch sizes")
        local s = dike.stats(square)
        eq(s.batches, 2, "batches")
        eq(s.queued_calls + s.running_batches + s.waiting, 0, "gauges")
        vim.api.nvim_buf_delete(buf, { force = true })
    end)

    test("after every kind of wait the code may call vim.api: sleep, wrap, batch, a queued call, retry", function()
        local fast = {}
        local function api_works(what)
            fast[#fast + 1] = what .. "=" .. tostring(vim.in_fast_event())
            return vim.api.nvim_get_current_buf() ~= nil
        end
        local stat_of = dike.wrap(vim.loop.fs_stat)
        local batched = dike.batch{ target_batch_size = 2, max_waiting_time = 0.01 }(function(xs) return xs end)
        local one = dike.limit_jobs{ limit = 1, queue = 1 }(function() dike.sleep(0.01) end)
        local n = 0
        local flaky = dike.retry{ attempts = 2, delay = 0.005, logger = function() api_works("logger") end }(function()
            n = n + 1
            if n == 1 then error("once", 0) end
            return "ok"
        end)
        local holder = dike.spawn(one)
        in_task(dike, function()
            dike.sleep(0.001); api_works("sleep")
            stat_of(root .. "/README.md"); api_works("wrap")
            batched({ 1 }); api_works("batch")
            one(); api_works("queued limit_jobs")
            flaky(); api_works("retry")
            holder:join(); api_works("join")
        end)
        eq(table.concat(fast, " "), "sleep=false wrap=false batch=false queued limit_jobs=false"
           .. " logger=false retry=false join=false", "fast context")
    end)

    test("a plain coroutine (coroutine.wrap) waits and then calls vim.api", function()
        local got
        coroutine.wrap(function()
            dike.sleep(0.005)
            got = vim.api.nvim_get_current_buf()
        end)()
        if not vim.wait(3000, function() return got ~= nil end, 1) then error("the coroutine did not resume") end
        eq(type(got), "number", "buffer number")
    end)

    test('dike.set_runtime("luv") resumes from libuv callbacks (opt-in), nil gives the default back', function()
        dike.set_runtime("luv")
        eq(rt.name, "luv", "runtime")
        local fast, refused
        in_task(dike, function()
            dike.sleep(0.005)
            fast = vim.in_fast_event()
            refused = select(2, pcall(vim.api.nvim_get_current_buf))
        end)
        dike.set_runtime(nil)
        eq(rt.name, "nvim", "runtime")
        eq(fast, true, "in a fast event")
        eq(type(refused) == "string" and refused:match("E5560") ~= nil, true, "refused: " .. tostring(refused))
        eq(dike.run(function() dike.sleep(0.001) return vim.in_fast_event() end), false, "back to the main loop")
    end)

    test("tasks start from a vim.schedule callback and from a libuv timer callback", function()
        local got = {}
        vim.schedule(function()
            dike.spawn(function() dike.sleep(0.01) got.scheduled = true end)
        end)
        local timer = vim.loop.new_timer()
        timer:start(5, 0, function()
            timer:close()
            dike.spawn(function() dike.sleep(0.01) got.timer = true end)
        end)
        if not vim.wait(3000, function() return got.scheduled and got.timer end, 1) then
            error("tasks did not finish: " .. vim.inspect(got))
        end
    end)

    test("dike.wrap turns vim.loop's callback functions into waits", function()
        local stat_of = dike.wrap(vim.loop.fs_stat)
        local err, st
        in_task(dike, function() err, st = stat_of(root .. "/README.md") end)
        eq(err, nil, "error")
        eq(st.type, "file", "type")
    end)

    test("dike.run refuses inside a libuv callback, where the loop is running", function()
        local err
        local timer = vim.loop.new_timer()
        timer:start(1, 0, function()
            timer:close()
            err = select(2, pcall(dike.run, function() end))
        end)
        vim.wait(2000, function() return err ~= nil end, 1)
        eq(err and err:match("dike.run: the loop is already running; use dike.spawn") ~= nil, true, tostring(err))
    end)

    test("dike.run from Neovim's main context runs the loop until its task ends (blocking the editor)", function()
        eq(dike.run(function(a) dike.sleep(0.01) return a + 1 end, 41), 42, "result")
    end)

    test("nothing is left behind", function()
        vim.wait(20)
        local p = rt.pending()
        eq(p.timers + p.ready + p.unreported, 0, "pending " .. vim.inspect(p))
        for _, h in pairs(rt.host.handles()) do eq(h:is_active(), false, "dike's " .. tostring(h)) end
    end)
end

local ok, err = xpcall(main, debug.traceback)
if not ok then report(false, "the test script ran", err) end
out:write(("%d passed, %d failed\n"):format(passed, failed))
out:flush()
if failed > 0 then vim.cmd("cquit 1") else vim.cmd("qa!") end
