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
local core = require("dike.core")
local rt = require("dike.runtime")
local errors = require("dike.errors")
local options = require("dike.options")
local stats = require("dike.stats")

local type, select, pairs, next, error, pcall, setmetatable, getmetatable, tostring, format =
    type, select, pairs, next, error, pcall, setmetatable, getmetatable, tostring, string.format
local unpack = table.unpack or unpack -- luacheck: ignore 143
-- Tables of a known size made at that size (LuaJIT); elsewhere they grow as usual.
local new_tab = (function()
    local ok, fn = pcall(require, "table.new")
    if ok then return fn end
    return function() return {} end
end)()
local huge, floor = math.huge, math.floor
local is_array, array_concat = core.is_array, core.array_concat
local hole_above = options.hole_above
local TimeoutError = errors.TimeoutError

local M = {}

local FNAME = "dike.batch"
local OPTIONS = { target_batch_size = true, max_waiting_time = true, max_processing_time = true,
                  argument_type = true, max_batch_size = true }
local ARG_TYPES = { list = true, array = true }

---------------------------------------------------------------- per-row failures

local Fail = { __name = "dike.fail" }
Fail.__index = Fail
function Fail:__tostring() return "dike.fail(" .. tostring(self.err) .. ")" end

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

local function describe(v)
    if is_array(v) then return "a dike.array" end
    return options.show(v)
end

-- How messages name argument j, or its field k.
local function arg_name(j, k)
    if k == nil then return "argument " .. j end
    return "argument " .. j .. " field " .. format("%q", k)
end

-- Rows of one sequence (list mode) or array (array mode): argument j, or its field k.
-- The name for a message is only made when there is one to give.
local function rows_of(array_mode, v, j, k)
    if array_mode then
        if not is_array(v) then
            bad_call(arg_name(j, k) .. " must be a dike.array (argument_type \"array\"), got " .. describe(v))
        end
        local r = #v
        if r == 0 then bad_call(arg_name(j, k) .. " is empty: a call needs at least one row") end
        return r
    end
    if type(v) ~= "table" then
        bad_call(arg_name(j, k) .. " must be a non-empty sequence, got " .. describe(v))
    end
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
    for key in pairs(t) do
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
    if not is_named(v) then
        return rows_of(array_mode, v, j)
    end
    local rows, first
    for k, s in pairs(v) do
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

local function same_keys(a, b)
    local n = 0
    for k in pairs(a) do
        if b[k] == nil then return false end
        n = n + 1
    end
    for _ in pairs(b) do n = n - 1 end
    return n == 0
end

local function key_list(t)
    local ks = {}
    for k in pairs(t) do ks[#ks + 1] = tostring(k) end
    table.sort(ks)
    return "{" .. table.concat(ks, ", ") .. "}"
end

local function same_array_kind(a, b)
    return a:type() == b:type() and a:width() == b:width()
end

-- Argument j of a call against argument j of the batch's first call.
local function check_kind(array_mode, v, first, j)
    local named, first_named = is_named(v), is_named(first)
    if named ~= first_named then
        bad_call(format("argument %d is %s, but the calls queued for this batch pass %s there",
                        j, kind_name(array_mode, v), kind_name(array_mode, first)))
    end
    if named then
        if not same_keys(v, first) then
            bad_call(format("argument %d has keys %s, but the calls queued for this batch have %s",
                            j, key_list(v), key_list(first)))
        end
        if array_mode then
            for k, a in pairs(v) do
                if not same_array_kind(a, first[k]) then
                    bad_call(format("argument %d field %q is %s, but the calls queued for this batch pass %s",
                                    j, k, kind_name(true, a), kind_name(true, first[k])))
                end
            end
        end
    elseif array_mode and not same_array_kind(v, first) then
        bad_call(format("argument %d is %s, but the calls queued for this batch pass %s",
                        j, kind_name(true, v), kind_name(true, first)))
    end
end

---------------------------------------------------------------- concatenation

local function concat_lists(parts, n)
    local out, pos = {}, 0
    for i = 1, n do
        local src = parts[i]
        for r = 1, #src do out[pos + r] = src[r] end
        pos = pos + #src
    end
    return out
end

local function concat_parts(array_mode, parts, n)
    if array_mode then
        if n == 1 then return parts[1] end -- arrays are immutable: share it
        return array_concat(parts)
    end
    return concat_lists(parts, n)
end

-- The batch's arguments: argument j is the concatenation of the calls' argument j.
local function build_args(B, calls, n)
    local nargs, array_mode = B.nargs, B.array_mode
    local args, parts = {}, {}
    for j = 1, nargs do
        local first = nargs == 1 and calls[1] or calls[1][j]
        if is_named(first) then
            local named = {}
            for k in pairs(first) do
                for i = 1, n do
                    local c = calls[i]
                    parts[i] = (nargs == 1 and c or c[j])[k]
                end
                named[k] = concat_parts(array_mode, parts, n)
            end
            args[j] = named
        else
            for i = 1, n do
                local c = calls[i]
                parts[i] = nargs == 1 and c or c[j]
            end
            args[j] = concat_parts(array_mode, parts, n)
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

local function slice_list(res, off, rows)
    local out, failed = new_tab(rows, 0), nil
    for r = 1, rows do
        local v = res[off + r]
        if failed == nil and getmetatable(v) == Fail then failed = v end
        out[r] = v
    end
    return out, failed
end

local function deliver(B, batch, res)
    local wake = rt.wake
    local total = batch.total
    local array_result = is_array(res)
    local count = (array_result or type(res) == "table") and #res or nil
    if count ~= total then
        local got = count and (count .. " results") or ("a " .. type(res))
        return deliver_error(B, batch, format(
            "%s: %s returned %s for a batch of %d rows (expected a sequence of %d results, one per row)",
            FNAME, B.name, got, total, total))
    end
    -- wake only queues the callers, so nothing else touches the batch during this loop
    local tasks, rows = batch.tasks, batch.rows
    local off, woken = 0, 0
    for i = 1, batch.n do
        local t, r = tasks[i], rows[i]
        if t then
            tasks[i] = false
            woken = woken + 1
            if array_result then
                wake(t, true, res:slice(off + 1, r))
            elseif r == 1 then
                local v = res[off + 1]
                if getmetatable(v) == Fail then wake(t, false, v.err) else wake(t, true, { v }) end
            else
                local out, failed = slice_list(res, off, r)
                if failed then wake(t, false, failed.err) else wake(t, true, out) end
            end
        end
        off = off + r
    end
    B.waiting = B.waiting - woken
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
end

-- The body of a batch's own task.
local function run_batch(batch)
    local B = batch.B
    batch.timer = rt.timer(B.max_processing_time, on_processing_timeout, batch)
    local args = batch.args
    batch.args = nil
    local ok, res = pcall(B.fn, unpack(args, 1, batch.nargs))
    if not end_batch(batch) then return end -- timed out: the callers already have their error
    if ok then deliver(B, batch, res) else deliver_error(B, batch, res) end
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

--- Send the open batch (if any) to its own task; returns the batch record.
local function send(B)
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
    local list = not B.array_mode and B.nargs == 1 and B.first[1] ~= nil and new_tab(total, 0)
    local calls = not list and new_tab(n, 0)
    local pos = 0
    for i = 1, n do
        local id, r = seg[3 * i - 2], seg[3 * i - 1]
        local t, a = task_of[id], args_of[id]
        task_of[id], args_of[id] = nil, nil
        tasks[i], rows[i] = t, r
        if list then
            for j = 1, r do list[pos + j] = a[j] end
            pos = pos + r
        else
            calls[i] = a
        end
        rt.rehook(t, on_cancel_sent, batch, i)
    end
    batch.args = list and { list } or build_args(B, calls, n)
    B.first = nil
    B.batches = B.batches + 1
    B.running = B.running + 1
    B.waiting = B.waiting + n
    batch.task = rt.spawn_soon(run_batch, batch)
    return batch
end

local function on_max_waiting_time(B)
    B.timer = nil
    send(B)
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
            B.first = nil
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

-- Queue a checked call (its args: the one argument, or a table of them) and wait.
local function enqueue(B, t, rows, args, nargs)
    local id, queued = B.q:append(rows)
    B.task_of[id], B.args_of[id] = t, args
    B.calls = B.calls + 1
    if B.first == nil then
        B.first, B.nargs = args, nargs
        B.timer = rt.timer(B.max_waiting_time, on_max_waiting_time, B)
    end
    if queued >= B.target or rows > B.max_batch_size then
        local batch = send(B)
        return rt.suspend(t, on_cancel_sent, batch, batch.n) -- this call arrived last
    end
    return rt.suspend(t, on_cancel_queued, B, id)
end

-- A call that would push the open batch past the cap starts the next batch.
local function make_room(B, rows)
    if B.first ~= nil and B.max_batch_size ~= huge and B.q:rows() + rows > B.max_batch_size then send(B) end
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
    local first = B.first
    if first then
        if nargs ~= B.nargs then
            bad_call(format("called with %d arguments, but the calls queued for this batch pass %d",
                            nargs, B.nargs))
        end
        if nargs == 1 then
            check_kind(array_mode, a1, first, 1)
        else
            for j = 1, nargs do check_kind(array_mode, (select(j, ...)), first[j], j) end
        end
    end
    return enqueue(B, t, rows, nargs == 1 and a1 or { ... }, nargs)
end

-- The common call in list mode: one argument, a sequence without holes, into a batch of
-- such calls (or an empty one). Anything else takes checked_call, which also words the
-- errors. (A dike.array is a userdata, so a table here is never one.)
local function call(B, t, nargs, ...)
    local a1 = ...
    if nargs ~= 1 or B.array_mode or type(a1) ~= "table" or a1[1] == nil then
        return checked_call(B, t, nargs, ...)
    end
    local first = B.first
    if first ~= nil and (B.nargs ~= 1 or first[1] == nil) then
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
    return enqueue(B, t, rows, a1, 1)
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
            calls = 0, batches = 0, running = 0, waiting = 0,
        }, Batcher)
        local function wrapped(...)
            local t = rt.waiter(FNAME)
            return call(B, t, select("#", ...), ...)
        end
        stats.register(wrapped, B)
        return wrapped
    end
end

return M
