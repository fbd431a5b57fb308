-- One process of the multi-process suite (spec/shared/run.lua starts several). Usage:
--   luajit spec/shared/worker.lua MODE key=value...
-- Every mode connects to the Redis server given by path=..., runs, and prints one line
-- "RESULT k=v k=v ..." (and "READY" / "HOLDING" lines where the driver waits for them).
--   jobs    calls=N tasks=N limit=N queue=N: N calls from `tasks` coroutines through one shared
--           limit_jobs; each call holds its slot 1-5 ms and counts itself in Redis (INCR/DECR of
--           a key of its own) to measure how many calls run at once across all processes.
--   outage  policy=P limit=N seconds=S: calls for S seconds while the driver stops and restarts
--           Redis, through a shared limit_jobs, a shared rate_limit and a shared circuit_breaker
--           (one store for the three); outcomes are counted by whether the store was available
--           when the call began. The breaker's backend fails while the store is unavailable, so
--           that the policies differ ("local": the local breaker opens; "open": the failures
--           reach the caller; "closed": CircuitOpen). Fields of the rate limiter start with rl_,
--           the breaker's with cb_.
--   hold    limit=N lease=S: take every slot with calls that never end, print HOLDING, wait.
--   wait    limit=N lease=S: wait until a call gets a slot; print how long that took.
--   rate    rate=R burst=B seconds=S start=T: calls of a function wrapped by
--           dike.rate_limit{store = redis} (max_wait 0) from 8 coroutines from hrtime T (ns) for
--           S seconds; admitted and refused (RateLimited) counted.
--   breaker faulty=0|1 start=T down_from=A down_to=B seconds=S: 4 coroutines calling a backend
--           through one shared circuit_breaker every 5 ms from hrtime T for S seconds; the
--           backend of a faulty process fails from A to B seconds after T. Outcomes per phase
--           (before A, A to B + 0.1 s, after B + RECOVER), the state events and log lines.
local dike = require("dike")
local uv = require("luv")
local client_luv = require("dike.store.client_luv")

local mode = arg[1]
local opt = {}
for i = 2, #arg do
    local k, v = arg[i]:match("^([%w_]+)=(.*)$")
    opt[k] = tonumber(v) or v
end

local logs = { warning = 0, info = 0, error = 0, lines = {} }
dike.set_logger(function(level, message)
    logs[level] = (logs[level] or 0) + 1
    logs.lines[#logs.lines + 1] = level .. ": " .. message
end)

local function result(t)
    local parts = {}
    for k, v in pairs(t) do parts[#parts + 1] = k .. "=" .. tostring(v) end
    table.sort(parts)
    io.write("RESULT ", table.concat(parts, " "), "\n")
    io.flush()
end

local function say(line)
    io.write(line, "\n")
    io.flush()
end

local store = dike.store.redis{ path = opt.path, timeout = opt.timeout or 0.1, on_failure = opt.policy,
                                lease = opt.lease, poll = opt.poll }
-- A connection of its own for the measurements, so they never wait behind the limiter's traffic.
local probe = client_luv.new{ path = opt.path, timeout = 2, label = "probe" }

local function ms_sleep()
    dike.sleep((1 + math.random() * 4) / 1000)
end

if mode == "jobs" then
    local lim = dike.limit_jobs{ limit = opt.limit, queue = opt.queue, name = opt.name, store = store }
    local active_key = "test:" .. opt.name .. ":active"
    local max_active, max_local, errors = 0, 0, 0
    local running = 0
    local f = lim(function()
        running = running + 1
        if running > max_local then max_local = running end
        local n = probe:call({ "INCR", active_key }, 2, "worker")
        if n and n > max_active then max_active = n end
        ms_sleep()
        probe:call({ "DECR", active_key }, 2, "worker")
        running = running - 1
        return "done"
    end)
    local admitted, rejected = 0, 0
    local max_holders = 0
    local J = store:jobs(opt.name, opt.limit)
    dike.run(function()
        say("READY")
        local finished = false
        local sampler = dike.spawn(function()
            while not finished do
                local h = J:count("worker")
                if h and h > max_holders then max_holders = h end
                dike.sleep(0.002)
            end
        end)
        local per = math.floor(opt.calls / opt.tasks)
        local items = {}
        for t = 1, opt.tasks do
            items[t] = function()
                for _ = 1, per + (t <= opt.calls % opt.tasks and 1 or 0) do
                    local ok, v = pcall(f)
                    if ok and v == "done" then
                        admitted = admitted + 1
                    elseif not ok and getmetatable(v) == dike.TooManyCalls then
                        rejected = rejected + 1
                    else
                        errors = errors + 1
                        io.stderr:write("unexpected: ", tostring(v), "\n")
                    end
                    dike.sleep(0)
                end
            end
        end
        dike.gather(items)
        finished = true
        sampler:join()
    end)
    local st = dike.stats(lim)
    result{ admitted = admitted, rejected = rejected, errors = errors, max_active = max_active,
            max_local = max_local, max_holders = max_holders, stat_calls = st.calls, stat_rejected = st.rejected,
            running = st.running, queued = st.queued, store_errors = st.store_errors,
            commands = dike.stats(store).commands }

elseif mode == "outage" then
    local lim = dike.limit_jobs{ limit = opt.limit, name = opt.name, store = store }
    local active_key = "test:" .. opt.name .. ":active"
    local running, max_local_down, max_active_up = 0, 0, 0
    local up = { admitted = 0, rejected = 0 }
    local down = { admitted = 0, rejected = 0 }
    local errors, longest = 0, 0
    local recovered_at, holders_after = nil, 0
    local f = lim(function(was_up)
        running = running + 1
        if not was_up and running > max_local_down then max_local_down = running end
        if was_up and store:available() then
            local n = probe:call({ "INCR", active_key }, 2, "worker")
            if n and n > max_active_up then max_active_up = n end
            dike.sleep(0.002)
            probe:call({ "DECR", active_key }, 2, "worker")
        else
            dike.sleep(0.002)
        end
        running = running - 1
        return "done"
    end)
    -- the rate limiter: 200/s, burst 20, across the 2 processes; 3 callers every ~1 ms
    local RATE, BURST = 200, 20
    local rl_name = opt.name .. "-rl"
    local rl = dike.rate_limit{ rate = RATE, burst = BURST, name = rl_name, store = store }
    local rl_f = rl(function() return "done" end)
    local rl_up = { admitted = 0, rejected = 0 }
    local rl_down = { admitted = 0, rejected = 0, ra_ok = 0, first = nil, last = nil }
    local rl_after, rl_key_after = 0, 0
    -- the breaker: its backend fails while the store is unavailable (see above)
    local cb_name = opt.name .. "-cb"
    local cb = dike.circuit_breaker{ window = 10, minimum_calls = 5, failure_rate = 0.5, open_for = 30,
                                     name = cb_name, store = store }
    local cb_f = cb(function()
        if not store:available() then error("backend down", 0) end
        return "done"
    end)
    local cb_up = { ok = 0, failed = 0, open = 0 }
    local cb_down = { ok = 0, failed = 0, open = 0, ra_ok = 0 }
    local cb_after, cb_open_after, cb_key_after = 0, 0, 0
    local J = store:jobs(opt.name, opt.limit)
    dike.run(function()
        say("READY")
        local t0 = dike.now()
        local was_down = false
        local function timed(fn, ...)
            local c0 = dike.now()
            local ok, v = pcall(fn, ...)
            local took = dike.now() - c0
            if took > longest then longest = took end
            return ok, v
        end
        local items = {}
        for t = 1, 6 do
            items[t] = function()
                while dike.now() - t0 < opt.seconds do
                    local was_up = store:available()
                    local ok, v = timed(f, was_up)
                    local bucket = was_up and up or down
                    if ok and v == "done" then
                        bucket.admitted = bucket.admitted + 1
                    elseif not ok and getmetatable(v) == dike.TooManyCalls then
                        bucket.rejected = bucket.rejected + 1
                    else
                        errors = errors + 1
                        io.stderr:write("unexpected: ", tostring(v), "\n")
                    end
                    dike.sleep(0.001)
                end
            end
        end
        for _ = 1, 3 do
            items[#items + 1] = function()
                while dike.now() - t0 < opt.seconds do
                    local was_up = store:available()
                    local at = dike.now()
                    local ok, v = timed(rl_f)
                    local bucket = was_up and rl_up or rl_down
                    if not was_up then
                        rl_down.first = rl_down.first or at
                        rl_down.last = at
                    end
                    if ok and v == "done" then
                        bucket.admitted = bucket.admitted + 1
                        if was_up and recovered_at then rl_after = rl_after + 1 end
                    elseif not ok and getmetatable(v) == dike.RateLimited then
                        bucket.rejected = bucket.rejected + 1
                        if not was_up and v.retry_after == 0.5 then rl_down.ra_ok = rl_down.ra_ok + 1 end
                    else
                        errors = errors + 1
                        io.stderr:write("unexpected (rate_limit): ", tostring(v), "\n")
                    end
                    dike.sleep(0.001)
                end
            end
        end
        for _ = 1, 2 do
            items[#items + 1] = function()
                while dike.now() - t0 < opt.seconds do
                    local was_up = store:available()
                    local ok, v = timed(cb_f)
                    local bucket = was_up and cb_up or cb_down
                    if ok and v == "done" then
                        bucket.ok = bucket.ok + 1
                        if was_up and recovered_at then cb_after = cb_after + 1 end
                    elseif not ok and v == "backend down" then
                        bucket.failed = bucket.failed + 1
                    elseif not ok and getmetatable(v) == dike.CircuitOpen then
                        bucket.open = bucket.open + 1
                        if not was_up and v.retry_after == 0.5 then cb_down.ra_ok = cb_down.ra_ok + 1 end
                        if was_up and recovered_at then cb_open_after = cb_open_after + 1 end
                    else
                        errors = errors + 1
                        io.stderr:write("unexpected (circuit_breaker): ", tostring(v), "\n")
                    end
                    dike.sleep(0.002)
                end
            end
        end
        items[#items + 1] = function()
            while dike.now() - t0 < opt.seconds do
                if not store:available() then was_down = true
                elseif was_down and not recovered_at then
                    recovered_at = dike.now() - t0
                end
                if recovered_at then
                    local h = J:count("worker")
                    if h and h > holders_after then holders_after = h end
                    -- the shared state is written again (the restarted server began empty)
                    rl_key_after = math.max(rl_key_after,
                        tonumber(probe:call({ "EXISTS", "dike:{" .. rl_name .. "}:rl" }, 2, "worker")) or 0)
                    cb_key_after = math.max(cb_key_after,
                        tonumber(probe:call({ "EXISTS", "dike:{" .. cb_name .. "}:cb" }, 2, "worker")) or 0)
                end
                dike.sleep(0.005)
            end
        end
        dike.gather(items)
    end)
    local st, rs, cs = dike.stats(lim), dike.stats(rl), dike.stats(cb)
    local store_warnings, local_opened = 0, 0
    for _, line in ipairs(logs.lines) do
        if line:find("on_failure policy until it answers again", 1, true) then
            store_warnings = store_warnings + 1
        end
        if line == "warning: Circuit " .. cb_name .. " opened: failure rate 1 over 5 calls" then
            local_opened = local_opened + 1
        end
    end
    result{ up_admitted = up.admitted, up_rejected = up.rejected, down_admitted = down.admitted,
            down_rejected = down.rejected, errors = errors, longest = string.format("%.3f", longest),
            max_local_down = max_local_down, max_active_up = max_active_up,
            store_errors = st.store_errors, fallback_calls = st.fallback_calls, rejected = st.rejected,
            warnings = logs.warning, infos = logs.info, log_errors = logs.error, store_warnings = store_warnings,
            recovered_at = recovered_at and string.format("%.3f", recovered_at) or "never",
            holders_after = holders_after,
            rl_up_admitted = rl_up.admitted, rl_up_rejected = rl_up.rejected, rl_down_admitted = rl_down.admitted,
            rl_down_rejected = rl_down.rejected, rl_down_ra_ok = rl_down.ra_ok,
            rl_down_span = string.format("%.3f", (rl_down.last or 0) - (rl_down.first or 0)),
            rl_after = rl_after, rl_key_after = rl_key_after, rl_store_errors = rs.store_errors,
            rl_fallback_calls = rs.fallback_calls, rl_rate = RATE, rl_burst = BURST,
            cb_up_ok = cb_up.ok, cb_up_failed = cb_up.failed, cb_up_open = cb_up.open, cb_down_ok = cb_down.ok,
            cb_down_failed = cb_down.failed, cb_down_open = cb_down.open, cb_down_ra_ok = cb_down.ra_ok,
            cb_after = cb_after, cb_open_after = cb_open_after, cb_key_after = cb_key_after,
            cb_store_errors = cs.store_errors, cb_fallback_calls = cs.fallback_calls, cb_local_opened = local_opened,
            store_failed_ops = dike.stats(store).errors }
    for _, line in ipairs(logs.lines) do io.stderr:write("LOG ", line, "\n") end

elseif mode == "hold" then
    local lim = dike.limit_jobs{ limit = opt.limit, name = opt.name, store = store, lease = opt.lease }
    local f = lim(function() dike.sleep(3600) end)
    dike.run(function()
        for _ = 1, opt.limit do dike.spawn(f) end
        local J = store:jobs(opt.name, opt.limit)
        while (J:count("worker") or 0) < opt.limit do dike.sleep(0.01) end
        say("HOLDING")
        dike.sleep(3600)
    end)

elseif mode == "wait" then
    local lim = dike.limit_jobs{ limit = opt.limit, name = opt.name, store = store, lease = opt.lease,
                                 queue = 1 }
    local f = lim(function() return "got it" end)
    dike.run(function()
        local t0 = dike.now()
        say("READY")
        local v = f()
        result{ waited = string.format("%.3f", dike.now() - t0), value = v:gsub(" ", "_") }
    end)

elseif mode == "rate" then
    local rl = dike.rate_limit{ rate = opt.rate, burst = opt.burst, name = opt.name, store = store }
    local f = rl(function() return "ran" end)
    local admitted, rejected, failed = 0, 0, 0
    dike.run(function()
        local start = opt.start / 1e9
        while uv.hrtime() / 1e9 < start do dike.sleep(0.001) end
        local stop = start + opt.seconds
        local items = {}
        for t = 1, 8 do
            items[t] = function()
                while uv.hrtime() / 1e9 < stop do
                    local ok, v = pcall(f)
                    if ok and v == "ran" then admitted = admitted + 1
                    elseif not ok and getmetatable(v) == dike.RateLimited then rejected = rejected + 1
                    else
                        failed = failed + 1
                        io.stderr:write("unexpected: ", tostring(v), "\n")
                    end
                    dike.sleep(0.001)
                end
            end
        end
        dike.gather(items)
    end)
    local st = dike.stats(rl)
    result{ admitted = admitted, rejected = rejected, failed = failed + st.store_errors + st.fallback_calls,
            stat_admitted = st.admitted, stat_rejected = st.rejected, commands = dike.stats(store).commands,
            calls = st.calls }

elseif mode == "breaker" then
    local events = {}
    dike.on_event(function(e)
        if e.event == "state" then events[#events + 1] = e.from .. ">" .. e.to end
    end)
    local cb = dike.circuit_breaker{ window = 20, minimum_calls = 10, failure_rate = 0.2, open_for = 0.3,
                                     name = opt.name, store = store }
    local start = opt.start / 1e9
    local function now() return uv.hrtime() / 1e9 - start end
    local f = cb(function()
        local t = now()
        if opt.faulty == 1 and t >= opt.down_from and t < opt.down_to then error("backend down", 0) end
        return "ok"
    end)
    -- phases: 1 before the failure, 2 while it lasts (and 0.1 s more), 3 after recovery + `recover` s
    local counts = { {}, {}, {} }
    for p = 1, 3 do counts[p] = { ok = 0, failed = 0, open = 0 } end
    local errors, final_state = 0, nil
    dike.run(function()
        while now() < 0 do dike.sleep(0.001) end
        local items = {}
        for t = 1, 4 do
            items[t] = function()
                while now() < opt.seconds do
                    local t0 = now()
                    local ok, v = pcall(f)
                    -- before: ended before the failure began (its backend ran before it); failing:
                    -- began while it lasted; after: began RECOVER seconds after it ended
                    local p = now() < opt.down_from and 1
                        or ((t0 >= opt.down_from and t0 < opt.down_to + 0.1) and 2
                        or (t0 >= opt.down_to + opt.recover and 3 or nil))
                    local c = p and counts[p]
                    if ok and v == "ok" then
                        if c then c.ok = c.ok + 1 end
                    elseif not ok and v == "backend down" then
                        if c then c.failed = c.failed + 1 end
                    elseif not ok and getmetatable(v) == dike.CircuitOpen then
                        if c then c.open = c.open + 1 end
                    else
                        errors = errors + 1
                        io.stderr:write("unexpected: ", tostring(v), "\n")
                    end
                    dike.sleep(0.005)
                end
            end
        end
        dike.gather(items)
        dike.sleep(0.05) -- the last outcomes are answered
        final_state = cb:state()
    end)
    local st = dike.stats(cb)
    local opened_lines, changes = 0, 0
    for _, line in ipairs(logs.lines) do
        if line:find("^warning: Circuit " .. opt.name .. " opened: ") then opened_lines = opened_lines + 1 end
        if line:find("^warning: Circuit " .. opt.name .. " ") then changes = changes + 1 end
    end
    local r = { errors = errors, final_state = final_state, opened = st.opened, opened_lines = opened_lines,
                log_changes = changes, events = #events > 0 and table.concat(events, ",") or "-",
                store_errors = st.store_errors, fallback_calls = st.fallback_calls, calls = st.calls,
                log_errors = logs.error }
    for p = 1, 3 do
        r["ok" .. p], r["failed" .. p], r["open" .. p] = counts[p].ok, counts[p].failed, counts[p].open
    end
    result(r)

else
    error("worker.lua: unknown mode " .. tostring(mode))
end

probe:close()
store:close()
