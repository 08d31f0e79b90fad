#!/bin/bash
# proxy_cost.sh NAME 'SERVER COMMAND with {port}' [-n]
# conn32 through bench/proxy_connect.c (32 connections at once, PROXY v1
# header sent with the first 64 bytes; -n: no header), counted like the
# benchmark kit's cost.sh: perf stat on the server during the measured
# window, server on CPU 0, load on CPU 1, a private loopback-only network
# namespace.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
if [ "${BENCH_NETNS:-}" != 1 ]; then exec unshare -n env BENCH_NETNS=1 "$0" "$@"; fi
ip link set lo up || exit 1
NAME=$1; CMD=$2; NOHDR=${3:-}
LG=${TMPDIR:-/tmp}/proxy_connect
[ -x "$LG" ] && [ ! "$HERE/proxy_connect.c" -nt "$LG" ] || cc -O2 -Wall -o "$LG" "$HERE/proxy_connect.c" || exit 1
D=5; W=1; M=$((D - 2))
port=$(( 30000 + RANDOM % 20000 )); cmd=${CMD//\{port\}/$port}
taskset -c 0 bash -c "exec $cmd" </dev/null >/dev/null 2>&1 & spid=$!
sleep 0.5
res=$(mktemp)
taskset -c 1 "$LG" $NOHDR -c 32 -s 64 -d $D -w $W $port > "$res" & lpid=$!
sleep $((W + 1))
ps_out=$(perf stat -x, -e raw_syscalls:sys_enter,task-clock -p $spid -- sleep $M 2>&1)
wait $lpid
kill $spid 2>/dev/null; wait $spid 2>/dev/null
r=$(grep '^RESULT' "$res"); rm -f "$res"
sys=$(echo "$ps_out" | awk -F, '/raw_syscalls/ {print $1}')
ms=$(echo "$ps_out" | awk -F, '/task-clock/ {print $1}')
rate=$(echo "$r" | tr ' ' '\n' | sed -n 's/^conns_per_s=//p')
err=$(echo "$r" | tr ' ' '\n' | sed -n 's/^errors=//p'); mis=$(echo "$r" | tr ' ' '\n' | sed -n 's/^mismatches=//p')
awk -v n="$NAME" -v sys="$sys" -v ms="$ms" -v r="$rate" -v m="$M" -v e="$err" -v x="$mis" 'BEGIN{
  w = r * m; if (w <= 0) { printf "%-12s conn32p   FAILED\n", n; exit }
  printf "%-12s conn32p   rate=%.0f conn/s  syscalls/conn=%.3f  server_us/conn=%.3f  server_cores=%.2f errors=%s mismatches=%s\n", n, r, sys / w, ms * 1000 / w, ms / 1000 / m, e, x }'
