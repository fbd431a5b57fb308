-- The load script (`make demo-service`): start the demo service with batching on, then off,
-- drive each with wrk, and report req/s, latency percentiles, status counts and the
-- batch-size histogram (from the service's GET /stats).
--   luajit examples/service/load.lua [--duration S] [--connections N] [--threads N]
--                                    [--modes on,off] [-- SERVICE OPTIONS...]
-- Defaults: 5 s per mode, 64 connections, 2 threads; service options go to main.lua (e.g.
-- -- --fail-rate 0.05 --limit 32). Every process it starts is ended by its pid.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
assert(loadfile(here .. "paths.lua"))(here)

local uv = require("luv")
local dike = require("dike")
local client = require("service.client")
local json = require("service.json")

local interp = arg[-1] or "luajit"
local duration, connections, threads, modes = 5, 64, 2, { "on", "off" }
local service_args = { "--fail-rate", "0.01" }
do
    local i, extra = 1, nil
    while i <= #arg do
        local a = arg[i]
        if extra then
            extra[#extra + 1] = a
        elseif a == "--" then
            extra = {}
        elseif a == "--duration" then duration = tonumber(arg[i + 1]); i = i + 1
        elseif a == "--connections" then connections = tonumber(arg[i + 1]); i = i + 1
        elseif a == "--threads" then threads = tonumber(arg[i + 1]); i = i + 1
        elseif a == "--modes" then
            modes = {}
            for m in arg[i + 1]:gmatch("[^,]+") do modes[#modes + 1] = m end
            i = i + 1
        else
            io.stderr:write("load.lua: unknown argument ", a, "\n")
            os.exit(2)
        end
        i = i + 1
    end
    if extra then service_args = extra end
    if not (duration and connections and threads) then
        io.stderr:write("load.lua: --duration, --connections and --threads take numbers\n")
        os.exit(2)
    end
end

-- A child process: its pid, its output so far, and a way to wait for its exit.
local function start(cmd, args, on_stdout)
    local out, err = uv.new_pipe(false), uv.new_pipe(false)
    local proc = { output = {}, errors = {} }
    local exited = dike.wrap(function(cb) proc.on_exit = cb end)
    local handle, pid = uv.spawn(cmd, { args = args, stdio = { nil, out, err } }, function(code, signal)
        proc.code, proc.signal = code, signal
        if proc.on_exit then proc.on_exit() end
    end)
    if not handle then
        out:close()
        err:close()
        return nil, pid
    end
    proc.handle, proc.pid = handle, pid
    out:read_start(function(_, data)
        if data then
            proc.output[#proc.output + 1] = data
            if on_stdout then on_stdout(table.concat(proc.output)) end
        else
            out:close()
        end
    end)
    err:read_start(function(_, data)
        if data then proc.errors[#proc.errors + 1] = data else err:close() end
    end)
    function proc.wait()
        if proc.code == nil then exited() end
        handle:close()
        dike.sleep(0.01) -- let the pipes deliver their last bytes and close
        return proc.code
    end
    return proc
end

local function bucket_label(lo, hi)
    if lo == hi then return tostring(lo) end
    return lo .. "-" .. hi
end

local function histogram(sizes)
    local buckets, max_count = {}, 0
    for size, n in pairs(sizes) do
        size = tonumber(size)
        local b = 0
        while 2 ^ (b + 1) <= size do b = b + 1 end
        buckets[b] = (buckets[b] or 0) + n
    end
    local top = 0
    for b, n in pairs(buckets) do
        if b > top then top = b end
        if n > max_count then max_count = n end
    end
    local lines = {}
    for b = 0, top do
        local n = buckets[b] or 0
        local bar = max_count > 0 and string.rep("#", math.floor(40 * n / max_count + 0.5)) or ""
        lines[#lines + 1] = ("%-8s|%-40s %d"):format(bucket_label(2 ^ b, 2 ^ (b + 1) - 1), bar, n)
    end
    return lines
end

local function run_mode(mode)
    -- --duration: should this script die before it stops the service, the service still ends.
    local args = { here .. "main.lua", "--port", "0", "--quiet", "--duration", tostring(duration + 60) }
    if mode == "off" then args[#args + 1] = "--no-batch" end
    for _, a in ipairs(service_args) do args[#args + 1] = a end
    local port
    local signal_ready
    local service = assert(start(interp, args, function(text)
        local p = text:match("listening on http://127%.0%.0%.1:(%d+)")
        if p and not port then
            port = tonumber(p)
            if signal_ready then signal_ready() end
        end
    end))
    if not port then -- wait for the "listening on" line (10 s at most)
        local wait = dike.wrap(function(cb) signal_ready = cb end)
        local guard = uv.new_timer()
        guard:start(10000, 0, function() signal_ready() end)
        wait()
        guard:close()
    end
    if not port then
        uv.kill(service.pid, "sigkill")
        service.wait()
        error("the service did not start: " .. table.concat(service.errors), 0)
    end
    local wrk_args = { "-t" .. threads, "-c" .. connections, "-d" .. duration .. "s", "--latency",
                       "-s", here .. "wrk_predict.lua", "http://127.0.0.1:" .. port }
    local wrk = start("wrk", wrk_args)
    local figures = {}
    if not wrk then
        figures.error = "wrk not found (scripts/deps.sh test installs it)"
    else
        local guard = uv.new_timer()
        guard:start(math.floor((duration + 30) * 1000), 0, function() uv.kill(wrk.pid, "sigkill") end)
        wrk.wait()
        guard:close()
        for k, v in table.concat(wrk.output):gmatch("dike%-wrk (%S+) ([^\n]+)") do figures[k] = v end
    end
    local res = client.get("127.0.0.1", port, "/stats", 10)
    local stats = res and json.decode(res.body) or {}
    uv.kill(service.pid, "sigterm")
    local code = service.wait()
    return { mode = mode, figures = figures, stats = stats, service_code = code, port = port,
             command = interp .. " " .. table.concat(args, " "), wrk = "wrk " .. table.concat(wrk_args, " ") }
end

local function report(r)
    local f, s = r.figures, r.stats
    print(("== batching %s"):format(r.mode))
    print("   service: " .. r.command)
    print("   load:    " .. r.wrk)
    if f.error then
        print("   " .. f.error)
        return
    end
    local statuses, ok = {}, 0
    for k, v in pairs(f) do
        local code = k:match("^status_(%d+)$")
        if code then
            statuses[#statuses + 1] = code .. " x " .. v
            if code == "200" then ok = tonumber(v) end
        end
    end
    table.sort(statuses)
    local seconds = tonumber(f.seconds) or duration
    print(("   requests     %s in %.2f s: %s req/s (%.1f/s answered 200)"):format(
        f.requests, seconds, f.rps, ok / seconds))
    print(("   latency      p50 %s ms   p90 %s ms   p99 %s ms   p99.9 %s ms   max %s ms"):format(
        f.p50_ms, f.p90_ms, f.p99_ms, f["p99.9_ms"], f.max_ms))
    print(("   statuses     %s"):format(#statuses > 0 and table.concat(statuses, ", ") or "none"))
    print(("   errors       %s; wrong bodies %s"):format(f.errors, f.wrong))
    local m, b, rt = s.model or {}, s.batch, s.retry or {}
    local batches = b and b.batches or (m.calls or 0) - (m.failures or 0)
    print(("   model        %d calls for %d rows: %d batches (mean %.1f rows); %d retries, %d requests failed"):format(
        m.calls or 0, m.rows or 0, batches, batches > 0 and (m.rows or 0) / batches or 0,
        rt.retries or 0, rt.failures or 0))
    local lines = histogram(s.batch_sizes or {})
    for i, line in ipairs(lines) do print((i == 1 and "   batch sizes  " or "                ") .. line) end
    print(("   service exit %s"):format(tostring(r.service_code)))
end

local ok, err = pcall(dike.run, function()
    local results = {}
    for _, mode in ipairs(modes) do
        local r = run_mode(mode)
        results[#results + 1] = r
        report(r)
        print()
    end
    if #results == 2 then
        -- Compare answers (200s) per second: a shed request (503) is cheap and fast.
        local a, b = results[1].figures, results[2].figures
        local function ok_rate(f) return (tonumber(f.status_200) or 0) / (tonumber(f.seconds) or duration) end
        local ra, rb = ok_rate(a), ok_rate(b)
        if a.rps and b.rps and rb > 0 then
            print(("batching %s vs %s: %.1fx the 200 responses per second (%.1f vs %.1f/s);"
                .. " p99 latency %s ms vs %s ms"):format(results[1].mode, results[2].mode, ra / rb, ra, rb,
                                                          a.p99_ms, b.p99_ms))
        end
    end
end)
if not ok then
    io.stderr:write("load.lua: ", tostring(err), "\n")
    os.exit(1)
end
