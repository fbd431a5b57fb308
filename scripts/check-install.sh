#!/usr/bin/env bash
# Every rockspec installs a working dike: for each rockspec/*.rockspec run the documented command
#   luarocks make --deps-mode=none rockspec/<name>.rockspec
# on a copy of the sources (the build writes build.luarocks/ next to them) into a scratch tree of
# its own, then load the installed copy under LuaJIT from an unrelated directory with only that
# tree (and the system paths, for luv) on the module paths: scripts/check-install.lua, which also
# checks that every lua/dike/**/*.lua of the repository was installed.
# Usage: scripts/check-install.sh [ROCKSPEC...]   (from anywhere; default: every rockspec;
#                                                 KEEP=1 keeps the scratch dir)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dike-install.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$tmp"' EXIT

specs=("$@")
if [ ${#specs[@]} -eq 0 ]; then
  for f in "$root"/rockspec/*.rockspec; do specs+=("rockspec/${f##*/}"); done
fi

# luarocks must not see the caller's trees or configuration.
unset LUA_PATH LUA_CPATH LUA_PATH_5_1 LUA_CPATH_5_1 LUAROCKS_CONFIG

mkdir -p "$tmp/src" "$tmp/run"
# What a release tarball or a clone holds for the build (CMakeLists.txt's BUILD_TESTING=OFF part).
cp -r "$root/CMakeLists.txt" "$root/csrc" "$root/lua" "$root/rockspec" "$root/docs" "$root/types" "$tmp/src/"
for f in README.md LICENSE CHANGELOG.md; do [ -e "$root/$f" ] && cp "$root/$f" "$tmp/src/"; done
find "$tmp/src" \( -name '*.o' -o -name '*.so' \) -delete
(cd "$root" && find lua -type f -name '*.lua' | LC_ALL=C sort) >"$tmp/lua-files"

n=0
for spec in "${specs[@]}"; do
  n=$((n + 1))
  tree=$tmp/tree$n
  echo "== $spec"
  rm -rf "$tmp/src/build.luarocks"
  (cd "$tmp/src" && luarocks --tree "$tree" make --deps-mode=none "$spec")
  echo "installed files:"
  (cd "$tree" && find . -path ./lib/luarocks -prune -o -type f -print | sort | sed 's/^/  /')
  rockdir=$(find "$tree/lib/luarocks" -mindepth 3 -maxdepth 3 -type d -path '*/dike/*')
  for d in docs types; do
    [ -d "$rockdir/$d" ] || { echo "FAIL $d/ is not in the rock's directory $rockdir"; exit 1; }
  done
  echo "ok   docs/ and types/ kept in $rockdir"
  share=$tree/share/lua/5.1 lib=$tree/lib/lua/5.1
  (cd "$tmp/run" &&
   LUA_PATH="$share/?.lua;$share/?/init.lua;;" LUA_CPATH="$lib/?.so;;" \
     DIKE_TREE="$tree" DIKE_REPO="$root" DIKE_LUA_FILES="$tmp/lua-files" \
     luajit "$root/scripts/check-install.lua")
done
echo "ok   $n rockspec(s) installed and loaded"
