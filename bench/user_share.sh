#!/bin/bash
# user_share.sh NAME 'SERVER COMMAND with {port}'
# Where the server's CPU goes in a connect storm (conn32: 32 connections
# at once, 64 bytes each, through bench/proxy_connect.c -n): the share of
# perf's cpu-clock samples in the kernel and in user space (the server's
# own code and libc). Two builds that make the same system calls per
# connection differ only in user space, so the ratio of their CPU per
# connection is (1 - user share of A) / (1 - user share of B): a figure
# the run-to-run noise of a timed ratio (often ±20 % here) cannot hide.
# Server on CPU 0, load on CPU 1, a private loopback-only network namespace.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
if [ "${BENCH_NETNS:-}" != 1 ]; then exec unshare -n env BENCH_NETNS=1 "$0" "$@"; fi
ip link set lo up || exit 1
NAME=$1; CMD=$2
LG=${TMPDIR:-/tmp}/proxy_connect
[ -x "$LG" ] && [ ! "$HERE/proxy_connect.c" -nt "$LG" ] || cc -O2 -Wall -o "$LG" "$HERE/proxy_connect.c" || exit 1
port=$(( 30000 + RANDOM % 20000 )); cmd=${CMD//\{port\}/$port}
taskset -c 0 bash -c "exec $cmd" </dev/null >/dev/null 2>&1 & spid=$!
sleep 0.5
taskset -c 1 "$LG" -n -c 32 -s 64 -d 5 -w 1 $port >/dev/null & lpid=$!
sleep 2
data=$(mktemp)
perf record -q -e cpu-clock -F 4999 -p $spid -o "$data" -- sleep 3 2>/dev/null
wait $lpid
kill $spid 2>/dev/null; wait $spid 2>/dev/null
perf report -i "$data" --sort dso --stdio 2>/dev/null |
	awk -v n="$NAME" '/%/ { p = $1 + 0; if ($2 == "[kernel.kallsyms]") k += p; else u += p }
		END { printf "%-12s kernel=%.2f%%  user=%.2f%%\n", n, k, u }'
rm -f "$data"
