--- dike.batch (docs/batch.md): concurrent calls are collected and the wrapped function is
-- called once per batch with the concatenated arguments; each caller gets its own slice.
--
-- A batch is a record (Q below) that lives from its first call until its last caller has its
-- answer: queued (open, taking calls; or due but held back by max_concurrent_batches), then
-- sent (its function runs in a task of its own, so a caller that is cancelled never strands
-- the others), then ended. The open batch is sent when its rows reach target_batch_size, by
-- its timer max_waiting_time after its first call, to make room under max_batch_size, or by
-- dike.flush; that is the batch's *reason* ("size", "time", "cap", "flush": the one place
-- that knows it is send(), which receives the batch with it). With max_concurrent_batches
-- reached, a due batch waits: the open one keeps taking calls (up to max_batch_size), older
-- ones wait in order (B.held), and each is sent as soon as a running batch ends.
--
-- Where the rows live. List mode keeps them in Lua: a batch holds, per call, its caller, its
-- argument tables and its row count, in three arrays; the rows are read when the batch is
-- sent (so a call is a few table stores: measured, a C queue here cost more than it saved,
-- since Lua has to keep the callers and arguments anyway). Array mode keeps them in C: each
-- call's rows are copied into the open batch's typed buffers as it arrives, and the buffers
-- are the arrays the function receives (batch/columns.lua). Call shapes are checked by
-- batch/shape.lua, keys deduplicated by batch/dedup.lua.
--
-- A caller's wait has one hook (on_cancel) for both places: cancelled while its batch is
-- queued, its rows leave the batch; cancelled after the send, it stops expecting its result,
-- and once no caller of the batch is left the batch's task is cancelled too. Nothing is kept
-- once calls end.
--
-- User code cannot break a batch (README: Errors, dike.batch). Argument tables are read raw
-- and belong to dike until the call returns: the send checks every call against the shape it
-- was queued with, and if one changed nothing is sent and every caller of that batch raises
-- a dike.batch error. The result is read (its #, its rows) inside the batch's task, as part
-- of the function's call: what its metamethods do counts as the function's doing, and
-- delivery only reads a plain table.
local core = require("dike.core")
local rt = require("dike.runtime")
local errors = require("dike.errors")
local events = require("dike.events")
local options = require("dike.options")
local stats = require("dike.stats")
local shape = require("dike.batch.shape")
local columns = require("dike.batch.columns")
local dedup = require("dike.batch.dedup")

local type, select, next, error, pcall, setmetatable, getmetatable, rawequal, format =
    type, select, next, error, pcall, setmetatable, getmetatable, rawequal, string.format
local unpack = table.unpack or unpack -- luacheck: ignore 143
local huge, min = math.huge, math.min
local is_array, array_remove, array_slice, array_split =
    core.is_array, core.array_remove, core.array_slice, core.array_split
local append_call = columns.append_call
local show, describe = options.show, errors.describe
local bad_call = shape.bad_call
local new_tab = require("dike.new_tab")
local TimeoutError = errors.TimeoutError

local M = {}

local FNAME = shape.FNAME
local OPTIONS = { target_batch_size = true, max_waiting_time = true, max_processing_time = true,
                  argument_type = true, max_batch_size = true, max_concurrent_batches = true, key = true }
local ARG_TYPES = { list = true, array = true }
-- The shapes of a batch whose calls each pass one sequence (list mode's fast path).
local ONE_SEQUENCE = { true }
-- Per-call arrays of a new batch are made this large at most (then they grow as usual).
local PREALLOC = 256

-- Wrapped function -> its batcher (dike.flush). Weak: a wrapper nobody holds is collected.
local batchers = setmetatable({}, { __mode = "k" })

---------------------------------------------------------------- per-row failures

local Fail = { __name = "dike.fail" }
Fail.__index = Fail
function Fail:__tostring() return "dike.fail(" .. describe(self.err) .. ")" end

--- Mark one row of a batch result as failed: its caller raises `err`.
---@param err any any value but nil (a caller cannot raise nil: pcall would report no error)
function M.fail(err)
    if err == nil then error("dike.fail: err must not be nil (the value its row's caller raises)", 2) end
    return setmetatable({ err = err }, Fail)
end

---------------------------------------------------------------- the batch's arguments

-- List mode: argument j of the batch is the concatenation of the calls' argument j, read now
-- and checked against the shape each call was queued with (shape.concat raises the batch's
-- error when one changed).
local function list_args(B, Q)
    local n, nargs, shapes, stored, nrows, total = Q.n, Q.nargs, Q.shapes, Q.args, Q.nrows, Q.rows
    local name, concat = B.name, shape.concat
    if nargs == 1 and shapes[1] == true then
        return { concat(name, stored, nrows, n, total, 1, nil) }
    end
    local args, parts = {}, new_tab(n, 0)
    for j = 1, nargs do
        local kind = shapes[j]
        for i = 1, n do
            if nrows[i] > 0 then parts[i] = nargs == 1 and stored[i] or stored[i][j] end
        end
        if kind ~= true and kind.keys then
            local tables = parts
            parts = new_tab(n, 0)
            for i = 1, n do
                if nrows[i] > 0 then shape.check_proxy(name, tables[i], j) end
            end
            local named = {}
            for k in next, kind.keys do
                for i = 1, n do
                    if nrows[i] > 0 then parts[i] = tables[i][k] end
                end
                named[k] = concat(name, parts, nrows, n, total, j, k)
            end
            for i = 1, n do
                if nrows[i] > 0 then shape.check_keys(name, tables[i], kind, j) end
            end
            args[j] = named
        else
            args[j] = concat(name, parts, nrows, n, total, j, nil)
        end
    end
    return args
end

---------------------------------------------------------------- results

local function deliver_error(B, Q, err)
    local tasks, wake = Q.tasks, rt.wake
    for i = 1, Q.n do
        local t = tasks[i]
        if t then
            tasks[i] = false
            B.waiting = B.waiting - 1
            wake(t, false, err)
        end
    end
end

-- Rows `off + 1 .. off + rows` of a result read raw (see call_and_read) as a new sequence,
-- and the first dike.fail among them. (rawequal: a row's metatable is the user's, and ==
-- could run an __eq of its metatable.)
local function slice_list(res, off, rows)
    local out, failed = new_tab(rows, 0), nil
    for r = 1, rows do
        local v = res[off + r]
        if failed == nil and rawequal(getmetatable(v), Fail) then failed = v end
        out[r] = v
    end
    return out, failed
end

-- The same for the rows listed in `idx` (a call whose rows were deduplicated).
local function pick_list(res, idx, rows)
    local out, failed = new_tab(rows, 0), nil
    for r = 1, rows do
        local v = res[idx[r]]
        if failed == nil and rawequal(getmetatable(v), Fail) then failed = v end
        out[r] = v
    end
    return out, failed
end

-- Rows `idx` of an array result as a new array (deduplicated rows are not contiguous).
local function pick_array(res, idx, rows)
    local flat, w, x = {}, res:width(), 0
    for r = 1, rows do
        for c = 1, w do
            x = x + 1
            flat[x] = res:get(idx[r], c)
        end
    end
    return core.array(flat, res:type(), w)
end

-- deliver (below) for a batch whose rows were deduplicated: each call's rows are where Q.map
-- says. (A loop of its own: on LuaJIT it compiles apart from the common one.)
local function deliver_mapped(B, Q, res)
    local tasks, nrows, map, wake = Q.tasks, Q.nrows, Q.map, rt.wake
    local array_result = is_array(res)
    for i = 1, Q.n do
        local t = tasks[i]
        if t then
            local r, m = nrows[i], map[i]
            tasks[i] = false
            B.waiting = B.waiting - 1
            if array_result then
                wake(t, true, r == 1 and array_slice(res, m, 1) or pick_array(res, m, r))
            elseif r == 1 then
                local v = res[m]
                if rawequal(getmetatable(v), Fail) then wake(t, false, v.err) else wake(t, true, { v }) end
            else
                local out, failed = pick_list(res, m, r)
                if failed then wake(t, false, failed.err) else wake(t, true, out) end
            end
        end
    end
end

-- Hand each caller still waiting its rows of `res` (a dike.array, or a table that indexing
-- reads raw: see call_and_read), or the error saying why `res` does not fit. Runs no user code.
local function deliver(B, Q, res, count)
    local total = Q.total
    if count ~= total then
        local got
        if type(count) == "number" then
            got = count .. " results"
        elseif type(res) == "table" then
            got = "a table whose length (#) is " .. show(count)
        else
            got = "a " .. type(res)
        end
        return deliver_error(B, Q, format(
            "%s: %s returned %s for a batch of %d rows (expected a sequence of %d results, one per row)",
            FNAME, B.name, got, total, total))
    end
    -- wake only queues the callers, so nothing else touches the batch during these loops
    if Q.map then return deliver_mapped(B, Q, res) end
    local tasks, nrows, wake = Q.tasks, Q.nrows, rt.wake
    -- an array's rows for every caller at once: one call into the core per batch
    local parts = is_array(res) and array_split(res, nrows, Q.n, tasks)
    local off = 0
    for i = 1, Q.n do
        local t, r = tasks[i], nrows[i]
        if t then
            tasks[i] = false
            B.waiting = B.waiting - 1
            if parts then
                wake(t, true, parts[i])
            elseif r == 1 then
                local v = res[off + 1]
                if rawequal(getmetatable(v), Fail) then wake(t, false, v.err) else wake(t, true, { v }) end
            else
                local out, failed = slice_list(res, off, r)
                if failed then wake(t, false, failed.err) else wake(t, true, out) end
            end
        end
        off = off + r
    end
end

-- The function's call and the reading of its result, in the batch's task (protected by the
-- caller): its result, and its length. A table with a metatable has its # and its rows read
-- here, through its metamethods, into a plain table: whatever those do (raise, wait) is the
-- function's doing, under max_processing_time; delivery then reads plain values only.
local function call_and_read(fn, total, nargs, args)
    local res = fn(unpack(args, 1, nargs))
    if type(res) ~= "table" then
        if is_array(res) then return res, #res end
        return res, nil
    end
    local count = #res
    if count == total and getmetatable(res) ~= nil then
        local plain = new_tab(total, 0)
        for i = 1, total do plain[i] = res[i] end
        res = plain
    end
    return res, count
end

---------------------------------------------------------------- sending

local send -- below

-- Send due batches while a slot is free: those held, in order, then the open batch if due.
local function dispatch(B)
    while B.running < B.max_concurrent do
        local Q
        if B.held_n > 0 then
            local held, h = B.held, B.held_head
            repeat -- (a held batch whose callers all left is skipped)
                Q = held[h]
                held[h] = nil
                h = h + 1
            until not Q.dropped
            B.held_head = h
            B.held_n = B.held_n - 1
            if B.held_n == 0 then B.held_head, B.held_tail = 1, 0 end
        else
            Q = B.open
            if not Q or not Q.reason then return end
            B.open = false
        end
        send(B, Q)
    end
end

-- The batch stops counting as running, once: its function returned, it timed out, or every
-- caller left. Then a batch held back by max_concurrent_batches may go. Returns false when
-- that already happened.
local function end_batch(Q)
    if Q.done then return false end
    Q.done = true
    local B = Q.B
    B.running = B.running - 1
    if Q.ptimer then rt.cancel_timer(Q.ptimer) end -- no effect once it has fired
    if B.held_n > 0 or (B.open and B.open.reason) then dispatch(B) end
    return true
end

local function on_processing_timeout(Q)
    if not end_batch(Q) then return end
    local B = Q.B
    deliver_error(B, Q, TimeoutError.new(format(
        "%s: %s did not return within max_processing_time (%gs)", FNAME, B.name, B.max_processing_time)))
    if Q.task then Q.task:cancel() end
    events.emit("batch", B.name, "timeout", "rows", Q.total)
end

-- The body of a batch's own task.
local function run_batch(Q)
    local B = Q.B
    Q.ptimer = rt.timer(B.max_processing_time, on_processing_timeout, Q)
    local args = Q.out
    Q.out = nil
    local started = events.observed() and rt.now()
    local ok, res, count = pcall(call_and_read, B.fn, Q.total, Q.nargs, args)
    if Q.done then return end -- timed out: the callers already have their error
    if started then -- (before end_batch: the next batch it may send comes after this one's end)
        events.emit("batch", B.name, "done", "rows", Q.total, "seconds", rt.now() - started, "ok", ok)
    end
    if not end_batch(Q) then return end -- (the observer may have cancelled every caller)
    if not ok then return deliver_error(B, Q, res) end
    -- deliver runs no user code; should it still fail, whoever it has not served gets why
    local delivered, err = pcall(deliver, B, Q, res, count)
    if not delivered then deliver_error(B, Q, err) end
end

local function stop_wait_timer(Q)
    local timer = Q.timer
    if timer then
        Q.timer = false
        rt.cancel_timer(timer)
    end
end

--- Send batch Q (due; no longer B.open, nor held) to its own task. Q.reason says why it was
--- due: "size", "time", "cap" or "flush". If a queued call's arguments changed meanwhile,
--- nothing is sent: every caller of the batch raises the message, and `filler` (the running
--- caller whose call made the batch due, if any) gets it returned, (nil, message), to raise.
function send(B, Q, filler)
    stop_wait_timer(Q)
    local ok, args, map, total, skipped
    total = Q.rows
    if B.array_mode then
        ok, args = pcall(columns.args, B.name, Q, Q.shapes)
        Q.cols = nil
    else
        ok, args = pcall(list_args, B, Q)
        if ok and B.key then
            args, map, total, skipped = dedup.select(args, Q.keys, Q.nrows, Q.n, Q.nargs, Q.shapes)
            Q.keys = nil
        end
    end
    Q.args = nil -- the callers' tables: read, not needed any more
    Q.sent = true
    local tasks = Q.tasks
    if not ok then
        Q.done = true
        local wake = rt.wake
        for i = 1, Q.n do
            local t = tasks[i]
            if t then
                tasks[i] = false
                if t ~= filler then wake(t, false, args) end
            end
        end
        return nil, args
    end
    Q.out, Q.map, Q.total, Q.left = args, map, total, Q.live
    B.batches = B.batches + 1
    B.running = B.running + 1
    B.waiting = B.waiting + Q.live
    if skipped then B.deduplicated = B.deduplicated + skipped end
    Q.task = rt.spawn_soon(run_batch, Q)
    events.emit("batch", B.name, "sent", "rows", total, "calls", Q.live, "reason", Q.reason)
    return Q
end

-- Batch Q is due (`reason`, unless it was already): sent at once when a slot is free and no
-- older batch waits for one; else it waits. `closing`: Q takes no more calls (make room under
-- max_batch_size), so it waits in order with the held ones; otherwise it stays the open batch
-- and goes on taking calls until it is sent. A send that fails raises for `filler`.
local function make_due(B, Q, reason, filler, closing)
    if not Q.reason then
        Q.reason = reason
        stop_wait_timer(Q)
    end
    if B.running < B.max_concurrent and B.held_n == 0 then
        if B.open == Q then B.open = false end
        local sent, message = send(B, Q, filler)
        if sent == nil and filler then error(message, 0) end
    elseif closing then
        if B.open == Q then B.open = false end
        local tail = B.held_tail + 1
        B.held_tail, B.held_n = tail, B.held_n + 1
        B.held[tail] = Q
        Q.held = true
    end
end

local function on_max_waiting_time(B, Q)
    Q.timer = false
    if B.open == Q and not Q.reason then make_due(B, Q, "time") end
end

-- A queued batch whose callers all left: nothing of it is sent.
local function drop(B, Q)
    Q.dropped = true
    stop_wait_timer(Q)
    if B.open == Q then
        B.open = false
    elseif Q.held then
        B.held_n = B.held_n - 1 -- dispatch skips it
        if B.held_n == 0 then
            for h = B.held_head, B.held_tail do B.held[h] = nil end
            B.held_head, B.held_tail = 1, 0
        end
    end
end

-- A caller's wait ends without its result (cancelled, interrupted): before the send its rows
-- leave the batch; after, it stops expecting the result, and once no caller of the batch is
-- left nobody could get what the function returns: its task is cancelled (CancelledError
-- where the function waits; one not started yet never runs), so that nothing outlives the
-- calls.
local function on_cancel(t, Q, i)
    local tasks = Q.tasks
    if not rawequal(tasks[i], t) then return end
    tasks[i] = false
    local B = Q.B
    if not Q.sent then
        local rows = Q.nrows[i]
        if Q.cols then columns.remove(Q, i, rows) end
        Q.nrows[i] = 0 -- (what send, delivery and columns.remove read)
        Q.args[i] = false
        Q.live = Q.live - 1
        Q.rows = Q.rows - rows
        if Q.live == 0 then drop(B, Q) end
    else
        B.waiting = B.waiting - 1
        local left = Q.left - 1
        Q.left = left
        if left == 0 and end_batch(Q) then Q.task:cancel() end
    end
end

---------------------------------------------------------------- calls

-- A new open batch of calls shaped `shapes` (per argument: shape.kind_of).
local function open_batch(B, nargs, shapes)
    local size = B.prealloc
    local Q = {
        B = B, n = 0, live = 0, rows = 0,
        tasks = new_tab(size, 0), args = new_tab(size, 0), nrows = new_tab(size, 0), keys = false,
        nargs = nargs, shapes = shapes, single = nargs == 1 and (shapes[1] == true or not shapes[1].keys),
        reason = false, timer = false, held = false, dropped = false, sent = false, done = false,
        cols = false, out = false, map = false, total = 0, left = 0, task = false, ptimer = false,
    }
    if B.key then Q.keys = new_tab(size, 0) end
    Q.timer = rt.timer(B.max_waiting_time, on_max_waiting_time, B, Q)
    B.open = Q
    return Q
end

-- The call reached target_batch_size (or is larger than max_batch_size on its own): its
-- batch is due. (Apart from enqueue, whose frame every waiting caller's stack holds.)
local function fill(B, Q, t, rows)
    local closing = rows > B.max_batch_size
    make_due(B, Q, closing and "cap" or "size", t, closing)
end

-- Queue a checked call of `rows` rows into the open batch Q (`stored`: what send reads of
-- it) and wait. On LuaJIT every waiting caller's coroutine keeps the stack this path reached:
-- keep its frames small.
local function enqueue(B, Q, t, rows, stored)
    local n = Q.n + 1
    Q.n = n
    Q.tasks[n], Q.args[n], Q.nrows[n] = t, stored, rows
    Q.live = Q.live + 1
    local total = Q.rows + rows
    Q.rows = total
    B.calls = B.calls + 1
    if total >= B.target and not Q.reason then fill(B, Q, t, rows) end
    return rt.suspend(t, on_cancel, Q, n)
end

-- A call of `rows` rows would push the open batch past max_batch_size: the open batch is due
-- ("cap") and takes no more calls; the call starts the next batch.
local function make_room(B, rows)
    local Q = B.open
    if Q and Q.rows + rows > B.max_batch_size then
        make_due(B, Q, "cap", nil, true)
        if B.open == Q then B.open = false end
    end
end

-- A call whose arguments were checked (`rows` rows each) and whose keys were computed: checked
-- against the open batch's first call (or opening a batch), queued, and waiting. No user code
-- runs from here on until the call waits.
local function place(B, t, rows, keys, nargs, ...)
    local array_mode = B.array_mode
    make_room(B, rows)
    local Q = B.open
    if Q then
        if nargs ~= Q.nargs then
            bad_call(format("called with %d arguments, but the calls queued for this batch pass %d",
                            nargs, Q.nargs))
        end
        local shapes, check_kind = Q.shapes, shape.check_kind
        for j = 1, nargs do check_kind(array_mode, (select(j, ...)), shapes[j], j) end
    else
        local shapes, kind_of = {}, shape.kind_of
        for j = 1, nargs do shapes[j] = kind_of(array_mode, (select(j, ...))) end
        if nargs == 1 and shapes[1] == true then shapes = ONE_SEQUENCE end
        -- (the buffers first: making them may fail, and then no batch was opened)
        local cols = array_mode and columns.new(B.target, rows, nargs, shapes, ...)
        Q = open_batch(B, nargs, shapes)
        if cols then columns.attach(Q, cols) end
    end
    local stored
    if array_mode then
        columns.append(Q, rows, ...)
        -- a named argument can still change: keep what it held, for the send to check
        local shapes = Q.shapes
        for j = 1, nargs do
            if shapes[j].keys then
                local v = (select(j, ...))
                stored = stored or {}
                stored[#stored + 1], stored[#stored + 2], stored[#stored + 3] = j, v, columns.snapshot(v)
            end
        end
        stored = stored or false
    else
        stored = nargs == 1 and (...) or { ... }
    end
    if keys then Q.keys[Q.n + 1] = keys end
    return enqueue(B, Q, t, rows, stored)
end

-- Every call that is not on a fast path: each argument checked, keys computed (user code,
-- before the call touches any batch), then placed.
local function checked_call(B, t, nargs, ...)
    if nargs == 0 then bad_call("a call needs at least one argument (its rows)") end
    local array_mode = B.array_mode
    local arg_rows = shape.arg_rows
    local rows = arg_rows(array_mode, (...), 1)
    for j = 2, nargs do
        local r = arg_rows(array_mode, (select(j, ...)), j)
        if r ~= rows then
            bad_call(format("argument %d has %d rows but argument 1 has %d", j, r, rows))
        end
    end
    return place(B, t, rows, B.key and dedup.keys(B.key, rows, nargs, ...), nargs, ...)
end

-- List mode's common call: one argument, a sequence without holes and without a metatable,
-- into a batch of such calls (or none). Anything else takes checked_call, which also words
-- the errors. (A dike.array is a userdata, so a table here is never one.)
local function list_call(B, t, nargs, ...)
    local a1 = ...
    if nargs ~= 1 or type(a1) ~= "table" or getmetatable(a1) ~= nil or a1[1] == nil then
        return checked_call(B, t, nargs, ...)
    end
    local rows = #a1
    for i = 2, rows - 1 do
        if a1[i] == nil then return checked_call(B, t, nargs, ...) end
    end
    -- Any key besides 1..#a1 (a hole where # stopped, or other keys): let the checked path
    -- decide. Counted with next() (compiled by LuaJIT): next(a1, #a1) alone is not enough,
    -- since elements past a hole may come earlier in the traversal.
    if rows == 1 then
        if next(a1, next(a1)) ~= nil then return checked_call(B, t, nargs, ...) end
    else
        local k, count = next(a1), 0
        while k ~= nil and count <= rows do
            count = count + 1
            k = next(a1, k)
        end
        if count ~= rows then return checked_call(B, t, nargs, ...) end
    end
    local key, keys = B.key, false
    if key then -- user code: before the call touches any batch
        if rows == 1 then
            keys = key(a1[1])
            if keys == nil or keys ~= keys then dedup.refuse(keys, 1) end
        else
            keys = dedup.keys(key, rows, 1, a1)
        end
    end
    local Q = B.open
    if Q and not Q.single then return place(B, t, rows, keys, 1, a1) end -- (to word the error)
    if not Q or Q.rows + rows > B.max_batch_size then
        make_room(B, rows)
        Q = open_batch(B, 1, ONE_SEQUENCE)
    end
    if keys then Q.keys[Q.n + 1] = keys end
    return enqueue(B, Q, t, rows, a1)
end

-- Array mode's common call: one array, into a batch of such calls: its rows go straight into
-- the open batch's buffer (core.array_append checks that it is an array of the batch's type
-- and width). Anything else, or a call that does not fit under max_batch_size, takes
-- checked_call (with nothing appended).
local function array_call(B, t, nargs, ...)
    local Q = B.open
    if nargs == 1 and Q and Q.single then
        local buf, rows = append_call(Q.cols[1], (...))
        if buf then
            Q.cols[1] = buf
            if rows > 0 then
                if Q.rows + rows <= B.max_batch_size then return enqueue(B, Q, t, rows, false) end
                array_remove(buf, Q.rows + 1, rows)
            end
        end
    end
    return checked_call(B, t, nargs, ...)
end

---------------------------------------------------------------- the wrapper

local Batcher = {}
Batcher.__index = Batcher

function Batcher:snapshot()
    local calls, rows, held = 0, 0, 0
    local Q = self.open
    if Q then
        calls, rows = Q.live, Q.rows
        if Q.reason then held = 1 end
    end
    for h = self.held_head, self.held_tail do
        local D = self.held[h]
        if D and not D.dropped then
            calls, rows, held = calls + D.live, rows + D.rows, held + 1
        end
    end
    return { calls = self.calls, batches = self.batches, queued_calls = calls, queued_rows = rows,
             held_batches = held, running_batches = self.running, waiting = self.waiting,
             deduplicated = self.deduplicated }
end

--- Send `f`'s open batch now, if it has rows (subject to max_concurrent_batches: with the cap
--- reached it is sent as soon as a running batch ends); returns at once. Callable from anywhere,
--- outside coroutines too (e.g. before shutting down).
---@param f function a function wrapped by dike.batch
function M.flush(f)
    local B = batchers[f]
    if B == nil then
        error("dike.flush: expected a function wrapped by dike.batch, got " .. show(f), 2)
    end
    local Q = B.open
    if Q and not Q.reason then make_due(B, Q, "flush") end
end

--- Make a batching decorator.
---@param opts {target_batch_size: integer, max_waiting_time: number, max_processing_time?: number, argument_type?: "list"|"array", max_batch_size?: integer, max_concurrent_batches?: integer, key?: fun(...): any}
---@return fun(fn: function): function
function M.batch(opts)
    opts = options.table(FNAME, opts, OPTIONS)
    local target = options.count(FNAME, opts, "target_batch_size", 1, false, nil)
    if target == nil then
        error(FNAME .. ": target_batch_size must be an integer >= 1, got nil", 2)
    end
    local max_wait = options.number(FNAME, opts, "max_waiting_time", true, false, nil)
    if max_wait == nil then
        error(FNAME .. ": max_waiting_time must be a finite number > 0, got nil", 2)
    end
    local max_proc = options.number(FNAME, opts, "max_processing_time", true, false, 10)
    local arg_type = options.choice(FNAME, opts, "argument_type", ARG_TYPES, "list", '"list" or "array"')
    local cap = options.count(FNAME, opts, "max_batch_size", 1, true, huge)
    if cap < target then
        error(format("%s: max_batch_size must be >= target_batch_size (%d), got %s",
                     FNAME, target, options.show(cap)), 2)
    end
    local concurrent = options.count(FNAME, opts, "max_concurrent_batches", 1, true, huge)
    local key = options.func(FNAME, opts, "key")
    if key and arg_type == "array" then
        error(FNAME .. ': key is for argument_type "list" only (rows of dike.arrays are not deduplicated)', 2)
    end
    local array_mode = arg_type == "array"
    local entry = array_mode and array_call or list_call

    return function(fn)
        options.callable(FNAME, fn)
        local B = setmetatable({
            fn = fn, name = options.name_of(fn), target = target, max_waiting_time = max_wait,
            max_processing_time = max_proc, max_batch_size = cap, max_concurrent = concurrent,
            array_mode = array_mode, key = key, prealloc = min(target, PREALLOC),
            open = false, held = {}, held_head = 1, held_tail = 0, held_n = 0,
            calls = 0, batches = 0, running = 0, waiting = 0, deduplicated = 0,
        }, Batcher)
        local function wrapped(...)
            local t = rt.waiter(FNAME)
            return entry(B, t, select("#", ...), ...)
        end
        stats.register(wrapped, B)
        options.set_name(wrapped, B.name)
        batchers[wrapped] = B
        return wrapped
    end
end

return M
