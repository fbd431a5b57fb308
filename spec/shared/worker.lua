-- One process of the multi-process suite (spec/shared/run.lua starts several). Usage:
--   luajit spec/shared/worker.lua MODE key=value...
-- Every mode connects to the Redis server given by path=..., runs, and prints one line
-- "RESULT k=v k=v ..." (and "READY" / "HOLDING" lines where the driver waits for them).
--   jobs    calls=N tasks=N limit=N queue=N: N calls from `tasks` coroutines through one shared
--           limit_jobs; each call holds its slot 1-5 ms and counts itself in Redis (INCR/DECR of
--           a key of its own) to measure how many calls run at once across all processes.
--   outage  policy=P limit=N seconds=S: calls for S seconds while the driver stops and restarts
--           Redis; outcomes are counted by whether the store was available when the call began.
--   hold    limit=N lease=S: take every slot with calls that never end, print HOLDING, wait.
--   wait    limit=N lease=S: wait until a call gets a slot; print how long that took.
--   rate    rate=R burst=B seconds=S start=T: GCRA admissions (the store's script, called
--           directly) from 8 coroutines from hrtime T (ns) for S seconds.
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
    local J = store:jobs(opt.name, opt.limit)
    dike.run(function()
        say("READY")
        local t0 = dike.now()
        local was_down = false
        local items = {}
        for t = 1, 6 do
            items[t] = function()
                while dike.now() - t0 < opt.seconds do
                    local was_up = store:available()
                    local c0 = dike.now()
                    local ok, v = pcall(f, was_up)
                    local took = dike.now() - c0
                    if took > longest then longest = took end
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
        items[#items + 1] = function()
            while dike.now() - t0 < opt.seconds do
                if not store:available() then was_down = true
                elseif was_down and not recovered_at then
                    recovered_at = dike.now() - t0
                end
                if recovered_at then
                    local h = J:count("worker")
                    if h and h > holders_after then holders_after = h end
                end
                dike.sleep(0.005)
            end
        end
        dike.gather(items)
    end)
    local st = dike.stats(lim)
    result{ up_admitted = up.admitted, up_rejected = up.rejected, down_admitted = down.admitted,
            down_rejected = down.rejected, errors = errors, longest = string.format("%.3f", longest),
            max_local_down = max_local_down, max_active_up = max_active_up,
            store_errors = st.store_errors, fallback_calls = st.fallback_calls, rejected = st.rejected,
            warnings = logs.warning, infos = logs.info, log_errors = logs.error,
            recovered_at = recovered_at and string.format("%.3f", recovered_at) or "never",
            holders_after = holders_after }
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
    local R = store:rate(opt.name)
    local T = 1 / opt.rate
    local admitted, rejected, failed = 0, 0, 0
    dike.run(function()
        local start = opt.start / 1e9
        while uv.hrtime() / 1e9 < start do dike.sleep(0.001) end
        local stop = start + opt.seconds
        local items = {}
        for t = 1, 8 do
            items[t] = function()
                while uv.hrtime() / 1e9 < stop do
                    local ok = R:acquire(T, opt.burst, 1, 0, "worker")
                    if ok == true then admitted = admitted + 1
                    elseif ok == false then rejected = rejected + 1
                    else failed = failed + 1 end
                    dike.sleep(0.001)
                end
            end
        end
        dike.gather(items)
    end)
    result{ admitted = admitted, rejected = rejected, failed = failed }
else
    error("worker.lua: unknown mode " .. tostring(mode))
end

probe:close()
store:close()
