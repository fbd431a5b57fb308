--- dike.store.redis{...}: limits and breakers shared through a Redis server (or one that
-- speaks its protocol and runs Lua scripts), by every process and host that reaches it.
-- The interface the tools use is described in store/init.lua; this file implements it with
-- the scripts of store/scripts.lua, over store/client_luv.lua (luv, Neovim) or
-- store/client_ngx.lua (lua-resty-redis, inside nginx).
--
-- Outages. Any failed operation (refused connection, no reply within `timeout`, an error
-- reply) marks the store down: one warning is logged, and from then on operations fail at
-- once without touching the network (the tools apply their on_failure policy) while a probe
-- PINGs the server every RECHECK seconds. The first answer marks it up again (one "info"
-- line), and sharing resumes. Slots whose release could not be sent are remembered (up to
-- MAX_ORPHANS) and released as soon as the server answers again; the rest expire with their
-- lease.
--
-- Scripts go by EVALSHA. The first use of a script in a process sends it whole (EVAL) and
-- learns its SHA1 with a SCRIPT LOAD pipelined behind it; a NOSCRIPT answer (a restarted or
-- flushed server) sends it whole again, within the same deadline.
local rt = require("dike.runtime")
local options = require("dike.options")
local log = require("dike.log")
local stats = require("dike.stats")
local scripts = require("dike.store.scripts")

local setmetatable, tostring, tonumber, type, format, sub, floor, huge =
    setmetatable, tostring, tonumber, type, string.format, string.sub, math.floor, math.huge

local M = {}

local FNAME = "dike.store.redis"
local OPTIONS = { host = true, port = true, path = true, username = true, password = true, db = true,
                  prefix = true, timeout = true, on_failure = true, lease = true, poll = true }
local POLICIES = { ["local"] = true, open = true, closed = true }

-- Seconds between two probes of a store that is down.
local RECHECK = 0.5
-- Slot releases kept for a store that is down (beyond, their leases expire on their own).
local MAX_ORPHANS = 10000

local Store = {}
Store.__index = Store
M.Store = Store

local instances = 0

-- This process's pid (an nginx worker's inside nginx) and host name.
local function whoami()
    local ngx = rawget(_G, "ngx")
    if type(ngx) == "table" and ngx.worker and ngx.worker.pid then
        return ngx.worker.pid, "ngx"
    end
    local ok, uv = pcall(function() return require("dike.runtime.luv").find_uv() end)
    if ok and uv and uv.os_getpid then
        return uv.os_getpid, uv.os_gethostname and uv.os_gethostname() or "?"
    end
    return function() return 0 end, "?"
end

local function in_nginx()
    local ok, ngx_runtime = pcall(require, "dike.runtime.ngx")
    return ok and ngx_runtime.available()
end

--- A Redis store. See README "Sharing limits" for the options.
---@param opts? {host?: string, port?: integer, path?: string, username?: string, password?: string, db?: integer, prefix?: string, timeout?: number, on_failure?: string, lease?: number, poll?: number}
function M.new(opts)
    opts = options.table(FNAME, opts, OPTIONS, true)
    local path = options.string(FNAME, opts, "path")
    if path and (opts.host ~= nil or opts.port ~= nil) then
        error(FNAME .. ": give path (a unix socket) or host and port, not both", 3)
    end
    local host = options.string(FNAME, opts, "host") or "127.0.0.1"
    local port = options.count(FNAME, opts, "port", 1, false, 6379)
    if port > 65535 then error(FNAME .. ": port must be an integer in 1..65535, got " .. port, 3) end
    local username = options.string(FNAME, opts, "username")
    local password = options.string(FNAME, opts, "password")
    if username and not password then error(FNAME .. ": username needs a password", 3) end
    local self = setmetatable({
        kind = "redis",
        prefix = options.string(FNAME, opts, "prefix") or "dike:",
        timeout = options.number(FNAME, opts, "timeout", true, false, 0.1),
        on_failure = options.choice(FNAME, opts, "on_failure", POLICIES, "local", '"local", "open" or "closed"'),
        lease = options.number(FNAME, opts, "lease", true, false, 30),
        poll = options.number(FNAME, opts, "poll", true, false, 0.01),
        recheck = RECHECK,
        down = false, down_since = nil, outages = 0, errors = 0, closed = false,
        orphans = {}, norphans = 0, probe_timer = nil, probing = false,
        scripts = {}, seq = 0,
    }, Store)
    self.label = FNAME .. " " .. (path or (host .. ":" .. port))
    local cfg = { host = host, port = port, path = path, username = username, password = password,
                  db = options.count(FNAME, opts, "db", 0, false, 0), timeout = self.timeout,
                  label = self.label }
    self.client = (in_nginx() and require("dike.store.client_ngx") or require("dike.store.client_luv")).new(cfg)
    instances = instances + 1
    self.instance = instances
    self.getpid, self.host = whoami()
    for name, body in pairs(scripts) do
        self.scripts[name] = { name = name, body = body, sha = nil, loading = false }
    end
    stats.register(self, self)
    return self
end

--- Counters: available, outages, errors (failed operations), orphans (releases waiting for the
--- server), commands (sent since the store was made), connections (made).
function Store:snapshot()
    return { available = not self.down, outages = self.outages, errors = self.errors,
             orphans = self.norphans, commands = self.client.sent, connections = self.client.connects }
end

--- Whether operations are tried (false while the store is down).
function Store:available()
    return not self.down
end

--- A new holder id, unique across processes and hosts: host, pid, a time and this store's
--- number make the prefix. It is made again when the pid changes: a store made before a fork
--- (nginx's init_by_lua runs in the master) must not give every worker the same ids.
function Store:new_id()
    local pid = self.getpid()
    if pid ~= self.pid then
        self.pid, self.seq = pid, 0
        self.id_prefix = format("%s:%d:%x:%d:", self.host, pid, floor(rt.now() * 1e6) % 0x7fffffff, self.instance)
    end
    local seq = self.seq + 1
    self.seq = seq
    return self.id_prefix .. seq
end

--- The key of `name`'s `what`.
function Store:key(name, what)
    return self.prefix .. "{" .. name .. "}:" .. what
end

---------------------------------------------------------------- outages

local probe

local function flush_orphans(self)
    local orphans = self.orphans
    self.orphans, self.norphans = {}, 0
    for key, ids in pairs(orphans) do
        local list, n = { "ZREM", key }, 2
        for i = 1, #ids do n = n + 1; list[n] = ids[i] end
        self.client:send(list, n, nil, nil)
    end
end

local function probe_done(self, reply)
    self.probing = false
    if self.closed then return end
    if reply == nil then
        self.probe_timer = rt.timer(RECHECK, probe, self)
        return
    end
    local seconds = rt.now() - self.down_since
    self.down, self.down_since = false, nil
    log.log("info", format("%s: answers again after %.3gs; sharing resumes", self.label, seconds))
    flush_orphans(self)
end

probe = function(self)
    self.probe_timer = nil
    if self.closed then return end
    self.probing = true
    self.client:send({ "PING" }, 1, probe_done, self)
end

--- An operation failed: count it; the first failure of an outage logs and starts the probe.
function Store:failed(message)
    self.errors = self.errors + 1
    if self.down or self.closed then return end
    self.down, self.down_since = true, rt.now()
    self.outages = self.outages + 1
    message = tostring(message)
    if sub(message, 1, #self.label) ~= self.label then message = self.label .. ": " .. message end
    log.log("warning", message .. "; limiters and breakers sharing it use their on_failure policy until it"
        .. " answers again")
    self.probe_timer = rt.timer(RECHECK, probe, self)
end

--- Remember a release that could not be sent.
function Store:orphan(key, id)
    if self.norphans >= MAX_ORPHANS then return end
    local ids = self.orphans[key]
    if not ids then
        ids = {}
        self.orphans[key] = ids
    end
    ids[#ids + 1] = id
    self.norphans = self.norphans + 1
end

--- Close the connection and stop probing; later operations fail.
function Store:close()
    self.closed = true
    self.down = true
    if self.probe_timer then
        rt.cancel_timer(self.probe_timer)
        self.probe_timer = nil
    end
    self.client:close()
end

---------------------------------------------------------------- scripts

local function learn_sha(script, sha)
    script.loading = false
    if type(sha) == "string" then script.sha = sha end
end

-- Fill in list[1], list[2]: EVALSHA and the SHA1 when known, else EVAL and the body (and a
-- SCRIPT LOAD goes out behind it to learn the SHA1).
local function set_eval(self, script, list)
    if script.sha then
        list[1], list[2] = "EVALSHA", script.sha
        return
    end
    list[1], list[2] = "EVAL", script.body
    if not script.loading then
        script.loading = true
        self.client:send({ "SCRIPT", "LOAD", script.body }, 3, learn_sha, script)
    end
end

local function noscript(err)
    return type(err) == "string" and sub(err, 1, 8) == "NOSCRIPT"
end

--- Run a script and wait for its reply (in a coroutine). `list` is the command with its first
--- two places left for the store: {_, _, nkeys, keys..., args...}, `n` its length. Returns the
--- reply, or nil, message, kind ("reply", "io", or "down": not tried, the store is down).
--- If the caller is cancelled meanwhile, orphan(orphan_arg, reply) gets the reply.
function Store:eval(fname, script_name, list, n, orphan, orphan_arg)
    if self.down then return nil, self.label .. ": unavailable", "down" end
    local script = self.scripts[script_name]
    set_eval(self, script, list)
    local deadline = rt.now() + self.timeout
    local res, err, kind = self.client:call(list, n, fname, orphan, orphan_arg, deadline)
    if res == nil and noscript(err) then
        script.sha = nil
        list[1], list[2] = "EVAL", script.body
        res, err, kind = self.client:call(list, n, fname, orphan, orphan_arg, deadline)
    end
    if res == nil then self:failed(err) end
    return res, err, kind
end

-- An asynchronous script call (its record is kept for a NOSCRIPT resend).
local function async_done(req, res, err)
    local self = req.store
    if res == nil and noscript(err) and not req.resent then
        req.resent = true
        req.script.sha = nil
        req.list[1], req.list[2] = "EVAL", req.script.body
        self.client:send(req.list, req.n, async_done, req)
        return
    end
    if res == nil then self:failed(err) end
    local cb = req.cb
    if cb then cb(req.a, res, err) end
end

--- Run a script without waiting (`list` and `n` as for eval); cb(a, reply) or cb(a, nil,
--- message) runs later, from the loop (cb may be nil). Returns false, and never calls cb,
--- when the store is down.
function Store:eval_async(script_name, list, n, cb, a)
    if self.down then return false end
    local script = self.scripts[script_name]
    set_eval(self, script, list)
    self.client:send(list, n, async_done, { store = self, script = script, list = list, n = n, cb = cb, a = a })
    return true
end

--- Send a plain command without waiting; a failure counts (and may mark the store down).
--- Returns false when the store is down.
function Store:send(list, n, cb, a)
    if self.down then return false end
    self.client:send(list, n, async_done, { store = self, list = list, n = n, cb = cb, a = a })
    return true
end

---------------------------------------------------------------- limit_jobs

local Jobs = {}
Jobs.__index = Jobs

--- The shared slots of the limiter `name` (see store/init.lua).
---@param name string
---@param limit integer
---@param lease? number seconds (default: the store's)
function Store:jobs(name, limit, lease)
    lease = lease or self.lease
    -- A waiter that stops refreshing its place (its process died) leaves after this long.
    local wait = math.min(lease, math.max(0.5, 20 * self.poll))
    return setmetatable({
        store = self, name = name, limit = limit, lease = lease,
        lease_ms = floor(lease * 1000 + 0.5), wait_ms = floor(wait * 1000 + 0.5),
        h = self:key(name, "lj:h"), w = self:key(name, "lj:w"), x = self:key(name, "lj:x"),
        t = self:key(name, "lj:t"),
    }, Jobs)
end

local function jobs_list(J, wait_ms, release_id, extra)
    return { false, false, 4, J.h, J.w, J.x, J.t, J.limit, J.lease_ms, wait_ms, release_id, extra }
end

-- The caller of acquire left while the reply was on its way: undo what the reply did.
local function acquire_left(o, res)
    if type(res) ~= "table" then return end
    local J = o.J
    if (tonumber(res[1]) or 0) > 0 then
        J:release(o.id)
    elseif o.queue then
        J:unwait({ o.id }, 1)
    end
end

--- Try to take a slot for `id` (one round trip; waits, in a coroutine). queue: if none is
--- free, register `id` as a waiter. Returns true (it holds a slot), false (it does not), or
--- nil, message, kind.
function Jobs:acquire(id, queue, fname)
    local res, err, kind = self.store:eval(fname, "jobs", jobs_list(self, queue and self.wait_ms or 0, "", id), 12,
        acquire_left, { J = self, id = id, queue = queue })
    if res == nil then return nil, err, kind end
    return (tonumber(res[1]) or 0) > 0
end

local function grant_done(req, res, err)
    if res == nil then
        if req.release_id ~= "" then req.J.store:orphan(req.J.h, req.release_id) end
        return req.cb(req.a, nil, err)
    end
    return req.cb(req.a, tonumber(res[1]) or 0)
end

--- Release `release_id` ("" for none), then grant slots to ids[1..n] (this process's waiting
--- callers, in their order) and register those not granted as waiters. cb(a, granted): the
--- first `granted` ids hold a slot; cb(a, nil, message) on failure. Returns false (cb not
--- called) when the store is down.
function Jobs:grant(release_id, ids, n, cb, a)
    local list = jobs_list(self, self.wait_ms, release_id, ids[1])
    for i = 2, n do list[11 + i] = ids[i] end
    return self.store:eval_async("jobs", list, 11 + n, grant_done,
        { cb = cb, a = a, J = self, release_id = release_id })
end

local function release_done(o, res, err)
    if res == nil then
        o.J.store:orphan(o.J.h, o.id)
        if o.cb then o.cb(o.a, nil, err) end
    end
end

--- Release the slot of `id` (without waiting). When the store is down, or the release fails,
--- it is sent once the store answers again; a failure (not "down") calls on_error(a, nil, err).
function Jobs:release(id, on_error, a)
    local store = self.store
    if not store:send({ "ZREM", self.h, id }, 3, release_done, { J = self, id = id, cb = on_error, a = a }) then
        store:orphan(self.h, id)
    end
end

--- Renew the leases of ids[1..n] (without waiting); cb(a, lost) with the number of leases
--- that had expired (they count again), or cb(a, nil, message). False when down.
function Jobs:renew(ids, n, cb, a)
    local list = { false, false, 1, self.h, self.lease_ms }
    for i = 1, n do list[5 + i] = ids[i] end
    return self.store:eval_async("renew", list, 5 + n, cb, a)
end

--- ids[1..n] wait no longer (cancelled, timed out); without waiting. cb(a, n | nil, err)
--- (cb may be nil). False when down (their places expire on their own).
function Jobs:unwait(ids, n, cb, a)
    local list = { false, false, 2, self.w, self.x }
    for i = 1, n do list[5 + i] = ids[i] end
    return self.store:eval_async("unwait", list, 5 + n, cb, a)
end

--- Holders and waiters now, across processes (waits, in a coroutine): holders, waiters or
--- nil, message, kind.
function Jobs:count(fname)
    local res, err, kind = self.store:eval(fname or "dike.store.redis: count", "count",
        { false, false, 4, self.h, self.w, self.x, self.t }, 7)
    if res == nil then return nil, err, kind end
    return tonumber(res[1]), tonumber(res[2])
end

---------------------------------------------------------------- rate_limit

local Rate = {}
Rate.__index = Rate

--- The shared GCRA state of the rate limiter `name` (see store/init.lua).
function Store:rate(name)
    return setmetatable({ store = self, name = name, key = self:key(name, "rl"), T = nil, T_arg = nil,
                          burst = nil, burst_arg = nil }, Rate)
end

-- A number as the script reads it back exactly: lua-resty-redis sends numbers with tostring
-- (14 digits), so fractions go as %.17g text.
local function exact(v)
    if v == floor(v) and v >= -2 ^ 53 and v <= 2 ^ 53 then return v end
    return format("%.17g", v)
end

--- One GCRA step on the server (waits, in a coroutine): T = per / rate seconds per unit,
--- burst and cost in units, max_wait in seconds (math.huge: no bound). Returns true, wait
--- (admitted; its turn is `wait` seconds from now, 0 = at once), false, retry_after (not
--- admitted, nothing changed), or nil, message, kind.
function Rate:acquire(T, burst, cost, max_wait, fname)
    if T ~= self.T then self.T, self.T_arg = T, exact(T) end
    if burst ~= self.burst then self.burst, self.burst_arg = burst, exact(burst) end
    local res, err, kind = self.store:eval(fname or "dike.rate_limit", "gcra",
        { false, false, 1, self.key, self.T_arg, self.burst_arg, exact(cost),
          max_wait == huge and -1 or exact(max_wait) }, 8)
    if res == nil then return nil, err, kind end
    return tonumber(res[1]) == 1, tonumber(res[2])
end

---------------------------------------------------------------- circuit_breaker

local Breaker = {}
Breaker.__index = Breaker

local CONF = { "failure_rate", "minimum_calls", "window", "window_seconds", "slow_call_rate", "open_for",
               "open_backoff", "max_open_for", "half_open_calls" }

--- The shared state of the breaker `name` (see store/init.lua for `conf`).
function Store:breaker(name, conf)
    local args = {}
    for i, k in ipairs(CONF) do
        local v = conf[k]
        args[i] = v == nil and "" or exact(v)
    end
    return setmetatable({ store = self, name = name, key = self:key(name, "cb"), conf = args }, Breaker)
end

local function breaker_list(B, op, a, b, c, d)
    local conf = B.conf
    return { false, false, 1, B.key, op, conf[1], conf[2], conf[3], conf[4], conf[5], conf[6], conf[7],
             conf[8], conf[9], a, b, c, d }
end

local function retry_after(s)
    local v = tonumber(s)
    if v and v < 0 then return huge end
    return v
end

local function changed_of(res)
    local changed = res[2]
    if changed == "" then return nil end
    return changed
end

-- record's reply: state, changed, reason, rate, n, the state before (reason, rate, n nil when
-- nothing opened it).
local function record_reply(res)
    local reason = res[3]
    if reason == "" then return res[1], changed_of(res), nil, nil, nil, res[7] end
    return res[1], changed_of(res), reason, tonumber(res[4]), tonumber(res[5]), res[7]
end

-- The caller of admit left while the reply was on its way: a trial place it was given goes
-- back at once (else it would be kept until the half-open period starts afresh).
local function admit_left(B, res)
    if type(res) == "table" and (res[5] == 1 or res[5] == "1") then B:release_trial_async(tonumber(res[6])) end
end

--- Admit a call? Returns allowed, state, retry_after, changed, trial, period, the state before
--- (or nil, message, kind). changed: the new state when this step changed it (open ->
--- half_open); trial: the call is a half-open trial; period: give it back with record (a call
--- admitted in another period does not count).
function Breaker:admit(fname)
    local res, err, kind = self.store:eval(fname or "dike.circuit_breaker", "breaker", breaker_list(self, "admit"), 14,
        admit_left, self)
    if res == nil then return nil, err, kind end
    local a, c = res[3], res[5]
    return a == 1 or a == "1", res[1], retry_after(res[4]), changed_of(res), c == 1 or c == "1", tonumber(res[6]),
        res[7]
end

--- Record a finished call admitted in `period`. Returns state, changed, reason, rate, n, the
--- state before (see store/init.lua), or nil, message, kind.
function Breaker:record(failed, slow, trial, period, fname)
    local res, err, kind = self.store:eval(fname or "dike.circuit_breaker", "breaker",
        breaker_list(self, "record", failed and 1 or 0, slow and 1 or 0, trial and 1 or 0, period or 0), 18)
    if res == nil then return nil, err, kind end
    return record_reply(res)
end

local function record_done(req, res, err)
    if res == nil then return req.cb(req.a, nil, err) end
    return req.cb(req.a, record_reply(res))
end

--- record without waiting: cb(a, state, changed, reason, rate, n) or cb(a, nil, message) runs
--- from the loop (cb may be nil). Returns false (cb not called) when the store is down.
function Breaker:record_async(failed, slow, trial, period, cb, a)
    return self.store:eval_async("breaker",
        breaker_list(self, "record", failed and 1 or 0, slow and 1 or 0, trial and 1 or 0, period or 0), 18,
        cb and record_done, cb and { cb = cb, a = a })
end

--- A trial call admitted in `period` was cancelled: give its place back. Returns state or nil,
--- message, kind.
function Breaker:release_trial(period, fname)
    local res, err, kind = self.store:eval(fname or "dike.circuit_breaker", "breaker",
        breaker_list(self, "release", period or 0), 15)
    if res == nil then return nil, err, kind end
    return res[1]
end

--- release_trial without waiting; cb(a, reply) or cb(a, nil, message) (cb may be nil). False
--- when the store is down.
function Breaker:release_trial_async(period, cb, a)
    return self.store:eval_async("breaker", breaker_list(self, "release", period or 0), 15, cb, a)
end

--- Force "isolated" or "closed" (reset). Returns state, changed, the state before or nil,
--- message, kind.
function Breaker:force(to, fname)
    local res, err, kind = self.store:eval(fname or "dike.circuit_breaker", "breaker",
        breaker_list(self, "force", to), 15)
    if res == nil then return nil, err, kind end
    return res[1], changed_of(res), res[7]
end

--- The state now (open turns half_open when due): state, retry_after, changed, the state before
--- or nil, message, kind.
function Breaker:state(fname)
    local res, err, kind = self.store:eval(fname or "dike.circuit_breaker", "breaker", breaker_list(self, "state"), 14)
    if res == nil then return nil, err, kind end
    return res[1], retry_after(res[3]), changed_of(res), res[7]
end

return M
