#!/usr/bin/env bash
# The README's demo runs: examples/demo.lua under the given interpreter, with the working tree's
# lua/ and the given build tree on the paths (what `make demo` does for LuaJIT).
# Usage: scripts/check-demo.sh INTERPRETER CPATH_ROOT    e.g. luajit build | lua5.4 build/lua54
set -eu
interp=$1 croot=$(cd "$2" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
lpath="$root/lua/?.lua;$root/lua/?/init.lua;;" cpath="$croot/?.so;;"
# Lua 5.4 prefers the _5_4 variables: set both.
LUA_PATH=$lpath LUA_PATH_5_4=$lpath LUA_CPATH=$cpath LUA_CPATH_5_4=$cpath \
  timeout 120 "$interp" examples/demo.lua
