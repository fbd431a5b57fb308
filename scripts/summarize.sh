#!/usr/bin/env bash
# Sum the suites of one or more ctest runs into the line CI reads: "N passed, N failed", alone, last.
# Usage: scripts/summarize.sh [--extra N] BUILD_DIR...
# Reads BUILD_DIR/results/<suite>.result (written by scripts/run-suite.sh) for every test that
# ctest knows about in each build dir; a suite without a result (crashed, timed out, never ran)
# counts as one failure, and so does a build dir without a configured ctest tree. --extra N adds
# failures found outside ctest (e.g. a failed build). Exits 1 when anything failed.
set -u
extra=0
if [ "${1:-}" = --extra ]; then extra=$2; shift 2; fi

total_p=0 total_f=$extra
for build in "$@"; do
  results=$build/results
  names=()
  if [ -f "$build/CTestTestfile.cmake" ]; then
    while IFS= read -r n; do names+=("$n"); done < <(
      cd "$build" && ctest -N 2>/dev/null | sed -n 's/^ *Test *#[0-9]*: *//p')
  fi
  if [ ${#names[@]} -eq 0 ]; then
    printf '  %-36s no test suites found (not configured?): 1 failed\n' "$build:"
    total_f=$((total_f + 1))
    continue
  fi
  for n in "${names[@]}"; do
    if [ -f "$results/$n.result" ]; then
      read -r p f rc <"$results/$n.result"
      note=""
      [ "$rc" != 0 ] && note=" (exit $rc)"
    else
      p=0 f=1 note=" (no result: crashed, timed out or did not run)"
    fi
    printf '  %-36s %s passed, %s failed%s\n' "$build/$n:" "$p" "$f" "$note"
    total_p=$((total_p + p)) total_f=$((total_f + f))
  done
done
[ "$extra" -gt 0 ] && printf '  %-36s %s failed\n' "outside ctest:" "$extra"
[ $# -eq 0 ] && { echo "  no build dir given"; total_f=$((total_f + 1)); }
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
