--- Array mode's batch buffers (docs/batch.md, "Array mode"): the open batch holds one typed
-- buffer per argument (or per field of a named argument), a dike.array with rows to spare
-- made by the C core. A call's rows are appended to the buffers as the call arrives, one
-- memcpy per argument in the core (core.array_append); a cancelled call's rows are taken out
-- again (core.array_remove). When the batch is sent, the buffers themselves are the arrays
-- the function receives: no concatenation pass, no copy. Each caller then gets its rows of
-- an array result as a new array (core.array_slice: one memcpy).
--
-- A batch's columns, in the order of its first call's arguments: Q.cols[c] the buffer,
-- Q.colj[c] its argument, Q.colk[c] its field (nil for a positional argument).
local core = require("dike.core")
local shape = require("dike.batch.shape")

local type, next, select, rawequal, pcall, error, getmetatable, floor, min, max =
    type, next, select, rawequal, pcall, error, getmetatable, math.floor, math.min, math.max
local array_buffer, array_append, array_remove = core.array_buffer, core.array_append, core.array_remove

local M = {}

local ARRAY = getmetatable(core.array({}))
local EFULL = core.EFULL

-- The append every call makes, on LuaJIT through the FFI: core.array_ffi() gives the
-- address of the core's append, which the FFI calls as compiled code. Through the Lua C API
-- the same call exits the JIT's trace on the caller's path and cost ~2,000 instructions per
-- call, more than the copy (measured: bench/lua/array.lua under callgrind).
local ffi_append
do
    local ok, ffi = pcall(require, "ffi")
    if ok and type(ffi) == "table" and core.array_ffi then
        local api = ffi.cast(ffi.typeof([[const struct {
            uint32_t magic, version;
            double (*append)(void *buf, const void *src);
        } *]]), core.array_ffi())
        if api.magic == 0x79617261 and api.version == 1 then
            local append, void_ptr = api.append, ffi.typeof("void *")
            ffi_append = function(buf, src)
                return append(ffi.cast(void_ptr, buf), ffi.cast(void_ptr, src))
            end
        end
    end
end
-- Whether appends go through the FFI (LuaJIT); the specs run both ways.
M.ffi = ffi_append ~= nil

--- Append array `v` (anything: checked) to buffer `buf`: the buffer to keep (a larger one
--- when `buf` was full) and v's rows, or nil when v is not a dike.array of buf's type and
--- width (nothing appended).
function M.append_call(buf, v)
    if M.ffi and ffi_append then
        -- (the metatable says what the FFI may take for a dike.array's memory)
        if type(v) ~= "userdata" or getmetatable(v) ~= ARRAY then return nil end
        local rows = ffi_append(buf, v)
        if rows >= 0 then return buf, rows end
        if rows ~= EFULL then return nil end
    end
    return array_append(buf, v)
end

local ELEM_BYTES = { double = 8, float = 4, int32 = 4, int64 = 8, uint8 = 1 }
-- A new buffer has room for target_batch_size rows (and the rows by which the call that
-- reaches the target may pass it) up to this many bytes; past that it grows by doubling.
local FIRST_BYTES = 262144

--- The buffers of a batch whose first call (already checked) has `rows` rows: shapes[j] the
--- kind of argument j (shape.kind_of). Appends nothing.
function M.new(target, rows, nargs, shapes, ...)
    local cols, colj, colk = {}, {}, {}
    local c = 0
    for j = 1, nargs do
        local v = (select(j, ...))
        local kind = shapes[j]
        if kind.keys then
            for k in next, kind.keys do
                c = c + 1
                cols[c], colj[c], colk[c] = v[k], j, k
            end
        else
            c = c + 1
            cols[c], colj[c] = v, j
        end
    end
    for i = 1, c do
        local like = cols[i]
        local row_bytes = like:width() * ELEM_BYTES[like:type()]
        local want = min(target + rows - 1, max(1, floor(FIRST_BYTES / row_bytes)))
        cols[i] = array_buffer(like, max(rows, want))
    end
    return { cols, colj, colk, c }
end

--- Give the open batch Q the buffers made by M.new.
function M.attach(Q, made)
    Q.cols, Q.colj, Q.colk, Q.ncols = made[1], made[2], made[3], made[4]
end

-- Append the call's arrays to the columns; on an error, take out what was appended.
local function append_all(Q, rows, ...)
    local cols, colj, colk = Q.cols, Q.colj, Q.colk
    for c = 1, Q.ncols do
        local v = (select(colj[c], ...))
        local k = colk[c]
        if k ~= nil then v = v[k] end
        local buf = M.append_call(cols[c], v)
        -- (the call was checked against the batch's kinds: a refusal here is dike's bug)
        if buf == nil then error("dike.batch: internal error: a checked array was refused", 0) end
        cols[c] = buf
    end
    return rows
end

--- Append a checked call's rows (arguments ...) to the open batch Q, all or nothing.
function M.append(Q, rows, ...)
    if Q.ncols == 1 then return append_all(Q, rows, ...) end
    local before = Q.rows
    local ok, err = pcall(append_all, Q, rows, ...)
    if not ok then
        local cols = Q.cols
        for c = 1, Q.ncols do
            if #cols[c] > before then array_remove(cols[c], before + 1, #cols[c] - before) end
        end
        error(err, 0)
    end
    return rows
end

--- For a named argument's check at send: what the call's table held, field by field.
function M.snapshot(t)
    local s = {}
    for k, a in next, t do s[k] = a end
    return s
end

--- Take the rows of call i (its place in the batch: after the rows of the calls before it
--- that are still queued) out of every column.
function M.remove(Q, i, rows)
    local nrows, first = Q.nrows, 1
    for x = 1, i - 1 do first = first + nrows[x] end
    local cols = Q.cols
    for c = 1, Q.ncols do array_remove(cols[c], first, rows) end
end

--- The batch's arguments: its columns, shaped like the calls (a named argument a table of
--- its fields' columns). A named table of a queued call must still hold the arrays it was
--- called with (their rows are in the batch); raises the batch's error if one changed.
function M.args(name, Q, shapes)
    local snaps = Q.args
    for i = 1, Q.n do
        local s = snaps[i]
        if s and Q.nrows[i] > 0 then
            -- s: argument index, table, snapshot, ... for each named argument of call i
            for x = 1, #s, 3 do
                local j, t, snap = s[x], s[x + 1], s[x + 2]
                shape.check_proxy(name, t, j)
                for k, was in next, snap do
                    local now = t[k]
                    if not rawequal(now, was) then shape.changed(name, j, k, shape.array_change(now, was)) end
                end
                shape.check_keys(name, t, shapes[j], j)
            end
        end
    end
    local args, cols, colj, colk = {}, Q.cols, Q.colj, Q.colk
    for c = 1, Q.ncols do
        local j, k = colj[c], colk[c]
        if k == nil then
            args[j] = cols[c]
        else
            local named = args[j] or {}
            named[k] = cols[c]
            args[j] = named
        end
    end
    return args
end

return M
