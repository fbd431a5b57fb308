-- The development rockspec: builds the working tree. From the repository root (offline, no
-- dependency resolution):
--   luarocks make --deps-mode=none rockspec/dike-scm-1.rockspec
-- The build is CMakeLists.txt with BUILD_TESTING=OFF: its source lists and install() rules say
-- what is built and installed, so this file lists no modules. A release rockspec is this file
-- with its version and tag: `make rockspec VERSION=x.y.z` writes rockspec/dike-x.y.z-1.rockspec.
rockspec_format = "3.0"
package = "dike"
version = "scm-1"

source = {
   -- `luarocks make` builds the working tree and never fetches this.
   url = "git+https://github.com/dike-lua/dike.git",
   branch = "main",
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
