--- Stress scenario for dike.retry with jitter: every attempt of every call fails with
-- probability 40% (decided when the call starts, so its outcome is known), some attempts
-- yield first, and 5% of the calls are cancelled (during an attempt or a delay). Each caller
-- must get its value after exactly the attempts its plan allows, or the error of its last
-- attempt; each retry is logged once with a delay inside the jitter's bounds.
local dike = require("dike")
local harness = require("spec.stress.harness")

local format, getmetatable, rawequal, tonumber, min = string.format, getmetatable, rawequal, tonumber, math.min

local M = { name = "retry" }

local ATTEMPTS = 4

local AttemptError = { __tostring = function(e) return "E" .. e.cid .. "." .. e.k end }

function M.round(p, rand, tally)
    local fig = { calls = 0, cancelled = 0, attempts = 0, failed_attempts = 0, retries = 0, exhausted = 0,
                  succeeded = 0, ended_raising = 0 }
    local live = {}

    -- Bounds of the k-th delay (AWS "Exponential Backoff And Jitter", docs/retry.md).
    local function in_bounds(k, d, prev)
        local b = min(p.delay * 2 ^ (k - 1), p.max_delay)
        local lo, hi
        if p.jitter == "full" then lo, hi = 0, b
        elseif p.jitter == "equal" then lo, hi = b / 2, b
        else lo, hi = p.delay, min(p.max_delay, 3 * (prev or p.delay)) end
        -- The message shows %.3g, off by up to 0.5% of the value, and `prev` is read from it too.
        return d >= lo * (1 - 0.012) and d <= hi * (1 + 0.012)
    end

    local function logger(level, message)
        local cid, k, d = message:match("^Caught exception E(%d+)%.(%d+)%. Retrying in (%S+)s %.%.%.$")
        local rec = cid and live[tonumber(cid)]
        if level ~= "warning" or not rec then
            return tally:bad("unexpected log %s: %s", level, message)
        end
        fig.retries = fig.retries + 1
        rec.logs[#rec.logs + 1] = { k = tonumber(k), d = tonumber(d) }
    end

    local function attempt(rec)
        local k = rec.attempts + 1
        rec.attempts = k
        fig.attempts = fig.attempts + 1
        if rand(3) == 0 then dike.sleep(0) end
        if rec.plan[k] then
            fig.failed_attempts = fig.failed_attempts + 1
            local e = setmetatable({ cid = rec.cid, k = k }, AttemptError)
            rec.errs[k] = e
            error(e)
        end
        return rec.cid * 2 + 1
    end

    local g = dike.retry{ attempts = ATTEMPTS, delay = p.delay, backoff = 2, max_delay = p.max_delay,
                          jitter = p.jitter, logger = logger, log_exception_info = false }(attempt)

    local scenario = {}
    function scenario.prepare(rec)
        rec.attempts, rec.plan, rec.errs, rec.logs = 0, {}, {}, {}
        for k = 1, ATTEMPTS do rec.plan[k] = rand(100) < 40 end
    end
    function scenario.call(rec)
        return g(rec)
    end
    function scenario.verify(rec, ok, v)
        local cid = rec.cid
        if not ok then fig.ended_raising = fig.ended_raising + 1 end
        -- every logged retry: the next attempt number, a delay within bounds
        for j, log in ipairs(rec.logs) do
            if log.k ~= j or not in_bounds(j, log.d, j > 1 and rec.logs[j - 1].d or nil) then
                return tally:bad("call %d: retry %d logged as E%d.%d with delay %s (%s jitter)",
                                 cid, j, cid, log.k, tostring(log.d), p.jitter)
            end
        end
        if rec.cancelled then
            return tally:expect(not ok and getmetatable(v) == dike.CancelledError and rec.attempts <= ATTEMPTS
                                and #rec.logs <= rec.attempts,
                                "call %d was cancelled but got %s after %d attempts", cid, tostring(v), rec.attempts)
        end
        local first_success
        for k = 1, ATTEMPTS do
            if not rec.plan[k] then first_success = k break end
        end
        local want_attempts = first_success or ATTEMPTS
        if rec.attempts ~= want_attempts or #rec.logs ~= want_attempts - 1 then
            return tally:bad("call %d: %d attempts and %d retries logged, wanted %d and %d",
                             cid, rec.attempts, #rec.logs, want_attempts, want_attempts - 1)
        end
        if first_success then
            if not ok or v ~= cid * 2 + 1 then
                return tally:bad("call %d: wanted %d, got %s", cid, cid * 2 + 1, tostring(v))
            end
            fig.succeeded = fig.succeeded + 1
            return tally:ok()
        end
        fig.exhausted = fig.exhausted + 1
        return tally:expect(not ok and rawequal(v, rec.errs[ATTEMPTS]),
                            "call %d: wanted the error of attempt %d, got %s", cid, ATTEMPTS, tostring(v))
    end

    harness.callers(p, rand, scenario, fig, live, tally)

    local s = dike.stats(g)
    fig.stats = s
    fig.gauges_zero = true -- retry keeps no gauges: its counters are checked below
    fig.counters_match = s.calls == fig.calls and s.retries == fig.retries and s.failures == fig.ended_raising
    fig.summary = format("%d calls from %d tasks (%s jitter): %d attempts, %d failed, %d retries logged,"
                         .. " %d calls cancelled, %d gave up after %d attempts, %d got their value",
                         fig.calls, p.tasks, p.jitter, fig.attempts, fig.failed_attempts, fig.retries,
                         fig.cancelled, fig.exhausted, ATTEMPTS, fig.succeeded)
    fig.faults = fig.failed_attempts + fig.cancelled
    return fig, { g }
end

return M
