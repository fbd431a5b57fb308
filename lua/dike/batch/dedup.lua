--- Dedup by key (docs/batch.md, "key"; list mode only): as dataloader does within a batch,
-- rows of one batch whose keys are equal are sent once, and each of their callers gets that
-- row's result. A row's key is `key(v1, ..., vn)`, v_j the row's element of argument j (of a
-- named argument: a table of its fields' elements in that row). Keys are equal as table keys
-- are: the same value (rawequal), or equal strings or numbers (1 == 1.0, 0 == -0).
--
-- The key function is user code: it runs when the call is made, in the caller's coroutine,
-- before the call touches the batch (so what it raises, or waits for, concerns that caller
-- alone). The rows are picked when the batch is sent, from the calls still queued then: a
-- caller cancelled before the send takes its rows out, and the others' rows stay.
local shape = require("dike.batch.shape")

local next, format, unpack = next, string.format, table.unpack or unpack -- luacheck: ignore 143
local is_named, bad_call = shape.is_named, shape.bad_call
local new_tab = require("dike.new_tab")

local M = {}

--- Raise (to the caller) that the key of row r, nil or NaN, cannot be a key.
local function refuse(k, r)
    bad_call(format("key returned %s for row %d of the call (a key cannot be nil or NaN)",
                    k == nil and "nil" or "nan", r))
end
M.refuse = refuse

local function checked(k, r)
    if k == nil or k ~= k then refuse(k, r) end
    return k
end

-- Row r of a named argument: its fields' elements.
local function named_row(t, r)
    local row = {}
    for k, s in next, t do row[k] = s[r] end
    return row
end

--- The keys of a checked call of `rows` rows (arguments ...): the key when it has one row,
--- else the list of its rows' keys. Raises (to the caller) a key that is nil or NaN, or
--- whatever `key` raises.
function M.keys(key, rows, nargs, ...)
    local a1 = ...
    if nargs == 1 and not is_named(a1) then
        if rows == 1 then return checked(key(a1[1]), 1) end
        local ks = new_tab(rows, 0)
        for r = 1, rows do ks[r] = checked(key(a1[r]), r) end
        return ks
    end
    local args, vals = { ... }, new_tab(nargs, 0)
    local named = {}
    for j = 1, nargs do named[j] = is_named(args[j]) end
    local ks = rows > 1 and new_tab(rows, 0) or nil
    for r = 1, rows do
        for j = 1, nargs do
            local a = args[j]
            if named[j] then vals[j] = named_row(a, r) else vals[j] = a[r] end
        end
        local k = checked(key(unpack(vals, 1, nargs)), r)
        if ks == nil then return k end
        ks[r] = k
    end
    return ks
end

-- Elements pick[1..m] of list `col`, in that order.
local function compact(col, pick, m)
    local out = new_tab(m, 0)
    for x = 1, m do out[x] = col[pick[x]] end
    return out
end

--- The rows to send: `full` is the batch's arguments with every queued row (in call order),
--- `keys[i]` and `nrows[i]` those of call i (0 rows: it left the batch). Returns the
--- arguments with one row per distinct key (first occurrence order), the map of each call to
--- its rows there (a row index for a call of one row, else a list of them), the rows sent,
--- and the rows not sent.
function M.select(full, keys, nrows, n, nargs, shapes)
    local seen, pick, map = {}, {}, new_tab(n, 0)
    local m, pos = 0, 0
    for i = 1, n do
        local r = nrows[i]
        if r == 1 then
            pos = pos + 1
            local k = keys[i]
            local idx = seen[k]
            if idx == nil then
                m = m + 1
                pick[m], seen[k], idx = pos, m, m
            end
            map[i] = idx
        elseif r > 1 then
            local ks, rows = keys[i], new_tab(r, 0)
            for x = 1, r do
                pos = pos + 1
                local k = ks[x]
                local idx = seen[k]
                if idx == nil then
                    m = m + 1
                    pick[m], seen[k], idx = pos, m, m
                end
                rows[x] = idx
            end
            map[i] = rows
        end
    end
    if m == pos then return full, map, m, 0 end
    local args = {}
    for j = 1, nargs do
        local kind = shapes[j]
        if kind ~= true and kind.keys then
            local named = {}
            for k, col in next, full[j] do named[k] = compact(col, pick, m) end
            args[j] = named
        else
            args[j] = compact(full[j], pick, m)
        end
    end
    return args, map, m, pos - m
end

return M
