#!/usr/bin/env bash
# The stress run (spec/stress/run.lua) under an interpreter, with the working tree's lua/ and the
# given build tree on the paths. ctest's stress.* suites run the short version; `make stress`
# passes --full. Ends with "N passed, N failed".
# Usage: scripts/run-stress.sh INTERPRETER CPATH_ROOT [run.lua arguments...]
#   e.g. scripts/run-stress.sh luajit build --full | scripts/run-stress.sh lua5.4 build/lua54
set -eu
interp=$1 croot=$(cd "$2" && pwd)
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
lpath="$root/lua/?.lua;$root/lua/?/init.lua;$root/?.lua;;" cpath="$croot/?.so;;"
exec scripts/lua-run.sh "$interp" "$lpath" "$cpath" spec/stress/run.lua "$@"
