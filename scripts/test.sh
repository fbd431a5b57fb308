#!/usr/bin/env bash
# What `make test` (and `make asan`) run: deps, configure, build, every ctest suite, summary.
# Usage: scripts/test.sh [--asan]
#   default  build/ with -DDIKE_WERROR=ON: C tests, busted under LuaJIT and Lua 5.4, luacheck,
#            exported-symbols check, source-list check, luarocks install check, the demo
#            under both interpreters
#   --asan   build-asan/ with -DDIKE_SANITIZE=ON: C tests, busted (both interpreters, ASan
#            runtime preloaded), symbols check
# Environment: BUILD_DIR / ASAN_BUILD_DIR (build dirs), JOBS (default: nproc), CTEST_ARGS (extra
# ctest arguments, e.g. "-R busted"). The last line printed is "N passed, N failed" summed over
# all suites (scripts/summarize.sh); the exit status is non-zero on any failure.
set -u
cd "$(dirname "$0")/.."

build=${BUILD_DIR:-build}
cmake_args=(-DDIKE_WERROR=ON)
if [ "${1:-}" = --asan ]; then
  build=${ASAN_BUILD_DIR:-build-asan}
  cmake_args=(-DDIKE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
fi
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

if ! scripts/deps.sh test; then
  echo "test.sh: scripts/deps.sh failed: missing packages" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

# A LUA_PATH from `eval "$(luarocks path)"` lacks the trailing ';;' and would hide LuaJIT's jit.*
# modules and Lua 5.4's system modules (luv) from the suites.
# Lua 5.4 also reads LUA_PATH (5.1 trees, from luarocks) unless LUA_PATH_5_4 is set: give it
# its defaults.
for v in LUA_PATH LUA_CPATH; do
  v54=${v}_5_4
  if [ -n "${!v:-}" ] && [ -z "${!v54:-}" ]; then export "$v54=;;"; fi
done
for v in LUA_PATH LUA_CPATH LUA_PATH_5_4 LUA_CPATH_5_4; do
  if [ -n "${!v:-}" ] && [ "${!v%;;}" = "${!v}" ]; then export "$v=${!v};;"; fi
done

extra=0
if ! { cmake -S . -B "$build" "${cmake_args[@]}" && cmake --build "$build" -j "$jobs"; }; then
  echo "test.sh: the build failed; running what can run" >&2
  extra=1
fi
rm -rf "$build/results"
if [ -f "$build/CTestTestfile.cmake" ]; then
  # shellcheck disable=SC2086  # CTEST_ARGS is a list of words
  (cd "$build" && ctest -j "$jobs" --output-on-failure ${CTEST_ARGS:-})
fi
echo
echo "Summary ($build):"
scripts/summarize.sh "$build" "$extra"
