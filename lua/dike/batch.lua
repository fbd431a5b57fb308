--- dike.batch (docs/batch.md): concurrent calls are collected and the wrapped function is
-- called once per batch with the concatenated arguments; each caller gets its own slice.
--
-- The open batch lives in the C core's batch queue (dike.core.batchq): a call is a row
-- segment with an id; the Lua side keeps the caller's task and arguments by that id.
-- A batch is sent when its rows reach target_batch_size, or by the batcher's single timer
-- max_waiting_time after its first call. The function runs in a task of its own, so a
-- caller that is cancelled never strands the others.
--
-- A caller's wait has two places: queued (cancel = remove its rows from the open batch)
-- and sent (cancel = stop expecting its result; when no caller of the batch is left, the
-- batch's task is cancelled too). Nothing is kept once calls end.
--
-- User code cannot break a batch (README: Errors, dike.batch). Argument tables are
-- read raw: a table whose metatable has __index or __len (a proxy) is refused at the call,
-- so plain indexing never runs user code. They belong to dike until the call returns, but a
-- caller can still change them while its call is queued: the send checks every call against
-- the shape (rows, keys, array kinds) it was queued with, and if one changed, nothing is
-- sent and every caller of that batch raises a dike.batch error. The result is read (its
-- #, its rows) inside the batch's task, as part of the function's call: what its
-- metamethods do counts as the function's doing, and delivery only reads a plain table.
local core = require("dike.core")
local rt = require("dike.runtime")
local errors = require("dike.errors")
local events = require("dike.events")
local options = require("dike.options")
local stats = require("dike.stats")

local type, select, next, error, pcall, setmetatable, getmetatable, rawget, rawequal, format =
    type, select, next, error, pcall, setmetatable, getmetatable, rawget, rawequal, string.format
local debug_getmetatable = debug.getmetatable
local unpack = table.unpack or unpack -- luacheck: ignore 143
-- Tables of a known size made at that size (LuaJIT); elsewhere they grow as usual.
local new_tab = (function()
    local ok, fn = pcall(require, "table.new")
    if ok then return fn end
    return function() return {} end
end)()
local huge, floor = math.huge, math.floor
local is_array, array_concat = core.is_array, core.array_concat
local hole_above, show = options.hole_above, options.show
local describe = errors.describe
local TimeoutError = errors.TimeoutError

local M = {}

local FNAME = "dike.batch"
local OPTIONS = { target_batch_size = true, max_waiting_time = true, max_processing_time = true,
                  argument_type = true, max_batch_size = true }
local ARG_TYPES = { list = true, array = true }

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

---------------------------------------------------------------- call shape

-- Call-shape errors reach the offending caller only; raised without a position, since
-- the message says what is wrong with the call.
local function bad_call(msg)
    error(FNAME .. ": " .. msg, 0)
end

local function show_arg(v)
    if is_array(v) then return "a dike.array" end
    return show(v)
end

-- How messages name argument j, or its field k.
local function arg_name(j, k)
    if k == nil then return "argument " .. j end
    return "argument " .. j .. " field " .. format("%q", k)
end

-- A table whose metatable would change what dike reads (raw): the metamethod's name, else nil.
-- (debug.getmetatable: a __metatable field does not hide it.)
local function proxy_of(t)
    local mt = debug_getmetatable(t)
    if mt == nil then return nil end
    if rawget(mt, "__index") ~= nil then return "__index" end
    if rawget(mt, "__len") ~= nil then return "__len" end
    return nil
end

local function refuse_proxy(t, j, k)
    local p = proxy_of(t)
    if p then
        bad_call(arg_name(j, k) .. " is a proxy table (its metatable has " .. p .. "): batch reads argument"
                 .. " tables raw; pass a plain table")
    end
end

-- Rows of one sequence (list mode) or array (array mode): argument j, or its field k.
-- The name for a message is only made when there is one to give.
local function rows_of(array_mode, v, j, k)
    if array_mode then
        if not is_array(v) then
            bad_call(arg_name(j, k) .. " must be a dike.array (argument_type \"array\"), got " .. show_arg(v))
        end
        local r = #v
        if r == 0 then bad_call(arg_name(j, k) .. " is empty: a call needs at least one row") end
        return r
    end
    if type(v) ~= "table" then
        bad_call(arg_name(j, k) .. " must be a non-empty sequence, got " .. show_arg(v))
    end
    if k ~= nil then refuse_proxy(v, j, k) end -- (argument j itself: checked by arg_rows)
    local r = #v
    for i = 1, r - 1 do
        if v[i] == nil then bad_call(arg_name(j, k) .. " has a hole at index " .. i) end
    end
    local hole = hole_above(v, r)
    if hole then bad_call(arg_name(j, k) .. " has a hole at index " .. hole) end
    if r == 0 then
        if next(v) ~= nil then -- e.g. a table of named sequences inside another
            bad_call(arg_name(j, k) .. " must be a non-empty sequence, got a table without element 1"
                     .. " (named sequences do not nest)")
        end
        bad_call(arg_name(j, k) .. " is empty: a call needs at least one row")
    end
    return r
end

-- A table with positive integer keys but neither element 1 nor any name: a sequence with a
-- hole at 1 (not a named argument).
local function is_holed_sequence(t, k)
    if type(k) ~= "number" or k < 1 or k ~= floor(k) then return false end
    for key in next, t do
        if type(key) == "string" then return false end
    end
    return true
end

-- Is `v` a table of named sequences/arrays (rather than one sequence/array)?
local function is_named(v)
    return type(v) == "table" and v[1] == nil and not is_array(v) and next(v) ~= nil
end

-- Rows of argument j: a sequence/array, or a table of named ones of equal length.
local function arg_rows(array_mode, v, j)
    if type(v) == "table" then refuse_proxy(v, j, nil) end
    if not is_named(v) then
        return rows_of(array_mode, v, j)
    end
    local rows, first
    for k, s in next, v do
        if type(k) ~= "string" then
            if is_holed_sequence(v, k) then return rows_of(array_mode, v, j) end
            bad_call("argument " .. j .. " mixes named sequences with a non-string key " .. options.show(k))
        end
        local r = rows_of(array_mode, s, j, k)
        if rows == nil then
            rows, first = r, k
        elseif r ~= rows then
            bad_call(format("argument %d field %q has %d rows but field %q has %d", j, k, r, first, rows))
        end
    end
    return rows
end

local function kind_name(array_mode, v)
    if is_named(v) then return "named sequences" end
    if array_mode then return format("a dike.array of %s x%d", v:type(), v:width()) end
    return "a sequence"
end

-- The kind of each argument of a batch's first call, which every later call must match and
-- which the send checks again: `true` (a sequence), {t = elemtype, w = width} (an array), or
-- {n = key count, keys = {name = kind of that field}} (named).
local function kind_of(array_mode, v)
    if is_named(v) then
        local keys, n = {}, 0
        for k, s in next, v do
            n = n + 1
            keys[k] = not array_mode or { t = s:type(), w = s:width() }
        end
        return { n = n, keys = keys }
    end
    return not array_mode or { t = v:type(), w = v:width() }
end

local function kind_text(kind)
    if kind == true then return "a sequence" end
    if kind.keys then return "named sequences" end
    return format("a dike.array of %s x%d", kind.t, kind.w)
end

local function same_array_kind(a, kind)
    return a:type() == kind.t and a:width() == kind.w
end

local function same_keys(v, kind)
    local keys, n = kind.keys, 0
    for k in next, v do
        if keys[k] == nil then return false end
        n = n + 1
    end
    return n == kind.n
end

local function key_list(t)
    local ks = {}
    for k in next, t do ks[#ks + 1] = describe(k) end
    table.sort(ks)
    return "{" .. table.concat(ks, ", ") .. "}"
end

-- Argument j of a call against the kind of argument j of the batch's first call.
local function check_kind(array_mode, v, kind, j)
    local named, kind_named = is_named(v), kind ~= true and kind.keys ~= nil
    if named ~= kind_named then
        bad_call(format("argument %d is %s, but the calls queued for this batch pass %s there",
                        j, kind_name(array_mode, v), kind_text(kind)))
    end
    if named then
        if not same_keys(v, kind) then
            bad_call(format("argument %d has keys %s, but the calls queued for this batch have %s",
                            j, key_list(v), key_list(kind.keys)))
        end
        if array_mode then
            for k, a in next, v do
                local fk = kind.keys[k]
                if not same_array_kind(a, fk) then
                    bad_call(format("argument %d field %q is %s, but the calls queued for this batch pass %s",
                                    j, k, kind_name(true, a), kind_text(fk)))
                end
            end
        end
    elseif array_mode and not same_array_kind(v, kind) then
        bad_call(format("argument %d is %s, but the calls queued for this batch pass %s",
                        j, kind_name(true, v), kind_text(kind)))
    end
end

---------------------------------------------------------------- concatenation

-- Rows 1..r of a queued call's sequence `src` appended to `out` after `pos`, checking that
-- it still has the shape it was queued with. Returns nil, or what changed.
local function copy_rows(out, pos, src, r)
    if type(src) ~= "table" then return format("it had %d rows, now %s", r, show_arg(src)) end
    if getmetatable(src) ~= nil then
        local p = proxy_of(src)
        if p then return "it is now a proxy table (its metatable has " .. p .. ")" end
    end
    for x = 1, r do
        local v = src[x]
        if v == nil then return format("it had %d rows, row %d is now nil", r, x) end
        out[pos + x] = v
    end
    if src[r + 1] ~= nil then return format("it had %d rows, now %d", r, #src) end
    return nil
end

-- The error every caller of a batch gets when a queued call's argument changed.
local function changed_message(B, j, k, detail)
    return format("%s: %s: %s of a queued call changed before its batch was sent (%s); argument tables"
                  .. " belong to dike until the call returns", FNAME, B.name, arg_name(j, k), detail)
end

local function changed(B, j, k, detail)
    error(changed_message(B, j, k, detail), 0)
end

-- Argument j (field k) of the n calls concatenated, each part checked against its rows.
local function concat_parts(B, parts, rows, n, total, kind, j, k)
    if B.array_mode then
        -- A positional array cannot change (arrays are immutable); a field of a named table can.
        if k ~= nil then
            for i = 1, n do
                local a, r = parts[i], rows[i]
                if not is_array(a) then changed(B, j, k, format("it had %d rows, now %s", r, show_arg(a))) end
                if not same_array_kind(a, kind) then
                    changed(B, j, k, format("it was %s, now %s", kind_text(kind), kind_name(true, a)))
                end
                if #a ~= r then changed(B, j, k, format("it had %d rows, now %d", r, #a)) end
            end
        end
        if n == 1 then return parts[1] end -- arrays are immutable: share it
        return array_concat(parts)
    end
    local out, pos = new_tab(total, 0), 0
    for i = 1, n do
        local r = rows[i]
        local what = copy_rows(out, pos, parts[i], r)
        if what then changed(B, j, k, what) end
        pos = pos + r
    end
    return out
end

-- The batch's arguments: argument j is the concatenation of the calls' argument j. Raises
-- (a string) when a call's arguments changed while it was queued.
local function build_args(B, calls, rows, n, total)
    local nargs, shape = B.nargs, B.shape
    local args, parts = {}, {}
    for j = 1, nargs do
        local kind = shape[j]
        if kind ~= true and kind.keys then
            local tables = {}
            for i = 1, n do
                local t = nargs == 1 and calls[i] or calls[i][j]
                local p = proxy_of(t) -- before t[k] below could run its __index
                if p then changed(B, j, nil, "it is now a proxy table (its metatable has " .. p .. ")") end
                tables[i] = t
            end
            local named = {}
            for k, fk in next, kind.keys do
                for i = 1, n do parts[i] = tables[i][k] end
                named[k] = concat_parts(B, parts, rows, n, total, fk, j, k)
            end
            for i = 1, n do
                local t = tables[i]
                if not same_keys(t, kind) then
                    changed(B, j, nil, "it had keys " .. key_list(kind.keys) .. ", now " .. key_list(t))
                end
            end
            args[j] = named
        else
            for i = 1, n do parts[i] = nargs == 1 and calls[i] or calls[i][j] end
            args[j] = concat_parts(B, parts, rows, n, total, kind, j, nil)
        end
    end
    return args
end

---------------------------------------------------------------- results

local function deliver_error(B, batch, err)
    local tasks = batch.tasks
    for i = 1, batch.n do
        local t = tasks[i]
        if t then
            tasks[i] = false
            B.waiting = B.waiting - 1
            rt.wake(t, false, err)
        end
    end
end

-- (rawequal: a row's metatable is the user's, and == could run an __eq of its metatable.)
local function slice_list(res, off, rows)
    local out, failed = new_tab(rows, 0), nil
    for r = 1, rows do
        local v = res[off + r]
        if failed == nil and rawequal(getmetatable(v), Fail) then failed = v end
        out[r] = v
    end
    return out, failed
end

-- Hand each caller still waiting its rows of `res` (a dike.array, or a table that indexing
-- reads raw: see read_result), or the error saying why `res` does not fit. Runs no user code.
local function deliver(B, batch, res, count)
    local wake = rt.wake
    local total = batch.total
    if count ~= total then
        local got
        if type(count) == "number" then
            got = count .. " results"
        elseif type(res) == "table" then
            got = "a table whose length (#) is " .. show(count)
        else
            got = "a " .. type(res)
        end
        return deliver_error(B, batch, format(
            "%s: %s returned %s for a batch of %d rows (expected a sequence of %d results, one per row)",
            FNAME, B.name, got, total, total))
    end
    -- wake only queues the callers, so nothing else touches the batch during this loop
    local array_result = is_array(res)
    local tasks, rows = batch.tasks, batch.rows
    local off = 0
    for i = 1, batch.n do
        local t, r = tasks[i], rows[i]
        if t then
            tasks[i] = false
            B.waiting = B.waiting - 1
            if array_result then
                wake(t, true, res:slice(off + 1, r))
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

-- The batch stops counting as running, once: its function returned, it timed out, or every
-- caller left. Returns false when that already happened.
local function end_batch(batch)
    if batch.done then return false end
    batch.done = true
    batch.B.running = batch.B.running - 1
    if batch.timer then rt.cancel_timer(batch.timer) end -- no effect once it has fired
    return true
end

local function on_processing_timeout(batch)
    if not end_batch(batch) then return end
    local B = batch.B
    deliver_error(B, batch, TimeoutError.new(format(
        "%s: %s did not return within max_processing_time (%gs)", FNAME, B.name, B.max_processing_time)))
    if batch.task then batch.task:cancel() end
    events.emit("batch", B.name, "timeout", "rows", batch.total)
end

-- The body of a batch's own task.
local function run_batch(batch)
    local B = batch.B
    batch.timer = rt.timer(B.max_processing_time, on_processing_timeout, batch)
    local args = batch.args
    batch.args = nil
    local started = events.observed() and rt.now()
    local ok, res, count = pcall(call_and_read, B.fn, batch.total, batch.nargs, args)
    if not end_batch(batch) then return end -- timed out: the callers already have their error
    if started then
        events.emit("batch", B.name, "done", "rows", batch.total, "seconds", rt.now() - started, "ok", ok)
    end
    if not ok then return deliver_error(B, batch, res) end
    -- deliver runs no user code; should it still fail, whoever it has not served gets why
    local delivered, err = pcall(deliver, B, batch, res, count)
    if not delivered then deliver_error(B, batch, err) end
end

---------------------------------------------------------------- sending

-- A sent caller is cancelled: it no longer expects its result. Once no caller of the batch
-- is left, nobody could get what the function returns: cancel its task (CancelledError where
-- the function waits; one not started yet never runs), so that nothing outlives the calls.
local function on_cancel_sent(t, batch, i)
    if batch.tasks[i] == t then
        batch.tasks[i] = false
        local B = batch.B
        B.waiting = B.waiting - 1
        batch.left = batch.left - 1
        if batch.left == 0 and end_batch(batch) then batch.task:cancel() end
    end
end

-- The open batch is closed (sent, failed, or emptied by cancellations).
local function close(B)
    B.open, B.single, B.shape = false, false, false
end

--- Send the open batch (if any) to its own task; returns the batch record. If a queued
--- call's arguments changed meanwhile, nothing is sent: every caller of the batch raises
--- the message, and `filler` (the running caller whose call filled the batch, if any) gets
--- it returned, (nil, message), to raise itself.
local function send(B, filler, reason)
    if B.timer then
        rt.cancel_timer(B.timer)
        B.timer = nil
    end
    local seg = B.seg
    local n, total = B.q:take(seg)
    if n == 0 then return nil end
    local task_of, args_of = B.task_of, B.args_of
    local tasks, rows = new_tab(n, 0), new_tab(n, 0)
    local batch = { B = B, n = n, left = n, total = total, tasks = tasks, rows = rows, done = false,
                    nargs = B.nargs, args = false, task = false, timer = false }
    -- One sequence per call (the common case): concatenate it here, without a table of calls.
    local list = B.single and new_tab(total, 0)
    local calls = not list and new_tab(n, 0)
    local pos, what = 0, nil
    for i = 1, n do
        local id, r = seg[3 * i - 2], seg[3 * i - 1]
        local t, a = task_of[id], args_of[id]
        task_of[id], args_of[id] = nil, nil
        tasks[i], rows[i] = t, r
        if list then
            if what == nil then what = copy_rows(list, pos, a, r) end
            pos = pos + r
        else
            calls[i] = a
        end
        if t ~= filler then rt.rehook(t, on_cancel_sent, batch, i) end
    end
    local message
    if list then
        if what then message = changed_message(B, 1, nil, what) else batch.args = { list } end
    else
        local ok, args = pcall(build_args, B, calls, rows, n, total)
        if ok then batch.args = args else message = args end
    end
    close(B)
    if message then
        for i = 1, n do
            local t = tasks[i]
            if t ~= filler then rt.wake(t, false, message) end
        end
        return nil, message
    end
    B.batches = B.batches + 1
    B.running = B.running + 1
    B.waiting = B.waiting + n
    batch.task = rt.spawn_soon(run_batch, batch)
    events.emit("batch", B.name, "sent", "rows", total, "calls", n, "reason", reason)
    return batch
end

local function on_max_waiting_time(B)
    B.timer = nil
    send(B, nil, "time")
end

-- A queued caller is cancelled: take its rows out of the open batch.
local function on_cancel_queued(_, B, id)
    if B.q:cancel(id) then
        B.task_of[id], B.args_of[id] = nil, nil
        if B.q:count() == 0 then
            if B.timer then
                rt.cancel_timer(B.timer)
                B.timer = nil
            end
            close(B)
        end
    end
end

---------------------------------------------------------------- the wrapper

local Batcher = {}
Batcher.__index = Batcher

function Batcher:snapshot()
    return { calls = self.calls, batches = self.batches, queued_calls = self.q:count(),
             queued_rows = self.q:rows(), running_batches = self.running, waiting = self.waiting }
end

-- The first call of a batch opens it and gives its shape: true (one sequence: the fast
-- path), or the kinds of its arguments (kind_of), against which the later calls are checked.
local function open_batch(B, nargs, shape)
    B.open, B.nargs = true, nargs
    if shape == true then B.single = true else B.shape = shape end
    B.timer = rt.timer(B.max_waiting_time, on_max_waiting_time, B)
end

-- The call that filled the batch sends it: the batch and this call's place in it, or raise
-- why nothing was sent. (Apart from enqueue, whose frame every waiting caller keeps: on
-- LuaJIT two more slots there made each waiting caller's coroutine stack grow, 94 bytes.)
local function send_filled(B, t)
    -- it reached target_batch_size, or it is a call larger than max_batch_size
    local batch, message = send(B, t, B.q:rows() >= B.target and "size" or "cap")
    if batch == nil then error(message, 0) end
    return batch, batch.n
end

-- Queue a checked call (its args: the one argument, or a table of them) into the open batch
-- and wait.
local function enqueue(B, t, rows, args)
    local id, queued = B.q:append(rows)
    B.task_of[id], B.args_of[id] = t, args
    B.calls = B.calls + 1
    if queued >= B.target or rows > B.max_batch_size then
        return rt.suspend(t, on_cancel_sent, send_filled(B, t)) -- this call arrived last
    end
    return rt.suspend(t, on_cancel_queued, B, id)
end

-- A call that would push the open batch past the cap starts the next batch.
local function make_room(B, rows)
    if B.open and B.max_batch_size ~= huge and B.q:rows() + rows > B.max_batch_size then send(B, nil, "cap") end
end

-- Every other call: each argument checked, and checked against the batch's first call.
local function checked_call(B, t, nargs, ...)
    if nargs == 0 then bad_call("a call needs at least one argument (its rows)") end
    local array_mode = B.array_mode
    local a1 = ...
    local rows = arg_rows(array_mode, a1, 1)
    for j = 2, nargs do
        local r = arg_rows(array_mode, (select(j, ...)), j)
        if r ~= rows then
            bad_call(format("argument %d has %d rows but argument 1 has %d", j, r, rows))
        end
    end
    make_room(B, rows)
    if B.open then
        if nargs ~= B.nargs then
            bad_call(format("called with %d arguments, but the calls queued for this batch pass %d",
                            nargs, B.nargs))
        end
        if B.single then
            check_kind(array_mode, a1, true, 1)
        else
            local kinds = B.shape
            for j = 1, nargs do check_kind(array_mode, (select(j, ...)), kinds[j], j) end
        end
    elseif nargs == 1 then
        local kind = kind_of(array_mode, a1)
        open_batch(B, 1, kind == true or { kind })
    else
        local shape = {}
        for j = 1, nargs do shape[j] = kind_of(array_mode, (select(j, ...))) end
        open_batch(B, nargs, shape)
    end
    return enqueue(B, t, rows, nargs == 1 and a1 or { ... })
end

-- The common call in list mode: one argument, a sequence without holes and without a
-- metatable, into a batch of such calls (or an empty one). Anything else takes checked_call,
-- which also words the errors. (A dike.array is a userdata, so a table here is never one.)
local function call(B, t, nargs, ...)
    local a1 = ...
    if nargs ~= 1 or B.array_mode or type(a1) ~= "table" or getmetatable(a1) ~= nil or a1[1] == nil then
        return checked_call(B, t, nargs, ...)
    end
    if B.open and not B.single then
        return checked_call(B, t, nargs, ...)
    end
    local rows = #a1
    for i = 2, rows - 1 do
        if a1[i] == nil then return checked_call(B, t, nargs, ...) end
    end
    -- Anything after element #a1 (a hole where LuaJIT's # stopped, or other keys): let the
    -- checked path decide. One next() here, not options.hole_above: on Lua 5.4 a deeper frame
    -- here grows every waiting caller's coroutine stack (bench/RESULTS.md, B/waiting).
    if next(a1, rows) ~= nil then return checked_call(B, t, nargs, ...) end
    make_room(B, rows)
    if not B.open then open_batch(B, 1, true) end
    return enqueue(B, t, rows, a1)
end

--- Make a batching decorator.
---@param opts {target_batch_size: integer, max_waiting_time: number, max_processing_time?: number, argument_type?: "list"|"array", max_batch_size?: integer}
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

    return function(fn)
        options.callable(FNAME, fn)
        local B = setmetatable({
            fn = fn, name = options.name_of(fn), target = target, max_waiting_time = max_wait,
            max_processing_time = max_proc, max_batch_size = cap, array_mode = arg_type == "array",
            q = core.batchq(), seg = {}, task_of = {}, args_of = {},
            open = false, nargs = 0, single = false, shape = false,
            calls = 0, batches = 0, running = 0, waiting = 0,
        }, Batcher)
        local function wrapped(...)
            local t = rt.waiter(FNAME)
            return call(B, t, select("#", ...), ...)
        end
        stats.register(wrapped, B)
        options.set_name(wrapped, B.name)
        return wrapped
    end
end

return M
