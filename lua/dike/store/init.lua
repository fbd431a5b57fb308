--- dike.store: state shared by limiters and breakers across processes (README "Sharing
-- limits"). Two stores implement one interface:
--   dike.store.redis{...}          store/redis.lua: a Redis server (luv, Neovim, nginx)
--   dike.store.shared_dict(name)   store/shared_dict.lua: an nginx lua_shared_dict (the
--                                  workers of one nginx)
--
-- The interface the tools call. Waiting methods must run in a coroutine dike can suspend
-- and wait at most the store's `timeout`; "async" methods return at once and call back from
-- the loop (the shared-dict store may call back before returning: callers must not rely on
-- the order). A failure is reported as nil, message, kind, where kind is "io" (no answer),
-- "reply" (the store refused) or "down" (not tried: the store is in an outage and fails at
-- once until its probe sees it answer; count store_errors only for the other two). The store
-- logs each outage once; the tools apply `store.on_failure` ("local", "open", "closed").
--
--   store.kind, store.on_failure, store.lease, store.poll, store.timeout, store.label
--   store.recheck       seconds: the retry_after of a call a tool refuses because the store
--                       failed (on_failure = "closed"): Redis, how often a store that is down
--                       is tried again (0.5); the shared dict, its timeout
--   store:available() -> boolean           false during an outage
--   store:new_id() -> string               a holder id unique across processes and hosts
--   store:close()                          stop (specs, shutdown); later operations fail
--
-- limit_jobs: J = store:jobs(name, limit [, lease])
--   At most `limit` ids hold a slot at once across processes. A slot is a lease that expires
--   `lease` seconds after it was taken or last renewed; waiting ids (queued callers) hold a
--   place that expires unless refreshed (each grant call refreshes it).
--   J:acquire(id, queue, fname) -> true | false | nil, err, kind     waits; one round trip.
--       false: no slot; with queue = true the id is now a waiter (Redis serves waiters in
--       arrival order across processes; the shared dict has no order across workers).
--   J:grant(release_id, ids, n, cb, a) -> sent                        async; one round trip.
--       Releases release_id ("" for none), then grants slots to ids[1..n] (this process's
--       queued callers, in order; those not granted are registered/refreshed as waiters):
--       cb(a, granted) means ids[1..granted] now hold slots; cb(a, nil, err) on failure.
--   J:release(id)                                                     async; one round trip
--       (or none, when the store is down: it is released once the store answers again).
--   J:renew(ids, n, cb, a) -> sent                                    async; cb(a, lost | nil, err)
--       Renew running calls' leases (every lease/3 for calls older than lease/3).
--   J:unwait(ids, n)                                                  async; waiters that left.
--   J:count(fname) -> holders, waiters | nil, err, kind               waits (monitoring, tests).
--
-- rate_limit: R = store:rate(name)
--   R:acquire(T, burst, cost, max_wait, fname) -> true, wait | false, retry_after | nil, err, kind
--       One atomic GCRA step with the store's clock (T = per / rate; max_wait = math.huge for
--       no bound): admitted at once (wait 0), admitted with its turn reserved `wait` seconds
--       from now (sleep, then run), or rejected with nothing changed. The arithmetic is the C
--       core's, step for step (store/algorithms.lua).
--
-- circuit_breaker: B = store:breaker(name, conf)
--   conf: failure_rate, minimum_calls, window or window_seconds, slow_call_rate (nil unless
--   slow_call_seconds is set), open_for, open_backoff, max_open_for, half_open_calls.
--   B:admit(fname) -> allowed, state, retry_after, changed, trial, period, before
--   B:record(failed, slow, trial, period, fname) -> state, changed, reason, rate, n, before
--   B:record_async(failed, slow, trial, period, cb, a) -> sent      cb(a, <record's results>)
--   B:release_trial(period, fname) -> state            a trial call was cancelled
--   B:release_trial_async(period, cb, a) -> sent
--   B:force(to, fname) -> state, changed, before       "isolated" or "closed" (reset)
--   B:state(fname) -> state, retry_after, changed, before   (open -> half_open when due)
--   Each returns nil, err, kind on failure (async: cb(a, nil, err); false when the store is
--   down). `changed` is the new state when this very step changed it (one caller in one
--   process sees each change: it logs and emits the event); reason is "failure", "slow"
--   (opened: rate over n calls) or "trial". `period` names the stretch between two state
--   changes: a call recorded with another period than the current one does not count (the
--   state changed while it ran); `before` is the state before the step (the event's `from`).
--   retry_after is math.huge while isolated. A caller cancelled while admit's answer was on its
--   way gives back a trial place it was given. The arithmetic is store/algorithms.lua's, the
--   same in both stores.
local M = {}

--- A Redis store (see README "Sharing limits").
---@param opts? table host, port | path, username, password, db, prefix, timeout, on_failure, lease, poll
function M.redis(opts)
    return require("dike.store.redis").new(opts)
end

--- An nginx lua_shared_dict store (inside nginx only).
---@param dict_name string
---@param opts? table prefix, timeout, on_failure, lease, poll
function M.shared_dict(dict_name, opts)
    return require("dike.store.shared_dict").new(dict_name, opts)
end

return M
