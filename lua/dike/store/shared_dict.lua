--- dike.store.shared_dict(dict_name [, opts]): limits and breakers shared by the workers of
-- one nginx through a `lua_shared_dict` (nginx.conf: `lua_shared_dict dike 1m;`). The
-- interface is store/init.lua's; operations never touch the network and end at once, so the
-- "async" ones call back before they return.
--
-- limit_jobs: slot i of limiter N is the key P..N..":s:"..i, holding the id of its holder and
-- expiring `lease` seconds after it was taken or renewed. A slot is taken by dict:add (atomic
-- across workers: it succeeds only on a key that is absent or expired), from a per-worker
-- cursor round the slots; a call that finds all `limit` slots held has tried each once
-- (O(limit) for a rejection: fine for the limits one nginx runs, not for millions). Releasing
-- deletes the key if it still holds the caller's id. There is no order among the waiters of
-- different workers: each worker's queue polls (store option poll, default 0.005 s) and a
-- freed slot goes to whichever worker asks first.
--
-- rate_limit and circuit_breaker: their record is one key, read, changed by
-- store/algorithms.lua (the same code the Redis scripts run) and written back under a lock
-- (a key taken with dict:add, expiring after LOCK_TTL should its worker die holding it). The
-- critical section has no yield; a worker waiting for the lock spins, then sleeps 1 ms at a
-- time where it can, for at most `timeout` seconds.
--
-- Failures (the dictionary is full: "no memory"; the lock not had within `timeout`) are
-- returned as nil, message, "reply" and logged once per run of failures; the store never
-- counts as down (every operation tries: it costs no network).
local rt = require("dike.runtime")
local options = require("dike.options")
local log = require("dike.log")
local stats = require("dike.stats")
local algorithms = require("dike.store.algorithms")

local setmetatable, type, tostring, pcall, pairs, format, rawget =
    setmetatable, type, tostring, pcall, pairs, string.format, rawget
local floor, ceil, max, huge = math.floor, math.ceil, math.max, math.huge

local M = {}

local FNAME = "dike.store.shared_dict"
local OPTIONS = { prefix = true, timeout = true, on_failure = true, lease = true, poll = true }
local POLICIES = { ["local"] = true, open = true, closed = true }
local LOCK_TTL = 0.05
-- Phases whose Lua code runs in a thread that can sleep (ngx.sleep).
local SLEEPABLE = { rewrite = true, access = true, content = true, timer = true }

local A -- store/algorithms.lua, loaded on first use

local Store = {}
Store.__index = Store
M.Store = Store

---@param dict_name string
---@param opts? {prefix?: string, timeout?: number, on_failure?: string, lease?: number, poll?: number}
function M.new(dict_name, opts)
    local ngx = rawget(_G, "ngx")
    if type(ngx) ~= "table" or type(ngx.shared) ~= "table" then
        error(FNAME .. ": only inside nginx (with the Lua module)", 3)
    end
    if type(dict_name) ~= "string" then
        error(FNAME .. ": dict_name must be a string, got " .. options.show(dict_name), 3)
    end
    local dict = ngx.shared[dict_name]
    if dict == nil then
        error(FNAME .. ": no lua_shared_dict named " .. format("%q", dict_name)
              .. " (declare it in nginx.conf: lua_shared_dict " .. dict_name .. " 1m;)", 3)
    end
    opts = options.table(FNAME, opts, OPTIONS, true)
    local self = setmetatable({
        kind = "shared_dict", ngx = ngx, dict = dict,
        prefix = options.string(FNAME, opts, "prefix") or "dike:",
        timeout = options.number(FNAME, opts, "timeout", true, false, 0.1),
        on_failure = options.choice(FNAME, opts, "on_failure", POLICIES, "local", '"local", "open" or "closed"'),
        lease = options.number(FNAME, opts, "lease", true, false, 30),
        poll = options.number(FNAME, opts, "poll", true, false, 0.005),
        label = FNAME .. " " .. dict_name,
        failing = false, errors = 0, outages = 0, seq = 0, pid = nil, id_prefix = nil, commands = 0,
    }, Store)
    -- What a tool refusing a call for a failure of the store ("closed") gives as retry_after.
    self.recheck = self.timeout
    stats.register(self, self)
    return self
end

function Store:snapshot()
    return { available = true, failing = self.failing, outages = self.outages, errors = self.errors,
             commands = self.commands }
end

--- Always true: every operation is tried (it is local memory).
function Store.available()
    return true
end

--- A holder id unique across workers. The prefix is made in the worker that uses it (a store
--- made in init_by_lua is copied into every worker by the fork).
function Store:new_id()
    local pid = self.ngx.worker.pid()
    if pid ~= self.pid then
        self.pid, self.seq = pid, 0
        self.id_prefix = format("ngx:%d:%x:", pid, floor(rt.now() * 1e6) % 0x7fffffff)
    end
    local seq = self.seq + 1
    self.seq = seq
    return self.id_prefix .. seq
end

function Store:key(name, what)
    return self.prefix .. name .. ":" .. what
end

--- Nothing to close (the dictionary belongs to nginx).
function Store.close()
end

local function now(self)
    self.ngx.update_time()
    return self.ngx.now()
end

-- A failure: count it; the first of a run is logged.
local function failed(self, message)
    self.errors = self.errors + 1
    message = self.label .. ": " .. tostring(message)
    if not self.failing then
        self.failing = true
        self.outages = self.outages + 1
        log.log("warning", message .. "; limiters and breakers sharing it use their on_failure policy until it"
            .. " works again")
    end
    return nil, message, "reply"
end

local function succeeded(self)
    if self.failing then
        self.failing = false
        log.log("info", self.label .. ": works again; sharing resumes")
    end
end

---------------------------------------------------------------- the lock

local function lock(self, key)
    local dict, ngx = self.dict, self.ngx
    local deadline
    local spins = 0
    while true do
        local ok, err = dict:add(key, true, LOCK_TTL)
        if ok then return true end
        if err ~= "exists" then return nil, err end
        spins = spins + 1
        if spins % 64 == 0 then
            deadline = deadline or now(self) + self.timeout
            if now(self) >= deadline then return nil, "lock not had within " .. self.timeout .. "s" end
            if SLEEPABLE[ngx.get_phase()] then ngx.sleep(0.001) end
        end
    end
end

-- Run fn(self, st_text, ...) under the record's lock: it returns the text to store (or nil to
-- leave it), the ttl, and up to 7 results.
local function locked(self, key, fn, a, b, c, d)
    local lk = key .. ":lock"
    local ok, err = lock(self, lk)
    if not ok then return failed(self, err) end
    self.commands = self.commands + 1
    local dict = self.dict
    -- no yield from here to the delete: the critical section is plain Lua on local memory
    local pok, text, ttl, r1, r2, r3, r4, r5, r6, r7 = pcall(fn, self, dict:get(key), a, b, c, d)
    local set_ok, set_err = true, nil
    if pok and text ~= nil then
        set_ok, set_err = dict:set(key, text, ttl or 0)
    end
    dict:delete(lk)
    if not pok then return failed(self, text) end
    if not set_ok then return failed(self, set_err) end
    succeeded(self)
    return true, r1, r2, r3, r4, r5, r6, r7
end

---------------------------------------------------------------- limit_jobs

local Jobs = {}
Jobs.__index = Jobs

--- The shared slots of the limiter `name` (see store/init.lua).
function Store:jobs(name, limit, lease)
    return setmetatable({ store = self, dict = self.dict, name = name, limit = limit, lease = lease or self.lease,
                          base = self:key(name, "s:"), keys = {}, cursor = 0, slot_of = {} }, Jobs)
end

local function slot_key(J, i)
    local k = J.keys[i]
    if not k then
        k = J.base .. i
        J.keys[i] = k
    end
    return k
end

-- Take a free slot for `id`: true, false (all held), or nil, message.
local function take(J, id)
    local dict, limit = J.dict, J.limit
    local start = J.cursor
    J.store.commands = J.store.commands + 1
    for k = 0, limit - 1 do
        local i = (start + k) % limit + 1
        local ok, err = dict:add(slot_key(J, i), id, J.lease)
        if ok then
            J.slot_of[id] = i
            J.cursor = i % limit
            return true
        end
        if err ~= "exists" then return failed(J.store, err) end
    end
    return false
end

function Jobs:acquire(id)
    if self.limit == huge then return true end
    local ok, err, kind = take(self, id)
    if ok ~= nil then succeeded(self.store) end
    return ok, err, kind
end

function Jobs:release(id)
    local i = self.slot_of[id]
    if not i then return end
    self.slot_of[id] = nil
    local key = slot_key(self, i)
    local dict = self.dict
    self.store.commands = self.store.commands + 1
    if dict:get(key) == id then dict:delete(key) end
end

function Jobs:grant(release_id, ids, n, cb, a)
    if release_id ~= "" then self:release(release_id) end
    local granted = 0
    for i = 1, n do
        local ok, err = take(self, ids[i])
        if ok == nil then
            cb(a, nil, err)
            return true
        end
        if not ok then break end
        granted = granted + 1
    end
    succeeded(self.store)
    cb(a, granted)
    return true
end

function Jobs:renew(ids, n, cb, a)
    local dict, lost = self.dict, 0
    for i = 1, n do
        local id = ids[i]
        local slot = self.slot_of[id]
        local key = slot and slot_key(self, slot)
        local ok = key and dict:get(key) == id and dict:expire(key, self.lease)
        if not ok then
            -- it expired (and may be someone else's now): take a slot again if one is free
            self.slot_of[id] = nil
            lost = lost + 1
            take(self, id)
        end
    end
    self.store.commands = self.store.commands + 1
    if cb then cb(a, lost) end
    return true
end

function Jobs.unwait(_, _, _, cb, a)
    if cb then cb(a, 0) end
    return true
end

--- Slots held now (waiters: 0, they are not registered here).
function Jobs:count()
    local held = 0
    for i = 1, self.limit do
        if self.dict:get(slot_key(self, i)) ~= nil then held = held + 1 end
    end
    return held, 0
end

---------------------------------------------------------------- rate_limit

local Rate = {}
Rate.__index = Rate

function Store:rate(name)
    A = A or algorithms.load()
    return setmetatable({ store = self, key = self:key(name, "rl") }, Rate)
end

local function gcra_step(self, text, T, burst, cost, max_wait)
    local t = now(self)
    local debt, last = A.gcra_decode(text)
    local ok, d, l, wait = A.gcra(debt, last, t, T, burst, cost, max_wait == huge and -1 or max_wait)
    return A.gcra_encode(d, l), ceil(l + d * T - t) + 1, ok, wait
end

function Rate:acquire(T, burst, cost, max_wait)
    local ok, admitted, wait = locked(self.store, self.key, gcra_step, T, burst, cost, max_wait)
    if not ok then return nil, admitted, wait end
    return admitted, wait
end

---------------------------------------------------------------- circuit_breaker

local Breaker = {}
Breaker.__index = Breaker

function Store:breaker(name, conf)
    A = A or algorithms.load()
    local c = {}
    for k, v in pairs(conf) do c[k] = v end
    return setmetatable({ store = self, key = self:key(name, "cb"), conf = c }, Breaker)
end

local function retry_after(v)
    if v < 0 then return huge end
    return v
end

-- op(st, t, conf, x, y) -> results; the record is written back when it changed. locked()
-- hands back the state, the state before, then the op's results.
local function breaker_step(self, text, conf, op, x, y)
    local t = now(self)
    local st = A.cb_decode(text, conf)
    local prev = st.state
    local r1, r2, r3, r4, r5 = op(st, t, conf, x, y)
    local after = A.cb_encode(st)
    if after == text then after = nil end
    local ttl = 0
    if st.state ~= "isolated" then ttl = max(st.open_for, conf.window_seconds or 0) * 2 + 3600 end
    return after, ttl, st.state, prev, r1, r2, r3, r4, r5
end

local function op_admit(st, t, conf) return A.cb_admit(st, t, conf) end
local function op_record(st, t, conf, failed_, f)
    return A.cb_record(st, t, conf, failed_, f.slow, f.trial, f.gen)
end
local function op_release(st, _, _, gen) A.cb_release_trial(st, gen) end
local function op_force(st, t, conf, to) return A.cb_force(st, t, conf, to) end
local function op_state(st, t, conf)
    local _, ra, changed = A.cb_state(st, t, conf)
    return ra, changed
end

function Breaker:admit()
    local ok, state, prev, allowed, ra, changed, trial, gen = locked(self.store, self.key, breaker_step, self.conf,
        op_admit)
    if not ok then return nil, state, prev end
    return allowed, state, retry_after(ra), changed, trial, gen, prev
end

function Breaker:record(failed_, slow, trial, gen)
    local ok, state, prev, changed, reason, rate, n = locked(self.store, self.key, breaker_step, self.conf,
        op_record, failed_, { slow = slow, trial = trial, gen = gen or 0 })
    if not ok then return nil, state, prev end
    return state, changed, reason, reason and rate, reason and n, prev
end

--- record, calling back before it returns (the dictionary needs no waiting).
function Breaker:record_async(failed_, slow, trial, gen, cb, a)
    if cb then cb(a, self:record(failed_, slow, trial, gen)) else self:record(failed_, slow, trial, gen) end
    return true
end

function Breaker:release_trial(gen)
    local ok, state, kind = locked(self.store, self.key, breaker_step, self.conf, op_release, gen or 0)
    if not ok then return nil, state, kind end
    return state
end

function Breaker:release_trial_async(gen, cb, a)
    if cb then cb(a, self:release_trial(gen)) else self:release_trial(gen) end
    return true
end

function Breaker:force(to)
    local ok, state, prev, changed = locked(self.store, self.key, breaker_step, self.conf, op_force, to)
    if not ok then return nil, state, prev end
    return state, changed, prev
end

function Breaker:state()
    local ok, state, prev, ra, changed = locked(self.store, self.key, breaker_step, self.conf, op_state)
    if not ok then return nil, state, prev end
    return state, retry_after(ra), changed, prev
end

return M
