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
-- gcra(tat, now, T, burst, cost, max_wait) -> admitted, new_tat, wait
--   The GCRA step (dike.rate_limit's): with T = per / rate, new_tat = max(tat, now) + cost*T,
--   allow_at = new_tat - burst*T. allow_at <= now: admitted, wait 0. Else allow_at - now <=
--   max_wait (max_wait < 0 means no bound): admitted with its turn reserved (the caller sleeps
--   `wait` = allow_at - now, then runs). Else not admitted, wait = retry_after, tat unchanged.
--   A nil tat is a limiter never used (its tat is in the past).
--
-- The circuit breaker (dike.circuit_breaker's shared state): a record `st`
--   state      "closed" | "open" | "half_open" | "isolated"
--   opened_at  when it last opened;  open_for  the current open duration (backoff applied)
--   trials     trial calls admitted in this half-open period; trial_ok  those that succeeded
--   since      when it became half-open (a trial that never reports is forgotten after open_for)
--   n, f, s    calls, failures, slow calls in the window
--   win        count window (conf.window): one character per finished call, oldest first:
--              "0" success, "1" failure, "2" slow success, "3" slow failure
--   buckets    time window (conf.window_seconds): "sec:n:f:s;..." per whole second of the clock
-- conf: failure_rate, minimum_calls, window | window_seconds, slow_call_rate (nil: slow calls
-- never open it), open_for, open_backoff, max_open_for (nil: no cap), half_open_calls.
--   cb_admit(st, now, conf) -> allowed, retry_after, changed, trial
--   cb_record(st, now, conf, failed, slow, trial) -> changed, reason, rate, n
--   cb_release_trial(st)                  a trial call was cancelled: its place is free again
--   cb_force(st, now, conf, to)           "isolated" (breaker:isolate) or "closed" (reset)
--   cb_state(st, now, conf) -> state, retry_after, changed     (open -> half_open when due)
-- `changed` is the new state when this step changed it (nil otherwise): exactly one caller,
-- in one process, sees each change, so that one logs it. `reason` is "failure" or "slow"
-- (opened from closed, `rate` over `n` calls) or "trial" (a trial call failed).
--   cb_encode(st) -> string, cb_decode(string|nil, conf) -> st
local M = {}

M.SOURCE = [==[
local floor, format, tonumber = math.floor, string.format, tonumber
local A = {}

function A.gcra(tat, now, T, burst, cost, max_wait)
    local base = tat
    if base == nil or base < now then base = now end
    local new_tat = base + cost * T
    local wait = new_tat - burst * T - now
    if wait <= 0 then return true, new_tat, 0 end
    if max_wait < 0 or wait <= max_wait then return true, new_tat, wait end
    return false, tat, wait
end

local function num(x) return format("%.17g", x) end
A.num = num

local FIELDS = { "state", "opened_at", "open_for", "trials", "trial_ok", "since", "n", "f", "s" }

function A.cb_encode(st)
    return st.state .. "|" .. num(st.opened_at) .. "|" .. num(st.open_for) .. "|" .. st.trials
        .. "|" .. st.trial_ok .. "|" .. num(st.since) .. "|" .. st.n .. "|" .. st.f .. "|" .. st.s
        .. "|" .. st.win .. "|" .. st.buckets
end

local function fresh(conf)
    return { state = "closed", opened_at = 0, open_for = conf.open_for, trials = 0, trial_ok = 0,
             since = 0, n = 0, f = 0, s = 0, win = "", buckets = "" }
end

function A.cb_decode(text, conf)
    if text == nil or text == "" then return fresh(conf) end
    local st, i = {}, 1
    for part in string.gmatch(text .. "|", "([^|]*)|") do
        local k = FIELDS[i]
        if k == "state" then st.state = part
        elseif k then st[k] = tonumber(part) or 0
        elseif i == 10 then st.win = part
        elseif i == 11 then st.buckets = part end
        i = i + 1
    end
    if i ~= 12 then return fresh(conf) end -- not ours (or an older layout): start afresh
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

local function open(st, now, open_for)
    st.state, st.opened_at, st.open_for = "open", now, open_for
    st.trials, st.trial_ok = 0, 0
    clear_window(st)
end

-- open -> half_open once open_for has passed; a half-open period whose trials never all
-- reported within open_for (their process died) admits new trials.
local function advance(st, now)
    if st.state == "open" and now >= st.opened_at + st.open_for then
        st.state, st.trials, st.trial_ok, st.since = "half_open", 0, 0, now
        return "half_open"
    end
    if st.state == "half_open" and now >= st.since + st.open_for then
        st.trials, st.trial_ok, st.since = 0, 0, now
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
    if state == "closed" then return true, 0, changed, false end
    if state == "open" then return false, st.opened_at + st.open_for - now, changed, false end
    if state == "isolated" then return false, -1, changed, false end
    if st.trials < conf.half_open_calls then
        st.trials = st.trials + 1
        return true, 0, changed, true
    end
    -- every trial place is taken: ask again when the oldest trials are given up on
    return false, st.since + st.open_for - now, changed, false
end

function A.cb_record(st, now, conf, failed, slow, trial)
    local state = st.state
    if state == "half_open" and trial then
        if failed then
            local open_for = st.open_for * conf.open_backoff
            if conf.max_open_for and open_for > conf.max_open_for then open_for = conf.max_open_for end
            open(st, now, open_for)
            return "open", "trial", 0, 0
        end
        st.trial_ok = st.trial_ok + 1
        if st.trial_ok >= conf.half_open_calls then
            st.state, st.trials, st.trial_ok, st.open_for = "closed", 0, 0, conf.open_for
            clear_window(st)
            return "closed", nil, 0, 0
        end
        return nil, nil, 0, 0
    end
    if state ~= "closed" or trial then return nil, nil, 0, 0 end -- it changed while the call ran
    push(st, now, conf, failed, slow)
    if st.n >= conf.minimum_calls then
        local rate = st.f / st.n
        if rate >= conf.failure_rate then
            local n = st.n
            open(st, now, conf.open_for)
            return "open", "failure", rate, n
        end
        if conf.slow_call_rate then
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

function A.cb_release_trial(st)
    if st.state == "half_open" and st.trials > 0 then st.trials = st.trials - 1 end
end

function A.cb_force(st, now, conf, to)
    if st.state == to then return nil end
    if to == "isolated" then
        st.state, st.trials, st.trial_ok = "isolated", 0, 0
    else
        st.state, st.trials, st.trial_ok, st.open_for = "closed", 0, 0, conf.open_for
        clear_window(st)
    end
    return to
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
