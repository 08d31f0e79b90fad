#!/bin/bash
# veth_st10.sh ROUNDS NAME='SERVER COMMAND with {port}' ...
# st10 (10 connections streaming 64 KiB writes, ../shared/bench's
# loadgen) between two network namespaces joined by a veth pair, instead
# of over loopback. On loopback the receiver's TCP work runs in the
# sender's context, so a server is charged for part of its client's
# receiving and the client for the server's; here each veth's receive
# side runs in a threaded-NAPI kernel thread (GRO on), pinned beside the
# client on CPU 1, as a NIC's interrupt work would be. The server runs on
# CPU 0 and is charged its own work only: perf stat on its process.
# TSO is off on both ends: veth hands a TSO-sized TCP packet straight to
# the sending CPU's backlog, past NAPI, so with TSO on the receive work
# would stay in the sender's context as on loopback. With it off the
# sender segments in software (GSO), which a TSO NIC does in hardware:
# that part of a server's cost here is more than a NIC would charge.
#
# The namespaces are private to this script (created, then deleted on
# exit); the veth ends carry 127.0.0.1 (server) and 127.0.0.2 (client)
# with route_localnet, so that the kit's loadgen and reference servers,
# which speak only to 127.0.0.1, run unchanged. Needs root, ethtool and
# perf. Prints per round MB/s, server CPU µs and syscalls per MB, then
# per server the median (min-max) of its per-round ratio to the first.
#   bench/veth_st10.sh 7 echod='build/src/echod -l 127.0.0.1:{port}' \
#     libuv='../shared/bench/refs/ref_libuv {port}'
set -u
KIT=${KIT:-$(cd "$(dirname "$0")/../../shared/bench" 2>/dev/null && pwd)}
[ -n "$KIT" ] && [ -f "$KIT/loadgen.c" ] || { echo "veth_st10.sh: set KIT to the bench kit" >&2; exit 2; }
[ $# -ge 2 ] || { echo "usage: veth_st10.sh ROUNDS NAME='CMD {port}' ..." >&2; exit 2; }
command -v ethtool >/dev/null || { echo "veth_st10.sh: needs ethtool" >&2; exit 2; }
ROUNDS=$1; shift
LG=$KIT/loadgen
[ -x "$LG" ] && [ ! "$KIT/loadgen.c" -nt "$LG" ] || cc -O2 -Wall -o "$LG" "$KIT/loadgen.c" || exit 1
[ -f "$KIT/refs/Makefile" ] && make -s -C "$KIT/refs" >/dev/null

S=echod-veth-s$$; C=echod-veth-c$$
OUT=$(mktemp)
cleanup() { ip netns del $S 2>/dev/null; ip netns del $C 2>/dev/null; rm -f "$OUT"; }
trap cleanup EXIT
ip netns add $S && ip netns add $C || exit 1
ip link add vs netns $S type veth peer name vc netns $C || exit 1
setup() { # NS DEV OWN PEER
	ip netns exec "$1" sysctl -qw net.ipv4.conf.all.route_localnet=1 "net.ipv4.conf.$2.route_localnet=1"
	ip -n "$1" addr add "$3/32" dev "$2"
	ip -n "$1" link set "$2" up
	ip -n "$1" route add "$4/32" dev "$2"
	ip netns exec "$1" ethtool -K "$2" gro on tso off >/dev/null
	ip netns exec "$1" sh -c "echo 1 > /sys/class/net/$2/threaded"
}
setup $S vs 127.0.0.1 127.0.0.2 && setup $C vc 127.0.0.2 127.0.0.1 || exit 1
sleep 0.3
napi=$(ps -e -o pid=,comm= | awk '$2 ~ /^napi\/v[sc]-/ {print $1}')
[ -n "$napi" ] || { echo "veth_st10.sh: no threaded NAPI on the veth pair" >&2; exit 1; }
for t in $napi; do taskset -p -c 1 "$t" >/dev/null; done

port=$(( 30000 + RANDOM % 20000 ))
for r in $(seq "$ROUNDS"); do
	for spec in "$@"; do
		name=${spec%%=*}; cmd=${spec#*=}; port=$((port + 1)); cmd=${cmd//\{port\}/$port}
		ip netns exec $S taskset -c 0 bash -c "exec $cmd" </dev/null >/dev/null 2>&1 & spid=$!
		for _ in $(seq 100); do
			ip netns exec $C "$LG" probe -p $port -T 1 -q >/dev/null 2>&1 && break
			sleep 0.05
		done
		res=$(mktemp)
		ip netns exec $C taskset -c 1 timeout 30 "$LG" stream -c 10 -s 65536 -p $port -d 5 -w 1 >"$res" 2>/dev/null & lpid=$!
		sleep 2
		ps_out=$(perf stat -x, -e raw_syscalls:sys_enter,task-clock -p $spid -- sleep 3 2>&1)
		wait $lpid
		kill $spid 2>/dev/null; wait $spid 2>/dev/null
		mbs=$(grep -o 'mb_per_s=[0-9.]*' "$res" | head -1 | cut -d= -f2)
		bad=$(grep -o 'mismatches=[0-9]*' "$res" | cut -d= -f2)
		rm -f "$res"
		sys=$(echo "$ps_out" | awk -F, '/raw_syscalls/ {print $1}')
		ms=$(echo "$ps_out" | awk -F, '/task-clock/ {print $1}')
		if [ -z "$mbs" ] || [ "${bad:-1}" != 0 ]; then
			echo "r$r $name FAILED (mb_per_s=${mbs:-none} mismatches=${bad:-?})"
			continue
		fi
		awk -v r="$r" -v n="$name" -v mbs="$mbs" -v ms="$ms" -v sys="$sys" 'BEGIN {
			mb = mbs * 3; printf "r%s %-12s MB/s=%.0f us/MB=%.1f sys/MB=%.1f\n", r, n, mbs, ms * 1000 / mb, sys / mb }'
	done
done | tee "$OUT"
# Per-round ratios to the first server named, then median (min-max).
awk -v base="${1%%=*}" '
	!/FAILED/ { split($3, a, "="); split($4, b, "="); r = $1; n = $2
		mbs[r, n] = a[2]; cpu[r, n] = b[2]; rounds[r] = 1
		if (!(n in seen)) { seen[n] = 1; order[++nn] = n } }
	function stats(v, k,   i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++)
			if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
		return sprintf("%.2f (%.2f-%.2f)", k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2, v[1], v[k]) }
	END { print "server        CPU/MB vs " base "      MB/s vs " base
		for (i = 1; i <= nn; i++) { n = order[i]; k = 0; delete c; delete m
			for (r in rounds) if ((r, n) in cpu && (r, base) in cpu) {
				k++; c[k] = cpu[r, n] / cpu[r, base]; m[k] = mbs[r, n] / mbs[r, base] }
			if (k) printf "%-12s  %-22s  %s\n", n, stats(c, k), stats(m, k) } }' "$OUT"
