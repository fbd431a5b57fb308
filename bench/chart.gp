# The chart of bench/RESULTS.md, from the data bench/run.lua writes:
#   gnuplot -e "datadir='build/bench'; output='bench/results.png'" bench/chart.gp
if (!exists("datadir")) datadir = 'build/bench'
if (!exists("output")) output = 'bench/results.png'

set terminal pngcairo size 1400,1000 font ",11" noenhanced
set output output
set multiplot layout 2,2 title "dike benchmarks (medians; see bench/RESULTS.md)" font ",14"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.6
set grid ytics
set key off
set yrange [0:*]
set bmargin 4

set title "1. batch: 100,000 concurrent single-row calls"
set ylabel "thousand calls / s (higher is better)"
plot datadir.'/batch.dat' using 2:xtic(1) linecolor rgb "#3b7dd8"

set title "2, 3. one call that does not wait (LuaJIT; Node peers)"
set ylabel "ns per call (log scale)"
set logscale y
set yrange [0.1:*]
plot datadir.'/overhead.dat' using 2:xtic(1) linecolor rgb "#4caf50"
unset logscale y
set yrange [0:*]

set title "5. queue growth: limit_jobs{limit = 1, queue = N}"
set style data linespoints
set logscale x
set xrange [500:200000]
set xlabel "waiting callers"
set ylabel "ns per call (flat is the target)"
set key top left
plot datadir.'/queue.dat' using 1:2 title "dike" linewidth 2 pointtype 7, \
     '' using 1:3 title "hand-written FIFO" linewidth 2 pointtype 5
unset logscale x
set xrange [*:*]
unset xlabel

set title "targets: measured ratio (bars) against the limit (line marks)"
set style data histograms
set ylabel "ratio (lower is better)"
set key top right
plot datadir.'/targets.dat' using 2:xtic(1) title "measured" linecolor rgb "#e08a00", \
     '' using 0:3 with points pointtype 2 pointsize 3 linewidth 3 linecolor rgb "#c00000" title "limit"
unset multiplot
