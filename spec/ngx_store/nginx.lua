-- A private nginx (four workers) serving spec/ngx_store/nginx.conf.in, for the shared-store
-- suite (spec/ngx_store/run.lua) and its benchmark (bench/lua/ngx_store.lua). Not a spec.
--   local nginx = require("spec.ngx_store.nginx")
--   local port = nginx.start{ build = "build", redis = "/tmp/.../redis.sock", limit = 10 }
--   ... nginx.prefix (its directory: logs/error.log) ...
--   nginx.stop()                          -- by its pid: QUIT, TERM, then KILL with its workers
-- Run from the repository root (the configuration's paths point into it).
local uv = require("luv")

local M = { prefix = nil, proc = nil, pid = nil, exited = false, port = nil }

local HOST = "127.0.0.1"

local function sh(cmd)
    local p = assert(io.popen(cmd .. " 2>&1"))
    local out = p:read("*a")
    p:close()
    return (out:gsub("%s+$", ""))
end

local function read(path)
    local f = io.open(path, "rb")
    if not f then return "" end
    local s = f:read("*a")
    f:close()
    return s
end

-- Run the loop until cond() or `seconds` pass (outside any loop run).
local function wait_until(cond, seconds)
    local t = uv.new_timer()
    local expired = false
    t:start(math.floor(seconds * 1000), 0, function() expired = true end)
    while not cond() and not expired do uv.run("once") end
    t:close()
    uv.run("nowait")
    return cond()
end

local function free_port()
    local s = uv.new_tcp()
    s:bind(HOST, 0)
    local port = s:getsockname().port
    s:close()
    uv.run("nowait")
    return port
end

local function listening(port)
    local done, ok = false, false
    local s = uv.new_tcp()
    s:connect(HOST, port, function(err) ok = err == nil; done = true end)
    wait_until(function() return done end, 1)
    s:close()
    uv.run("nowait")
    return ok
end

--- Start nginx; returns its port. opts: build (the cpath root), redis (the server's socket),
--- limit (the test limiters' limit).
function M.start(opts)
    local root = sh("pwd")
    local cpath = opts.build:sub(1, 1) == "/" and opts.build or (root .. "/" .. opts.build)
    local prefix = sh("mktemp -d " .. (os.getenv("TMPDIR") or "/tmp") .. "/dike-ngx-store.XXXXXX")
    M.prefix = prefix
    os.execute("mkdir -p " .. prefix .. "/conf " .. prefix .. "/logs " .. prefix .. "/tmp")
    local template = read(root .. "/spec/ngx_store/nginx.conf.in")
    -- As root, nginx would run its workers as "nobody", who may not read this checkout.
    local user = sh("id -u") == "0" and "user root;" or ""
    for _ = 1, 3 do
        local port = free_port()
        local conf = template:gsub("@(%u+)@", { ROOT = root, CPATH = cpath, PORT = tostring(port), USER = user,
                                                 REDIS = opts.redis, LIMIT = tostring(opts.limit or 10) })
        local f = assert(io.open(prefix .. "/conf/nginx.conf", "wb"))
        f:write(conf)
        f:close()
        M.exited = false
        local handle, pid = uv.spawn("nginx", { args = { "-p", prefix, "-c", "conf/nginx.conf", "-g", "daemon off;" } },
            function() M.exited = true end)
        assert(handle, pid)
        M.proc, M.pid, M.port = handle, pid, port
        for _ = 1, 200 do -- 10 s
            if M.exited then break end
            if listening(port) then return port end
            wait_until(function() return M.exited end, 0.05)
        end
        if not M.exited then uv.process_kill(handle, "sigkill") end
        wait_until(function() return M.exited end, 5)
        handle:close()
        M.proc = nil
        if not read(prefix .. "/logs/error.log"):find("Address already in use", 1, true) then break end
    end
    error("nginx did not start:\n" .. read(prefix .. "/logs/error.log"))
end

--- Stop nginx (QUIT, then TERM, then KILL of the master and its workers) and remove its prefix.
function M.stop()
    if M.proc then
        local pid = M.pid
        local workers = read("/proc/" .. pid .. "/task/" .. pid .. "/children")
        for _, sig in ipairs({ "sigquit", "sigterm" }) do
            if M.exited then break end
            uv.process_kill(M.proc, sig)
            wait_until(function() return M.exited end, 3)
        end
        if not M.exited then
            for w in workers:gmatch("%d+") do uv.kill(tonumber(w), "sigkill") end
            uv.process_kill(M.proc, "sigkill")
            wait_until(function() return M.exited end, 3)
        end
        M.proc:close()
        uv.run("nowait")
        M.proc = nil
    end
    if M.prefix then
        os.execute("rm -rf '" .. M.prefix .. "'")
        M.prefix = nil
    end
end

return M
