# dike: see README.md. Everything goes through CMake; these targets are shortcuts.
#   make deps     scripts/deps.sh: the Debian packages (a no-op when present); build and demo run
#                 it (core), make test installs the "test" group (nginx, neovim, wrk, clang) too
#   make build    configure + build build/ (build/dike/core.so for LuaJIT, build/lua5{2,3,4}/dike/
#                 core.so for PUC Lua 5.2-5.4, C tests)
#   make test     deps, then three stages (scripts/test.sh), last line "N passed, N failed" over all:
#                 build/ (-Werror): C tests, busted under LuaJIT and Lua 5.2, 5.3, 5.4, the C
#                   tests and the LuaJIT and 5.4 busted runs under valgrind memcheck, the short
#                   stress run (LuaJIT, 5.4), luacheck, symbols/rockspec-lint/
#                   luarocks-install/docs-links/summary/demo/bench-smoke checks, the integration suites (nginx,
#                   Neovim, the demo service, a 5 s soak and 2 s more under Lua 5.4);
#                 build-asan/: C tests, busted and the short stress run under ASan+UBSan;
#                 build-fuzz/: each libFuzzer target for FUZZ_SECONDS (30) from its seed corpus
#   make asan     only the ASan+UBSan stage
#   make fuzz     only the fuzz stage, FUZZ_SECONDS (default here: 300) per target
#   make stress   the full stress run (spec/stress/run.lua --full) under LuaJIT, then Lua 5.4:
#                 1,000,000 batch calls from 10,000 tasks, limit_jobs and retry likewise, with
#                 injected faults; figures per round (STRESS_ARGS: more run.lua arguments)
#   make demo     luajit examples/demo.lua with the build tree on the paths (includes a short
#                 in-process run of the demo service)
#   make demo-service  the demo HTTP service under wrk, batching on then off
#                 (examples/service/load.lua; LOAD_ARGS="--duration 10 -- --fail-rate 0.05")
#   make demo-outage  the demo service under wrk while its model is down for 5 s, without and
#                 with a circuit breaker (examples/service/outage.lua; OUTAGE_ARGS="--open-for 2")
#   make soak     the demo service under wrk for SOAK_SECONDS (60) with injected failures and
#                 load shedding; checks every answer, gauges, clean exit, flat RSS and Lua heap
#                 (examples/service/soak.lua; SOAK_ARGS="--connections 128 -- --fail-rate 0.1")
#   make bench    bench/run.sh: deps (all), build, the Node peers, every workload; prints the
#                 table, writes bench/RESULTS.md and bench/results.png (not part of make test)
#   make rockspec VERSION=x.y.z  write the release rockspec rockspec/dike-x.y.z-1.rockspec from
#                 dike-scm-1.rockspec (scripts/rockspec.sh; the rockspecs list no modules: the
#                 build is CMakeLists.txt, so adding a source or a Lua module needs no rockspec edit)
#   make clean
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
LUAJIT ?= luajit

MAKEFLAGS += --no-print-directory

# The build tree first, then the system paths (';;'), so luv and LuaJIT's jit.* stay visible.
RUN_ENV = LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(BUILD)/?.so;;"

.PHONY: all build test asan fuzz stress demo demo-service demo-outage soak bench rockspec clean deps

all: build

deps:
	scripts/deps.sh

build: deps
	cmake -S . -B $(BUILD)
	cmake --build $(BUILD) -j $(JOBS)

STAGE_ENV = BUILD_DIR=$(BUILD) ASAN_BUILD_DIR=$(ASAN_BUILD) FUZZ_BUILD_DIR=$(FUZZ_BUILD) JOBS=$(JOBS)

test:
	$(STAGE_ENV) $(if $(FUZZ_SECONDS),FUZZ_SECONDS=$(FUZZ_SECONDS)) scripts/test.sh

asan:
	$(STAGE_ENV) scripts/test.sh asan

fuzz:
	$(STAGE_ENV) FUZZ_SECONDS=$(or $(FUZZ_SECONDS),300) scripts/test.sh fuzz

stress: build
	scripts/run-stress.sh $(LUAJIT) $(BUILD) --full $(STRESS_ARGS)
	scripts/run-stress.sh lua5.4 $(BUILD)/lua54 --full $(STRESS_ARGS)

demo: build
	$(RUN_ENV) $(LUAJIT) examples/demo.lua

LOAD_ARGS ?=
demo-service: build
	scripts/deps.sh test
	$(RUN_ENV) $(LUAJIT) examples/service/load.lua $(LOAD_ARGS)

OUTAGE_ARGS ?=
demo-outage: build
	scripts/deps.sh test
	$(RUN_ENV) $(LUAJIT) examples/service/outage.lua $(OUTAGE_ARGS)

SOAK_SECONDS ?= 60
SOAK_ARGS ?=
soak: build
	scripts/deps.sh test
	$(RUN_ENV) $(LUAJIT) examples/service/soak.lua --duration $(SOAK_SECONDS) $(SOAK_ARGS)

bench:
	bench/run.sh

rockspec:
	scripts/rockspec.sh $(VERSION)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) .tree
