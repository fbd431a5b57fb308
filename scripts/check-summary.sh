#!/usr/bin/env bash
# Tests the summary chain on a scratch ctest project: scripts/run-suite.sh (reads each suite's
# output) and scripts/summarize.sh (sums the suites a ctest run selected) as scripts/test.sh uses
# them. Each case runs ctest with a filter, then summarize.sh with the same CTEST_ARGS, and
# checks the last line and the exit status. The central case: a filtered run counts only the
# suites it ran (a skipped suite is not a failure); a selected suite that left no result is one.
# Usage: scripts/check-summary.sh   (ctest suite check.summary; prints "N passed, N failed")
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dike-summary.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
check() { # NAME WANT GOT
  if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok   $1"
  else failed=$((failed + 1)); echo "FAIL $1: want '$2', got '$3'"; fi
}

# Suites of every kind run-suite.sh reads, as printed by the real tools, under three labels.
mkdir -p "$tmp/src"
cat >"$tmp/src/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.16)
project(summary NONE)
enable_testing()
set(RUN "$root/scripts/run-suite.sh" "\${CMAKE_BINARY_DIR}/results")
function(suite name label kind script)
  add_test(NAME \${name} COMMAND \${RUN} \${name} \${kind} sh -c "\${script}")
  set_tests_properties(\${name} PROPERTIES LABELS \${label} TIMEOUT 1)
endfunction()
# green: 3 + 1 + 4 = 8 passed
suite(green.c green c "echo '1 passed, 1 failed'; echo 'later:'; echo '3 passed, 0 failed'")
suite(green.check green check "true")
suite(green.busted green busted "printf '\\\\033[32m4 successes\\\\033[0m / 0 failures / 0 errors / 1 pending : 0.1 seconds\\\\n'")
# red: 0/1, 2/2 (errors count as failures), 5/1 (a crash after its line), 0/1 (no line) = 7/5
suite(red.check red check "exit 3")
suite(red.busted red busted "echo '2 successes / 1 failure / 1 error / 0 pending : 0.1 seconds'")
suite(red.crash red c "echo '5 passed, 0 failed'; kill -SEGV \\\$\\\$")
suite(red.silent red c "echo no summary here")
# slow: killed by ctest's timeout, so it leaves no result
suite(slow.hang slow check "sleep 30")
CMAKE
if ! cmake -S "$tmp/src" -B "$tmp/b" >"$tmp/cmake.log" 2>&1; then
  cat "$tmp/cmake.log"; echo "0 passed, 1 failed"; exit 1
fi

run() { # CTEST_ARGS -> "<last line> | exit <status>" of summarize.sh after that ctest run
  rm -rf "$tmp/b/results"
  # shellcheck disable=SC2086  # a list of words, as in scripts/test.sh
  (cd "$tmp/b" && ctest $1 >"$tmp/ctest.log" 2>&1)
  CTEST_ARGS="$1" "$root/scripts/summarize.sh" "$tmp/b" >"$tmp/out" 2>&1
  local rc=$?
  echo "$(tail -n 1 "$tmp/out") | exit $rc"
}

check "filtered by label: only the selected suites count" "8 passed, 0 failed | exit 0" "$(run "-L green")"
check "filtered by label: skipped suites not listed" "0" "$(grep -c "red\|slow" "$tmp/out")"
check "filtered by name" "3 passed, 0 failed | exit 0" "$(run "-R ^green\.c$")"
check "failing suites, each way" "7 passed, 5 failed | exit 1" "$(run "-L red")"
check "a suite killed by its timeout counts as failed" "0 passed, 1 failed | exit 1" "$(run "-L slow")"
check "the timed-out suite is named" "1" "$(grep -c "slow.hang:.*no result" "$tmp/out")"
check "no filter: every suite" "15 passed, 6 failed | exit 1" "$(run "")"
check "a filter that selects nothing is a failure" "0 passed, 1 failed | exit 1" "$(run "-L nosuch")"

# --extra (failures outside ctest, e.g. a failed build) and a build dir that was never configured.
rm -rf "$tmp/b/results"; (cd "$tmp/b" && ctest -L green >/dev/null 2>&1)
check "--extra adds failures" "8 passed, 2 failed" \
  "$(CTEST_ARGS="-L green" "$root/scripts/summarize.sh" --extra 2 "$tmp/b" | tail -n 1)"
check "an unconfigured build dir counts as failed" "8 passed, 1 failed" \
  "$(CTEST_ARGS="-L green" "$root/scripts/summarize.sh" "$tmp/b" "$tmp/none" | tail -n 1)"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
