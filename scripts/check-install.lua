-- Run by scripts/check-install.sh under LuaJIT, with only the scratch tree DIKE_TREE (and the
-- system paths) on the module paths: the installed dike loads and does real work.
local tree = assert(os.getenv("DIKE_TREE"), "DIKE_TREE not set")
local repo = os.getenv("DIKE_REPO")

assert(jit, "expected LuaJIT")
if repo then
  assert(not package.path:find(repo, 1, true), "repository on package.path: " .. package.path)
  assert(not package.cpath:find(repo, 1, true), "repository on package.cpath: " .. package.cpath)
end

local function from_tree(name, path)
  local file = package.searchpath(name, path)
  assert(file and file:sub(1, #tree) == tree, name .. " resolves outside the tree: " .. tostring(file))
  return file
end

print("ok   dike.core -> " .. from_tree("dike.core", package.cpath))
local core = require("dike.core")
assert(type(core) == "table", "dike.core did not return a table")

local has_init = package.searchpath("dike", package.path)
if not has_init then
  -- Before lua/dike/init.lua exists only the C module can be exercised.
  local n = 0
  for _ in pairs(core) do n = n + 1 end
  print(("ok   dike.core loads (%d fields); no lua/dike/init.lua installed yet"):format(n))
  return
end

print("ok   dike -> " .. from_tree("dike", package.path))
local dike = require("dike")
dike.set_logger(function() end) -- the retry below logs warnings by design

-- retry: two failures, then success.
local calls = 0
local flaky = dike.retry { attempts = 3, delay = 0 }(function(x)
  calls = calls + 1
  if calls < 3 then error("boom", 0) end
  return x * 2
end)
local got = dike.run(flaky, 21)
assert(got == 42 and calls == 3, ("retry: got %s after %d calls"):format(tostring(got), calls))
print("ok   dike.retry through dike.run")

-- batch: three callers, one call of the function with the concatenated arguments.
local batches = 0
local add = dike.batch { target_batch_size = 3, max_waiting_time = 10 }(function(a, b)
  batches = batches + 1
  local out = {}
  for i = 1, #a do out[i] = a[i] + b[i] end
  return out
end)
local res = dike.run(function()
  return dike.gather {
    function() return add({ 0 }, { 1 }) end,
    function() return add({ 1 }, { 1 }) end,
    function() return add({ 2, 3 }, { 1, 1 }) end,
  }
end)
assert(batches == 1, "batch: expected 1 batch, got " .. batches)
assert(res[1][1] == 1 and res[2][1] == 2 and res[3][1] == 3 and res[3][2] == 4, "batch: wrong results")
print("ok   dike.batch through dike.run")

-- array: the C core's typed arrays.
local a = dike.array({ 1, 2, 3, 4, 5, 6 }, "int32", 2)
assert(#a == 3 and a:get(2, 1) == 3 and a:type() == "int32" and a:width() == 2, "array: wrong contents")
print("ok   dike.array")

-- Every dike module that loaded came from the tree.
for name in pairs(package.loaded) do
  if name == "dike" or name:sub(1, 5) == "dike." then
    from_tree(name, name == "dike.core" and package.cpath or package.path)
  end
end
print("ok   every loaded dike module comes from the installed tree")

-- Every Lua file of the repository was installed, under its module name (the install rules
-- take lua/dike/ whole; this catches a file they would leave out).
local list = os.getenv("DIKE_LUA_FILES")
if list then
  local n = 0
  for file in io.lines(list) do
    local name = file:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
    from_tree(name, package.path)
    n = n + 1
  end
  assert(n > 0, "no Lua files listed in " .. list)
  print(("ok   all %d Lua modules of the repository are installed"):format(n))
end
