--- table.new(narray, nhash) where LuaJIT has it: a table made at its final size, so filling it
--- never rehashes. Elsewhere an empty table, which grows as usual.
local ok, new_tab = pcall(require, "table.new")
if ok then return new_tab end
return function() return {} end
