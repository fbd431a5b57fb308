#!/usr/bin/env bash
# OpenResty integration test: a private nginx (with Debian's Lua module) on 127.0.0.1 serves
# spec/ngx/nginx.conf.in; spec/ngx/check.lua checks the ngx runtime inside it and sends it
# concurrent requests. nginx is stopped by its pid, also on failure.
# Usage: scripts/check-ngx.sh [CPATH_ROOT]     (default build; prints "N passed, N failed")
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
croot=$(cd "${1:-$root/build}" && pwd)
luajit=${LUAJIT:-luajit}
module=/usr/lib/nginx/modules/ngx_http_lua_module.so

fail() { echo "check-ngx: $*" >&2; echo "0 passed, 1 failed"; exit 1; }
command -v nginx >/dev/null || fail "nginx not found (scripts/deps.sh test installs it)"
command -v "$luajit" >/dev/null || fail "$luajit not found"
[ -f "$module" ] || fail "$module not found (libnginx-mod-http-lua)"

prefix=$(mktemp -d "${TMPDIR:-/tmp}/dike-ngx.XXXXXX")
mkdir -p "$prefix/conf" "$prefix/logs" "$prefix/tmp"
pid=

# $pid is timeout's, which passes signals on to the nginx master. Graceful (QUIT), then fast
# (TERM), each given 3 s; then KILL timeout, the master and its workers.
stop_nginx() {
  [ -n "$pid" ] || return 0
  local sig
  for sig in QUIT TERM; do
    kill -0 "$pid" 2>/dev/null || break
    kill -"$sig" "$pid" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  if kill -0 "$pid" 2>/dev/null; then
    local master
    master=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null)
    echo "# nginx did not stop: killing $pid, master $master and its workers" >&2
    # shellcheck disable=SC2086 # lists of pids
    kill -KILL $(for m in $master; do cat "/proc/$m/task/$m/children" 2>/dev/null; done) $master "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  pid=
}
cleanup() {
  stop_nginx
  rm -rf "$prefix"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/examples/?.lua;;" LUA_CPATH="$croot/?.so;;"

# As root, nginx would run its worker as "nobody", who may not read this checkout (CI clones
# it anywhere): keep the worker root. Not root: the directive would only warn, so leave it out.
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root;"

# A free port from the OS; if another process takes it before nginx binds, try again.
started=
for _ in 1 2 3; do
  port=$("$luajit" -e 'local uv = require("luv"); local s = uv.new_tcp(); s:bind("127.0.0.1", 0)
    io.write(s:getsockname().port); s:close(); uv.run()') || fail "cannot pick a port"
  sed -e "s|@ROOT@|$root|g; s|@CPATH@|$croot|g; s|@PORT@|$port|g; s|@USER@|$user_line|" \
    "$root/spec/ngx/nginx.conf.in" >"$prefix/conf/nginx.conf"
  : >"$prefix/logs/error.log"
  # Under timeout (which passes our signals on to nginx): should this script be killed
  # before it stops nginx, nginx still ends.
  timeout 175 nginx -p "$prefix" -c conf/nginx.conf -g 'daemon off;' 2>>"$prefix/logs/stderr.log" &
  pid=$!
  for _ in $(seq 100); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then started=1; break; fi
    sleep 0.05
  done
  [ -n "$started" ] && break
  stop_nginx
  grep -q "Address already in use" "$prefix/logs/stderr.log" "$prefix/logs/error.log" || break
done
if [ -z "$started" ]; then
  cat "$prefix/logs/stderr.log" "$prefix/logs/error.log" >&2
  fail "nginx did not start"
fi
echo "# nginx (under timeout, pid $pid) on 127.0.0.1:$port, prefix $prefix"

out=$prefix/check.out
(cd "$root" && timeout 120 "$luajit" spec/ngx/check.lua "$port" "$prefix") | tee "$out"
rc=${PIPESTATUS[0]}

# One more check: a graceful `nginx -s quit` finishes by itself (a request left hanging
# by dike would keep the worker alive) within 10 s.
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
passed=${summary%% passed*} failed=${summary#*, }; failed=${failed%% failed}
[ -n "$summary" ] || { passed=0 failed=1; }
nginx -p "$prefix" -c conf/nginx.conf -s quit 2>>"$prefix/logs/stderr.log"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
  echo "not ok - nginx -s quit finishes within 10 s"
  failed=$((failed + 1)) rc=1
else
  echo "ok - nginx -s quit finishes within 10 s"
  passed=$((passed + 1))
fi
stop_nginx
if [ $rc -ne 0 ]; then
  echo "# nginx error log:"
  sed 's/^/#   /' "$prefix/logs/error.log" | tail -n 40
fi
echo "$passed passed, $failed failed"
exit $rc
