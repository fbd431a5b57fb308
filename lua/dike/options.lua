--- Checks for the options tables of dike's tools. Every message names the tool and the
-- option, e.g. "dike.batch: target_batch_size must be an integer >= 1, got 0".
local getmetatable, rawget = getmetatable, rawget
local type, pairs, tostring, error, format, huge, floor, setmetatable =
    type, pairs, tostring, error, string.format, math.huge, math.floor, setmetatable
local describe = require("dike.errors").describe

local M = {}

--- How a bad value is shown in messages: strings quoted, NaN as "nan" on every interpreter
--- (Lua 5.4 prints the NaN of 0/0 as "-nan", LuaJIT as "nan"), tables etc. by their type.
local function show(v)
    if type(v) == "string" then return format("%q", v) end
    if v ~= v then return "nan" end
    if type(v) == "number" or type(v) == "boolean" or v == nil then return tostring(v) end
    return "a " .. type(v)
end
M.show = show

local function fail(fname, key, what, v, why)
    error(fname .. ": " .. key .. " must be " .. what .. ", got " .. show(v) .. (why or ""), 4)
end

-- Counts stay within the integers a double holds exactly (LuaJIT's numbers are doubles):
-- beyond, n + 1 == n, and string.format("%d", n) raises on Lua 5.4.
local MAX_COUNT = 2 ^ 53

--- `opts` must be a table (nil allowed when `optional`) whose keys are all in `allowed`.
function M.table(fname, opts, allowed, optional)
    if opts == nil and optional then return {} end
    if type(opts) ~= "table" then
        error(fname .. ": options must be a table, got " .. show(opts), 3)
    end
    for k in pairs(opts) do
        if not allowed[k] then
            error(fname .. ": unknown option " .. show(k), 3)
        end
    end
    return opts
end

--- An integer in [min, 2^53], or math.huge when inf_ok; nil gives `default`.
function M.count(fname, opts, key, min, inf_ok, default)
    local v = opts[key]
    if v == nil then return default end
    if type(v) == "number" and v >= min and (v == floor(v) and v <= MAX_COUNT or (inf_ok and v == huge)) then
        return v
    end
    local too_big = type(v) == "number" and v > MAX_COUNT and v < huge and v == floor(v)
    fail(fname, key, "an integer >= " .. min .. (inf_ok and " or math.huge" or ""), v,
         too_big and " (integers above 2^53 are not exact)" or nil)
end

--- A number > 0 (strict) or >= 0; math.huge allowed only when inf_ok. nil gives `default`.
function M.number(fname, opts, key, strict, inf_ok, default)
    local v = opts[key]
    if v == nil then return default end
    if type(v) == "number" and v == v and (v > 0 or (not strict and v == 0))
        and (v < huge or inf_ok) then
        return v
    end
    fail(fname, key, "a " .. (inf_ok and "" or "finite ") .. "number " .. (strict and "> 0" or ">= 0"), v)
end

--- One of the strings in `choices` (a set); nil gives `default`.
function M.choice(fname, opts, key, choices, default, listed)
    local v = opts[key]
    if v == nil then return default end
    if choices[v] then return v end
    fail(fname, key, "one of " .. listed, v)
end

function M.boolean(fname, opts, key, default)
    local v = opts[key]
    if v == nil then return default end
    if type(v) == "boolean" then return v end
    fail(fname, key, "a boolean", v)
end

function M.func(fname, opts, key)
    local v = opts[key]
    if v == nil or type(v) == "function" then return v end
    fail(fname, key, "a function", v)
end

function M.string(fname, opts, key)
    local v = opts[key]
    if v == nil or type(v) == "string" then return v end
    fail(fname, key, "a string", v)
end

--- The store option of a tool made with one (`method` is the store's constructor for that
--- tool: jobs, rate or breaker) and the name the processes share. `level` is the one the
--- caller would give error() itself.
function M.store(fname, store, method, name, level)
    if type(store) ~= "table" or type(store[method]) ~= "function" then
        error(fname .. ": store must be a store (dike.store.redis{...} or dike.store.shared_dict(name)), got "
              .. show(store), level + 1)
    end
    if name == nil then
        error(fname .. ": name is required with a store (it is the key the processes share)", level + 1)
    end
end

--- A hole that `#` did not show. For a table `t` whose elements 1..n (n == #t) are all present:
--- n + 1 when `t` also has a positive integer key above n, else nil. `#` may stop at any border
--- (LuaJIT's #{1, nil, 3} is 1, Lua 5.4's is 3), so without this check rows past a hole would be
--- dropped silently on one interpreter and refused on the other. One pass over the keys; a
--- second only for a table with keys besides 1..n.
function M.hole_above(t, n)
    local count = 0
    for _ in next, t do count = count + 1 end
    if count == n then return nil end
    for k in next, t do
        if type(k) == "number" and k > n and k < huge and k == floor(k) then return n + 1 end
    end
    return nil
end

--- `fn` must be callable (a function or a table with __call).
function M.callable(fname, fn)
    if M.is_callable(fn) then return fn end
    error(fname .. ": expected a function to wrap, got " .. show(fn), 3)
end

--- Whether `fn` can be called: a function, or a table whose metatable has a __call function.
function M.is_callable(fn)
    if type(fn) == "function" then return true end
    local mt = getmetatable(fn)
    return type(mt) == "table" and type(rawget(mt, "__call")) == "function"
end

-- The names of the functions dike's tools return (weak keys): a tool that wraps one of them
-- names it as that one is named, not by the line of dike's where its closure was made.
local wrapper_names = setmetatable({}, { __mode = "k" })

--- Remember the name of a function a tool returns (what name_of says of it).
function M.set_name(wrapped, name)
    wrapper_names[wrapped] = name
end

--- `<short_src>:<linedefined>` of a function, as Python dike names it in messages; a
--- callable table by its (safe) tostring; a function made by a dike tool by that tool's name.
function M.name_of(fn)
    local known = wrapper_names[fn]
    if known then return known end
    if type(fn) ~= "function" then return describe(fn) end
    local info = debug.getinfo(fn, "S")
    return info.short_src .. ":" .. info.linedefined
end

return M
