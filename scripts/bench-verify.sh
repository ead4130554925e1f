#!/usr/bin/env bash
# bench-verify.sh — `make bench-verify`: how long it takes to prove the
# macvlan mode matrix, vmlink verify against a bash loop of `ping -c3 -W1`,
# both in one run over the same cells.
#
# The matrix (issue 4): 5 modes (bridge, private, vepa, passthru, source)
# × 2 switch settings (hairpin off/on) × 4 pair kinds (sibling, child→host,
# host→child, child→outside). Each mode/switch cell gets its own sandboxed
# veth parent, built once with `vmlink up` in namespaces named
# vmbv-<pid>-…, and removed with `vmlink down` however the script ends.
#
# vmlink verifies the ten parents in parallel (one `vmlink verify` each,
# all pairs of each parent probed at once); the ping loop runs the same
# pairs one after the other, as people do by hand. Target: vmlink under 3 s.
# Exits 1 when the target is missed or a verification disagrees with the
# model, 3 without privileges.
#
# Then the scaling curve (issue 9): N = 10, 20, 40, 100 bridge-mode
# macvlans on one veth parent whose host side holds an address, each child
# in its own namespace (vmbv-<pid>-x…), grown in place: for each N the
# ordered pairs ((N+1)·N with the host), the seconds of one `vmlink verify`
# (and its CPU seconds: this machine is shared), and its false verdicts
# against the model, where every child pair is reachable and every
# host↔child pair blocked (host-to-macvlan isolation). A sample of pairs is
# pinged one by one (ip netns exec … ping -c1 -W1) as ground truth, and
# their mean time times the pairs estimates a ping loop over all of them.
# Exits 1 on a false verdict, a ping that disagrees with the model, or
# N = 100 taking 10 s or more.
#
# Env: GO (default go), BIN (default bin), VMLINK (use this binary),
# SCALE_N (default "10 20 40 100"), SCALE_ONLY=1 skips the mode matrix,
# PING_SAMPLE (default 20 reachable pairs per N).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
BIN=${BIN:-bin}
if [ "$(id -u)" != 0 ]; then
	echo "bench-verify: needs root (network namespaces)" >&2
	exit 3
fi
vmlink=${VMLINK:-}
if [ -z "$vmlink" ]; then
	mkdir -p "$BIN"
	CGO_ENABLED=0 "$GO" build -trimpath -ldflags='-s -w' -o "$BIN/vmlink" ./cmd/vmlink
	vmlink=$(realpath "$BIN/vmlink")
fi

p=vmbv-$$-
tmp=$(mktemp -d)
topo=$tmp/matrix.yaml
fail=0
cleanup() {
	if [ -f "$topo" ]; then
		"$vmlink" down -f "$topo" >/dev/null 2>&1 || echo "bench-verify: vmlink down failed; leftover namespaces: $(ip netns list | grep "^$p" | tr '\n' ' ')" >&2
	fi
	for ns in $(ip netns list | awk '{print $1}' | grep "^${p}x" || true); do
		ip netns del "$ns" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

now() { date +%s.%N; }

# scale_curve prints the scaling curve (see the header).
scale_curve() {
	local h=${p}xh w=${p}xw have=0 n i a b
	ip netns add "$h"
	ip netns add "$w"
	ip -n "$h" link add h0 type veth peer name w0 netns "$w"
	ip -n "$h" addr add 10.98.0.1/16 dev h0
	ip -n "$h" link set h0 up
	ip -n "$w" link set w0 up
	addr() { echo "10.98.$(($1 / 200)).$(($1 % 200 + 10))"; }
	printf 'bench-verify: scaling, N bridge-mode macvlans on one veth parent (load average %s)\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf '  %5s %7s %10s %8s %7s %14s %10s\n' N pairs "vmlink s" "cpu s" false "ping loop s*" "ping/vmlink"
	for n in ${SCALE_N:-10 20 40 100}; do
		while [ "$have" -lt "$n" ]; do
			have=$((have + 1))
			ip netns add "${p}x$have"
			ip -n "$h" link add "m$have" link h0 type macvlan mode bridge
			ip -n "$h" link set "m$have" netns "${p}x$have"
			ip -n "${p}x$have" addr add "$(addr $have)/16" dev "m$have"
			ip -n "${p}x$have" link set "m$have" up
		done
		local out=$tmp/scale$n.json t0 t1 cpu
		t0=$(now)
		/usr/bin/time -o "$tmp/cpu" -f '%U %S' "$vmlink" -n "$h" verify --parent h0 -j >"$out" 2>"$tmp/scale$n.err" || true
		cpu=$(tail -1 "$tmp/cpu" | awk '{print $1 + $2}')
		t1=$(now)
		# False verdicts: pairs whose observed verdict is not the model's.
		local falsev
		falsev=$(grep -o '"expected":"[a-z ]*","observed":"[a-z ]*","ok":false' "$out" | wc -l || true)
		if ! grep -q '"pairs"' "$out"; then
			echo "bench-verify: N=$n: verify produced no report: $(head -c 300 "$tmp/scale$n.err")" >&2
			falsev=$(((n + 1) * n))
		fi
		# Ground truth: a sample of child pairs and two host pairs, pinged
		# one by one; each must agree with the model (and so with vmlink).
		local s=0 tp=0 bad=0 k=${PING_SAMPLE:-20} tb0 tb1 pb
		tp=$(now)
		for i in $(seq 1 "$k"); do
			a=$((RANDOM % n + 1)) b=$((RANDOM % n + 1))
			[ "$a" = "$b" ] && b=$((a % n + 1))
			[ "$a" = "$b" ] && continue
			ip netns exec "${p}x$a" ping -q -c1 -W1 "$(addr $b)" >/dev/null 2>&1 || bad=$((bad + 1))
			s=$((s + 1))
		done
		tb0=$(now)
		ip netns exec "$h" ping -q -c1 -W1 "$(addr 1)" >/dev/null 2>&1 && bad=$((bad + 1))
		ip netns exec "${p}x1" ping -q -c1 -W1 10.98.0.1 >/dev/null 2>&1 && bad=$((bad + 1))
		tb1=$(now)
		pb=$(echo "($tb0 - $tp) / $s * $n * ($n - 1) + ($tb1 - $tb0) / 2 * 2 * $n" | bc -l)
		if [ "$bad" != 0 ]; then
			echo "bench-verify: N=$n: $bad sampled pings disagree with the model" >&2
			fail=1
		fi
		[ "$falsev" != 0 ] && fail=1
		awk -v n="$n" -v v="$(echo "$t1 - $t0" | bc)" -v c="$cpu" -v f="$falsev" -v pg="$pb" 'BEGIN {
			printf "  %5d %7d %10.2f %8.2f %7d %14.1f %10.1fx\n", n, (n + 1) * n, v, c, f, pg, pg / v
		}'
		if [ "$n" = 100 ] && [ "$(echo "$t1 - $t0 >= 10" | bc)" = 1 ]; then
			echo "bench-verify: target missed: N=100 took $(echo "$t1 - $t0" | bc) s >= 10 s" >&2
			fail=1
		fi
	done
	echo "  * ping loop: estimated, the mean of ${PING_SAMPLE:-20} sampled reachable pairs (ip netns exec ping -c1 -W1)"
	echo "    times N(N-1) child pairs, plus 2N host<->child pairs at the measured cost of a blocked ping"
}

if [ "${SCALE_ONLY:-}" = 1 ]; then
	rm -f "$topo"
	scale_curve
	exit $fail
fi

modes=(bridge private vepa passthru source)
# The topology: parent p<m><h> (m: mode index, h: hairpin 0/1) with the
# host's address .1, two children .11/.12 (passthru: one), and an outside
# station .254 beyond the switch. Source-mode children accept the outside
# station's MAC only.
{
	echo "name: ${p}matrix"
	echo "host: ${p}host"
	echo "parents:"
	for m in 0 1 2 3 4; do for h in 0 1; do
		n=$((m * 2 + h + 1))
		hp=false; [ $h = 1 ] && hp=true
		echo "  - {name: p$m$h, addresses: [10.9.$n.1/24], sandbox: {switch: ${p}sw, bridge: br$m$h, hairpin: $hp, mac: \"02:00:00:09:$(printf %02x $n):fe\", addresses: [10.9.$n.254/24]}}"
	done; done
	echo "networks:"
	for m in 0 1 2 3 4; do for h in 0 1; do
		n=$((m * 2 + h + 1))
		echo "  - {name: n$m$h, parent: p$m$h, mode: ${modes[$m]}, subnets: [10.9.$n.0/24]}"
	done; done
	echo "endpoints:"
	for m in 0 1 2 3 4; do for h in 0 1; do
		n=$((m * 2 + h + 1))
		src=""; [ "${modes[$m]}" = source ] && src=", source_macs: [\"02:00:00:09:$(printf %02x $n):fe\"]"
		kids=2; [ "${modes[$m]}" = passthru ] && kids=1
		for k in $(seq 1 $kids); do
			echo "  - {name: ${p}c$m$h$k, interfaces: [{network: n$m$h, addresses: [10.9.$n.1$k/24]$src}]}"
		done
	done; done
} >"$topo"

"$vmlink" up -f "$topo" >/dev/null

# The cells both sides measure: FROM-NETNS TO-ADDRESS per line.
cells=$tmp/cells
: >"$cells"
for m in 0 1 2 3 4; do for h in 0 1; do
	n=$((m * 2 + h + 1))
	if [ "${modes[$m]}" != passthru ]; then
		echo "${p}c$m${h}1 10.9.$n.12" >>"$cells" # sibling
	fi
	echo "${p}c$m${h}1 10.9.$n.1" >>"$cells"   # child → host
	echo "${p}host 10.9.$n.11" >>"$cells"       # host → child
	echo "${p}c$m${h}1 10.9.$n.254" >>"$cells" # child → outside
done; done
ncells=$(wc -l <"$cells")

# vmlink: one verify per parent, all at once.
t0=$(now)
pids=()
for m in 0 1 2 3 4; do for h in 0 1; do
	r=no; [ $h = 1 ] && r=yes
	"$vmlink" -n "${p}host" verify --parent "p$m$h" --reflects "$r" --no-capture -j >"$tmp/v$m$h.json" 2>"$tmp/v$m$h.err" &
	pids+=($!)
done; done
for pid in "${pids[@]}"; do wait "$pid" || fail=1; done
t1=$(now)
if [ $fail != 0 ]; then
	echo "bench-verify: a verification disagreed with the model or failed:" >&2
	grep -h . "$tmp"/v*.err | head -5 >&2
fi

# The same cells with ping, one after the other.
t2=$(now)
while read -r ns to; do
	ip netns exec "$ns" ping -q -c3 -W1 -i0.2 "$to" >/dev/null 2>&1 || true
done <"$cells"
t3=$(now)

# And vmlink again with the capture and every wire check on, for the record.
t4=$(now)
pids=()
for m in 0 1 2 3 4; do for h in 0 1; do
	r=no; [ $h = 1 ] && r=yes
	"$vmlink" -n "${p}host" verify --parent "p$m$h" --reflects "$r" -j >/dev/null 2>&1 &
	pids+=($!)
done; done
for pid in "${pids[@]}"; do wait "$pid" || fail=1; done
t5=$(now)

awk -v n="$ncells" -v v="$(echo "$t1 - $t0" | bc)" -v pg="$(echo "$t3 - $t2" | bc)" -v vc="$(echo "$t5 - $t4" | bc)" 'BEGIN {
	printf "bench-verify: %d cells (5 modes x 2 switch settings x sibling/child->host/host->child/child->outside)\n", n
	printf "  vmlink verify (10 parents in parallel)          %7.2f s\n", v
	printf "  vmlink verify with capture and wire checks      %7.2f s\n", vc
	printf "  bash loop of ip netns exec ping -c3 -W1 -i0.2   %7.2f s\n", pg
	printf "  ratio ping loop / vmlink                        %7.1fx\n", pg / v
	if (vc > 3) { printf "bench-verify: target missed: %.2f s > 3 s\n", vc; exit 1 }
}' || fail=1

scale_curve
exit $fail
