-- Install from the repository root (offline, no dependency resolution):
--   luarocks make --deps-mode=none rockspec/dike-scm-1.rockspec
-- The module lists below are generated: after adding a C source (in CMakeLists.txt) or a
-- lua/dike/**/*.lua file, run `make rockspec`. `make test` checks they agree (check.sources).
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
   labels = { "async", "coroutines", "luv", "retry", "batching" },
}

dependencies = {
   "lua >= 5.1",
   "luv",
}

build = {
   type = "builtin",
   modules = {
      -- BEGIN GENERATED MODULES (scripts/check-sources.lua --write)
      ["dike.core"] = {
         sources = {
            "csrc/errors.c",
            "csrc/backoff.c",
            "csrc/batchq.c",
            "csrc/array.c",
            "csrc/ldike.c",
            "csrc/ldike_backoff.c",
            "csrc/ldike_batchq.c",
            "csrc/ldike_array.c",
         },
         incdirs = { "csrc" },
      },
      ["dike.batch"] = "lua/dike/batch.lua",
      ["dike.errors"] = "lua/dike/errors.lua",
      ["dike.heap"] = "lua/dike/heap.lua",
      ["dike"] = "lua/dike/init.lua",
      ["dike.limit_jobs"] = "lua/dike/limit_jobs.lua",
      ["dike.limit_jobs_shared"] = "lua/dike/limit_jobs_shared.lua",
      ["dike.log"] = "lua/dike/log.lua",
      ["dike.options"] = "lua/dike/options.lua",
      ["dike.retry"] = "lua/dike/retry.lua",
      ["dike.runtime"] = "lua/dike/runtime/init.lua",
      ["dike.runtime.luv"] = "lua/dike/runtime/luv.lua",
      ["dike.runtime.ngx"] = "lua/dike/runtime/ngx.lua",
      ["dike.scheduler"] = "lua/dike/scheduler.lua",
      ["dike.stats"] = "lua/dike/stats.lua",
      ["dike.store.algorithms"] = "lua/dike/store/algorithms.lua",
      ["dike.store.client_luv"] = "lua/dike/store/client_luv.lua",
      ["dike.store.client_ngx"] = "lua/dike/store/client_ngx.lua",
      ["dike.store"] = "lua/dike/store/init.lua",
      ["dike.store.redis"] = "lua/dike/store/redis.lua",
      ["dike.store.resp"] = "lua/dike/store/resp.lua",
      ["dike.store.scripts"] = "lua/dike/store/scripts.lua",
      ["dike.store.shared_dict"] = "lua/dike/store/shared_dict.lua",
      ["dike.task"] = "lua/dike/task.lua",
      ["dike.task_record"] = "lua/dike/task_record.lua",
      -- END GENERATED MODULES
   },
}
