-- One source list: CMakeLists.txt, the rockspec and the tree must agree.
-- Usage (from the repository root, any Lua 5.1+ / LuaJIT):
--   luajit scripts/check-sources.lua           check; exit 1 and say what differs
--   luajit scripts/check-sources.lua --write   regenerate the rockspec's module block
-- Checks:
--   * rockspec dike.core sources == CMake DIKE_CORE_SOURCES + DIKE_BINDING_SOURCES (same order)
--   * every csrc/*.c is in the CMake lists, every listed file exists
--   * rockspec Lua modules == every lua/dike/**/*.lua, each under its module name
local ROCKSPEC = "rockspec/dike-scm-1.rockspec"
local CMAKE = "CMakeLists.txt"
local BEGIN = "-- BEGIN GENERATED MODULES"
local END = "-- END GENERATED MODULES"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function lines_of(cmd)
  local out = {}
  local p = assert(io.popen(cmd))
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

local problems = {}
local function problem(fmt, ...) problems[#problems + 1] = fmt:format(...) end

-- CMake: the two source lists, in order.
local cmake = read(CMAKE)
local function cmake_list(var)
  local body = cmake:match("set%(%s*" .. var .. "%s+(.-)%)")
  if not body then
    problem("%s: no set(%s ...)", CMAKE, var)
    return {}
  end
  local t = {}
  for f in body:gmatch("[%w_/%.%-]+%.c") do t[#t + 1] = f end
  return t
end
local c_sources = {}
for _, var in ipairs { "DIKE_CORE_SOURCES", "DIKE_BINDING_SOURCES" } do
  for _, f in ipairs(cmake_list(var)) do c_sources[#c_sources + 1] = f end
end

-- The tree.
local lua_files = lines_of("find lua -type f -name '*.lua' 2>/dev/null | LC_ALL=C sort")
local csrc_files = lines_of("find csrc -maxdepth 1 -type f -name '*.c' 2>/dev/null | LC_ALL=C sort")

local function module_name(path)
  local m = path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
  return m
end

local function generated_block(indent)
  local out = { indent .. BEGIN .. " (scripts/check-sources.lua --write)" }
  local function add(s) out[#out + 1] = indent .. s end
  add('["dike.core"] = {')
  add("   sources = {")
  for _, f in ipairs(c_sources) do add(('      "%s",'):format(f)) end
  add("   },")
  add('   incdirs = { "csrc" },')
  add("},")
  for _, f in ipairs(lua_files) do add(('["%s"] = "%s",'):format(module_name(f), f)) end
  add(END)
  return table.concat(out, "\n")
end

if arg[1] == "--write" then
  local spec = read(ROCKSPEC)
  local indent, i = spec:match("\n([ \t]*)()" .. BEGIN:gsub("%-", "%%-"))
  local j = spec:find(END, 1, true)
  if not (indent and j) then
    io.stderr:write(ROCKSPEC .. ": markers not found\n")
    os.exit(1)
  end
  local new = spec:sub(1, i - 1 - #indent) .. generated_block(indent) .. spec:sub(j + #END)
  local f = assert(io.open(ROCKSPEC, "wb"))
  f:write(new)
  f:close()
  print("wrote " .. ROCKSPEC .. " (" .. #c_sources .. " C sources, " .. #lua_files .. " Lua modules)")
  os.exit(0)
end

-- The rockspec, evaluated in an empty environment.
local env = {}
local chunk, err = load(read(ROCKSPEC), "@" .. ROCKSPEC, "t", env)
if not chunk then
  io.stderr:write(err .. "\n")
  os.exit(1)
end
chunk()
local modules = env.build and env.build.modules or {}

-- C sources.
local core = modules["dike.core"]
local rs_c = type(core) == "table" and core.sources or {}
if type(core) ~= "table" then problem("%s: no dike.core module", ROCKSPEC) end
if table.concat(rs_c, " ") ~= table.concat(c_sources, " ") then
  problem("C sources differ:\n  CMake:    %s\n  rockspec: %s", table.concat(c_sources, " "), table.concat(rs_c, " "))
end
local listed = {}
for _, f in ipairs(c_sources) do
  listed[f] = true
  if not exists(f) then problem("%s lists %s, which does not exist", CMAKE, f) end
end
for _, f in ipairs(csrc_files) do
  if not listed[f] then problem("%s is in neither source list of %s", f, CMAKE) end
end

-- Lua modules.
local want = {}
for _, f in ipairs(lua_files) do want[module_name(f)] = f end
for name, f in pairs(want) do
  if modules[name] ~= f then
    problem("rockspec module %s should be %q, is %s", name, f, tostring(modules[name]))
  end
end
for name, v in pairs(modules) do
  if name ~= "dike.core" and not want[name] then
    problem("rockspec module %s = %s has no lua/ file", name, tostring(v))
  end
end

if #problems > 0 then
  table.sort(problems)
  for _, p in ipairs(problems) do print("FAIL " .. p) end
  print("(fix CMakeLists.txt if needed, then run `make rockspec`)")
  os.exit(1)
end
local n = 0
for _ in pairs(want) do n = n + 1 end
print(("ok   %d C sources and %d Lua modules agree (CMakeLists.txt, %s, tree)"):format(#c_sources, n, ROCKSPEC))
