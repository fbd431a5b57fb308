#!/usr/bin/env bash
# `make bench`: install what the benchmarks need, build, run every workload, write the report.
#   1. scripts/deps.sh all: the Debian packages (gnuplot, Node.js, npm, GNU time, ...)
#   2. the build tree (build/dike/core.so, build/lua54/dike/core.so)
#   3. the Node peers at the versions pinned in bench/package.json, into bench/node_modules
#      (git-ignored; reinstalled only when missing or at other versions)
#   4. luajit bench/run.lua: the table on stdout, bench/RESULTS.md, chart data in build/bench/
#   5. gnuplot bench/chart.gp: bench/results.png
# Arguments are passed to bench/run.lua (e.g. --runs 3, --only PREFIX). The default 7 rounds
# take about 9 minutes on a 2-core machine (542 s on 2026-12-06); --runs 3 (or BENCH_RUNS=3) about 4.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh all
cmake -S . -B build >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null

# The pinned versions, as "name@version" words, read from bench/package.json.
want=$(node -e 'const d = require("./bench/package.json").dependencies;
  process.stdout.write(Object.entries(d).map(([k, v]) => k + "@" + v).join(" "))')
have=$(node -e 'const d = require("./bench/package.json").dependencies;
  process.stdout.write(Object.keys(d).map((k) => { try {
    return k + "@" + require("./bench/node_modules/" + k + "/package.json").version } catch (e) { return "" } }).join(" "))')
if [ "$want" != "$have" ]; then
  echo "bench: npm install $want" >&2
  (cd bench && npm install --no-audit --no-fund --no-package-lock --loglevel=error >/dev/null)
fi

mkdir -p build/bench
luajit bench/run.lua --out build/bench "$@"
gnuplot -e "datadir='build/bench'; output='bench/results.png'" bench/chart.gp
echo "bench: wrote bench/RESULTS.md and bench/results.png" >&2
