#!/bin/sh
# plot-soak.sh SAMPLES.CSV OUT.PNG [TITLE] -- draws the soak's samples (scripts/soak.py --out
# DIR writes DIR/samples.csv) with gnuplot: RSS and heap, threads, fds and ZooKeeper watches,
# against the number of probes. Needs gnuplot-nox (scripts/install-deps.sh installs it).
set -eu
if [ $# -lt 2 ]; then
    echo "usage: plot-soak.sh SAMPLES.CSV OUT.PNG [TITLE]" >&2
    exit 64
fi
csv=$1
png=$2
title=${3:-sentinel-agent soak}
command -v gnuplot >/dev/null || { echo "plot-soak.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }

# Column numbers by header name, so the plot survives a reordering of the CSV.
col() {
    head -1 "$csv" | tr ',' '\n' | grep -nx "$1" | cut -d: -f1
}
P=$(col probes_total); R=$(col rss_bytes); H=$(col heap_bytes); T=$(col threads)
F=$(col fds); W=$(col zk_watches); S=$(col server_watches)
for c in "$P" "$R" "$H" "$T" "$F" "$W" "$S"; do
    [ -n "$c" ] || { echo "plot-soak.sh: $csv lacks a needed column" >&2; exit 1; }
done

gnuplot <<GP
set datafile separator ","
set terminal pngcairo size 1100,900 font "sans,10" noenhanced
set output "$png"
set key top left
set grid
set xlabel "probes (millions)"
set multiplot layout 3,1 title "$title"
set ylabel "MiB"
set yrange [0:*]
plot "$csv" every ::1 using (\$$P/1e6):(\$$R/1048576.0) with lines lw 2 title "RSS (kernel)", \
     "$csv" every ::1 using (\$$P/1e6):(\$$H/1048576.0) with lines lw 2 title "heap in use (allocator)"
set ylabel "count"
set yrange [0:*]
set offsets graph 0, graph 0, graph 0.3, graph 0
plot "$csv" every ::1 using (\$$P/1e6):$T with steps lw 2 title "threads (kernel)"
set ylabel "count"
set yrange [0:*]
plot "$csv" every ::1 using (\$$P/1e6):$F with steps lw 2 title "open fds (kernel)", \
     "$csv" every ::1 using (\$$P/1e6):(\$$W) with steps lw 1 title "zk_watches (agent)", \
     "$csv" every ::1 using (\$$P/1e6):(\$$S < 0 ? 1/0 : \$$S) with points pt 7 ps 0.3 title "watches of our session (server wchc)"
unset multiplot
GP
echo "plot-soak.sh: wrote $png"
