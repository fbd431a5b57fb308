#!/usr/bin/env bash
# Sum the suites of one ctest run into the line CI reads: "N passed, N failed", alone, last.
# Usage: scripts/summarize.sh BUILD_DIR [EXTRA_FAILED]
# Reads BUILD_DIR/results/<suite>.result (written by scripts/run-suite.sh) for every test that
# ctest knows about; a suite without a result (crashed, timed out, never ran) counts as one
# failure. EXTRA_FAILED adds failures found outside ctest (e.g. a failed build).
# Exits 1 when anything failed.
set -u
build=$1
extra=${2:-0}
results=$build/results

names=()
if [ -f "$build/CTestTestfile.cmake" ]; then
  while IFS= read -r n; do names+=("$n"); done < <(
    cd "$build" && ctest -N 2>/dev/null | sed -n 's/^ *Test *#[0-9]*: *//p')
fi

total_p=0 total_f=$extra
for n in "${names[@]+"${names[@]}"}"; do
  if [ -f "$results/$n.result" ]; then
    read -r p f rc <"$results/$n.result"
    note=""
    [ "$rc" != 0 ] && note=" (exit $rc)"
  else
    p=0 f=1 note=" (no result: crashed, timed out or did not run)"
  fi
  printf '  %-28s %s passed, %s failed%s\n' "$n:" "$p" "$f" "$note"
  total_p=$((total_p + p)) total_f=$((total_f + f))
done
[ "$extra" -gt 0 ] && printf '  %-28s %s failed\n' "outside ctest:" "$extra"
[ ${#names[@]} -eq 0 ] && [ "$extra" -eq 0 ] && { echo "  no test suites found in $build"; total_f=1; }
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
