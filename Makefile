# dike: see README.md. Everything goes through CMake; these targets are shortcuts.
#   make deps     scripts/deps.sh: the Debian packages (a no-op when present); build and demo run
#                 it (core), make test installs the "test" group (nginx, neovim, wrk, clang) too
#   make build    configure + build build/ (build/dike/core.so, build/lua54/dike/core.so, C tests)
#   make test     deps, build (-Werror), ctest: C tests, busted under LuaJIT and Lua 5.4,
#                 luacheck, symbols/source-list/luarocks-install/demo checks;
#                 last line "N passed, N failed"
#   make asan     the same suites (minus lint/install) built with ASan+UBSan, in build-asan/
#   make fuzz     libFuzzer targets spec/c/fuzz_*.c for FUZZ_SECONDS each (clang), in build-fuzz/
#   make demo     luajit examples/demo.lua with the build tree on the paths (includes a short
#                 in-process run of the demo service)
#   make demo-service  the demo HTTP service under wrk, batching on then off
#                 (examples/service/load.lua; LOAD_ARGS="--duration 10 -- --fail-rate 0.05")
#   make soak     the demo service under wrk for SOAK_SECONDS (60) with injected failures and
#                 load shedding; checks every answer, gauges, clean exit, flat RSS and Lua heap
#                 (examples/service/soak.lua; SOAK_ARGS="--connections 128 -- --fail-rate 0.1")
#   make bench    bench/run.sh: deps (all), build, the Node peers, every workload; prints the
#                 table, writes bench/RESULTS.md and bench/results.png (not part of make test)
#   make rockspec regenerate the rockspec's module list (after adding a source or a Lua module)
#   make clean
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 30
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
LUAJIT ?= luajit

MAKEFLAGS += --no-print-directory

# The build tree first, then the system paths (';;'), so luv and LuaJIT's jit.* stay visible.
RUN_ENV = LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(BUILD)/?.so;;"

.PHONY: all build test asan fuzz demo demo-service soak bench rockspec clean deps

all: build

deps:
	scripts/deps.sh

build: deps
	cmake -S . -B $(BUILD)
	cmake --build $(BUILD) -j $(JOBS)

test:
	BUILD_DIR=$(BUILD) JOBS=$(JOBS) scripts/test.sh

asan:
	ASAN_BUILD_DIR=$(ASAN_BUILD) JOBS=$(JOBS) scripts/test.sh --asan

fuzz:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DDIKE_FUZZ=ON -DDIKE_FUZZ_SECONDS=$(FUZZ_SECONDS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	rm -rf $(FUZZ_BUILD)/results
	cd $(FUZZ_BUILD) && ctest -j $(JOBS) --output-on-failure; \
	  cd $(CURDIR) && scripts/summarize.sh $(FUZZ_BUILD)

demo: build
	$(RUN_ENV) $(LUAJIT) examples/demo.lua

LOAD_ARGS ?=
demo-service: build
	scripts/deps.sh test
	$(RUN_ENV) $(LUAJIT) examples/service/load.lua $(LOAD_ARGS)

SOAK_SECONDS ?= 60
SOAK_ARGS ?=
soak: build
	scripts/deps.sh test
	$(RUN_ENV) $(LUAJIT) examples/service/soak.lua --duration $(SOAK_SECONDS) $(SOAK_ARGS)

bench:
	bench/run.sh

rockspec:
	$(LUAJIT) scripts/check-sources.lua --write

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) .tree
