--- Stress scenario for dike.limit_jobs with a queue: far more concurrent callers than slots
-- and queue places, so calls run, queue (FIFO, some until queue_timeout) or are rejected at
-- once; the function raises for 10% of the calls and yields or sleeps at random; 5% of the
-- calls are cancelled (queued, handed a slot, or running). No more than `limit` calls may run
-- at once, queued callers get their slots in the order they called (FIFO), and every caller
-- must get exactly its outcome.
local dike = require("dike")
local harness = require("spec.stress.harness")

local format, getmetatable, rawequal = string.format, getmetatable, rawequal

local M = { name = "limit_jobs" }

function M.round(p, rand, tally)
    local fig = { calls = 0, cancelled = 0, ran = 0, granted_from_queue = 0, raised = 0, rejected = 0,
                  queue_timeouts = 0, succeeded = 0, max_running = 0 }
    local running = 0
    -- The call being made right now (nil once its caller is suspended and another runs), and
    -- the last call that got its slot after waiting in the queue.
    local calling, last_queued_cid = nil, 0
    local message = format("Too many calls to function stress! limit=%d exceeded", p.limit)

    local function work(rec)
        rec.entered = rec.entered + 1
        fig.ran = fig.ran + 1
        if calling ~= rec then -- it waited in the queue: FIFO among those
            if rec.cid < last_queued_cid then
                tally:bad("call %d got its slot after call %d, which called later", rec.cid, last_queued_cid)
            end
            last_queued_cid = rec.cid
            fig.granted_from_queue = fig.granted_from_queue + 1
        end
        calling = nil
        running = running + 1
        if running > fig.max_running then fig.max_running = running end
        if running > p.limit then tally:bad("%d calls running at once, limit %d", running, p.limit) end
        local y, ok, e = rand(10), true, nil
        if y < 2 then ok, e = pcall(dike.sleep, 0) elseif y < 3 then ok, e = pcall(dike.sleep, rand(2000) * 1e-6) end
        running = running - 1
        if not ok then error(e, 0) end -- cancelled while running
        if rec.fails then
            fig.raised = fig.raised + 1
            error(rec.err)
        end
        return rec.cid * 2 + 1
    end

    local limiter = dike.limit_jobs{ limit = p.limit, queue = p.queue, queue_timeout = p.queue_timeout,
                                     name = "stress" }
    local g = limiter(work)

    local scenario = {}
    function scenario.prepare(rec)
        rec.entered = 0
        rec.fails = rand(10) == 0
        rec.err = rec.fails and { cid = rec.cid } or nil
    end
    function scenario.call(rec)
        rec.t0 = dike.now()
        calling = rec
        return g(rec)
    end
    function scenario.verify(rec, ok, v)
        local cid = rec.cid
        if rec.entered > 1 then return tally:bad("call %d ran %d times", cid, rec.entered) end
        if rec.cancelled then
            return tally:expect(not ok and getmetatable(v) == dike.CancelledError,
                                "call %d was cancelled but got %s", cid, tostring(v))
        end
        if not ok and getmetatable(v) == dike.TooManyCalls then
            fig.rejected = fig.rejected + 1
            -- a caller that waited its whole queue_timeout (the others are refused at once)
            if dike.now() - rec.t0 >= p.queue_timeout * 0.9 then fig.queue_timeouts = fig.queue_timeouts + 1 end
            rec.rejected = true
            return tally:expect(rec.entered == 0 and tostring(v) == message,
                                "call %d: rejected with %q after running %d times", cid, tostring(v), rec.entered)
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

    -- A rejected caller backs off a little, so that more of the calls go through the queue.
    function scenario.pause(rec)
        if rec.rejected then return rand(5000) * 1e-6 end
    end

    local live = {}
    harness.callers(p, rand, scenario, fig, live, tally)
    if running ~= 0 then tally:bad("%d calls still counted as running", running) end
    if fig.max_running ~= p.limit then
        tally:bad("at most %d calls ran at once: the round never filled the %d slots", fig.max_running, p.limit)
    end

    local s = dike.stats(limiter)
    fig.stats = s
    fig.gauges_zero = s.running == 0 and s.queued == 0
    -- A caller rejected (queue timeout) and then cancelled before it resumed counts as rejected
    -- but raises CancelledError: stats may count up to `cancelled` rejections more.
    fig.counters_match = s.calls == fig.calls and s.rejected >= fig.rejected
        and s.rejected <= fig.rejected + fig.cancelled
    fig.summary = format("%d calls from %d tasks into %d slots + %d queue places: %d ran (at most %d at once,"
                         .. " %d after queueing), %d raised, %d rejected (%d after queue_timeout), %d cancelled;"
                         .. " %d got their value", fig.calls, p.tasks, p.limit, p.queue, fig.ran, fig.max_running,
                         fig.granted_from_queue, fig.raised, fig.rejected, fig.queue_timeouts, fig.cancelled,
                         fig.succeeded)
    fig.faults = fig.raised + fig.cancelled + fig.queue_timeouts
    return fig, { g, limiter }
end

return M
