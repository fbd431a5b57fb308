-- Build-level checks (owned by the build, not by a module): each busted run uses the interpreter
-- and the dike.core it was meant to, and the Lua modules come from the working tree.
-- ctest sets DIKE_TEST_INTERP (its busted task: "default" = LuaJIT, "lua52", "lua53", "lua54")
-- and DIKE_TEST_CPATH (its --cpath); run by hand, the interpreter decides what is expected.
local interp = os.getenv("DIKE_TEST_INTERP") or (jit and "default" or _VERSION:gsub("[ .]", ""):lower())
local cpath = os.getenv("DIKE_TEST_CPATH")

describe("build", function()
  it("runs under the interpreter of its busted task", function()
    if interp == "default" then
      assert.is_table(jit, "the default busted task must run under LuaJIT: luajit /usr/bin/busted")
      assert.equal("Lua 5.1", _VERSION)
    else
      assert.is_nil(jit)
      local major, minor = assert(interp:match("^lua(%d)(%d)$"))
      assert.equal("Lua " .. major .. "." .. minor, _VERSION)
    end
  end)

  it("loads dike.core from the build tree of this interpreter", function()
    local file = assert(package.searchpath("dike.core", package.cpath), "dike.core not on package.cpath")
    if cpath then
      assert.equal((cpath:gsub("%?", "dike/core")), file)
    elseif interp == "default" then
      assert.is_nil(file:find("/lua%d%d/"), file)
    else
      assert.truthy(file:find(interp .. "/dike/core.so", 1, true), file)
    end
    assert.is_table(require("dike.core"))
  end)

  it("loads the Lua modules from lua/", function()
    local file = package.searchpath("dike", package.path)
    if file then
      assert.equal("lua/dike/init.lua", file)
    else
      pending("lua/dike/init.lua does not exist yet")
    end
  end)
end)
