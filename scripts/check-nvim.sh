#!/usr/bin/env bash
# Neovim integration test: spec/nvim/check.lua in a headless Neovim (0.7: no `nvim -l`),
# dike from this tree and the given build dir. Bounded by `timeout`; the script ends Neovim
# with :cquit on failure. Usage: scripts/check-nvim.sh [CPATH_ROOT]   (default build)
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
croot=$(cd "${1:-$root/build}" && pwd)
if ! command -v nvim >/dev/null; then
  echo "check-nvim: nvim not found (scripts/deps.sh test installs neovim)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
cd "$root"
DIKE_ROOT=$root DIKE_CPATH=$croot timeout 60 nvim --headless -u NONE -i NONE -n \
  -c "luafile $root/spec/nvim/check.lua" </dev/null
