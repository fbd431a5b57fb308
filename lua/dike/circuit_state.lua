--- A circuit breaker's state: the window of recent outcomes and the state machine over it
-- (closed -> open -> half_open -> closed or open again; isolated by hand). Pure bookkeeping:
-- no clock (every operation is given `now`), no runtime, no logging. Every state change
-- goes through one function, transition(), which calls the breaker's `on_change`.
--
-- The interface (what dike.circuit_breaker calls, and what a shared store would implement):
--   S:admit(now) -> gen, trial | nil, retry_after   may a call run? `gen` names the period
--                                                    it was admitted in; `trial` = a half-open trial
--   S:record(gen, trial, now, failed, slow)          the outcome of an admitted call
--   S:forget(gen, trial)                             an admitted call that was cancelled
--   S:state_at(now) -> name                          "closed", "open", "half_open" or "isolated"
--   S:isolate(now), S:reset(now)
-- plus, for the local state only, the wrapper's fast path: while `S.fast` (closed, a count
-- window, no slow-call timing) a call that returns is recorded by S:success(gen).
--
-- The open -> half_open change happens by time alone ("open_for seconds after opening"):
-- it is made when anything next looks (a call, state(), dike.stats), so no timer is kept and
-- an open breaker never keeps the loop alive.
--
-- Count window (`window` = W): the finished calls are numbered 1, 2, ... (`done`); the
-- numbers of failed (and of slow) calls are kept in FIFO rings, so a success costs one
-- increment and the window's counts are the ring entries above done - W. A success can only
-- lower the rates, except when it is the call that makes the window reach minimum_calls:
-- that is the only success that needs a check.
--
-- Time window (`window_seconds` = T): counts per bucket of T/BUCKETS seconds, BUCKETS + 1
-- buckets, so every call of the last T seconds counts (and calls up to T/BUCKETS older may
-- still count until their bucket expires).
local floor, huge = math.floor, math.huge
local setmetatable, pairs = setmetatable, pairs

local M = {}

local BUCKETS = 20
M.BUCKETS = BUCKETS

local CLOSED, OPEN, HALF_OPEN, ISOLATED = "closed", "open", "half_open", "isolated"

local State = {}
State.__index = State

--- Empty the window (closing, reset).
local function clear_window(S)
    if S.buckets then
        local n = BUCKETS + 1
        local bc, bf, bs, be = S.bc, S.bf, S.bs, S.be
        for i = 0, n - 1 do bc[i], bf[i], bs[i], be[i] = 0, 0, 0, -1 end
        S.tc, S.tf, S.ts = 0, 0, 0
    else
        S.done = 0
        S.check_at = S.minimum_calls
        S.fh, S.ft, S.sh, S.st = 1, 0, 1, 0
        local fq, sq = S.fq, S.sq
        for k in pairs(fq) do fq[k] = nil end
        for k in pairs(sq) do sq[k] = nil end
    end
end

--- The one place where the state changes. `why`, `rate`, `n` say why it opened.
local function transition(S, to, now, why, rate, n)
    local from = S.state
    S.state = to
    S.gen = S.gen + 1
    S.fast = to == CLOSED and S.count_only
    if to == OPEN then
        if from == HALF_OPEN then
            local d = S.open_for_now * S.open_backoff
            S.open_for_now = d < S.max_open_for and d or S.max_open_for
        else
            S.open_for_now = S.open_for
        end
        S.opened_at = now
        S.opened = S.opened + 1
    elseif to == HALF_OPEN then
        S.trials, S.trials_ok, S.trials_slow = 0, 0, 0
    elseif to == CLOSED then
        S.open_for_now = S.open_for
        clear_window(S)
    end
    S.on_change(S, from, to, why, rate, n)
end

-- Open -> half-open once open_for has passed since it opened.
local function settle(S, now)
    if S.state == OPEN and now >= S.opened_at + S.open_for_now then
        transition(S, HALF_OPEN, now)
    end
end

---------------------------------------------------------------- the windows

-- Time window: move to the bucket of `now`, expiring the buckets that fell out.
local function advance(S, now)
    local e = floor(now / S.width)
    local cur = S.epoch
    if e <= cur then return end
    local n = BUCKETS + 1
    local bc, bf, bs, be = S.bc, S.bf, S.bs, S.be
    local from = cur + 1
    if e - cur > n then from = e - n + 1 end
    for epoch = from, e do
        local i = epoch % n
        if be[i] ~= epoch then
            S.tc, S.tf, S.ts = S.tc - bc[i], S.tf - bf[i], S.ts - bs[i]
            bc[i], bf[i], bs[i], be[i] = 0, 0, 0, epoch
        end
    end
    S.epoch = e
end

-- Closed: add one finished call to the window and decide whether to open.
local function add(S, now, failed, slow)
    local calls, fails, slows
    if S.buckets then
        advance(S, now)
        local i = S.epoch % (BUCKETS + 1)
        S.bc[i] = S.bc[i] + 1
        S.tc = S.tc + 1
        if failed then S.bf[i] = S.bf[i] + 1; S.tf = S.tf + 1 end
        if slow then S.bs[i] = S.bs[i] + 1; S.ts = S.ts + 1 end
        calls, fails, slows = S.tc, S.tf, S.ts
    else
        local done = S.done + 1
        S.done = done
        if failed then
            local t = S.ft + 1
            S.ft, S.fq[t] = t, done
        end
        if slow then
            local t = S.st + 1
            S.st, S.sq[t] = t, done
        end
        if not failed and not slow and done ~= S.check_at then return end
        local oldest = done - S.window -- entries at or below this have left the window
        local fq, h = S.fq, S.fh
        while h <= S.ft and fq[h] <= oldest do fq[h] = nil; h = h + 1 end
        S.fh = h
        local sq, sh = S.sq, S.sh
        while sh <= S.st and sq[sh] <= oldest do sq[sh] = nil; sh = sh + 1 end
        S.sh = sh
        calls = done < S.window and done or S.window
        fails, slows = S.ft - h + 1, S.st - sh + 1
    end
    if calls < S.minimum_calls then return end
    if fails > 0 and fails / calls >= S.failure_rate then
        return transition(S, OPEN, now, "failure rate", fails / calls, calls)
    end
    if slows > 0 and slows / calls >= S.slow_call_rate then
        return transition(S, OPEN, now, "slow call rate", slows / calls, calls)
    end
end

---------------------------------------------------------------- the interface

--- May a call run now? Returns its period and whether it is a half-open trial, or nil and
--- the seconds after which one may (math.huge while isolated; 0 while the trials run).
function State:admit(now)
    local s = self.state
    if s == CLOSED then return self.gen, false end
    if s == OPEN then
        local at = self.opened_at + self.open_for_now
        if now < at then return nil, at - now end
        transition(self, HALF_OPEN, now)
    elseif s == ISOLATED then
        return nil, huge
    end
    -- half-open
    if self.trials < self.half_open_calls then
        self.trials = self.trials + 1
        return self.gen, true
    end
    return nil, 0
end

--- The fast path's record of a call that returned (closed, count window, no timing).
function State:success(gen)
    if self.gen ~= gen then return end
    local done = self.done + 1
    self.done = done
    if done == self.check_at then -- the window just reached minimum_calls
        self.done = done - 1
        add(self, self.clock(), false, false)
    end
end

--- The outcome of a call admitted in period `gen` (as a trial when `trial`).
function State:record(gen, trial, now, failed, slow)
    if failed then self.failures = self.failures + 1 end
    if slow then self.slow = self.slow + 1 end
    if self.gen ~= gen then return end -- admitted before the last change: it no longer counts
    if not trial then return add(self, now, failed, slow) end
    if failed then return transition(self, OPEN, now, "trial call failed") end
    self.trials_ok = self.trials_ok + 1
    if slow then self.trials_slow = self.trials_slow + 1 end
    if self.trials_ok < self.half_open_calls then return end
    local n = self.half_open_calls
    if self.trials_slow > 0 and self.trials_slow / n >= self.slow_call_rate then
        return transition(self, OPEN, now, "slow call rate", self.trials_slow / n, n)
    end
    return transition(self, CLOSED, now)
end

--- A call admitted in period `gen` was cancelled: it counts neither way (a trial's place
--- goes back to the next caller).
function State:forget(gen, trial)
    if trial and self.gen == gen then self.trials = self.trials - 1 end
end

--- The state's name at time `now`.
function State:state_at(now)
    settle(self, now)
    return self.state
end

--- Force it open until reset().
function State:isolate(now)
    if self.state ~= ISOLATED then transition(self, ISOLATED, now) end
end

--- Close it with an empty window (from any state).
function State:reset(now)
    if self.state ~= CLOSED then return transition(self, CLOSED, now) end
    self.gen = self.gen + 1 -- calls running now no longer count
    clear_window(self)
end

--- A new closed state. `cfg`: window or window_seconds, minimum_calls, failure_rate,
--- slow_call_rate, open_for, open_backoff, max_open_for, half_open_calls, timed (slow-call
--- timing on), on_change(S, from, to, why, rate, n), clock() (read only by S:success, when
--- the call it records decides).
function M.new(cfg)
    local S = setmetatable({
        state = CLOSED, gen = 0, fast = false,
        window = cfg.window, minimum_calls = cfg.minimum_calls, failure_rate = cfg.failure_rate,
        slow_call_rate = cfg.slow_call_rate, open_for = cfg.open_for, open_backoff = cfg.open_backoff,
        max_open_for = cfg.max_open_for or huge, half_open_calls = cfg.half_open_calls,
        on_change = cfg.on_change, clock = cfg.clock,
        open_for_now = cfg.open_for, opened_at = 0, opened = 0, failures = 0, slow = 0,
        trials = 0, trials_ok = 0, trials_slow = 0,
        count_only = not cfg.window_seconds and not cfg.timed,
    }, State)
    if cfg.window_seconds then
        S.buckets = true
        S.width = cfg.window_seconds / BUCKETS
        S.epoch = -huge
        S.bc, S.bf, S.bs, S.be = {}, {}, {}, {}
    else
        S.fq, S.sq = {}, {}
    end
    clear_window(S)
    S.fast = S.count_only
    return S
end

M.CLOSED, M.OPEN, M.HALF_OPEN, M.ISOLATED = CLOSED, OPEN, HALF_OPEN, ISOLATED

return M
