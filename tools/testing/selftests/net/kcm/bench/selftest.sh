#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The benchmark's self-test, on the host (no KCM needed): kcm_bench's
# user-space framing (user) and plain TCP (tcp) variants must pass clean
# runs, and fail, with the report that names the message, runs in which
# client 0 sends its message 10 wrong (KCM_BENCH_INJECT): the verification
# the KCM variants share with them must catch a corrupt byte, a loss, a
# duplicate and a stall, with a client thread per connection and with a
# few client threads driving hundreds of connections through epoll (-e).
# `make bench-selftest`, and part of `make check`.
#   selftest.sh [KCM_BENCH]       (default: build/bench/bin/kcm_bench)
# Prints "bench-selftest: ok|not ok N - case" lines (not a TAP stream of
# its own: make check prints the suite's TAP after them); exits 1 if a case
# failed.
set -uo pipefail

root=$(cd "$(dirname "$0")/../../../../../.." && pwd)
bin=${1:-$root/build/bench/bin/kcm_bench}
[ -x "$bin" ] || { echo "selftest: $bin missing (make bench-selftest builds it)" >&2; exit 1; }
n=0
failed=0

# expect NAME INJECT WANT_RC WANT_STATUS 'REGEX...' -- kcm_bench ARGS
# Each REGEX must match a line of the output.
expect() {
	local name=$1 inject=$2 want_rc=$3 want_status=$4 out rc why=
	shift 4
	local res=()
	while [ "$1" != -- ]; do res+=("$1"); shift; done
	shift
	n=$((n + 1))
	out=$(KCM_BENCH_INJECT=$inject "$bin" "$@" -d 0.3 -g 1 2>&1)
	rc=$?
	[ "$rc" = "$want_rc" ] || why="exit $rc, not $want_rc"
	grep -q "^KCMBENCH .* status=$want_status " <<<"$out" || why+="${why:+; }status not $want_status"
	for re in "${res[@]}"; do
		grep -qE "$re" <<<"$out" || why+="${why:+; }no line matches '$re'"
	done
	if [ -z "$why" ]; then
		echo "bench-selftest: ok $n - $name"
	else
		echo "bench-selftest: not ok $n - $name # $why"
		sed 's/^/bench-selftest:   /' <<<"$out" | head -n 20
		failed=$((failed + 1))
	fi
}

expect "stream user: clean" "" 0 ok -- -w stream -v user -s 64 -c 2 -t 2
expect "stream tcp, mixed sizes: clean" "" 0 ok -- -w stream -v tcp -s 0 -c 2 -t 1
expect "echo user: clean" "" 0 ok -- -w echo -v user -s 64 -c 2 -t 1
expect "echo tcp, mixed sizes: clean" "" 0 ok -- -w echo -v tcp -s 0 -c 2 -t 1
expect "stream user: a corrupt byte" corrupt 1 corrupt \
	'^# violation: server thread 0: checksum [0-9a-f]+, the message says [0-9a-f]+ \(sender 0 seq 10, ' \
	'^# sender 0: sent [0-9]+, received [0-9]+; 1 missing: seq 10$' -- -w stream -v user -s 512 -c 2 -t 1
# The corrupt byte may be in the seq (a 16-byte message has no filler).
expect "stream tcp, mixed sizes: a corrupt byte" corrupt 1 corrupt \
	'^# violation: server thread 0: checksum .*\(sender 0 seq [0-9]+, ' \
	'^# sender 0: .*; 1 missing: seq 10$' -- -w stream -v tcp -s 0 -c 1 -t 1
expect "echo tcp: a corrupt byte in a request" corrupt:3 1 corrupt \
	'^# violation: server thread 0: checksum .*\(sender 0 seq 3, ' \
	'^# violation: client 0: checksum .*\(sender 0 seq 3, ' -- -w echo -v tcp -s 4096 -c 1 -t 1
expect "stream tcp: a lost message" drop 1 corrupt \
	'^# violation: server thread 0: sender 0 seq 11: expected seq 10 on this connection$' \
	'^# sender 0: .*; 1 missing: seq 10$' -- -w stream -v tcp -s 64 -c 2 -t 2
expect "echo user: a lost request" drop 1 stalled \
	'^# sender 0: sent 11, received 10; 1 missing: seq 10$' \
	'^#   conn 0: requests 11, answered 10, outstanding 1;' -- -w echo -v user -s 64 -c 1 -t 1
expect "stream user: a duplicate" dup 1 corrupt \
	'^# violation: server thread 0: sender 0 seq 10: duplicate$' -- -w stream -v user -s 64 -c 1 -t 1
expect "echo tcp: a duplicate request" dup 1 corrupt \
	'^# violation: client 0: sender 0 seq 10: duplicate$' -- -w echo -v tcp -s 64 -c 2 -t 1
expect "stream user: a stall, half a message" stall 1 stalled \
	'^KCMBENCH .* stall=(noprogress|drain) ' '^# sender 0: sent 11, received 10; 1 missing: seq 10$' \
	'^#   conn 0: sent 11, received 10, outstanding 1; .*; 258 bytes of a message held by the server$' \
	-- -w stream -v user -s 512 -c 1 -t 1
# usero (any thread reads any connection, replies in any order) and the
# rpc workload (16 requests in flight, slow ones) check the same way.
expect "rpc usero: clean" "" 0 ok -- -w rpc -v usero -s 64 -c 2 -t 4
expect "rpc user: clean" "" 0 ok -- -w rpc -v user -s 64 -c 2 -t 2
expect "rpc usero: a corrupt byte in a request" corrupt:30 1 corrupt \
	'^# violation: server thread [0-9]+: checksum .*\(sender 0 seq 30, ' \
	'^# violation: client 0: checksum .*\(sender 0 seq 30, ' -- -w rpc -v usero -s 512 -c 2 -t 4
expect "rpc usero: a duplicate request" dup:30 1 corrupt \
	'^# violation: client 0: sender 0 seq 30: duplicate$' -- -w rpc -v usero -s 64 -c 1 -t 4
expect "rpc usero: a lost request" drop:30 1 stalled \
	'^# sender 0: sent [0-9]+, received [0-9]+; 1 missing: seq 30$' -- -w rpc -v usero -s 64 -c 1 -t 4
# Epoll-driven clients (-e): more connections than a thread each allows,
# the same checks; the reports name the client thread and print only the
# connections that hold something.
expect "echo user, 2 epoll client threads, 300 connections: clean" "" 0 ok \
	'^KCMBENCH .* conns=300 threads=2 client_threads=2 ' -- -w echo -v user -s 64 -c 300 -t 2 -e 2
expect "echo tcp, 3 epoll client threads, mixed sizes: clean" "" 0 ok -- -w echo -v tcp -s 0 -c 100 -t 2 -e 3
expect "echo user, epoll clients: a corrupt byte in a request" corrupt 1 corrupt \
	'^# violation: server thread 0: checksum .*\(sender 0 seq 10, ' \
	'^# violation: client thread 0: checksum .*\(sender 0 seq 10, ' \
	'^# sender 0: sent [0-9]+, received [0-9]+; 1 missing: seq 10$' -- -w echo -v user -s 64 -c 200 -t 2 -e 2
expect "echo user, epoll clients: a lost request" drop 1 stalled \
	'^# sender 0: sent 11, received 10; 1 missing: seq 10$' \
	'^#   conn 0: requests 11, answered 10, outstanding 1;' \
	'^#   \(1 of 200 connections hold something, 1 of them above\)$' -- -w echo -v user -s 64 -c 200 -t 2 -e 2
expect "echo tcp, epoll clients: a duplicate request" dup 1 corrupt \
	'^# violation: client thread 0: sender 0 seq 10: duplicate$' -- -w echo -v tcp -s 64 -c 200 -t 1 -e 2
expect "echo user, epoll clients: a stall, half a request" stall 1 stalled \
	'^KCMBENCH .* stall=(noprogress|drain) ' '^# sender 0: sent 11, received 10; 1 missing: seq 10$' \
	'^#   conn 0: requests 11, answered 10, outstanding 1; .*; 34 bytes of a message held by the server$' \
	-- -w echo -v user -s 64 -c 200 -t 2 -e 2
echo "bench-selftest: $((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
