-- luacheck configuration (run by `make test` through scripts/check-luacheck.sh:
-- lua/ spec/ examples/ bench/ scripts/ types/).
std = "luajit"
max_line_length = 120
-- LuaCATS annotations (---@param opts {a?: integer, ...}) may be long; code lines may not.
max_comment_line_length = false
codes = true
exclude_files = { "build/**", "build-*/**", "bench/node_modules/**", ".tree/**" }

-- Code that runs on LuaJIT and Lua 5.2-5.4 reaches 5.2+ names behind fallbacks
-- (`table.unpack or unpack`, `math.type and ...`): allow them read-only.
read_globals = {
  table = { fields = { "pack", "unpack", "move" } },
  math = { fields = { "type", "tointeger", "maxinteger", "mininteger", "ult" } },
  coroutine = { fields = { "close", "isyieldable" } },
}

-- Runtime adapters detect and use their host: OpenResty's `ngx`, Neovim's `vim` (read-only).
local hosts = { "ngx", "vim" }
files["lua/dike/init.lua"] = { read_globals = hosts }
files["lua/dike/runtime"] = { read_globals = hosts }
files["examples"] = { read_globals = hosts }
files["bench"] = { read_globals = hosts }

files["spec"] = { std = "+busted", read_globals = hosts }

-- LuaCATS definitions: empty function bodies whose arguments exist for their annotations, and
-- class tables that only hold those definitions.
files["types"] = { unused_args = false, ignore = { "241" } }

-- Code that runs inside nginx sets ngx.status and ngx.header.*.
files["spec/ngx"] = { globals = { "ngx" } }
files["spec/ngx_store"] = { globals = { "ngx" } }
-- The Neovim suite stands in for vim.notify to see what the logger sends.
files["spec/nvim"] = { globals = { "vim" } }
