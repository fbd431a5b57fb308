#!/usr/bin/env bash
# Sum the suites of one or more ctest runs into the line CI reads: "N passed, N failed", alone, last.
# Usage: [CTEST_ARGS=...] scripts/summarize.sh [--extra N] BUILD_DIR...
# The suites counted are those the ctest run selected: `ctest -N $CTEST_ARGS` in each build dir,
# so a filtered run (CTEST_ARGS="-L integration", "-R busted") counts only what it ran. Each
# one's counts come from BUILD_DIR/results/<suite>.result, written by scripts/run-suite.sh (the
# only place that reads a suite's output); a selected suite without a result (crashed, timed
# out, never started) counts as one failure, and so does a build dir where nothing was selected.
# --extra N adds failures found outside ctest (e.g. a failed build). Exits 1 when anything failed.
# scripts/check-summary.sh tests this on a scratch ctest project.
set -u
extra=0
if [ "${1:-}" = --extra ]; then extra=$2; shift 2; fi

total_p=0 total_f=$extra
for build in "$@"; do
  results=$build/results
  names=()
  if [ -f "$build/CTestTestfile.cmake" ]; then
    # shellcheck disable=SC2086  # CTEST_ARGS is a list of words, as in scripts/test.sh
    while IFS= read -r n; do names+=("$n"); done < <(
      cd "$build" && ctest -N ${CTEST_ARGS:-} 2>/dev/null | sed -n 's/^ *Test *#[0-9]*: *//p')
  fi
  if [ ${#names[@]} -eq 0 ]; then
    printf '  %-36s no test suite selected (not configured, or CTEST_ARGS=%s matched none): 1 failed\n' \
      "$build:" "${CTEST_ARGS:-}"
    total_f=$((total_f + 1))
    continue
  fi
  for n in "${names[@]}"; do
    if [ -f "$results/$n.result" ]; then
      read -r p f rc <"$results/$n.result"
      note=""
      [ "$rc" != 0 ] && note=" (exit $rc)"
    else
      p=0 f=1 note=" (no result: crashed, timed out or did not start)"
    fi
    printf '  %-36s %s passed, %s failed%s\n' "$build/$n:" "$p" "$f" "$note"
    total_p=$((total_p + p)) total_f=$((total_f + f))
  done
done
[ "$extra" -gt 0 ] && printf '  %-36s %s failed\n' "outside ctest:" "$extra"
[ $# -eq 0 ] && { echo "  no build dir given"; total_f=$((total_f + 1)); }
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
