-- Run as loadfile(here .. "paths.lua")(here) by the service's scripts (main.lua, load.lua):
-- puts this checkout's examples/ and lua/ on package.path, and its build tree on
-- package.cpath unless dike.core is found already (installed with luarocks, say).
local here = ...
local root = here .. "../../"
package.path = root .. "examples/?.lua;" .. root .. "lua/?.lua;" .. root .. "lua/?/init.lua;" .. package.path
if not pcall(require, "dike.core") then
    -- LuaJIT's module is build/dike/core.so, PUC Lua X.Y's build/luaXY/dike/core.so.
    local sub = jit and "build/" or "build/" .. _VERSION:gsub("[ .]", ""):lower() .. "/"
    package.cpath = root .. sub .. "?.so;" .. package.cpath
end
