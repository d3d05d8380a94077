# gnuplot script for scripts/bench/bench.sh; the variables datafile, outfile
# and subtitle come from the command line (-e).
set terminal png size 1600,720 font ",10"
set output outfile
set title "kcm\\_bench: ratios of medians (" . subtitle . "); a missing bar = stalled or no data"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by 90 right scale 0 noenhanced
set ylabel "ratio (1 = equal)"
set yrange [0:*]
set grid ytics
set key top left
set offsets 0.5, 3, 0, 0
set bmargin 12
set datafile missing "NaN"
set arrow from graph 0, first 1 to graph 1, first 1 nohead lt 0 lw 2 front
plot datafile using 2:xtic(1) title "ours / linux", \
     '' using 3 title "ours / linux, user-normalised", \
     '' using 4 title "ours / userspace framing", \
     '' using 5 title "ours with KCM\\_RECV\\_BATCH / userspace framing"
