--- The Redis scripts of dike's Redis store. Each admission, release or state change is one
-- script, run atomically by the server, with time from the server's TIME (so hosts whose
-- clocks disagree still agree on every lease and every rate). Scripts are sent once per
-- connection life by EVAL (Redis then caches them) and afterwards by EVALSHA; see redis.lua.
--
-- Keys of a limiter named N under prefix P (the {N} hash tag keeps them in one slot of a
-- Redis Cluster; dike itself speaks to one server):
--   P{N}:lj:h  zset  holder id -> lease expiry (ms, server clock)        limit_jobs
--   P{N}:lj:w  zset  waiter id -> ticket (arrival order across processes)
--   P{N}:lj:x  zset  waiter id -> waiter expiry (ms)
--   P{N}:lj:t  string  the ticket counter
--   P{N}:rl    string  the GCRA state: "debt last" (algorithms.lua)          rate_limit
--   P{N}:cb    string  the breaker record (algorithms.lua's cb_encode)     circuit_breaker
-- Every key carries a TTL, refreshed on writes, so a name nobody uses any more leaves
-- nothing behind (an isolated breaker stays until it is reset).
--
-- Replies are arrays of integers and strings (fractions as %.17g strings: Redis truncates a
-- Lua number to an integer on the way out).
local algorithms = require("dike.store.algorithms")

local M = {}

-- The server's clock, in milliseconds and in seconds. redis.replicate_commands() lets a
-- script that read TIME write on Redis 3.2-4 (since 5 it is the default; 7 removed the need).
local NOW = [[
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_s = tonumber(t[1]) + tonumber(t[2]) / 1000000
]]

-- Shared by the limit_jobs scripts: drop expired holders and waiters.
local JOBS_PRUNE = [[
local H, W, X = KEYS[1], KEYS[2], KEYS[3]
redis.call('ZREMRANGEBYSCORE', H, '-inf', now_ms)
local gone = redis.call('ZRANGEBYSCORE', X, '-inf', now_ms)
if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', X, '-inf', now_ms)
    for i = 1, #gone, 1000 do
        redis.call('ZREM', W, unpack(gone, i, math.min(i + 999, #gone)))
    end
end
]]

--- limit_jobs: release, acquire, poll in one.
-- KEYS: holders, waiters, waiter expiries, ticket counter
-- ARGV: limit, lease ms, wait ms (> 0: the candidates not granted wait, registered as waiters
--       for that long; 0: they do not wait), id to release ("" for none), candidate ids (this
--       process's callers, in their order)
-- A candidate gets a slot when fewer than limit - holders waiters are ahead of it (all waiters,
-- when it is not one yet): queued callers are served in arrival order across processes, and a
-- freed slot is kept for the oldest waiter, wherever it is. The first `granted` candidates
-- hold a slot; returns {granted, holders, waiters}.
M.jobs = NOW .. JOBS_PRUNE .. [[
local limit, lease, wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[4] ~= '' then redis.call('ZREM', H, ARGV[4]) end
local held = redis.call('ZCARD', H)
local waiting = redis.call('ZCARD', W)
local granted = 0
for i = 5, #ARGV do
    local id = ARGV[i]
    if held >= limit then break end
    if redis.call('ZSCORE', H, id) then break end -- holds already (a grant crossed this call)
    local rank = redis.call('ZRANK', W, id)
    if (rank or waiting) >= limit - held then break end
    redis.call('ZADD', H, now_ms + lease, id)
    if rank then
        redis.call('ZREM', W, id)
        redis.call('ZREM', X, id)
        waiting = waiting - 1
    end
    held = held + 1
    granted = granted + 1
end
if wait > 0 then
    for i = 5 + granted, #ARGV do
        local id = ARGV[i]
        if not redis.call('ZSCORE', W, id) then
            redis.call('ZADD', W, redis.call('INCR', KEYS[4]), id)
            waiting = waiting + 1
        end
        redis.call('ZADD', X, now_ms + wait, id)
    end
end
local ttl = math.max(lease, wait) * 2 + 1000
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end
return { granted, held, waiting }
]]

--- limit_jobs: renew the leases of running calls (re-adding one that expired meanwhile: the
-- call still runs, so it counts again, even above the limit, until it ends).
-- KEYS: holders; ARGV: lease ms, ids. Returns the number of leases that had expired.
M.renew = NOW .. [[
local lease = tonumber(ARGV[1])
local lost = 0
for i = 2, #ARGV do
    if redis.call('ZADD', KEYS[1], now_ms + lease, ARGV[i]) == 1 then lost = lost + 1 end
end
redis.call('PEXPIRE', KEYS[1], lease * 2 + 1000)
return lost
]]

--- limit_jobs: caller ids that no longer wait (cancelled, timed out). KEYS: waiters, expiries.
M.unwait = [[
for i = 1, #ARGV do
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
end
return #ARGV
]]

--- limit_jobs: {holders, waiters} now (monitoring, tests). KEYS as jobs.
M.count = NOW .. JOBS_PRUNE .. [[
return { redis.call('ZCARD', H), redis.call('ZCARD', W) }
]]

-- The algorithms module, as a local table A of the script.
local ALGO = "local A = (function()\n" .. algorithms.SOURCE .. "\nend)()\n"

--- rate_limit: one GCRA step. KEYS: the state ("debt last", algorithms.lua's gcra_encode);
-- ARGV: T (s per unit), burst, cost, max_wait (s; -1 = no bound). Returns {admitted (0/1), wait
-- or retry_after (s, string)}. A refusal writes the state back too (the same schedule, counted
-- from now: csrc/gcra.c keeps it so, and the two agree to the bit).
M.gcra = NOW .. ALGO .. [[
local T, burst, cost, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local debt, last = A.gcra_decode(redis.call('GET', KEYS[1]) or nil)
local ok, new_debt, new_last, wait = A.gcra(debt, last, now_s, T, burst, cost, max_wait)
local tat = new_last + new_debt * T
redis.call('SET', KEYS[1], A.gcra_encode(new_debt, new_last), 'PX', math.ceil((tat - now_s) * 1000) + 1000)
return { ok and 1 or 0, A.num(wait) }
]]

--- circuit_breaker: one step on the shared record. KEYS: record; ARGV: op ("admit", "record",
-- "release", "force", "state"), then the conf (failure_rate, minimum_calls, window,
-- window_seconds, slow_call_rate, open_for, open_backoff, max_open_for, half_open_calls; "" for
-- none), then the op's arguments (record: failed, slow, trial as 0/1, and the period; release:
-- the period; force: the state). Returns {state, changed or "", a, b, c, d, state before}
-- where a, b, c, d are: admit -> allowed, retry_after, trial, period; record -> reason, rate,
-- n; state -> retry_after.
M.breaker = NOW .. ALGO .. [[
local function opt(i) if ARGV[i] == '' then return nil end return tonumber(ARGV[i]) end
local conf = { failure_rate = opt(2), minimum_calls = opt(3), window = opt(4), window_seconds = opt(5),
               slow_call_rate = opt(6), open_for = opt(7), open_backoff = opt(8), max_open_for = opt(9),
               half_open_calls = opt(10) }
local op = ARGV[1]
local before = redis.call('GET', KEYS[1]) or nil
local st = A.cb_decode(before, conf)
local prev = st.state
local changed, a, b, c, d = nil, '', '', '', ''
if op == 'admit' then
    local allowed, retry_after, trial, gen
    allowed, retry_after, changed, trial, gen = A.cb_admit(st, now_s, conf)
    a, b, c, d = allowed and 1 or 0, A.num(retry_after), trial and 1 or 0, gen
elseif op == 'record' then
    local reason, rate, n
    changed, reason, rate, n = A.cb_record(st, now_s, conf, ARGV[11] == '1', ARGV[12] == '1', ARGV[13] == '1',
        tonumber(ARGV[14]))
    a, b, c = reason or '', A.num(rate), n
elseif op == 'release' then
    A.cb_release_trial(st, tonumber(ARGV[11]))
elseif op == 'force' then
    changed = A.cb_force(st, now_s, conf, ARGV[11])
else
    local _, retry_after
    _, retry_after, changed = A.cb_state(st, now_s, conf)
    a = A.num(retry_after)
end
local after = A.cb_encode(st)
if after ~= before then
    if st.state == 'isolated' then
        redis.call('SET', KEYS[1], after) -- until reset
    else
        local ttl = math.max(st.open_for, conf.window_seconds or 0) * 2000 + 3600000
        redis.call('SET', KEYS[1], after, 'PX', math.ceil(ttl))
    end
end
return { st.state, changed or '', a, b, c, d, prev }
]]

return M
