--- dike.array (docs/array.md): typed arrays held by the C core (csrc/ldike_array.c).
--
-- On LuaJIT, reading an element (a[i], width 1) and the row count (#a) go through the FFI:
-- the C core describes an array's header (core.array_ffi(): sizes and offsets, checked here),
-- and the reads compile into a few loads, where the C __index and __len made every read leave
-- the JIT's trace (measured on bench/lua/array.lua: ~1,400 instructions per read). Anything
-- else (methods, a[i] out of range or not an integer, width > 1) is the C function's, with its
-- messages. Elsewhere (PUC Lua) arrays keep the C metamethods.
local core = require("dike.core")

local type, pcall, ipairs, getmetatable, rawget, tonumber = type, pcall, ipairs, getmetatable, rawget, tonumber

local M = {}

M.array = core.array

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
    return true
end

--- Whether a[i] and #a read through the FFI.
M.ffi = M.install_ffi()

return M
