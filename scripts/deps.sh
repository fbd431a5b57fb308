#!/usr/bin/env bash
# Install the Debian packages dike needs to build, test and demo (docs/testing.md, "The machine").
# Idempotent: a no-op (well under a second) when everything is present.
# Usage: scripts/deps.sh [core|test|all]
#   core  build, unit tests and busted (the default; `make build`, `make demo`)
#   test  core + what the wider suites use: nginx with the Lua module, neovim, wrk, clang and its
#         sanitizer/fuzzer runtime, redis-server and redis-cli (the shared stores' suites start
#         private ones) and lua-resty-redis (the Redis store inside nginx) (`make test`, .ci/run)
#   all   test + what `make bench` uses: gnuplot, Node.js and npm, GNU time (peak RSS)
set -euo pipefail

# luajit2 (OpenResty's branch) and not plain luajit: Debian's nginx Lua module needs it,
# and the two conflict. libc6-dev: gcc only recommends it, and we install without recommends.
core=(luajit2 libluajit2-5.1-dev lua-luv lua-luv-dev libuv1-dev lua-busted luarocks
      lua5.1 liblua5.1-0-dev lua-check cmake pkg-config make gcc libc6-dev
      lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev lua5.4 liblua5.4-dev valgrind)
test=(neovim nginx libnginx-mod-http-lua wrk clang libclang-rt-14-dev
      redis-server redis-tools lua-nginx-redis)
bench=(gnuplot-nox nodejs npm time)

want=("${core[@]}")
case "${1:-core}" in
  core) ;;
  test) want+=("${test[@]}") ;;
  all) want+=("${test[@]}" "${bench[@]}") ;;
  *) echo "deps.sh: usage: scripts/deps.sh [core|test|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm/node may come from outside Debian on some machines: accept them if on PATH.
if [ ${#missing[@]} -gt 0 ]; then
  keep=()
  for p in "${missing[@]}"; do
    case "$p" in nodejs) command -v node >/dev/null || keep+=("$p");;
                 npm) command -v npm >/dev/null || keep+=("$p");;
                 *) keep+=("$p");; esac
  done
  missing=("${keep[@]+"${keep[@]}"}")
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n)
else
  echo "deps.sh: missing Debian packages: ${missing[*]}" >&2
  echo "deps.sh: run as root (or with passwordless sudo), or install them yourself:" >&2
  echo "  apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
