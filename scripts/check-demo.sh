#!/usr/bin/env bash
# The README's demo runs: examples/demo.lua under the given interpreter, with the working tree's
# lua/ and the given build tree on the paths (what `make demo` does for LuaJIT).
# Usage: scripts/check-demo.sh INTERPRETER CPATH_ROOT    e.g. luajit build | lua5.3 build/lua53
set -eu
interp=$1 croot=$(cd "$2" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
lpath="$root/lua/?.lua;$root/lua/?/init.lua;;" cpath="$croot/?.so;;"
timeout 120 scripts/lua-run.sh "$interp" "$lpath" "$cpath" examples/demo.lua
