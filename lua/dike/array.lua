--- dike.array (docs/array.md): typed arrays held by the C core (csrc/ldike_array.c).
--
-- On LuaJIT, reading an element (a[i], width 1) and the row count (#a) go through the FFI:
-- the C core describes an array's header (core.array_ffi(): sizes and offsets, checked here),
-- and the reads compile into a few loads, where the C __index and __len made every read leave
-- the JIT's trace (measured on bench/lua/array.lua: ~1,400 instructions per read). Anything
-- else (methods, a[i] out of range or not an integer, width > 1) is the C function's, with its
-- messages. Elsewhere (PUC Lua) arrays keep the C metamethods.
--
-- Also on LuaJIT: a:totable() reads through the FFI, and dike.array(list), for doubles (the
-- default element type), checks the list in Lua and stores each element through the FFI into
-- an array the core made (core.array_doubles). Through the C API an element cost 13 ns to read
-- and 48 ns to store (checked, then the hole check's lua_next); here under 1 ns and about 5.
-- Any list it does not take as it is (another element type, a metatable, a bad width or
-- element) goes to the core's function, which raises the error with its message.
local core = require("dike.core")
local hole_above = require("dike.options").hole_above

local type, pcall, ipairs, getmetatable, rawget, tonumber = type, pcall, ipairs, getmetatable, rawget, tonumber

local M = {}

M.array = core.array -- on LuaJIT, install_ffi puts its own in front

--- Install the FFI reads into the arrays' metatable (shared by every loaded copy of dike.core,
--- which refills it with the C functions when it is loaded again). Returns whether it did.
function M.install_ffi()
    local ok, ffi = pcall(require, "ffi")
    if not (ok and type(ffi) == "table" and core.array_ffi) then return false end
    local api = ffi.cast(ffi.typeof([[const struct {
        uint32_t magic, version;
        void *append;
        uint32_t size, data, nrows, caprows, width, type;
        int32_t types[5];
    } *]]), core.array_ffi())
    if api.magic ~= 0x79617261 or api.version ~= 1 then return false end
    -- The header as dike.h defines dike_array, checked against the core's own layout.
    local header = ffi.typeof("struct { const void *data; size_t nrows; size_t caprows; size_t width; int type; }")
    if api.size ~= ffi.sizeof(header) or api.data ~= ffi.offsetof(header, "data")
        or api.nrows ~= ffi.offsetof(header, "nrows") or api.caprows ~= ffi.offsetof(header, "caprows")
        or api.width ~= ffi.offsetof(header, "width") or api.type ~= ffi.offsetof(header, "type") then
        return false
    end
    local DOUBLE, FLOAT, INT32, INT64 = api.types[0], api.types[1], api.types[2], api.types[3]
    local cast, hdr = ffi.cast, ffi.typeof("$ *", header)
    local as_double, as_float = ffi.typeof("const double *"), ffi.typeof("const float *")
    local as_int32, as_int64 = ffi.typeof("const int32_t *"), ffi.typeof("const int64_t *")
    local as_uint8 = ffi.typeof("const uint8_t *")

    local mt = getmetatable(core.array({}))
    local c_index, c_len = rawget(mt, "__index"), rawget(mt, "__len")
    if type(c_index) ~= "function" or type(c_len) ~= "function" then return false end
    local sample = core.array({})
    local methods = {}
    for _, name in ipairs({ "get", "totable", "type", "width", "slice" }) do methods[name] = c_index(sample, name) end

    -- a[i]: in range and width 1, read here (int64 as a number: a double on LuaJIT, as the
    -- core returns it); otherwise the core's __index, for its error.
    -- (the metatable check: only a dike.array's memory may be read as one, whatever calls these)
    mt.__index = function(a, k)
        if type(k) ~= "number" then
            if getmetatable(a) == mt then return methods[k] end
            return c_index(a, k)
        end
        if getmetatable(a) ~= mt then return c_index(a, k) end
        local h = cast(hdr, a)
        if h.width == 1 and k >= 1 and k <= tonumber(h.nrows) and k % 1 == 0 then
            local t, i = h.type, k - 1
            if t == DOUBLE then return cast(as_double, h.data)[i] end
            if t == INT32 then return cast(as_int32, h.data)[i] end
            if t == FLOAT then return cast(as_float, h.data)[i] end
            if t == INT64 then return tonumber(cast(as_int64, h.data)[i]) end
            return cast(as_uint8, h.data)[i]
        end
        return c_index(a, k)
    end
    mt.__len = function(a)
        if getmetatable(a) ~= mt then return c_len(a) end
        return tonumber(cast(hdr, a).nrows)
    end

    -- The core's function `name` called for a wrapper below: its result, or its error raised
    -- again at the position of the wrapper's caller, with the function's name (called through
    -- pcall, the core's message has neither: "bad argument #1 to '?'"). The wrappers do not
    -- tail-call this, so that level 3 is their caller.
    local function core_call(name, fn, ...)
        local done, r = pcall(fn, ...)
        if done then return r end
        if type(r) == "string" then
            r = r:gsub("^bad argument (#%d+) to '%?'", "bad argument %1 to '" .. name .. "'", 1)
        end
        error(r, 3)
    end

    -- a:totable(): the core's for anything but an array (its error names 'totable')
    local totable = methods.totable
    local new_tab = require("dike.new_tab")
    methods.totable = function(a)
        if getmetatable(a) ~= mt then
            local t = core_call("totable", totable, a)
            return t
        end
        local h = cast(hdr, a)
        local n, t = tonumber(h.nrows * h.width), h.type
        local out = new_tab(n, 0)
        if t == DOUBLE then
            local p = cast(as_double, h.data)
            for i = 1, n do out[i] = p[i - 1] end
        elseif t == INT32 then
            local p = cast(as_int32, h.data)
            for i = 1, n do out[i] = p[i - 1] end
        elseif t == FLOAT then
            local p = cast(as_float, h.data)
            for i = 1, n do out[i] = p[i - 1] end
        elseif t == INT64 then
            local p = cast(as_int64, h.data)
            for i = 1, n do out[i] = tonumber(p[i - 1]) end
        else
            local p = cast(as_uint8, h.data)
            for i = 1, n do out[i] = p[i - 1] end
        end
        return out
    end

    -- dike.array(list [, elemtype [, width]]) for doubles; the core's for the rest, and for
    -- every error
    local array, doubles = core.array, core.array_doubles
    local as_double_out = ffi.typeof("double *")
    local MAX_ELEMENTS = 2147483647
    M.array = function(...)
        local list, elemtype, width = ...
        local w = width or 1
        if type(list) == "table" and (elemtype == nil or elemtype == "double") and getmetatable(list) == nil
            and type(w) == "number" and w >= 1 and w <= MAX_ELEMENTS and w % 1 == 0 then
            local n = #list
            if n % w == 0 and n <= MAX_ELEMENTS then
                local a = doubles(n / w, w)
                local p = cast(as_double_out, cast(hdr, a).data)
                local numbers = true
                for i = 1, n do
                    local v = list[i]
                    if type(v) ~= "number" then
                        numbers = false
                        break
                    end
                    p[i - 1] = v
                end
                if numbers and hole_above(list, n) == nil then return a end
            end
        end
        local a = core_call("array", array, ...) -- (as called: "got no value" stays so)
        return a
    end
    return true
end

--- Whether a[i] and #a read through the FFI.
M.ffi = M.install_ffi()

return M
