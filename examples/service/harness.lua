--- What the service's drivers share (load.lua: `make demo-service`, soak.lua: `make soak`):
-- child processes ended by their pid (also when the driver fails or is stopped), the demo
-- service as a process, wrk with wrk_predict.lua and its figures, and the report's lines.
local uv = require("luv")
local dike = require("dike")

local M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
repeat -- "examples/service/../../examples/service/" (found through package.path) -> "examples/service/"
    local n
    here, n = here:gsub("[^/.][^/]*/%.%./", "", 1)
until n == 0
local children = {} -- pid -> process, while it runs

--- Parse the driver's command line (the global `arg`) into `opts`: `flags` maps "--name" to
--- {key, kind}, kind "number", "string" or "list" (comma-separated); the words after "--" are
--- the service's options. Returns those, or nil without "--". Exits 2 on a bad argument.
function M.parse_args(name, flags, opts)
    local i, service_args = 1, nil
    while i <= #arg do
        local a = arg[i]
        local flag = flags[a]
        if service_args then
            service_args[#service_args + 1] = a
        elseif a == "--" then
            service_args = {}
        else
            local v = arg[i + 1]
            if flag and v and flag[2] == "number" then
                v = tonumber(v)
            elseif flag and v and flag[2] == "list" then
                local list = {}
                for item in v:gmatch("[^,]+") do list[#list + 1] = item end
                v = list
            end
            if not (flag and v) then
                io.stderr:write(name, ": unknown argument, or a value missing: ", a, "\n")
                os.exit(2)
            end
            opts[flag[1]] = v
            i = i + 1
        end
        i = i + 1
    end
    return service_args
end

--- Start a child process (inside a dike task). Returns a process {pid, output, errors,
--- code, signal, wait()} or nil and an error. on_stdout(text so far) runs as output comes.
function M.start(cmd, args, on_stdout)
    local out, err = uv.new_pipe(false), uv.new_pipe(false)
    local proc = { output = {}, errors = {} }
    local exited = dike.wrap(function(cb) proc.on_exit = cb end)
    local handle, pid = uv.spawn(cmd, { args = args, stdio = { nil, out, err } }, function(code, signal)
        proc.code, proc.signal = code, signal
        children[proc.pid] = nil
        if proc.on_exit then proc.on_exit() end
    end)
    if not handle then
        out:close()
        err:close()
        return nil, pid
    end
    proc.handle, proc.pid = handle, pid
    children[pid] = proc
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
    --- Wait for the exit (at most `timeout` s if given: then nil); returns the exit code.
    function proc.wait(timeout)
        if proc.code == nil then
            local guard
            if timeout then
                guard = uv.new_timer()
                guard:start(math.floor(timeout * 1000), 0, function() proc.on_exit() end)
            end
            exited()
            if guard then guard:close() end
            if proc.code == nil then return nil end
        end
        if not handle:is_closing() then handle:close() end
        dike.sleep(0.01) -- let the pipes deliver their last bytes and close
        return proc.code
    end
    return proc
end

--- SIGKILL every child still running, by its pid (a driver's failure path).
function M.kill_all()
    for pid in pairs(children) do uv.kill(pid, "sigkill") end
end

--- Run `main` as the driver's dike task. On an error, or when the driver gets SIGINT/SIGTERM,
--- every child still running is killed by its pid and the driver exits 1 (with the message).
function M.run(name, main)
    local signals = {}
    for _, sig in ipairs({ "sigint", "sigterm", "sighup" }) do
        local h = uv.new_signal()
        h:start(sig, function()
            M.kill_all()
            io.stderr:write(name, ": ", sig, ": children killed\n")
            os.exit(1)
        end)
        signals[#signals + 1] = h
    end
    local ok, err = pcall(dike.run, function()
        local result = main()
        for _, h in ipairs(signals) do h:close() end
        return result
    end)
    if not ok then
        M.kill_all()
        io.stderr:write(name, ": ", tostring(err), "\n")
        os.exit(1)
    end
    return err
end

--- Start the demo service (main.lua with `args` after --port 0 --quiet) and wait for its
--- "listening on" line. `lifetime` (s): the service stops itself after that long, should
--- the driver die without ending it. Returns the process, with .port and .command.
function M.start_service(interp, args, lifetime)
    local argv = { here .. "main.lua", "--port", "0", "--quiet", "--duration", tostring(lifetime) }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    local port, signal_ready
    local service = assert(M.start(interp, argv, function(text)
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
    service.port = port
    service.command = interp .. " " .. table.concat(argv, " ")
    return service
end

--- The last JSON line the service printed (its final stats, after SIGTERM), or nil.
function M.final_stats(service)
    local json = require("service.json")
    local last
    for line in table.concat(service.output):gmatch("[^\n]+") do
        if line:sub(1, 1) == "{" then last = line end
    end
    if not last then return nil end
    local ok, stats = pcall(json.decode, last)
    return ok and stats or nil
end

--- Drive 127.0.0.1:port with wrk and wrk_predict.lua for `o.duration` s (o.threads,
--- o.connections). Returns the figures (wrk_predict.lua's "dike-wrk KEY VALUE" lines as
--- figures[KEY] = VALUE, or figures.error) and the wrk command line.
function M.wrk(port, o)
    local args = { "-t" .. o.threads, "-c" .. o.connections, "-d" .. o.duration .. "s", "--latency",
                   "-s", here .. "wrk_predict.lua", "http://127.0.0.1:" .. port }
    local command = "wrk " .. table.concat(args, " ")
    local wrk = M.start("wrk", args)
    local figures = {}
    if not wrk then
        figures.error = "wrk not found (scripts/deps.sh test installs it)"
        return figures, command
    end
    if not wrk.wait(o.duration + 30) then
        uv.kill(wrk.pid, "sigkill")
        wrk.wait()
        figures.error = "wrk did not end in time"
        return figures, command
    end
    for k, v in table.concat(wrk.output):gmatch("dike%-wrk (%S+) ([^\n]+)") do figures[k] = v end
    if not figures.requests then
        figures.error = "wrk exited " .. tostring(wrk.code) .. " without figures: "
            .. table.concat(wrk.errors) .. table.concat(wrk.output)
    end
    return figures, command
end

--- The status counts of wrk's figures: a sorted list "CODE x N" and a map code -> count.
function M.statuses(figures)
    local list, counts = {}, {}
    for k, v in pairs(figures) do
        local code = k:match("^status_(%d+)$")
        if code then
            list[#list + 1] = code .. " x " .. v
            counts[code] = tonumber(v)
        end
    end
    table.sort(list)
    return list, counts
end

-- %d: the bounds are powers of two computed with ^, floats on Lua 5.3+ ("1.0" in tostring).
local function bucket_label(lo, hi)
    if lo == hi then return ("%d"):format(lo) end
    return ("%d-%d"):format(lo, hi)
end

--- The batch-size histogram (GET /stats' batch_sizes) in power-of-two buckets, one line each.
function M.histogram(sizes)
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

--- The report's lines for wrk's figures and the service's stats (indented by three spaces).
function M.report_lines(figures, stats, duration)
    local f, s = figures, stats
    local lines = {}
    local function add(fmt, ...) lines[#lines + 1] = "   " .. fmt:format(...) end
    local statuses, counts = M.statuses(f)
    local seconds = tonumber(f.seconds) or duration
    add("requests     %s in %.2f s: %s req/s (%.1f/s answered 200)", f.requests, seconds, f.rps,
        (counts["200"] or 0) / seconds)
    add("latency      p50 %s ms   p90 %s ms   p99 %s ms   p99.9 %s ms   max %s ms",
        f.p50_ms, f.p90_ms, f.p99_ms, f["p99.9_ms"], f.max_ms)
    add("statuses     %s", #statuses > 0 and table.concat(statuses, ", ") or "none")
    add("errors       %s; wrong bodies %s", f.errors, f.wrong)
    local m, b, rt = s.model or {}, s.batch, s.retry or {}
    local batches = b and b.batches or (m.calls or 0) - (m.failures or 0)
    add("model        %d calls for %d rows: %d batches (mean %.1f rows); %d retries, %d requests failed",
        m.calls or 0, m.rows or 0, batches, batches > 0 and (m.rows or 0) / batches or 0,
        rt.retries or 0, rt.failures or 0)
    local rl = s.rate_limit
    if rl then
        add("rate limit   %d clients: %d requests admitted, %d refused (429 x %d, each with Retry-After)",
            rl.clients or 0, rl.admitted or 0, rl.rejected or 0, counts["429"] or 0)
    end
    for i, line in ipairs(M.histogram(s.batch_sizes or {})) do
        lines[#lines + 1] = (i == 1 and "   batch sizes  " or "                ") .. line
    end
    return lines
end

return M
