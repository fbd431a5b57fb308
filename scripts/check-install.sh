#!/usr/bin/env bash
# The rockspec installs a working dike: run the documented command
#   luarocks make --deps-mode=none rockspec/dike-scm-1.rockspec
# on a copy of the sources (luarocks' builtin build writes objects next to the sources), into a
# scratch tree, then load the installed copy under LuaJIT from an unrelated directory with only
# that tree (and the system paths, for luv) on the module paths: scripts/check-install.lua.
# Usage: scripts/check-install.sh   (from anywhere; KEEP=1 keeps the scratch dir)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dike-install.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/src" "$tmp/run"
cp -r "$root/csrc" "$root/lua" "$root/rockspec" "$tmp/src/"
find "$tmp/src" \( -name '*.o' -o -name '*.so' \) -delete

# luarocks must not see the caller's trees or configuration.
unset LUA_PATH LUA_CPATH LUA_PATH_5_1 LUA_CPATH_5_1 LUAROCKS_CONFIG
(cd "$tmp/src" && luarocks --tree "$tmp/tree" make --deps-mode=none rockspec/dike-scm-1.rockspec)

echo "installed files:"
(cd "$tmp/tree" && find . -path ./lib/luarocks -prune -o -type f -print | sort | sed 's/^/  /')

share=$tmp/tree/share/lua/5.1 lib=$tmp/tree/lib/lua/5.1
cd "$tmp/run"
LUA_PATH="$share/?.lua;$share/?/init.lua;;" LUA_CPATH="$lib/?.so;;" \
  DIKE_TREE="$tmp/tree" DIKE_REPO="$root" luajit "$root/scripts/check-install.lua"
