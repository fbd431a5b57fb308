--- Stress scenario for dike.rate_limit: far more concurrent callers than the rate lets
-- through, so calls run at once, wait their turn (up to max_wait) or are refused with
-- dike.RateLimited (the caller then backs off for the retry_after it was given); costs vary
-- (1 to 4 units), the function raises for 10% of the calls, and 5% of the calls are cancelled
-- (most while they wait for their turn). Callers must run in the order they called, never
-- more than burst + rate x elapsed units may have run, and every caller must get exactly its
-- outcome.
local dike = require("dike")
local harness = require("spec.stress.harness")

local format, getmetatable, rawequal = string.format, getmetatable, rawequal

local M = { name = "rate_limit" }

function M.round(p, rand, tally)
    local fig = { calls = 0, cancelled = 0, ran = 0, units = 0, raised = 0, rejected = 0, succeeded = 0,
                  waited = 0 }
    local message = format("Rate limit exceeded for function stress! rate=%g/1s", p.rate)
    local first_at, last_cid = nil, 0

    local function work(rec)
        rec.entered = rec.entered + 1
        local now = dike.now()
        -- the clock as the first call that ran was made (its reservation read it a moment later,
        -- with a full bucket): the bound below is measured from there
        first_at = first_at or rec.t0
        fig.ran = fig.ran + 1
        fig.units = fig.units + rec.cost
        -- in call order: the calls that run do so in the order they were made
        if rec.cid < last_cid then tally:bad("call %d ran after call %d, which called later", rec.cid, last_cid) end
        last_cid = rec.cid
        -- never ahead of the rate: units run so far <= burst + rate * (time since the first)
        local allowed = p.burst + p.rate * (now - first_at)
        if fig.units > allowed + 1e-6 then
            tally:bad("%d units ran within %.6f s: more than burst %d + rate %d/s allow", fig.units,
                      now - first_at, p.burst, p.rate)
        end
        if now - rec.t0 > 1e-4 then fig.waited = fig.waited + 1 end
        if rec.fails then
            fig.raised = fig.raised + 1
            error(rec.err)
        end
        return rec.cid * 2 + 1
    end

    local limiter = dike.rate_limit{ rate = p.rate, burst = p.burst, max_wait = p.max_wait, name = "stress",
                                     cost = function(rec) return rec.cost end }
    local g = limiter(work)

    local scenario = {}
    function scenario.prepare(rec)
        rec.entered = 0
        rec.cost = 1 + rand(4)
        rec.fails = rand(10) == 0
        rec.err = rec.fails and { cid = rec.cid } or nil
    end
    function scenario.call(rec)
        rec.t0 = dike.now()
        return g(rec)
    end
    function scenario.verify(rec, ok, v)
        local cid = rec.cid
        rec.retry_after = nil
        if rec.entered > 1 then return tally:bad("call %d ran %d times", cid, rec.entered) end
        if rec.cancelled and not ok and getmetatable(v) == dike.CancelledError then
            -- cancelled while it waited for its turn: it never ran
            return tally:expect(rec.entered == 0, "call %d was cancelled while waiting but ran", cid)
        end
        if not ok and getmetatable(v) == dike.RateLimited then
            fig.rejected = fig.rejected + 1
            rec.retry_after = v.retry_after
            return tally:expect(rec.entered == 0 and v.message == message and v.retry_after > p.max_wait,
                                "call %d: refused with %q (retry_after %s) after running %d times", cid,
                                tostring(v.message), tostring(v.retry_after), rec.entered)
        end
        if rec.entered ~= 1 then return tally:bad("call %d ended (%s) without running", cid, tostring(v)) end
        if rec.fails then
            return tally:expect(not ok and rawequal(v, rec.err), "call %d: wanted its own error, got %s",
                                cid, tostring(v))
        end
        if not ok or v ~= cid * 2 + 1 then
            return tally:bad("call %d: wanted %d, got %s", cid, cid * 2 + 1, tostring(v))
        end
        fig.succeeded = fig.succeeded + 1
        tally:ok()
    end

    -- A refused caller comes back after the retry_after it was told (at most 20 ms).
    function scenario.pause(rec)
        if rec.retry_after then return rec.retry_after < 0.02 and rec.retry_after or 0.02 end
    end

    local live = {}
    harness.callers(p, rand, scenario, fig, live, tally)

    local s = dike.stats(limiter)
    fig.stats = s
    fig.gauges_zero = s.waiting == 0
    -- Every call counted; the ones that ran are the admitted ones (a caller admitted and then
    -- cancelled before it resumed would be admitted without running: it never runs, and is
    -- not counted as admitted either, since admitted counts resumed callers).
    fig.counters_match = s.calls == fig.calls and s.admitted == fig.ran and s.rejected == fig.rejected
        and s.delayed <= s.admitted
    fig.summary = format("%d calls from %d tasks at %d units/s (burst %d, max_wait %g s): %d ran (%d units,"
                         .. " %d after waiting), %d raised, %d refused, %d cancelled; %d got their value",
                         fig.calls, p.tasks, p.rate, p.burst, p.max_wait, fig.ran, fig.units, fig.waited,
                         fig.raised, fig.rejected, fig.cancelled, fig.succeeded)
    fig.faults = fig.raised + fig.cancelled
    return fig, { g, limiter }
end

return M
