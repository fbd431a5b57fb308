#!/usr/bin/env bash
# The demo service under wrk, briefly: examples/service/load.lua starts the service (batching
# on, then off, then on with a per-client rate limit of 20 requests a second) as a process,
# drives it with wrk for 1 s each, reads /stats, stops it with SIGTERM. Checks every answer was
# right (every 429 with a whole-second Retry-After), the service exited 0 each time, batching on
# served more per model call, and the rate limit answered 429s.
# Usage: scripts/check-service.sh INTERPRETER CPATH_ROOT
set -u
interp=$1 croot=$(cd "$2" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v wrk >/dev/null || { echo "check-service: wrk not found (scripts/deps.sh test)" >&2; exit 1; }
lpath="$root/lua/?.lua;$root/lua/?/init.lua;;" cpath="$croot/?.so;;"
out=$(timeout 60 scripts/lua-run.sh "$interp" "$lpath" "$cpath" \
  examples/service/load.lua --duration 1 --connections 16 --client-rate 20 -- --fail-rate 0.05 2>&1)
rc=$?
echo "$out"
fail() { echo "check-service: $*" >&2; exit 1; }
[ $rc -eq 0 ] || fail "load.lua exited $rc"
[ "$(grep -c 'wrong bodies 0$' <<<"$out")" -eq 3 ] || fail "a response body was wrong (or wrk did not run)"
[ "$(grep -c 'errors       connect=0 read=0 write=0 timeout=0' <<<"$out")" -eq 3 ] || fail "wrk saw socket errors"
[ "$(grep -c 'service exit 0$' <<<"$out")" -eq 3 ] || fail "the service did not exit cleanly on SIGTERM"
grep -Eq '^   rate limit   16 clients: [0-9]+ requests admitted, [1-9][0-9]* refused \(429 x [1-9]' <<<"$out" \
  || fail "the rate-limited run answered no 429s"
grep -q '^batching on vs off: .* the 200 responses per second' <<<"$out" || fail "no comparison line"
on=$(grep -m1 'mean [0-9.]* rows' <<<"$out" | sed 's/.*mean \([0-9.]*\) rows.*/\1/')
awk -v m="$on" 'BEGIN { exit !(m > 1.5) }' || fail "batching on: mean batch size $on, expected > 1.5"
