#!/usr/bin/env bash
# Run one test suite and record its counts for scripts/summarize.sh (ctest calls this). The one
# place that reads a suite's output (its "N passed, N failed" or busted's closing line).
# Usage: scripts/run-suite.sh RESULTS_DIR NAME KIND COMMAND [ARGS...]
#   KIND c       the command prints "N passed, N failed" (the last such line counts)
#   KIND busted  busted's "N successes / N failures / N errors / N pending" line (errors count
#                as failures)
#   KIND check   the whole command is one test: exit 0 = 1 passed, else 1 failed
# Writes RESULTS_DIR/NAME.log (full output) and RESULTS_DIR/NAME.result ("passed failed exit").
# A non-zero exit always counts as at least one failure (a crash after the summary line, an
# ASan report at exit...); no parsable line counts as one failure. Exits with the command's code.
set -u
results=$1 name=$2 kind=$3
shift 3
mkdir -p "$results"
log=$results/$name.log
rm -f "$results/$name.result"

"$@" >"$log" 2>&1 </dev/null
rc=$?
cat "$log"

passed=0 failed=0
case $kind in
  c)
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -n "$line" ]; then
      passed=${line%% passed*}
      failed=${line#*, }; failed=${failed%% failed}
    else
      failed=1
    fi ;;
  busted)
    # Strip colour codes in case busted was asked for them.
    line=$(sed 's/\x1b\[[0-9;]*m//g' "$log" |
           grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' | tail -n 1)
    if [ -n "$line" ]; then
      read -r passed _ f _ e _ <<<"$(echo "$line" | tr -d '/')"
      failed=$((f + e))
    else
      failed=1
    fi ;;
  check)
    if [ $rc -eq 0 ]; then passed=1; else failed=1; fi ;;
  *)
    echo "run-suite.sh: unknown kind '$kind'" >&2; failed=1 ;;
esac
if [ $rc -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1
fi
echo "$passed $failed $rc" >"$results/$name.result"
echo "[$name] $passed passed, $failed failed (exit $rc)"
if [ $rc -eq 0 ] && [ "$failed" -ne 0 ]; then
  exit 1
fi
exit $rc
