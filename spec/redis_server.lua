-- A private redis-server for the specs and the multi-process suites (not a spec itself):
-- Debian's redis-server (scripts/deps.sh test), in a temporary directory, listening on a unix
-- socket there (or a free loopback port), with no persistence; stopped by its pid.
--   local server = require("spec.redis_server").start{ tcp = false, password = nil }
--   server.path / server.port, server:cli("DBSIZE"), server:stop(), server:start()
local M = {}

-- Every command runs without the sanitizer runtime that the ASan suites preload into the
-- interpreters (and that every child would inherit: mktemp, redis-server... abort under it).
local CLEAN_ENV = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS "

local function quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function clean(cmd)
    return "exec " .. CLEAN_ENV .. "sh -c " .. quote(cmd)
end

local function sh(cmd)
    local p = assert(io.popen(clean(cmd .. " 2>&1")))
    local out = p:read("*a")
    p:close()
    return (out:gsub("%s+$", ""))
end

local function sleep(s)
    os.execute(clean("sleep " .. s))
end

local function read(path)
    local f = io.open(path, "r")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
end

-- Whether the process runs. A daemonized server's parent is pid 1, which may take its time to
-- reap it (a container's init): an exited process that is still a zombie counts as gone.
local function alive(pid)
    local stat = read("/proc/" .. pid .. "/stat")
    if not stat then return false end
    return stat:match("^%d+ %b() (%a)") ~= "Z"
end

-- A port nobody listens on right now (another process may take it before redis does: start
-- tries again).
local function free_port()
    local uv = require("luv")
    local s = uv.new_tcp()
    s:bind("127.0.0.1", 0)
    local port = s:getsockname().port
    s:close()
    uv.run("nowait")
    return port
end

local Server = {}
Server.__index = Server

--- Start (or start again, with the same socket or port) the server.
function Server:start()
    for _ = 1, 5 do
        local listen
        if self.tcp then
            self.port = self.port or free_port()
            listen = "--port " .. self.port .. " --bind 127.0.0.1"
        else
            listen = "--port 0 --unixsocket " .. self.path .. " --unixsocketperm 700"
        end
        os.remove(self.dir .. "/redis.pid")
        local cmd = table.concat({
            "redis-server", listen, "--daemonize yes", "--pidfile " .. self.dir .. "/redis.pid",
            "--dir " .. self.dir, "--logfile " .. self.dir .. "/redis.log", "--save ''", "--appendonly no",
            self.password and ("--requirepass " .. self.password) or "",
        }, " ")
        sh(cmd)
        for _ = 1, 100 do
            local pid = tonumber(read(self.dir .. "/redis.pid") or "")
            if pid and self:ping() then
                self.pid = pid
                return self
            end
            sleep(0.02)
        end
        local log = read(self.dir .. "/redis.log") or ""
        if not (self.tcp and log:find("Address already in use", 1, true)) then
            error("redis-server did not start: " .. log:sub(-2000), 2)
        end
        self.port = nil -- taken meanwhile: another port
    end
    error("redis-server did not start (no free port)", 2)
end

--- redis-cli against this server; its output.
function Server:cli(args)
    local where = self.tcp and ("-h 127.0.0.1 -p " .. self.port) or ("-s " .. self.path)
    local auth = self.password and (" --no-auth-warning -a " .. self.password) or ""
    return sh("redis-cli " .. where .. auth .. " " .. args)
end

function Server:ping()
    return self:cli("PING") == "PONG"
end

--- Stop it (SIGTERM by pid, then SIGKILL after 3 s); returns once it is gone.
function Server:stop()
    local pid = self.pid
    if not pid then return end
    self.pid = nil
    os.execute(clean("kill -TERM " .. pid .. " 2>/dev/null"))
    for i = 1, 150 do
        if not alive(pid) then return end
        if i == 150 then os.execute(clean("kill -KILL " .. pid .. " 2>/dev/null")) end
        sleep(0.02)
    end
end

--- Stop it and remove its directory.
function Server:destroy()
    self:stop()
    os.execute(clean("rm -rf " .. quote(self.dir)))
end

--- The options of dike.store.redis{...} that reach it.
function Server:store_options(extra)
    local o = {}
    if self.tcp then o.host, o.port = "127.0.0.1", self.port else o.path = self.path end
    o.password = self.password
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
end

---@param opts? {tcp?: boolean, password?: string}
function M.start(opts)
    opts = opts or {}
    local dir = sh("mktemp -d " .. (os.getenv("TMPDIR") or "/tmp") .. "/dike-redis.XXXXXX")
    local self = setmetatable({ dir = dir, tcp = opts.tcp, password = opts.password,
                                path = dir .. "/redis.sock" }, Server)
    return self:start()
end

--- Whether redis-server is installed.
function M.available()
    return sh("command -v redis-server") ~= ""
end

return M
