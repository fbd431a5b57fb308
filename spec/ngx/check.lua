-- The OpenResty integration test's client (run by scripts/check-ngx.sh against a private
-- nginx): runs the in-nginx self-test, sends concurrent requests and checks every response,
-- reads dike.stats through /stats to see that batching really happened, checks load
-- shedding (503) and that nginx's error log stayed clean.
-- Usage: luajit spec/ngx/check.lua PORT PREFIX      (prints "N passed, N failed" last)
local dike = require("dike")
local client = require("service.client")
local json = require("service.json")

local HOST = "127.0.0.1"
local PORT = assert(tonumber(arg[1]), "usage: check.lua PORT PREFIX")
local PREFIX = assert(arg[2], "usage: check.lua PORT PREFIX")
local CONNECTIONS, PER_CONNECTION = 40, 5

local passed, failed = 0, 0
local function check(ok, name, detail)
    if ok then
        passed = passed + 1
        print("ok - " .. name)
    else
        failed = failed + 1
        print("not ok - " .. name .. (detail and (": " .. tostring(detail)) or ""))
    end
end

local function get(target, timeout)
    local res, err = client.get(HOST, PORT, target, timeout or 30)
    if not res then return { status = 0, body = tostring(err) } end
    return res
end

local function read_log()
    local f = io.open(PREFIX .. "/logs/error.log", "rb")
    if not f then return "" end
    local s = f:read("*a")
    f:close()
    return s
end

dike.run(function()
    -- 1. The runtime's own checks, inside a request.
    local st = get("/selftest")
    check(st.status == 200, "GET /selftest answers 200", st.status .. " " .. st.body)
    for line in st.body:gmatch("[^\n]+") do
        local ok_line = line:match("^ok %- (.*)$")
        local bad_line = line:match("^not ok %- (.*)$")
        if ok_line then check(true, "nginx: " .. ok_line) end
        if bad_line then check(false, "nginx: " .. bad_line) end
    end
    check(st.body:match("\n(%d+) passed, 0 failed\n$") ~= nil, "the self-test ran to its end", st.body:sub(-200))

    -- 2. Where nginx cannot wait, dike says so.
    local ph = get("/phase")
    check(ph.body == "dike.sleep: must be called inside a coroutine (start one with dike.run or dike.spawn)"
          .. " (in nginx: a request or timer handler; the set phase cannot wait)",
          "set_by_lua: dike.sleep raises the context error", ph.body)

    -- 3. Concurrent requests: every response right.
    local wrong, n = {}, 0
    local conns = {}
    for c = 1, CONNECTIONS do
        conns[c] = function()
            local conn, err = client.connect(HOST, PORT)
            if not conn then
                wrong[#wrong + 1] = "connect: " .. tostring(err)
                return
            end
            for i = 1, PER_CONNECTION do
                local x = c * 1000 + i
                local res, rerr = conn:get("/predict?x=" .. x, 30)
                n = n + 1
                local body = res and json.decode(res.body)
                if not res or res.status ~= 200 or not body or body.x ~= x or body.y ~= 2 * x + 1 then
                    wrong[#wrong + 1] = ("x=%d: %s %s"):format(x, res and res.status or "-",
                                                               res and res.body or tostring(rerr))
                end
            end
            conn:close()
        end
    end
    dike.gather(conns)
    local total = CONNECTIONS * PER_CONNECTION
    check(n == total and #wrong == 0,
          ("%d concurrent requests on %d connections: every body right"):format(total, CONNECTIONS),
          #wrong .. " wrong, first: " .. tostring(wrong[1]))

    -- 4. Batching happened, retries too, and nothing is left behind.
    local stats = json.decode(get("/stats").body) or {}
    local b, r, l = stats.batch or {}, stats.retry or {}, stats.limit_jobs or {}
    print(("# %d requests -> %d batches (sizes %s); %d retries; runtime %s"):format(
        b.calls or -1, b.batches or -1, json.encode(stats.batch_sizes or {}), r.retries or -1, tostring(stats.runtime)))
    check(stats.runtime == "ngx", "the runtime is ngx", stats.runtime)
    check(b.calls == total, "every request reached the batcher", b.calls)
    check(b.batches and b.batches < total, "fewer batches than requests", b.batches)
    local rows, calls, biggest = 0, 0, 0
    for size, count in pairs(stats.batch_sizes or {}) do
        size = tonumber(size)
        rows, calls = rows + size * count, calls + count
        if size > biggest then biggest = size end
    end
    check(rows == total and calls == b.batches, "the model saw every row once, one call per batch",
          rows .. " rows in " .. calls .. " calls")
    check(biggest > 1, "some batch held several requests", biggest)
    check((r.retries or 0) >= 1 and r.failures == 0, "injected failures were retried, none reached a caller",
          json.encode(r))
    check(l.rejected == 0 and l.running == 0 and l.queued == 0, "limit_jobs: nothing rejected, nothing left",
          json.encode(l))
    check(b.queued_calls == 0 and b.queued_rows == 0 and b.running_batches == 0 and b.waiting == 0,
          "batch gauges are back to 0", json.encode(b))
    local p = stats.pending or {}
    check(p.timers == 0 and p.ready == 0 and p.unreported == 0, "the ngx runtime holds nothing", json.encode(p))

    -- 5. Load shedding: two slots, no queue; three of five concurrent requests get 503.
    local statuses, bodies = {}, {}
    local slow = {}
    for i = 1, 5 do slow[i] = function() local res = get("/slow"); statuses[i], bodies[i] = res.status, res.body end end
    dike.gather(slow)
    local ok200, ok503 = 0, 0
    for i = 1, 5 do
        if statuses[i] == 200 and bodies[i] == '{"result":"done"}' then ok200 = ok200 + 1 end
        if statuses[i] == 503 and bodies[i] == '{"detail":"Too many concurrent requests","status":503,'
                                             .. '"title":"Service unavailable"}' then ok503 = ok503 + 1 end
    end
    check(ok200 == 2 and ok503 == 3, "limit_jobs sheds load: 2 x 200, 3 x 503 with a JSON body",
          table.concat(statuses, ",") .. " " .. tostring(bodies[1]))

    local bad = get("/predict?x=oops")
    check(bad.status == 400, "a bad x is a 400", bad.status)

    -- 7. User code that misbehaves does not stop dike (README: Errors, dike.batch):
    -- a task's error whose __tostring fails is reported (checked in the error log below); a
    -- batch whose queued argument table changed fails its callers with a dike.batch error,
    -- sent by its timer or by size; and dike's worker timer goes on serving the next request.
    for _, how in ipairs({ "raises", "nil" }) do
        local res = get("/unhandled?tostring=" .. how, 5)
        check(res.status == 200, "a task failing with an error whose __tostring " .. how .. ": answered",
              res.status .. " " .. res.body)
    end
    local CHANGED = '^dike%.batch: .-: argument 1 field "x" of a queued call changed before its batch was sent'
        .. " %(it had 1 rows, now nil%); argument tables belong to dike until the call returns$"
    for _, by in ipairs({ "timer", "size" }) do
        local res = get("/mutate?by=" .. by, 5)
        local body = res.status == 200 and json.decode(res.body) or {}
        local errs, n_ok = body.errors or {}, 0
        for _, e in ipairs(errs) do
            if e:match(CHANGED) and e == errs[1] then n_ok = n_ok + 1 end
        end
        local want = by == "size" and 3 or 2
        check(n_ok == want and #errs == want, ("a batch argument changed while queued, sent by %s: each of the %d"
              .. " callers gets the dike.batch error"):format(by, want), res.status .. " " .. res.body)
        local bs = body.stats or {}
        check(bs.queued_calls == 0 and bs.queued_rows == 0 and bs.running_batches == 0 and bs.waiting == 0
              and bs.batches == 0, "... and that batcher's gauges are 0, nothing was sent", json.encode(bs))
    end
    local t0 = dike.now()
    local after = get("/predict?x=5", 5)
    local elapsed = dike.now() - t0
    check(after.status == 200 and after.body == '{"x":5,"y":11}' and elapsed < 1,
          "then a batched request is served at once (dike's worker timer lives)",
          ("%s %s in %.3f s"):format(after.status, after.body, elapsed))
    local left = (json.decode(get("/stats").body) or {}).pending or {}
    check(left.timers == 0 and left.ready == 0 and left.unreported == 0, "the ngx runtime holds nothing after them",
          json.encode(left))
end)

-- 6. nginx logged no Lua error, alert or warning, but for the reports of section 7's two
-- unhandled errors, logged by the app's logger with the <table> wording.
local REPORT = "dike error: Unhandled error in task: <table> %(its __tostring failed: "
local problems, reports = {}, {}
for line in read_log():gmatch("[^\n]+") do
    if line:match("%[error%]") and line:match(REPORT) then
        reports[#reports + 1] = line:match(REPORT .. "(.*)$")
    elseif line:match("%[warn%]") or line:match("%[error%]") or line:match("%[crit%]")
        or line:match("%[alert%]") or line:match("%[emerg%]") then
        problems[#problems + 1] = line
    end
end
table.sort(reports)
check(#reports == 2 and reports[1] == "it returned nil, not a string)" and reports[2] == "x)",
      "both unhandled errors were reported, <table> (its __tostring failed: ...)", table.concat(reports, " | "))
check(#problems == 0, "nginx's error log holds no other warning or error", problems[1])
for i = 2, math.min(#problems, 5) do print("#   " .. problems[i]) end

print(("%d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
