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
# Env: GO (default go), BIN (default bin), VMLINK (use this binary).
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
cleanup() {
	"$vmlink" down -f "$topo" >/dev/null 2>&1 || echo "bench-verify: vmlink down failed; leftover namespaces: $(ip netns list | grep "^$p" | tr '\n' ' ')" >&2
	rm -rf "$tmp"
}
trap cleanup EXIT

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

now() { date +%s.%N; }

# vmlink: one verify per parent, all at once.
t0=$(now)
pids=()
for m in 0 1 2 3 4; do for h in 0 1; do
	r=no; [ $h = 1 ] && r=yes
	"$vmlink" -n "${p}host" verify --parent "p$m$h" --reflects "$r" --no-capture -j >"$tmp/v$m$h.json" 2>"$tmp/v$m$h.err" &
	pids+=($!)
done; done
fail=0
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
exit $fail
