--- The arithmetic of shared rate limits and circuit breakers, written once as Lua source that
-- runs in two places: inside Redis (store/scripts.lua sends it as the head of a script, so an
-- admission is one atomic step on the server, with the server's clock) and in nginx workers
-- (store/shared_dict.lua loads it and runs it under the dictionary's lock). The two stores
-- therefore agree to the last bit. The source is plain Lua 5.1 (Redis's dialect) and defines
-- no globals; `load()` of it returns the module table below.
--
-- Times are seconds (floats) on the store's clock. Numbers are stored as %.17g text, which
-- reads back exactly.
--
-- gcra(debt, last, now, T, burst, cost, max_wait) -> admitted, debt, last, wait
--   The GCRA step of dike.rate_limit, written as csrc/gcra.c's dike_gcra_reserve, operation
--   for operation, so that a shared limiter decides exactly as a process-local one (the specs
--   compare the two on random inputs). The state is (debt, last): the latest clock reading
--   and the debt owed then in cost units, (tat - last) / T; nil, nil for a limiter never used.
--   Whole costs add up exactly in units whatever T is (a theoretical arrival time in seconds
--   would let 99 calls of a burst of 100 through at rate 100 per 60 s), and on the store's
--   clock (seconds since 1970) the debt keeps its precision. With T = per / rate, new_tat =
--   max(tat, now) + cost*T and allow_at = new_tat - burst*T: allow_at <= now: admitted, wait
--   0. Else allow_at - now <= max_wait (max_wait < 0 means no bound): admitted with its turn
--   reserved (the caller sleeps `wait` = allow_at - now, then runs). Else not admitted, wait =
--   retry_after, and the schedule unchanged (the state returned is the same debt counted from
--   now, as the C core keeps it). As in the C core, T and the time a full burst takes are
--   capped at 1e9 s (the burst in effect is then capacity = 1e9 / T), no wait is longer than
--   1e9 s, and a clock that goes back keeps the debt as it was.
--
-- The circuit breaker (dike.circuit_breaker's shared state): a record `st`
--   state      "closed" | "open" | "half_open" | "isolated"
--   opened_at  when it last opened;  open_for  the current open duration (backoff applied)
--   trials     trial calls admitted in this half-open period; trial_ok, trial_slow  those that
--              succeeded, and of those the slow ones
--   since      when it became half-open (a trial that never reports is forgotten after open_for)
--   gen        the period: it changes with every state change, a reset, and a half-open period
--              started afresh; a call admitted in another period does not count (it was still
--              running when the state changed under it)
--   n, f, s    calls, failures, slow calls in the window
--   win        count window (conf.window): one character per finished call, oldest first:
--              "0" success, "1" failure, "2" slow success, "3" slow failure
--   buckets    time window (conf.window_seconds): "sec:n:f:s;..." per whole second of the clock
-- conf: failure_rate, minimum_calls, window | window_seconds, slow_call_rate (nil: slow calls
-- never open it), open_for, open_backoff, max_open_for (nil: no cap), half_open_calls.
--   cb_admit(st, now, conf) -> allowed, retry_after, changed, trial, gen
--   cb_record(st, now, conf, failed, slow, trial, gen) -> changed, reason, rate, n
--   cb_release_trial(st, gen)             a trial call was cancelled: its place is free again
--   cb_force(st, now, conf, to)           "isolated" (breaker:isolate) or "closed" (reset: from
--                                         closed too, the window is emptied)
--   cb_state(st, now, conf) -> state, retry_after, changed     (open -> half_open when due)
-- `changed` is the new state when this step changed it (nil otherwise): exactly one caller,
-- in one process, sees each change, so that one logs it. `reason` is "failure" or "slow"
-- (opened from closed, `rate` over `n` calls; "slow" also from half-open when the trials'
-- slow / calls reaches slow_call_rate) or "trial" (a trial call failed). retry_after is -1
-- while isolated, and 0 while half-open with every trial place taken (as the process-local
-- breaker says: the trials may end any moment).
--   cb_encode(st) -> string, cb_decode(string|nil, conf) -> st
local M = {}

M.SOURCE = [==[
local floor, format, tonumber = math.floor, string.format, tonumber
local A = {}

local MAX = 1e9 -- csrc/dike.h's DIKE_GCRA_MAX_SECONDS

function A.gcra(debt, last, now, T, burst, cost, max_wait)
    local interval, capacity = T, burst
    if not (interval <= MAX) then interval = MAX end
    if interval > 0 and capacity > MAX / interval then capacity = MAX / interval end
    local d = 0
    if debt ~= nil and interval > 0 then
        d = debt
        if now > last then
            d = d - (now - last) / interval
            if not (d > 0) then d = 0 end
        end
    end
    local inc = cost
    if inc > capacity then inc = capacity end
    local units = d - (capacity - inc)
    local wait = 0
    if units > 0 then wait = units * interval end
    if (max_wait >= 0 and wait > max_wait) or wait > MAX then return false, d, now, wait end
    if interval > 0 then d = d + inc else d = 0 end
    return true, d, now, wait
end

-- The GCRA state as text, and back (nil, nil for none, or not ours).
function A.gcra_encode(debt, last)
    return format("%.17g %.17g", debt, last)
end

function A.gcra_decode(text)
    if text == nil then return nil, nil end
    local d, l = string.match(text, "^(%S+) (%S+)$")
    d, l = tonumber(d), tonumber(l)
    if d == nil or l == nil then return nil, nil end
    return d, l
end

local function num(x) return format("%.17g", x) end
A.num = num

local FIELDS = { "state", "opened_at", "open_for", "trials", "trial_ok", "trial_slow", "since", "gen", "n", "f",
                 "s" }
local NFIELDS = #FIELDS

function A.cb_encode(st)
    return st.state .. "|" .. num(st.opened_at) .. "|" .. num(st.open_for) .. "|" .. st.trials
        .. "|" .. st.trial_ok .. "|" .. st.trial_slow .. "|" .. num(st.since) .. "|" .. st.gen .. "|" .. st.n
        .. "|" .. st.f .. "|" .. st.s .. "|" .. st.win .. "|" .. st.buckets
end

local function fresh(conf)
    return { state = "closed", opened_at = 0, open_for = conf.open_for, trials = 0, trial_ok = 0, trial_slow = 0,
             since = 0, gen = 0, n = 0, f = 0, s = 0, win = "", buckets = "" }
end

function A.cb_decode(text, conf)
    if text == nil or text == "" then return fresh(conf) end
    local st, i = {}, 1
    for part in string.gmatch(text .. "|", "([^|]*)|") do
        local k = FIELDS[i]
        if k == "state" then st.state = part
        elseif k then st[k] = tonumber(part) or 0
        elseif i == NFIELDS + 1 then st.win = part
        elseif i == NFIELDS + 2 then st.buckets = part end
        i = i + 1
    end
    if i ~= NFIELDS + 3 then return fresh(conf) end -- not ours (or an older layout): start afresh
    return st
end

local function clear_window(st)
    st.n, st.f, st.s, st.win, st.buckets = 0, 0, 0, "", ""
end

-- Drop the time buckets at or before now - window_seconds; recount n, f, s from the rest.
local function prune_buckets(st, now, seconds)
    local keep, n, f, s = {}, 0, 0, 0
    local oldest = floor(now) - seconds
    for sec, bn, bf, bs in string.gmatch(st.buckets, "(%-?%d+):(%d+):(%d+):(%d+);") do
        if tonumber(sec) > oldest then
            keep[#keep + 1] = sec .. ":" .. bn .. ":" .. bf .. ":" .. bs .. ";"
            n, f, s = n + tonumber(bn), f + tonumber(bf), s + tonumber(bs)
        end
    end
    st.buckets, st.n, st.f, st.s = table.concat(keep), n, f, s
end

local function push(st, now, conf, failed, slow)
    local code = (failed and 1 or 0) + (slow and 2 or 0)
    if conf.window_seconds then
        prune_buckets(st, now, conf.window_seconds)
        local sec = floor(now)
        local b = st.buckets
        local head, bn, bf, bs = string.match(b, "^(.*)" .. sec .. ":(%d+):(%d+):(%d+);$")
        if head and (head == "" or string.sub(head, -1) == ";") then
            b = head
        else
            bn, bf, bs = 0, 0, 0
        end
        st.buckets = b .. sec .. ":" .. (tonumber(bn) + 1) .. ":" .. (tonumber(bf) + (failed and 1 or 0))
            .. ":" .. (tonumber(bs) + (slow and 1 or 0)) .. ";"
        st.n, st.f, st.s = st.n + 1, st.f + (failed and 1 or 0), st.s + (slow and 1 or 0)
        return
    end
    st.win = st.win .. code
    st.n, st.f, st.s = st.n + 1, st.f + (failed and 1 or 0), st.s + (slow and 1 or 0)
    if st.n > conf.window then
        local old = tonumber(string.sub(st.win, 1, 1))
        st.win = string.sub(st.win, 2)
        st.n = st.n - 1
        if old == 1 or old == 3 then st.f = st.f - 1 end
        if old >= 2 then st.s = st.s - 1 end
    end
end

-- A new period: calls admitted before no longer count.
local function period(st, state)
    st.state, st.gen = state, st.gen + 1
    st.trials, st.trial_ok, st.trial_slow = 0, 0, 0
end

local function open(st, now, open_for)
    period(st, "open")
    st.opened_at, st.open_for = now, open_for
    clear_window(st)
end

-- Opening again straight from half-open: open_for times open_backoff, capped.
local function reopen(st, now, conf)
    local open_for = st.open_for * conf.open_backoff
    if conf.max_open_for and open_for > conf.max_open_for then open_for = conf.max_open_for end
    open(st, now, open_for)
end

local function close(st, conf)
    period(st, "closed")
    st.open_for = conf.open_for
    clear_window(st)
end

-- open -> half_open once open_for has passed; a half-open period whose trials never all
-- reported within open_for (their process died) starts afresh and admits new trials.
local function advance(st, now)
    if st.state == "open" and now >= st.opened_at + st.open_for then
        period(st, "half_open")
        st.since = now
        return "half_open"
    end
    if st.state == "half_open" and now >= st.since + st.open_for then
        period(st, "half_open")
        st.since = now
    end
    return nil
end

function A.cb_state(st, now, conf)
    local changed = advance(st, now)
    local retry_after = 0
    if st.state == "open" then retry_after = st.opened_at + st.open_for - now
    elseif st.state == "isolated" then retry_after = -1 end
    return st.state, retry_after, changed
end

function A.cb_admit(st, now, conf)
    local changed = advance(st, now)
    local state = st.state
    if state == "closed" then return true, 0, changed, false, st.gen end
    if state == "open" then return false, st.opened_at + st.open_for - now, changed, false, st.gen end
    if state == "isolated" then return false, -1, changed, false, st.gen end
    if st.trials < conf.half_open_calls then
        st.trials = st.trials + 1
        return true, 0, changed, true, st.gen
    end
    return false, 0, changed, false, st.gen -- every trial place is taken: they may end any moment
end

function A.cb_record(st, now, conf, failed, slow, trial, gen)
    if gen ~= st.gen then return nil, nil, 0, 0 end -- the state changed while the call ran
    local state = st.state
    if state == "half_open" and trial then
        if failed then
            reopen(st, now, conf)
            return "open", "trial", 0, 0
        end
        st.trial_ok = st.trial_ok + 1
        if slow then st.trial_slow = st.trial_slow + 1 end
        local n = conf.half_open_calls
        if st.trial_ok < n then return nil, nil, 0, 0 end
        local rate = st.trial_slow / n
        if conf.slow_call_rate and st.trial_slow > 0 and rate >= conf.slow_call_rate then
            reopen(st, now, conf)
            return "open", "slow", rate, n
        end
        close(st, conf)
        return "closed", nil, 0, 0
    end
    if state ~= "closed" or trial then return nil, nil, 0, 0 end
    push(st, now, conf, failed, slow)
    if st.n >= conf.minimum_calls then
        local rate = st.f / st.n
        if st.f > 0 and rate >= conf.failure_rate then
            local n = st.n
            open(st, now, conf.open_for)
            return "open", "failure", rate, n
        end
        if conf.slow_call_rate and st.s > 0 then
            rate = st.s / st.n
            if rate >= conf.slow_call_rate then
                local n = st.n
                open(st, now, conf.open_for)
                return "open", "slow", rate, n
            end
        end
    end
    return nil, nil, 0, 0
end

function A.cb_release_trial(st, gen)
    if gen == st.gen and st.state == "half_open" and st.trials > 0 then st.trials = st.trials - 1 end
end

function A.cb_force(st, now, conf, to)
    if to == "isolated" then
        if st.state == "isolated" then return nil end
        period(st, "isolated")
        return "isolated"
    end
    if st.state == "closed" then -- reset while closed: an empty window, running calls no longer count
        st.gen = st.gen + 1
        clear_window(st)
        return nil
    end
    close(st, conf)
    return "closed"
end

return A
]==]

--- The module table of SOURCE, loaded in this Lua state (for the shared-dict store and specs).
---@return table
function M.load()
    local chunk = assert((loadstring or load)(M.SOURCE, "=dike.store.algorithms"))
    return chunk()
end

return M
