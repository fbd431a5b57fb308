-- The multi-process suite of dike's shared limits (ctest: integration.shared; run from the
-- repository root with the build on LUA_CPATH):
--   luajit spec/shared/run.lua [--only NAME]
-- It starts a private redis-server (spec/redis_server.lua) and worker processes
-- (spec/shared/worker.lua) and checks, with real processes and a real server:
--   jobs     4 processes x 2,000 calls through one shared limit_jobs{limit = 10}: calls running
--            at once (counted in Redis by the calls), holders (sampled in Redis) and each
--            process's own running calls never exceed 10; every call is admitted or rejected
--            (TooManyCalls), nothing else; every counter ends at 0.
--   outage   for each on_failure policy, 2 processes call for 4.5 s while Redis is stopped for 2 s
--            and restarted, through a shared limit_jobs, rate_limit and circuit_breaker on one
--            store: outcomes during the outage follow the policy for each tool, no call takes
--            longer than the store's timeout (plus its own 2 ms and slack), each process logs one
--            warning and one "answers again" line for the store, the counters say what happened,
--            and sharing resumes (holders, the GCRA state and the breaker's record in Redis again).
--   kill     a process holding every slot is killed with SIGKILL: a waiting process gets a slot
--            within the lease (1 s).
--   rate     4 processes x 8 coroutines call a function wrapped by one shared
--            dike.rate_limit{store = redis} for 3 s: admitted calls within 2% of rate x time + burst.
--   breaker  4 processes call through one shared circuit_breaker; the backend of one of them fails
--            for 1 s: the breaker opens for all four, and closes for all after the recovery; each
--            state change is reported once across the processes (the events form one chain).
--   example  the README's two-process example (examples/shared_limit.lua) runs, and its 20 calls
--            of 0.1 s through a shared limit of 3 take at least 20 / 3 x 0.1 s; so do
--            docs/sharing.md's examples/shared_rate.lua (40 messages at 20/s, burst 4, from two
--            processes: at least 1.8 s) and examples/shared_breaker.lua (one process's failures
--            open the breaker for the other, whose trial closes it).
-- Prints one line per check and "N passed, N failed" last. Every process it starts is ended
-- by its pid, also on failure.
local uv = require("luv")
local redis_server = require("spec.redis_server")

local only
for i = 1, #arg do
    if arg[i] == "--only" then only = arg[i + 1] end
end

local LUAJIT = os.getenv("LUAJIT") or "luajit"
local passed, failed = 0, 0

local function check(ok, what, detail)
    if ok then
        passed = passed + 1
        print("ok - " .. what)
    else
        failed = failed + 1
        print("not ok - " .. what .. (detail and (": " .. detail) or ""))
    end
end

---------------------------------------------------------------- processes

local procs = {}

-- Start a worker; its stdout lines are collected, stderr passed through with a prefix.
local function spawn(mode, opts)
    local args = { "spec/shared/worker.lua", mode }
    for k, v in pairs(opts) do args[#args + 1] = k .. "=" .. tostring(v) end
    local out, err = uv.new_pipe(false), uv.new_pipe(false)
    local p = { lines = {}, buf = "", exited = false, mode = mode }
    local handle, pid = uv.spawn(LUAJIT, { args = args, stdio = { nil, out, err } }, function(code, signal)
        p.exited, p.code, p.signal = true, code, signal
    end)
    assert(handle, pid)
    p.handle, p.pid = handle, pid
    out:read_start(function(_, chunk)
        if not chunk then out:close(); return end
        p.buf = p.buf .. chunk
        for line in p.buf:gmatch("([^\n]*)\n") do p.lines[#p.lines + 1] = line end
        p.buf = p.buf:match("[^\n]*$")
    end)
    err:read_start(function(_, chunk)
        if not chunk then err:close(); return end
        io.stderr:write((chunk:gsub("([^\n]+)", "  [" .. mode .. " " .. pid .. "] %1")))
    end)
    procs[#procs + 1] = p
    return p
end

local function has_line(p, line)
    for _, l in ipairs(p.lines) do if l == line then return true end end
    return false
end

-- Run the loop until cond() or `seconds` pass.
local function wait_until(cond, seconds)
    local t = uv.new_timer()
    local expired = false
    t:start(math.floor(seconds * 1000), 0, function() expired = true end)
    while not cond() and not expired do uv.run("once") end
    t:close()
    uv.run("nowait")
    return cond()
end

local function sleep(seconds)
    wait_until(function() return false end, seconds)
end

local function result_of(p)
    for _, line in ipairs(p.lines) do
        local rest = line:match("^RESULT (.*)$")
        if rest then
            local r = {}
            for k, v in rest:gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) or v end
            return r
        end
    end
    return nil
end

local function wait_all(list, seconds)
    return wait_until(function()
        for _, p in ipairs(list) do if not p.exited then return false end end
        return true
    end, seconds)
end

local function kill_all()
    for _, p in ipairs(procs) do
        if not p.exited then uv.kill(p.pid, "sigkill") end
    end
    wait_all(procs, 5)
    for _, p in ipairs(procs) do
        if not p.handle:is_closing() then p.handle:close() end
    end
    uv.run("nowait")
    procs = {}
end

---------------------------------------------------------------- scenarios

local server

local function jobs()
    server:cli("FLUSHALL")
    local workers = {}
    for i = 1, 4 do
        workers[i] = spawn("jobs", { path = server.path, name = "mp", calls = 2000, tasks = 8, limit = 10,
                                     queue = 4, timeout = 1 })
    end
    local done = wait_all(workers, 90)
    check(done, "jobs: 4 processes finish their 2,000 calls")
    local total_admitted = 0
    for i, p in ipairs(workers) do
        local r = result_of(p)
        local what = "jobs: process " .. i
        check(p.code == 0 and r ~= nil, what .. " exits 0 with a result", "exit " .. tostring(p.code))
        if r then
            check(r.admitted + r.rejected == 2000 and r.errors == 0, what .. ": 2,000 calls, each admitted or rejected",
                ("admitted %d, rejected %d, other %d"):format(r.admitted, r.rejected, r.errors))
            check(r.stat_calls == 2000 and r.stat_rejected == r.rejected and r.running == 0 and r.queued == 0,
                what .. ": dike.stats agrees and ends at running = queued = 0")
            check(r.max_active <= 10 and r.max_holders <= 10 and r.max_local <= 10,
                what .. ": at most 10 calls at once (Redis count, holders, this process)",
                ("calls at once %d, holders %d, here %d"):format(r.max_active, r.max_holders, r.max_local))
            check(r.max_active >= 5, what .. ": the limit was reached (calls at once >= 5)", "max " .. r.max_active)
            check(r.store_errors == 0, what .. ": no store errors", tostring(r.store_errors))
            print(("#   process %d: admitted %d, rejected %d, calls at once %d (Redis) / %d (holders) / %d (here), "
                .. "%.2f commands per call"):format(i, r.admitted, r.rejected, r.max_active, r.max_holders, r.max_local,
                r.commands / 2000))
            total_admitted = total_admitted + r.admitted
        end
    end
    check(server:cli("ZCARD 'dike:{mp}:lj:h'") == "0" and server:cli("ZCARD 'dike:{mp}:lj:w'") == "0"
        and server:cli("GET test:mp:active") == "0", "jobs: no holder, waiter or running call left in Redis")
    check(total_admitted >= 2000, "jobs: a fair share was admitted", "admitted " .. total_admitted)
end

-- The store's timeout in the outage scenario: 0.5 s rather than the default 0.1, so that a
-- machine loaded by the other suites (valgrind runs beside this one) does not time a healthy
-- server out and make a second outage; the outage itself is a stopped server, which fails
-- calls at once.
local OUTAGE_TIMEOUT = 0.5

local function outage(policy)
    server:cli("FLUSHALL")
    local name = "out-" .. policy
    local workers = {}
    for i = 1, 2 do
        workers[i] = spawn("outage", { path = server.path, name = name, limit = 4, seconds = 4.5, policy = policy,
                                       timeout = OUTAGE_TIMEOUT })
    end
    wait_until(function()
        for _, p in ipairs(workers) do if not has_line(p, "READY") then return false end end
        return true
    end, 10)
    sleep(1)
    server:stop()
    local stopped = uv.hrtime()
    sleep(2)
    server:start()
    print(("#   %s: Redis stopped for %.2f s"):format(policy, (uv.hrtime() - stopped) / 1e9))
    local done = wait_all(workers, 30)
    check(done, "outage " .. policy .. ": processes finish")
    for i, p in ipairs(workers) do
        local r = result_of(p)
        local what = ("outage %s: process %d"):format(policy, i)
        check(p.code == 0 and r ~= nil, what .. " exits 0 with a result", "exit " .. tostring(p.code))
        if r then
            print(("#   process %d: up %d/%d, down %d/%d (admitted/rejected), longest call %ss, store_errors %d, "
                .. "fallback_calls %d, back after %ss, holders after %d"):format(i, r.up_admitted, r.up_rejected,
                r.down_admitted, r.down_rejected, r.longest, r.store_errors, r.fallback_calls, r.recovered_at,
                r.holders_after))
            check(r.errors == 0, what .. ": every call admitted or rejected with TooManyCalls")
            check(r.longest < OUTAGE_TIMEOUT + 0.002 + 0.25, what .. ": no call waits longer than the timeout",
                r.longest .. "s")
            check(r.down_admitted + r.down_rejected > 50, what .. ": calls were made during the outage")
            if policy == "local" then
                check(r.down_admitted > 0 and r.max_local_down <= 4, what .. ": a local limiter of 4 during the outage",
                    ("admitted %d, at once %d"):format(r.down_admitted, r.max_local_down))
                check(r.fallback_calls >= r.down_admitted, what .. ": fallback_calls counts them")
            elseif policy == "open" then
                check(r.down_rejected == 0 and r.down_admitted > 0, what .. ": every call admitted during the outage",
                    ("rejected %d"):format(r.down_rejected))
                check(r.fallback_calls >= r.down_admitted, what .. ": fallback_calls counts them")
            else
                check(r.down_admitted == 0 and r.down_rejected > 0, what .. ": every call rejected during the outage",
                    ("admitted %d"):format(r.down_admitted))
                check(r.fallback_calls >= r.down_rejected, what .. ": fallback_calls counts them")
            end
            -- One store for the three tools: whichever of them tried first saw it fail (the others may
            -- only have found it down, which is no error of theirs).
            local errs = r.store_errors + r.rl_store_errors + r.cb_store_errors
            check(errs >= 1 and errs <= r.store_failed_ops and r.store_errors <= 50,
                what .. ": store_errors counts the failed attempts (the three tools' add up to at least 1, at most"
                .. " the store's failed operations)",
                ("limit_jobs %d, rate_limit %d, circuit_breaker %d, store %d"):format(r.store_errors,
                    r.rl_store_errors, r.cb_store_errors, r.store_failed_ops))
            check(r.store_warnings == 1 and r.infos == 1 and r.log_errors == 0,
                what .. ": one warning for the outage, one line when Redis answers again",
                ("store warnings %d, infos %d, errors %d"):format(r.store_warnings, r.infos, r.log_errors))
            check(r.warnings == r.store_warnings + r.cb_local_opened,
                what .. ": no other warning than the store's and the local breaker's opening",
                ("warnings %d"):format(r.warnings))
            check(r.recovered_at ~= "never" and r.recovered_at < 1 + 2 + 1.5, what .. ": the store is back by itself",
                tostring(r.recovered_at))
            check(r.up_admitted > 0 and r.holders_after >= 1 and r.max_active_up <= 4,
                what .. ": sharing resumes (holders in Redis again, at most 4 at once)",
                ("holders after %d, at once %d"):format(r.holders_after, r.max_active_up))
            -- rate_limit (200/s, burst 20, max_wait 0)
            print(("#   process %d rate_limit: up %d/%d, down %d/%d (admitted/refused) over %ss, store_errors %d, "
                .. "fallback_calls %d, after recovery %d admitted"):format(i, r.rl_up_admitted, r.rl_up_rejected,
                r.rl_down_admitted, r.rl_down_rejected, r.rl_down_span, r.rl_store_errors, r.rl_fallback_calls,
                r.rl_after))
            local rl_down = r.rl_down_admitted + r.rl_down_rejected
            check(rl_down > 50, what .. " rate_limit: calls were made during the outage", tostring(rl_down))
            if policy == "local" then
                local most = r.rl_burst + r.rl_rate * r.rl_down_span + 1
                check(r.rl_down_admitted > 0 and r.rl_down_rejected > 0 and r.rl_down_admitted <= most,
                    what .. " rate_limit: a local limiter of 200/s (burst 20) during the outage",
                    ("admitted %d (at most %.0f), refused %d"):format(r.rl_down_admitted, most, r.rl_down_rejected))
            elseif policy == "open" then
                check(r.rl_down_rejected == 0 and r.rl_down_admitted > 0,
                    what .. " rate_limit: every call admitted during the outage",
                    ("refused %d"):format(r.rl_down_rejected))
            else
                check(r.rl_down_admitted == 0 and r.rl_down_rejected > 0 and r.rl_down_ra_ok == r.rl_down_rejected,
                    what .. " rate_limit: every call refused during the outage, retry_after 0.5",
                    ("admitted %d, refused %d (%d with retry_after 0.5)"):format(r.rl_down_admitted,
                        r.rl_down_rejected, r.rl_down_ra_ok))
            end
            check(r.rl_store_errors <= 50 and r.rl_fallback_calls >= rl_down,
                what .. " rate_limit: store_errors and fallback_calls count the outage",
                ("store_errors %d, fallback_calls %d"):format(r.rl_store_errors, r.rl_fallback_calls))
            check(r.rl_after > 0 and r.rl_key_after == 1, what .. " rate_limit: sharing resumes (its state in Redis)",
                ("admitted after %d, key %d"):format(r.rl_after, r.rl_key_after))
            -- circuit_breaker (its backend fails while the store is down)
            print(("#   process %d circuit_breaker: up %d/%d/%d, down %d/%d/%d (ok/failed/open), store_errors %d, "
                .. "fallback_calls %d, after recovery %d ok"):format(i, r.cb_up_ok, r.cb_up_failed, r.cb_up_open,
                r.cb_down_ok, r.cb_down_failed, r.cb_down_open, r.cb_store_errors, r.cb_fallback_calls, r.cb_after))
            local cb_down = r.cb_down_ok + r.cb_down_failed + r.cb_down_open
            check(cb_down > 20, what .. " circuit_breaker: calls were made during the outage", tostring(cb_down))
            if policy == "local" then
                -- (calls that began before the outage was seen fell back too: count their failures)
                local failures = r.cb_up_failed + r.cb_down_failed
                check(failures >= 5 and failures <= 5 + 2 and r.cb_down_open > 0 and r.cb_local_opened == 1,
                    what .. " circuit_breaker: a local breaker opens after minimum_calls (5) failures, once",
                    ("failed %d, open %d, opened lines %d"):format(failures, r.cb_down_open, r.cb_local_opened))
            elseif policy == "open" then
                check(r.cb_down_open == 0 and r.cb_down_failed > 0 and r.cb_local_opened == 0,
                    what .. " circuit_breaker: every call runs during the outage",
                    ("failed %d, open %d"):format(r.cb_down_failed, r.cb_down_open))
            else
                check(r.cb_down_failed == 0 and r.cb_down_ok == 0 and r.cb_down_open > 0
                    and r.cb_down_ra_ok == r.cb_down_open,
                    what .. " circuit_breaker: every call refused during the outage, retry_after 0.5",
                    ("failed %d, open %d (%d with retry_after 0.5)"):format(r.cb_down_failed, r.cb_down_open,
                        r.cb_down_ra_ok))
            end
            check(r.cb_store_errors <= 50 and r.cb_fallback_calls >= cb_down,
                what .. " circuit_breaker: store_errors and fallback_calls count the outage",
                ("store_errors %d, fallback_calls %d"):format(r.cb_store_errors, r.cb_fallback_calls))
            check(r.cb_after > 0 and r.cb_key_after == 1 and r.cb_open_after == 0,
                what .. " circuit_breaker: sharing resumes (closed, its record in Redis)",
                ("ok after %d, key %d, open after %d"):format(r.cb_after, r.cb_key_after, r.cb_open_after))
        end
    end
end

local function kill()
    server:cli("FLUSHALL")
    local holder = spawn("hold", { path = server.path, name = "k", limit = 3, lease = 1, timeout = 1 })
    local held = wait_until(function() return has_line(holder, "HOLDING") end, 10)
    check(held, "kill: a process holds all 3 slots")
    local waiter = spawn("wait", { path = server.path, name = "k", limit = 3, lease = 1, timeout = 1 })
    wait_until(function() return has_line(waiter, "READY") end, 10)
    sleep(0.3)
    check(not waiter.exited, "kill: another process waits meanwhile")
    local killed_at = uv.hrtime()
    uv.kill(holder.pid, "sigkill")
    wait_all({ waiter }, 10)
    local after = (uv.hrtime() - killed_at) / 1e9
    local r = result_of(waiter)
    check(r ~= nil and r.value == "got_it", "kill: the waiting process gets a slot")
    check(after <= 1 + 0.3, "kill: within the lease (1 s) of the SIGKILL", ("%.3f s"):format(after))
    print(("#   slot back %.3f s after the SIGKILL (lease 1 s)"):format(after))
end

local function rate()
    server:cli("FLUSHALL")
    -- A burst of 100 (0.2 s of the rate): a process the loaded machine stalls for less than that
    -- loses none of the rate.
    local rate_, burst, seconds = 500, 100, 3
    local start = uv.hrtime() + 1e9
    local workers = {}
    for i = 1, 4 do
        workers[i] = spawn("rate", { path = server.path, name = "rl", rate = rate_, burst = burst, seconds = seconds,
                                     start = string.format("%.0f", start), timeout = 1 })
    end
    wait_all(workers, 30)
    local admitted, failures, calls, commands = 0, 0, 0, 0
    for _, p in ipairs(workers) do
        local r = result_of(p) or { admitted = 0, failed = 1, stat_admitted = -1, calls = 0, commands = 0 }
        admitted = admitted + r.admitted
        failures = failures + r.failed
        calls, commands = calls + r.calls, commands + r.commands
        check(r.stat_admitted == r.admitted and r.stat_rejected == r.rejected,
            "rate: dike.stats agrees with the outcomes", ("%s / %s"):format(r.stat_admitted, r.admitted))
    end
    local want = rate_ * seconds + burst
    print(("#   admitted %d, want %d; %.3f Redis commands per call"):format(admitted, want, commands / calls))
    check(failures == 0, "rate: no store failures")
    check(math.abs(admitted - want) <= 0.02 * want,
        "rate: 4 processes through one dike.rate_limit{store} admit rate x time + burst within 2%",
        ("admitted %d, want %d"):format(admitted, want))
    -- one script per call (and a SCRIPT LOAD per process)
    check(commands <= calls + 4, "rate: one round trip per call", ("%d commands, %d calls"):format(commands, calls))
end

-- A breaker shared by 4 processes (window 20, minimum_calls 10, failure_rate 0.2, open_for 0.3):
-- process 1's backend fails from 1 s to 2 s; the others' never does.
local function breaker()
    server:cli("FLUSHALL")
    local down_from, down_to, seconds, recover = 1, 2, 3.5, 0.8
    local start = uv.hrtime() + 1e9
    local workers = {}
    for i = 1, 4 do
        workers[i] = spawn("breaker", { path = server.path, name = "cbm", faulty = i == 1 and 1 or 0,
                                        start = string.format("%.0f", start), down_from = down_from,
                                        down_to = down_to, seconds = seconds, recover = recover, timeout = 1 })
    end
    local done = wait_all(workers, 60)
    check(done, "breaker: 4 processes finish")
    local ins, outs, opened, opened_lines = {}, {}, 0, 0
    local chain = {}
    for i, p in ipairs(workers) do
        local r = result_of(p)
        local what = "breaker: process " .. i
        check(p.code == 0 and r ~= nil, what .. " exits 0 with a result", "exit " .. tostring(p.code))
        if r then
            print(("#   process %d%s: before %d/%d/%d, failing %d/%d/%d, after %d/%d/%d (ok/failed/open); "
                .. "changes seen here: %s"):format(i, i == 1 and " (faulty)" or "", r.ok1, r.failed1, r.open1,
                r.ok2, r.failed2, r.open2, r.ok3, r.failed3, r.open3, r.events))
            check(r.errors == 0 and r.log_errors == 0, what .. ": every call returned, failed or raised CircuitOpen")
            check(r.ok1 > 0 and r.failed1 == 0 and r.open1 == 0, what .. ": closed before the failure")
            check(r.open2 > 0, what .. ": the breaker opened for it while process 1's backend failed",
                ("open %d"):format(r.open2))
            if i == 1 then check(r.failed2 > 0, what .. ": its backend failed", tostring(r.failed2))
            else check(r.failed2 == 0, what .. ": its own backend never failed") end
            check(r.ok3 > 0 and r.failed3 == 0 and r.open3 == 0 and r.final_state == "closed",
                what .. ": closed for it after the recovery",
                ("ok %d, failed %d, open %d, state %s"):format(r.ok3, r.failed3, r.open3, tostring(r.final_state)))
            check(r.store_errors == 0 and r.fallback_calls == 0, what .. ": no store errors, no fallback")
            check(r.log_changes == (r.events == "-" and 0 or select(2, r.events:gsub(">", ""))),
                what .. ": it logged each change it reported", ("%d lines, %s"):format(r.log_changes, r.events))
            opened, opened_lines = opened + r.opened, opened_lines + r.opened_lines
            if r.events ~= "-" then
                for from, to in r.events:gmatch("([%w_]+)>([%w_]+)") do
                    outs[from] = (outs[from] or 0) + 1
                    ins[to] = (ins[to] or 0) + 1
                    chain[#chain + 1] = from .. ">" .. to
                end
            end
        end
    end
    -- Each change reported by exactly one process: the changes, from all processes, form one
    -- chain from closed back to closed (into every state as often as out of it).
    local balanced = true
    for _, st in ipairs({ "closed", "open", "half_open" }) do
        if (ins[st] or 0) ~= (outs[st] or 0) then balanced = false end
    end
    print(("#   %d state changes across the processes, opened %d times"):format(#chain, opened))
    check(balanced and (outs.closed or 0) >= 1 and (ins.closed or 0) >= 1,
        "breaker: the state changes reported across the processes form one chain (each reported once)",
        table.concat(chain, ","))
    check(opened >= 1 and opened == opened_lines, "breaker: opened (dike.stats) adds up to the opening lines logged",
        ("opened %d, lines %d"):format(opened, opened_lines))
end

local function run_example(script)
    server:cli("FLUSHALL")
    local out = io.popen(LUAJIT .. " " .. script .. " " .. server.path .. " 2>&1")
    local text = out:read("*a")
    local ok = out:close()
    io.write((text:gsub("([^\n]+)", "#   %1")))
    return ok, text
end

local function example()
    local ok, text = run_example("examples/shared_limit.lua")
    local seconds = tonumber(text:match("shared limit of 3: ([%d.]+) s"))
    local _, workers = text:gsub("10 calls in [%d.]+ s, at most %d running here; store errors 0", "")
    check(ok and workers == 2, "example: both workers ran their 10 calls without store errors")
    check(seconds and seconds >= 0.66 and seconds < 3, "example: never more than 3 at once across the processes",
        tostring(seconds))
    -- docs/sharing.md's rate_limit example: 40 messages at 20/s (burst 4) from two processes
    ok, text = run_example("examples/shared_rate.lua")
    seconds = tonumber(text:match("burst 4%): ([%d.]+) s"))
    _, workers = text:gsub("20 messages in [%d.]+ s, %d+ of them waited for their turn; store errors 0", "")
    check(ok and workers == 2, "example (rate): both workers sent their 20 messages without store errors")
    check(seconds and seconds >= (40 - 4) / 20 and seconds < 10, "example (rate): the two processes share 20/s",
        tostring(seconds))
    -- docs/sharing.md's circuit_breaker example: A's failures open it for B; B's trial closes it
    ok, text = run_example("examples/shared_breaker.lua")
    local _, failures = text:gsub("A: connection refused\n", "")
    check(ok and failures == 5 and text:find("A logs: Circuit backend opened: failure rate 1 over 5 calls\n", 1, true)
        and text:find("A: the breaker is open\n", 1, true) ~= nil,
        "example (breaker): A's 5 failures open the shared breaker")
    check(text:match("B: Circuit open for function backend! retry after [%d.]+s %(retry_after [%d.]+ s%)\n") ~= nil
        and text:find("B logs: Circuit backend half-open\nB logs: Circuit backend closed\nB: user 7; the breaker is "
            .. "closed\n", 1, true) ~= nil,
        "example (breaker): B is refused without calling its backend, then its trial closes the breaker")
end

---------------------------------------------------------------- main

local ok, err = pcall(function()
    server = redis_server.start()
    local scenarios = {
        { "jobs", jobs },
        { "outage", function() outage("local"); outage("open"); outage("closed") end },
        { "kill", kill },
        { "rate", rate },
        { "breaker", breaker },
        { "example", example },
    }
    for _, s in ipairs(scenarios) do
        if not only or only == s[1] then
            local t0 = uv.hrtime()
            s[2]()
            print(("# %s took %.1f s"):format(s[1], (uv.hrtime() - t0) / 1e9))
            kill_all()
        end
    end
end)
if not ok then check(false, "the suite ran to its end", tostring(err)) end
kill_all()
if server then server:destroy() end
print(("%d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
