-- The demo service (`make demo-service` drives it with wrk): HTTP/1.1 on 127.0.0.1.
--   luajit examples/service/main.lua [--port N] [--no-batch] [--fail-rate P] [...]
-- Prints "listening on http://127.0.0.1:PORT pid PID" first (stdout, flushed), then serves
-- until SIGINT/SIGTERM or --duration; then it stops accepting, finishes the requests in
-- flight, prints a summary line and the final /stats JSON, and exits 0.
-- Options (defaults in examples/service/app.lua):
--   --port N          0 = any free port (read it from the first line)
--   --no-batch        call the model once per request
--   --batch-size N --max-batch N --max-wait S      dike.batch options
--   --overhead S --per-row S --model-slots N        the simulated model
--   --limit N --queue N                             dike.limit_jobs in front (503 beyond)
--   --fail-rate P --attempts N --retry-delay S      injected failures and dike.retry
--   --outage-start S --outage-for S                 every model call fails for a while
--   --breaker --open-for S                          dike.circuit_breaker in front of the model
--   --timeout S                                     dike.timeout on each model attempt
--   --seed N --duration S --quiet
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
assert(loadfile(here .. "paths.lua"))(here)

local uv = require("luv")
local dike = require("dike")
local service = require("service.app")
local json = require("service.json")

local USAGE = "usage: main.lua [--port N] [--no-batch] [--batch-size N] [--max-batch N] [--max-wait S]"
    .. " [--overhead S] [--per-row S] [--model-slots N] [--limit N] [--queue N] [--fail-rate P]"
    .. " [--attempts N] [--retry-delay S] [--outage-start S] [--outage-for S] [--breaker] [--open-for S]"
    .. " [--timeout S] [--seed N] [--duration S] [--quiet]"

local FLAGS = { ["batch-size"] = "batch_size", ["max-batch"] = "max_batch", ["max-wait"] = "max_wait",
                overhead = "overhead", ["per-row"] = "per_row", ["model-slots"] = "model_slots",
                limit = "limit", queue = "queue", ["fail-rate"] = "fail_rate", attempts = "attempts",
                ["retry-delay"] = "retry_delay", seed = "seed", ["outage-start"] = "outage_start",
                ["outage-for"] = "outage_for", ["open-for"] = "open_for", timeout = "timeout" }

local function die(msg)
    io.stderr:write("main.lua: ", msg, "\n", USAGE, "\n")
    os.exit(2)
end

local port, duration, quiet = 0, nil, false
local opts = {}
local i = 1
while i <= #arg do
    local a = arg[i]
    local name = a:match("^%-%-(.+)$")
    if a == "--no-batch" then
        opts.batch = false
    elseif a == "--breaker" then
        opts.breaker = true
    elseif a == "--quiet" then
        quiet = true
    elseif a == "--help" or a == "-h" then
        print(USAGE)
        os.exit(0)
    elseif name == "port" or name == "duration" or FLAGS[name] then
        local v = tonumber(arg[i + 1])
        if v == nil then die(a .. " needs a number") end
        if name == "port" then port = v elseif name == "duration" then duration = v else opts[FLAGS[name]] = v end
        i = i + 1
    else
        die("unknown argument " .. a)
    end
    i = i + 1
end
if opts.limit and opts.limit < 0 then opts.limit = math.huge end

io.stdout:setvbuf("line")

local stop -- set inside the main task: ends the wait below
local signals, duration_timer = {}, nil
for _, sig in ipairs({ "sigint", "sigterm" }) do
    local h = uv.new_signal()
    h:start(sig, function() if stop then stop(sig) end end)
    signals[#signals + 1] = h
end

local ok, err = pcall(dike.run, function()
    local server, app = service.start(port, opts)
    if not server then error("cannot listen on 127.0.0.1:" .. port .. ": " .. tostring(app), 0) end
    local o = app.options
    print(("listening on http://127.0.0.1:%d pid %d (batching %s, limit %s, fail rate %g)"):format(
        server.port, uv.os_getpid(), o.batch and "on" or "off", tostring(o.limit), o.fail_rate))
    local why = dike.wrap(function(cb)
        stop = cb
        if duration then
            duration_timer = uv.new_timer()
            duration_timer:start(math.floor(duration * 1000), 0, function() cb("duration") end)
        end
    end)()
    stop = nil
    if not quiet then io.stderr:write("main.lua: ", why, ": shutting down\n") end
    server:close(5)
    local s = app.stats()
    print(service.summary(s))
    print(json.encode(s))
end)
if duration_timer then signals[#signals + 1] = duration_timer end
for _, h in ipairs(signals) do h:close() end
uv.run("nowait") -- let the closes finish
if not ok then
    io.stderr:write("main.lua: ", tostring(err), "\n")
    os.exit(1)
end
