#!/usr/bin/env bash
# Run a Lua interpreter with the given module paths, whichever one it is: LuaJIT reads LUA_PATH /
# LUA_CPATH, PUC Lua 5.2+ reads LUA_PATH_5_<minor> / LUA_CPATH_5_<minor> first (an inherited one
# would win over ours), so both are set: the plain names and the interpreter's own.
# Usage: scripts/lua-run.sh INTERPRETER LUA_PATH LUA_CPATH [ARGS...]
set -eu
interp=$1 lpath=$2 cpath=$3
shift 3
suffix=$("$interp" -e 'io.write((_VERSION:gsub("^Lua ", ""):gsub("%.", "_")))')
export LUA_PATH="$lpath" LUA_CPATH="$cpath" "LUA_PATH_$suffix=$lpath" "LUA_CPATH_$suffix=$cpath"
exec "$interp" "$@"
