#!/usr/bin/env bash
# What `make test`, `make asan` and `make fuzz` run: deps, then for each stage configure, build
# and run its ctest suites, then one summary over every stage.
# Usage: scripts/test.sh [STAGE...]        (no stage: all three, in this order)
#   default  build/ with -DDIKE_WERROR=ON: C tests, busted under LuaJIT and Lua 5.2, 5.3, 5.4, the
#            C tests and the LuaJIT and 5.4 busted suites again under valgrind memcheck, the
#            short stress run under LuaJIT and 5.4, luacheck, exported-symbols / rockspec-lint /
#            luarocks-install / docs-links / summary-chain checks, the demo under every
#            interpreter, the integration suites
#   asan     build-asan/ with -DDIKE_SANITIZE=ON (gcc): C tests, busted and the short stress run
#            (LuaJIT and 5.4, ASan runtime preloaded), symbols check
#   fuzz     build-fuzz/ with clang -DDIKE_FUZZ=ON: each libFuzzer target spec/c/fuzz_*.c for
#            FUZZ_SECONDS (default 30), starting from its committed seed corpus
# Environment: BUILD_DIR / ASAN_BUILD_DIR / FUZZ_BUILD_DIR (build dirs), FUZZ_SECONDS, JOBS
# (default: nproc), CTEST_ARGS (extra ctest arguments for every stage, e.g. "-R busted").
# The last line printed is "N passed, N failed" summed over the suites this run selected in all
# its stages (scripts/summarize.sh); the exit status is non-zero on any failure. .ci/run runs
# this script; `make test` too.
set -u
cd "$(dirname "$0")/.."

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(default asan fuzz)
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

if ! scripts/deps.sh test; then
  echo "test.sh: scripts/deps.sh failed: missing packages" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

# A LUA_PATH from `eval "$(luarocks path)"` lacks the trailing ';;' and would hide LuaJIT's jit.*
# modules and the PUC interpreters' system modules (luv) from the suites.
# PUC Lua 5.x also reads LUA_PATH (5.1 trees, from luarocks: a 5.1 luv.so would be loaded)
# unless its LUA_PATH_5_x is set: give each of the PUC versions the suites run (CMakeLists.txt's
# DIKE_PUC_VERSIONS) its defaults.
puc_suffixes=(5_2 5_3 5_4)
versioned=()
for v in LUA_PATH LUA_CPATH; do
  for s in "${puc_suffixes[@]}"; do
    vs=${v}_$s
    versioned+=("$vs")
    if [ -n "${!v:-}" ] && [ -z "${!vs:-}" ]; then export "$vs=;;"; fi
  done
done
for v in LUA_PATH LUA_CPATH "${versioned[@]}"; do
  if [ -n "${!v:-}" ] && [ "${!v%;;}" = "${!v}" ]; then export "$v=${!v};;"; fi
done

extra=0 dirs=()
for stage in "${stages[@]}"; do
  env=()
  case $stage in
    default) build=${BUILD_DIR:-build} args=(-DDIKE_WERROR=ON) ;;
    asan) build=${ASAN_BUILD_DIR:-build-asan} args=(-DDIKE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug) ;;
    fuzz) build=${FUZZ_BUILD_DIR:-build-fuzz}
          args=(-DDIKE_FUZZ=ON "-DDIKE_FUZZ_SECONDS=${FUZZ_SECONDS:-30}") env=(CC=clang) ;;
    *) echo "test.sh: unknown stage '$stage' (default, asan, fuzz)" >&2; extra=$((extra + 1)); continue ;;
  esac
  dirs+=("$build")
  echo "== test.sh: stage $stage in $build/"
  start=$SECONDS
  if ! { env "${env[@]+"${env[@]}"}" cmake -S . -B "$build" "${args[@]}" &&
         cmake --build "$build" -j "$jobs"; }; then
    echo "test.sh: the $stage build failed; running what can run" >&2
    extra=$((extra + 1))
  fi
  rm -rf "$build/results"
  if [ -f "$build/CTestTestfile.cmake" ]; then
    # shellcheck disable=SC2086  # CTEST_ARGS is a list of words
    (cd "$build" && ctest -j "$jobs" --output-on-failure ${CTEST_ARGS:-})
  fi
  echo "== test.sh: stage $stage took $((SECONDS - start)) s"
done

echo
echo "Summary (${dirs[*]}):"
# Only the suites this run's ctest selected count (the same CTEST_ARGS).
CTEST_ARGS="${CTEST_ARGS:-}" scripts/summarize.sh --extra "$extra" "${dirs[@]}"
