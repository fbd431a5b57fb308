#!/usr/bin/env bash
# luacheck over every Lua directory that exists (configuration: .luacheckrc).
set -u
cd "$(dirname "$0")/.."
dirs=()
for d in lua spec examples bench scripts types .busted .luacheckrc; do
  [ -e "$d" ] && dirs+=("$d")
done
exec luacheck --no-color --codes "${dirs[@]}"
