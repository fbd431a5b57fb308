--- The shape of a batched call (docs/batch.md, "A call"): each argument a non-empty sequence
-- (or dike.array in array mode), or a table of named ones, all of one call with the same
-- number of rows; every call of a batch shaped like its first. Checked when the call is
-- made (an error reaches that caller alone), and again when its batch is sent: argument
-- tables belong to dike until the call returns, and a call whose tables changed meanwhile
-- fails its whole batch (list mode reads the rows at that moment; array mode copied them on
-- arrival, so only a named table can still change).
--
-- Argument tables are read raw: a table whose metatable has __index or __len (a proxy) is
-- refused, so that plain indexing never runs user code.
local core = require("dike.core")
local options = require("dike.options")
local describe = require("dike.errors").describe

local type, next, error, format, getmetatable, rawget, sort, concat =
    type, next, error, string.format, getmetatable, rawget, table.sort, table.concat
local debug_getmetatable = debug.getmetatable
local floor = math.floor
local is_array = core.is_array
local hole_above, show = options.hole_above, options.show
local new_tab = require("dike.new_tab")

local M = {}

local FNAME = "dike.batch"
M.FNAME = FNAME

--- Raise a call-shape error (to the offending caller only), without a position: the message
--- says what is wrong with the call.
local function bad_call(msg)
    error(FNAME .. ": " .. msg, 0)
end
M.bad_call = bad_call

local function show_arg(v)
    if is_array(v) then return "a dike.array" end
    return show(v)
end

-- How messages name argument j, or its field k.
local function arg_name(j, k)
    if k == nil then return "argument " .. j end
    return "argument " .. j .. " field " .. format("%q", k)
end

--- A table whose metatable would change what dike reads (raw): the metamethod's name, else
--- nil. (debug.getmetatable: a __metatable field does not hide it.)
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

--- Is `v` a table of named sequences/arrays (rather than one sequence/array)?
local function is_named(v)
    return type(v) == "table" and v[1] == nil and not is_array(v) and next(v) ~= nil
end
M.is_named = is_named

--- Rows of argument j: a sequence/array, or a table of named ones of equal length. Raises
--- (to the caller) what is wrong with it.
function M.arg_rows(array_mode, v, j)
    if type(v) == "table" then refuse_proxy(v, j, nil) end
    if not is_named(v) then
        return rows_of(array_mode, v, j)
    end
    local rows, first
    for k, s in next, v do
        if type(k) ~= "string" then
            if is_holed_sequence(v, k) then return rows_of(array_mode, v, j) end
            bad_call("argument " .. j .. " mixes named sequences with a non-string key " .. show(k))
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

--- The kind of an argument of a batch's first call, which every later call must match and
--- which the send checks again: `true` (a sequence), {t = elemtype, w = width} (an array), or
--- {n = key count, keys = {name = kind of that field}} (named).
function M.kind_of(array_mode, v)
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

--- Whether table v has exactly the keys of a named kind.
local function same_keys(v, kind)
    local keys, n = kind.keys, 0
    for k in next, v do
        if keys[k] == nil then return false end
        n = n + 1
    end
    return n == kind.n
end
M.same_keys = same_keys

--- "{a, b}": the keys of a table, sorted, for messages.
local function key_list(t)
    local ks = {}
    for k in next, t do ks[#ks + 1] = describe(k) end
    sort(ks)
    return "{" .. concat(ks, ", ") .. "}"
end
M.key_list = key_list

--- Argument j of a call against the kind of argument j of the batch's first call.
function M.check_kind(array_mode, v, kind, j)
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

---------------------------------------------------------------- at send: changed arguments

--- The error every caller of a batch gets when a queued call's argument changed.
local function changed_message(name, j, k, detail)
    return format("%s: %s: %s of a queued call changed before its batch was sent (%s); argument tables"
                  .. " belong to dike until the call returns", FNAME, name, arg_name(j, k), detail)
end
M.changed_message = changed_message

local function changed(name, j, k, detail)
    error(changed_message(name, j, k, detail), 0)
end
M.changed = changed

--- Rows 1..r of a queued call's sequence `src` appended to `out` after `pos`, checking that
--- it still has the shape it was queued with. Returns nil, or what changed.
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
M.copy_rows = copy_rows

--- A named argument table of a queued call, before its fields are read: raises (the batch's
--- error) when it is now a proxy.
function M.check_proxy(name, t, j)
    local p = proxy_of(t) -- before t[k] could run its __index
    if p then changed(name, j, nil, "it is now a proxy table (its metatable has " .. p .. ")") end
end

--- A named argument table of a queued call, after its fields were read: raises (the batch's
--- error) when its key set is not the one it was queued with.
function M.check_keys(name, t, kind, j)
    if not same_keys(t, kind) then
        changed(name, j, nil, "it had keys " .. key_list(kind.keys) .. ", now " .. key_list(t))
    end
end

--- What changed in field k of a named argument j of array mode, where the call held array
--- `was` (its rows are in the batch) and the field now holds `now` (not `was`).
function M.array_change(now, was)
    if not is_array(now) then return format("it had %d rows, now %s", #was, show_arg(now)) end
    if now:type() ~= was:type() or now:width() ~= was:width() then
        return format("it was %s, now %s", kind_name(true, was), kind_name(true, now))
    end
    if #now ~= #was then return format("it had %d rows, now %d", #was, #now) end
    return "it now holds another dike.array (array rows are copied when the call is made)"
end

--- Argument j (field k) of the calls concatenated: the list of the n calls' parts, each of
--- rows[i] rows (a call with 0 rows left the batch), checked against its rows. Raises the
--- batch's error when one changed.
function M.concat(name, parts, rows, n, total, j, k)
    local out, pos = new_tab(total, 0), 0
    for i = 1, n do
        local r = rows[i]
        if r > 0 then
            local what = copy_rows(out, pos, parts[i], r)
            if what then changed(name, j, k, what) end
            pos = pos + r
        end
    end
    return out
end

return M
