-- dike 0.1.0: the release rockspec (written by scripts/rockspec.sh from dike-scm-1.rockspec).
--   luarocks install dike 0.1.0
-- or, from a checkout of its tag: luarocks make --deps-mode=none rockspec/dike-0.1.0-1.rockspec
rockspec_format = "3.0"
package = "dike"
version = "0.1.0-1"

source = {
   -- The tag is the version without its rockspec revision: "v0.1.0" for "0.1.0-1".
   url = "git+https://github.com/dike-lua/dike.git",
   tag = "v" .. version:gsub("%-%d+$", ""),
}

description = {
   summary = "Resilience tools for coroutines on an event loop: retry, limit_jobs, batch",
   detailed = [[
dike gives coroutines on an event loop (luv, OpenResty, Neovim) three resilience tools,
ported from Python's dike and extended: retry with backoff and jitter, a concurrency limiter
with a queue, and automatic batching of calls. Its core (backoff, batch buffers, typed arrays)
is written in C.
]],
   homepage = "https://github.com/dike-lua/dike",
   license = "MIT",
   labels = { "async", "coroutines", "luv", "retry", "batching" },
}

dependencies = {
   "lua >= 5.1",
   "luv",
}

build = {
   type = "cmake",
   variables = {
      BUILD_TESTING = "OFF",
      CMAKE_BUILD_TYPE = "Release",
      CMAKE_C_FLAGS = "$(CFLAGS)",
      CMAKE_MODULE_LINKER_FLAGS = "$(LIBFLAG)",
      LUA_INCDIR = "$(LUA_INCDIR)",
      DIKE_INSTALL_LMOD = "$(LUADIR)",
      DIKE_INSTALL_CMOD = "$(LIBDIR)",
   },
   -- Kept in the rock's directory (`luarocks show dike`): the reference, and the LuaCATS
   -- definitions for editors.
   copy_directories = { "docs", "types" },
}
