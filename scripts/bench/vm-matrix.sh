#!/bin/sh
# Runs inside the bench VM (busybox sh), started by scripts/vm/init.sh as its
# "run" program; prints one KCMBENCH line per run (see kcm_bench.c).
# Settings come from /etc/kcm-vm.conf (written by scripts/bench/run-vm.sh):
#   BENCH_SIZES BENCH_CONNS BENCH_THREADS BENCH_WORKLOADS (empty: none)
#   BENCH_VARIANTS (stream) BENCH_ECHO_VARIANTS (echo)
#   BENCH_MIXED (1: add the mixed-size stream case) BENCH_REPS BENCH_DUR
#   BENCH_STALL (seconds without progress that make a run "stalled")
#   BENCH_DIRECTED (0: leave out the C=16 directed echo case)
#   BENCH_RPC (0: leave out the rpc cases: 1 and 4 connections, T=4)
#   BENCH_SCALE (connection counts of the scale case, e.g. "16 1000 10000";
#   empty: none), BENCH_SCALE_VARIANTS, BENCH_SCALE_CLIENTS, BENCH_SCALE_DUR
#   BENCH_KTLS (0: leave out the kTLS cases: every connection through kTLS)
# Every case runs BENCH_REPS times; the variant order rotates between reps so
# that slow drifts of the host do not favour one variant.
# shellcheck disable=SC1091
. /etc/kcm-vm.conf
bin=/samples/kcm_bench

echo "# kcm-bench: $(uname -r) lane=$LANE reps=$BENCH_REPS dur=$BENCH_DUR"
# One run: workload variant size conns threads rep [client-threads duration
# [-k]].  kcm_bench prints its KCMBENCH line (and, for a run that is not ok,
# "# " lines saying why) and exits 1 if the run is not ok; a run killed or
# failed before its line gets an error line here.  With client-threads,
# that many threads drive the connections with epoll (kcm_bench -e), and
# the hard limit on top of the program's own stall detection allows for
# setting up and closing thousands of connections.  With -k, every
# connection goes through kTLS (kcm_bench -k).
one() {
	epoll='' tag='' limit=60
	if [ -n "${7:-}" ]; then
		epoll="-e $7"
		tag=" client_threads=$7"
		limit=180
	fi
	# shellcheck disable=SC2086
	out=$(timeout -s KILL $limit $bin -w "$1" -v "$2" -s "$3" -c "$4" -t "$5" $epoll \
		-d "${8:-$BENCH_DUR}" -g "$BENCH_STALL" -r "$6" ${9:-})
	rc=$?
	[ -n "$out" ] && echo "$out"
	shown=$2
	[ "${9:-}" = -k ] && shown=$2+tls
	echo "$out" | grep -q '^KCMBENCH ' ||
		echo "KCMBENCH workload=$1 variant=$shown size=$3 conns=$4 threads=$5$tag rep=$6 status=error reason=\"exit $rc\""
}
# Variant list $1 rotated by $2 places.
rotate() {
	echo "$1" | awk -v k="$2" '{ for (i = 0; i < NF; i++) printf "%s ", $((i + k) % NF + 1) }'
}
run_case() {	# workload size conns threads
	r=1
	while [ $r -le "$BENCH_REPS" ]; do
		# Rotate the variant list by r-1 places.
		vars=$BENCH_VARIANTS
		[ "$1" = echo ] && vars=$BENCH_ECHO_VARIANTS
		for v in $(rotate "$vars" $((r - 1))); do
			one "$1" "$v" "$2" "$3" "$4" $r
		done
		r=$((r + 1))
	done
}

start=$(date +%s)
for w in $BENCH_WORKLOADS; do
	sizes=$BENCH_SIZES
	[ "$w" = stream ] && [ "${BENCH_MIXED:-1}" = 1 ] && sizes="$sizes 0"
	for s in $sizes; do
		for c in $BENCH_CONNS; do
			for t in $BENCH_THREADS; do
				run_case "$w" "$s" "$c" "$t"
			done
		done
	done
done
# Many independent clients (C=16, T=2): our KCM replies on the connection a
# request came from (KCM_ORIGIN); Linux's kcm.ko cannot, so the case is
# reported as skipped there, not run.
if [ "${BENCH_DIRECTED:-1}" = 1 ]; then
	r=1
	while [ $r -le "$BENCH_REPS" ]; do
		if [ "$LANE" = linux ]; then
			echo "KCMBENCH workload=echo variant=kcmd size=64 conns=16 threads=2 rep=$r status=skipped reason=\"Linux's kcm.ko cannot send on a chosen connection\""
		else
			one echo kcmd 64 16 2 $r
		fi
		one echo user 64 16 2 $r
		r=$((r + 1))
	done
fi
# The case KCM exists for: few connections, four server threads, 16
# requests in flight per connection, one in 100 slow (see kcm_bench.c).
if [ "${BENCH_RPC:-1}" = 1 ]; then
	for c in 1 4; do
		run_rpc() { one rpc "$1" 64 $c 4 "$2"; }
		r=1
		while [ $r -le "$BENCH_REPS" ]; do
			for v in kcm user usero; do run_rpc $v $r; done
			r=$((r + 1))
		done
	done
fi
# Scale: the directed echo at each of BENCH_SCALE connection counts, one
# request in flight per connection, BENCH_SCALE_CLIENTS client threads
# driving them with epoll, T=2, 64 B, our module replying with KCM_ORIGIN
# (kcmd; kcmld framed by SIOCKCMATTACHLEN) against user-space framing.
# Linux's kcm.ko cannot reply on a chosen connection: its lane reports the
# KCM variants skipped and runs nothing.
for c in ${BENCH_SCALE:-}; do
	r=1
	while [ $r -le "$BENCH_REPS" ]; do
		for v in $(rotate "$BENCH_SCALE_VARIANTS" $((r - 1))); do
			if [ "$LANE" = ours ]; then
				one echo "$v" 64 "$c" 2 $r "$BENCH_SCALE_CLIENTS" "$BENCH_SCALE_DUR"
			elif [ "$v" != user ]; then
				echo "KCMBENCH workload=echo variant=$v size=64 conns=$c threads=2 client_threads=$BENCH_SCALE_CLIENTS rep=$r status=skipped reason=\"Linux's kcm.ko cannot send on a chosen connection\""
			fi
		done
		r=$((r + 1))
	done
done
# KCM over kTLS (issue 20): every connection keyed with kTLS both ways,
# our module and user-space framing on the same kTLS sockets.  Linux's
# module parses the ciphertext: its runs are reported, misframed.
if [ "${BENCH_KTLS:-1}" = 1 ]; then
	r=1
	while [ $r -le "$BENCH_REPS" ]; do
		for v in kcm user; do
			one stream $v 512 4 2 $r "" "" -k
			one echo $v 64 4 2 $r "" "" -k
		done
		r=$((r + 1))
	done
fi
echo "# kcm-bench: done in $(($(date +%s) - start)) s"
