--- Stress scenario for dike.batch: many concurrent callers with random row counts; the batch
-- function raises for 10% of the batches, stalls past max_processing_time for 2%, returns
-- the wrong number of results for 1%, marks 3% of the rows dike.fail, and yields or sleeps
-- at random; 5% of the calls are cancelled (queued or sent). Every caller must get exactly
-- the outcome its batch decided, and the batch function must see each live call's rows
-- whole, in order.
--
-- A row is one number that says which call it belongs to and where:
-- code = (cid * 8 + rows - 1) * 8 + i - 1 (rows and i in 1..8), so the batch function can check
-- the concatenation without asking anyone.
local dike = require("dike")
local harness = require("spec.stress.harness")

local floor, format, getmetatable, rawequal = math.floor, string.format, getmetatable, rawequal

local M = { name = "batch" }

local function encode(cid, rows, i) return (cid * 8 + rows - 1) * 8 + i - 1 end
local function decode(code) return floor(code / 64), floor(code / 8) % 8 + 1, code % 8 + 1 end

local function row_fails(code) return code * 7919 % 100 < 3 end -- 3% of the rows
local function row_error(code) return "row " .. code .. " failed" end
local function row_result(code) return code * 2 + 1 end

--- One round; returns its figures and the wrapped functions (for the GC check). The calls go
--- at random to batchers of three sizes (p.sizes): batches sent by size with a cap, mostly by
--- max_waiting_time (so more cancelled callers are still queued), and tiny ones.
function M.round(p, rand, tally)
    local fig = { calls = 0, cancelled = 0, cancelled_seen = 0, cancelled_unseen = 0, batches = 0, raised = 0,
                  stalled = 0, timed_out = 0, abandoned = 0, bad_length = 0, rows = 0, rows_failed = 0,
                  orphan_rows = 0, succeeded = 0 }
    local live, batches = {}, {}
    local name, timeout_message

    -- Sleep inside the batch function. A cancellation there means the batch timed out, or that
    -- every one of its callers was cancelled (which of the two, the round's end tells).
    local function nap(b, seconds)
        local ok, e = pcall(dike.sleep, seconds)
        if not ok then
            if getmetatable(e) == dike.CancelledError then b.kind = "cancelled" end
            error(e, 0)
        end
    end

    -- Walk the rows: whole calls, in order, argument 2 matching argument 1.
    local function check_rows(b, xs, ys)
        local cur_cid, cur_rows, cur_i = nil, 0, 0
        for k = 1, #xs do
            local code = xs[k]
            local cid, rows, i = decode(code)
            if ys[k] ~= -code then tally:bad("batch %d row %d: argument 2 holds %s", b.id, k, tostring(ys[k])) end
            if i == 1 then
                if cur_i ~= cur_rows then tally:bad("batch %d: call %s was split", b.id, tostring(cur_cid)) end
                cur_cid, cur_rows, cur_i = cid, rows, 1
                local rec = live[cid]
                if rec then rec.batch = b else fig.orphan_rows = fig.orphan_rows + rows end
            elseif cid ~= cur_cid or i ~= cur_i + 1 then
                tally:bad("batch %d row %d: row %d of call %d follows row %d of call %s",
                          b.id, k, i, cid, cur_i, tostring(cur_cid))
            else
                cur_i = i
            end
        end
        if cur_i ~= cur_rows then tally:bad("batch %d: its last call was split", b.id) end
        if #xs > b.cap then tally:bad("batch %d has %d rows, above the cap %d", b.id, #xs, b.cap) end
    end

    local function batch_fn(cap, xs, ys)
        local b = { id = #batches + 1, rows = #xs, cap = cap, timeouts_seen = 0 }
        batches[b.id] = b
        fig.batches = fig.batches + 1
        fig.rows = fig.rows + #xs
        check_rows(b, xs, ys)
        local r = rand(1000)
        if r < 100 then
            if rand(2) == 0 then nap(b, 0) end
            b.kind, b.err = "raise", { batch = b.id }
            fig.raised = fig.raised + 1
            error(b.err)
        elseif r < 120 then
            fig.stalled = fig.stalled + 1
            nap(b, p.max_processing_time * 4) -- raises when the batch times out
            tally:bad("batch %d: a stalled batch was not timed out", b.id)
        end
        local y = rand(10)
        if y < 3 then nap(b, 0) elseif y == 3 then nap(b, rand(3000) * 1e-6) end
        local out = {}
        for k = 1, #xs do
            local code = xs[k]
            if row_fails(code) then
                out[k] = dike.fail(row_error(code))
                fig.rows_failed = fig.rows_failed + 1
            else
                out[k] = row_result(code)
            end
        end
        if r < 130 then
            b.kind = "bad_length"
            fig.bad_length = fig.bad_length + 1
            out[#out] = nil
            return out
        end
        b.kind = "ok"
        return out
    end

    local batchers = {}
    for i, size in ipairs(p.sizes) do
        local cap = size.max_batch_size
        local fn = function(xs, ys) return batch_fn(cap, xs, ys) end
        batchers[i] = dike.batch{ target_batch_size = size.target, max_waiting_time = p.max_waiting_time,
                                  max_processing_time = p.max_processing_time, max_batch_size = cap }(fn)
        local info = debug.getinfo(fn, "S")
        name = info.short_src .. ":" .. info.linedefined -- the same line for every size
    end
    timeout_message = format("dike.batch: %s did not return within max_processing_time (%gs)",
                             name, p.max_processing_time)

    local scenario = {}
    function scenario.prepare(rec)
        local rows = rand(8) + 1
        local xs, ys = {}, {}
        for i = 1, rows do
            local code = encode(rec.cid, rows, i)
            xs[i], ys[i] = code, -code
        end
        rec.xs, rec.ys = xs, ys
        rec.f = batchers[rand(#batchers) + 1]
    end
    function scenario.call(rec)
        return rec.f(rec.xs, rec.ys)
    end
    function scenario.verify(rec, ok, v)
        local b, cid = rec.batch, rec.cid
        if rec.cancelled then
            -- before its batch function saw its rows (taken out of the open batch, or sent and
            -- not yet started), or after
            if b then
                fig.cancelled_seen = fig.cancelled_seen + 1
            else
                fig.cancelled_unseen = fig.cancelled_unseen + 1
            end
            return tally:expect(not ok and getmetatable(v) == dike.CancelledError,
                                "call %d was cancelled but got %s", cid, tostring(v))
        end
        if not b then return tally:bad("call %d: no batch saw its rows, yet it ended (%s)", cid, tostring(v)) end
        if b.kind == "raise" then
            return tally:expect(not ok and rawequal(v, b.err), "call %d: wanted batch %d's error, got %s",
                                cid, b.id, tostring(v))
        elseif b.kind == "cancelled" or (b.kind == nil and getmetatable(v) == dike.TimeoutError) then
            -- The callers of a batch that times out resume before its task learns it was
            -- cancelled (b.kind is still nil then): the round's end checks that it did learn.
            b.timeouts_seen = b.timeouts_seen + 1
            return tally:expect(not ok and getmetatable(v) == dike.TimeoutError and tostring(v) == timeout_message,
                                "call %d: wanted the TimeoutError of batch %d, got %s", cid, b.id, tostring(v))
        elseif b.kind == "bad_length" then
            local want = format("dike.batch: %s returned %d results for a batch of %d rows (expected a"
                                .. " sequence of %d results, one per row)", name, b.rows - 1, b.rows, b.rows)
            return tally:expect(not ok and v == want, "call %d: wanted %q, got %s", cid, want, tostring(v))
        elseif b.kind ~= "ok" then
            return tally:bad("call %d ended while batch %d had no outcome (%s)", cid, b.id, tostring(v))
        end
        for i = 1, #rec.xs do
            local code = rec.xs[i]
            if row_fails(code) then
                return tally:expect(not ok and v == row_error(code),
                                    "call %d: wanted %q, got %s", cid, row_error(code), tostring(v))
            end
        end
        if not ok or type(v) ~= "table" or #v ~= #rec.xs then
            return tally:bad("call %d: wanted %d results, got %s", cid, #rec.xs, tostring(v))
        end
        for i = 1, #rec.xs do
            if v[i] ~= row_result(rec.xs[i]) then
                return tally:bad("call %d row %d: wanted %s, got %s", cid, i, row_result(rec.xs[i]), tostring(v[i]))
            end
        end
        fig.succeeded = fig.succeeded + 1
        tally:ok()
    end

    harness.callers(p, rand, scenario, fig, live, tally)
    if next(live) ~= nil then tally:bad("calls still marked as going on after the round") end
    for _, b in ipairs(batches) do
        if b.kind == nil then tally:bad("batch %d never ended", b.id) end
        if b.timeouts_seen > 0 and b.kind ~= "cancelled" then
            tally:bad("batch %d timed out for %d callers but its task ended as %q", b.id, b.timeouts_seen, b.kind)
        end
        if b.kind == "cancelled" then
            if b.timeouts_seen > 0 then
                fig.timed_out = fig.timed_out + 1
            else -- none of its callers saw a timeout: they were all cancelled
                fig.abandoned = fig.abandoned + 1
            end
        end
    end

    local calls, sent = 0, 0
    fig.gauges_zero = true
    for _, f in ipairs(batchers) do
        local s = dike.stats(f)
        fig.stats = s
        fig.gauges_zero = fig.gauges_zero and s.queued_calls == 0 and s.queued_rows == 0 and s.running_batches == 0
            and s.waiting == 0
        calls, sent = calls + s.calls, sent + s.batches
    end
    -- Sent batches whose callers were all cancelled before the function started never call it.
    fig.never_started = sent - fig.batches
    fig.counters_match = calls == fig.calls and fig.never_started >= 0 and fig.never_started <= fig.cancelled
    fig.summary = format("%d calls from %d tasks, %d batches of %d rows: %d raised, %d stalled, %d timed out,"
                         .. " %d wrong length, %d rows dike.fail, %d calls cancelled (%d before their batch"
                         .. " function saw them, %d rows orphaned, %d batches left by all their callers, %d"
                         .. " before they started); %d calls got their rows' results",
                         fig.calls, p.tasks, fig.batches, fig.rows, fig.raised, fig.stalled, fig.timed_out,
                         fig.bad_length, fig.rows_failed, fig.cancelled, fig.cancelled_unseen, fig.orphan_rows,
                         fig.abandoned, fig.never_started, fig.succeeded)
    fig.faults = fig.raised + fig.stalled + fig.bad_length + fig.rows_failed + fig.cancelled
    return fig, batchers
end

return M
