--- Workload 14, limits shared through Redis: a private redis-server (spec/redis_server.lua) on a
-- unix socket, and PROCS processes (this script again, as workers) of 16 coroutines each.
--   IMPL jobs1    1 process: N calls through dike.limit_jobs{limit = 64, store = redis} of a
--                 function that returns at once (never rejected: 16 callers < 64 slots)
--   IMPL jobs4    the same from 4 processes (N calls in all) against the one server
--   IMPL ping4    the floor for jobs4: the same 4 x 16 callers, each "call" two PINGs through
--                 dike's client (the two round trips a call costs, with nothing in them)
--   IMPL rate4    4 processes: N admissions of the shared GCRA script (store:rate, a rate no
--                 load reaches: every call admitted)
--   IMPL rl4      4 processes: N calls of a function wrapped by dike.rate_limit{store = redis}
--                 (rate 1e9, burst 1e9: every call admitted), the tool over rate4's script
--   IMPL cb4      4 processes: N calls of a function wrapped by dike.circuit_breaker{store = redis}
--                 (closed: every call succeeds); the outcome is sent without waiting (the default)
--   IMPL cb4sync  the same, each call waiting for its outcome's answer (a second round trip)
--   IMPL cb1, cb1sync  the two above from 1 process and 1 caller: N calls one after the other,
--                 so `seconds` / N is a call's latency (one round trip waited, or two)
--   IMPL handoff  2 processes, one limit_jobs{limit = 1, queue = 1} calling in turn (each call
--                 holds the slot 2 ms): ops = the handoffs from one process to the other,
--                 seconds = the sum of their gaps (a call's end in one process to the next
--                 call's start in the other: release, the waiter's poll (every 0.01 s), grant)
-- `seconds` spans the first call's start to the last call's end over all processes (their
-- monotonic clocks are the same clock); `commands` = Redis commands sent per call (round
-- trips, pipelined or not; renewals included; the one SCRIPT LOAD per process too).
local common = require("lua.common")

local uv = common.uv
local role = arg[1]

---------------------------------------------------------------- a worker process

if role == "worker" then
    local dike = require("dike")
    local impl, n, path = arg[2], tonumber(arg[3]), arg[4]
    local store = dike.store.redis{ path = path, timeout = 2 }
    local t0, t1
    local done = 0
    local callers = impl:find("^cb1") and 1 or 16
    local function each(fn)
        local items = {}
        local per = n / callers
        for i = 1, callers do
            items[i] = function()
                for _ = 1, per do fn() end
            end
        end
        t0 = uv.hrtime()
        dike.gather(items)
        t1 = uv.hrtime()
    end
    dike.run(function()
        if impl == "jobs" then
            local f = dike.limit_jobs{ limit = 64, name = "bench", store = store }(function() done = done + 1 end)
            each(f)
        elseif impl == "ping" then
            local c = store.client
            each(function()
                c:call({ "PING" }, 1, "bench")
                c:call({ "PING" }, 1, "bench")
                done = done + 1
            end)
        elseif impl == "rate" then
            local R = store:rate("bench")
            each(function()
                if R:acquire(1e-9, 1e9, 1, 0) then done = done + 1 end
            end)
        elseif impl == "rl" then
            local f = dike.rate_limit{ rate = 1e9, burst = 1e9, name = "bench", store = store }(function()
                done = done + 1
            end)
            each(f)
        elseif impl == "cb" or impl == "cbsync" or impl == "cb1" or impl == "cb1sync" then
            require("dike.circuit_breaker_shared").async_record = impl == "cb" or impl == "cb1"
            local f = dike.circuit_breaker{ name = "bench", store = store }(function() done = done + 1 end)
            each(f)
        elseif impl == "pingpong" then
            -- limit 1, two processes calling in turn: each call notes when it started and,
            -- just before it returns, stamps its end in Redis; the gap is from the other
            -- process's last stamp to this call's start (release, poll, grant).
            local me, other = arg[5], arg[5] == "a" and "b" or "a"
            local stamps = require("dike.store.client_luv").new{ path = path, timeout = 2, label = "stamps" }
            local lim = dike.limit_jobs{ limit = 1, queue = 1, name = "handoff", store = store }
            local last_seen, gaps, counted = 0, 0, 0
            local f = lim(function()
                local started = uv.hrtime()
                local v = tonumber(stamps:call({ "GET", "bench:stamp:" .. other }, 2, "bench"))
                if v and v > last_seen then
                    last_seen = v
                    gaps = gaps + (started - v)
                    counted = counted + 1
                end
                dike.sleep(0.002)
                stamps:call({ "SET", "bench:stamp:" .. me, string.format("%.0f", uv.hrtime()) }, 3, "bench")
            end)
            t0 = uv.hrtime()
            for _ = 1, n do f() end
            t1 = uv.hrtime()
            done = n
            io.write(string.format("GAPS gaps=%.0f counted=%d\n", gaps, counted))
            stamps:close()
        end
        dike.sleep(0.05) -- the last releases are answered
    end)
    io.write(string.format("WORKER t0=%.0f t1=%.0f done=%d commands=%d\n", t0, t1, done,
        dike.stats(store).commands))
    store:close()
    os.exit(0)
end

---------------------------------------------------------------- the measurement

local impl, n = common.args("store.lua jobs1|jobs4|ping4|rate4|rl4|cb4|cb4sync|cb1|cb1sync|handoff N")
local redis_server = require("spec.redis_server")
local server = redis_server.start()

local procs, role_of = 4, "jobs"
if impl == "jobs1" then procs = 1
elseif impl == "ping4" then role_of = "ping"
elseif impl == "rate4" then role_of = "rate"
elseif impl == "rl4" then role_of = "rl"
elseif impl == "cb4" then role_of = "cb"
elseif impl == "cb4sync" then role_of = "cbsync"
elseif impl == "cb1" or impl == "cb1sync" then procs, role_of = 1, impl
elseif impl == "handoff" then procs = 2
elseif impl ~= "jobs4" then error("store.lua: unknown IMPL " .. impl, 0) end
local per = math.floor(n / procs / 16) * 16
if impl == "cb1" or impl == "cb1sync" then per = n end
if impl == "handoff" then per = n end
if per < 16 and impl ~= "handoff" then error("store.lua: N must be at least 16 x processes", 0) end

local results = {}
local pending = procs
for p = 1, procs do
    local out = uv.new_pipe(false)
    local buf = {}
    local worker_role, extra = role_of, nil
    if impl == "handoff" then worker_role, extra = "pingpong", p == 1 and "a" or "b" end
    local lua_path = os.getenv("LUA_PATH")
    local handle
    handle = uv.spawn(arg[-1] or "luajit", {
        args = { arg[0], "worker", worker_role, tostring(per), server.path, extra },
        stdio = { nil, out, 2 },
        env = { "LUA_PATH=" .. (lua_path or ""), "LUA_CPATH=" .. (os.getenv("LUA_CPATH") or ""),
                "PATH=" .. (os.getenv("PATH") or "") },
    }, function(code)
        if code ~= 0 then results.failed = true end
        pending = pending - 1
        handle:close()
    end)
    out:read_start(function(_, chunk)
        if chunk then buf[#buf + 1] = chunk return end
        out:close()
        local text = table.concat(buf)
        local w = {}
        for k, v in text:gmatch("([%w_]+)=(%S+)") do w[k] = tonumber(v) end
        w.gaps = tonumber(text:match("GAPS gaps=(%d+)"))
        w.counted = tonumber(text:match("counted=(%d+)"))
        results[#results + 1] = w
    end)
end
while pending > 0 or #results < procs do uv.run("once") end
server:destroy()
if results.failed then error("store.lua: a worker failed", 0) end

local t0, t1, done, commands, gaps, counted = math.huge, 0, 0, 0, 0, 0
for _, w in ipairs(results) do
    t0, t1 = math.min(t0, w.t0), math.max(t1, w.t1)
    done, commands = done + w.done, commands + w.commands
    gaps, counted = gaps + (w.gaps or 0), counted + (w.counted or 0)
end
common.check("calls", done, per * procs)
if impl == "handoff" then
    if counted < per then error("store.lua: too few handoffs (" .. counted .. ")", 0) end
    common.report{ ops = counted, seconds = gaps / 1e9, commands = commands / done }
else
    common.report{ ops = done, seconds = (t1 - t0) / 1e9, commands = commands / done }
end
