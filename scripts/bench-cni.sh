#!/usr/bin/env bash
# bench-cni.sh — `make bench-cni`: the vmlink CNI plugin against Debian's
# reference macvlan plugin (/usr/lib/cni/macvlan), both with host-local
# IPAM, in one run:
#
#   add+del  N attachments (default 200), each in its own container
#            namespace, ADDs then DELs one after the other as a runtime
#            makes them, the two plugins alternating in chunks of 10; the
#            same configuration but for "type"
#   check    one wire-proving CHECK of an attachment with a sibling on the
#            same master (vmlink only: the reference CHECK compares
#            configuration, it sends nothing)
#
# Everything runs in namespaces named vmlbench-PID-* (a sandboxed "host"
# whose parent p0 is a veth into a "switch"), removed on exit, however the
# run ends. Goal: vmlink no slower (ratio >= 1). Exits 3 without root or
# without the reference plugins.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200}
BIN=${BIN:-bin}
REF=/usr/lib/cni
PLUGIN="$PWD/$BIN/cni/vmlink"

if [ "$(id -u)" != 0 ]; then
	echo "bench-cni: needs root for network namespaces; run: sudo make bench-cni" >&2
	exit 3
fi
if [ ! -x "$REF/macvlan" ] || [ ! -x "$REF/host-local" ]; then
	echo "bench-cni: no reference plugins in $REF: apt-get install containernetworking-plugins" >&2
	exit 3
fi

P="vmlbench-$$"
TMP=$(mktemp -d)
cleanup() {
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$P-" || true); do
		ip netns del "$ns" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

ip netns add "$P-host"
ip netns add "$P-sw"
ip -n "$P-host" link add p0 type veth peer name up0 netns "$P-sw"
ip -n "$P-host" link set p0 up
ip -n "$P-sw" link set up0 up
for i in $(seq 1 "$N"); do ip netns add "$P-c$i"; done

mkdir -p "$TMP/plugins"
ln -s "$PLUGIN" "$TMP/plugins/vmlink"

conf() { # type, dataDir (host-local's; vmlink's attachment records beside it)
	printf '{"cniVersion":"1.0.0","name":"bench","type":"%s","master":"p0","mode":"bridge","dataDir":"%s.vmlink","ipam":{"type":"host-local","dataDir":"%s","subnet":"10.77.0.0/16","gateway":"10.77.0.1","routes":[{"dst":"0.0.0.0/0"}]}}' "$1" "$2" "$2"
}

# cni CMD PLUGIN CONF I: one invocation for container i, in the sandbox host.
cni() {
	CNI_COMMAND=$1 CNI_CONTAINERID="bench$4" CNI_NETNS="/run/netns/$P-c$4" CNI_IFNAME=eth0 \
		CNI_PATH="$TMP/plugins:$REF" nsenter --net="/run/netns/$P-host" "$2" <<<"$3"
}

# chunk PLUGIN TYPE FROM TO: ADDs then DELs of attachments FROM..TO;
# prints the seconds.
chunk() {
	local c start end i
	c=$(conf "$2" "$TMP/ipam-$2")
	start=$(date +%s.%N)
	for i in $(seq "$3" "$4"); do cni ADD "$1" "$c" "$i" >/dev/null; done
	for i in $(seq "$3" "$4"); do cni DEL "$1" "$c" "$i" >/dev/null; done
	end=$(date +%s.%N)
	echo "$end - $start" | bc
}

# The two plugins alternate in chunks of 10 attachments (the order
# switching each time), so a machine whose load drifts during the run
# does not bias the ratio; each side's time is the sum of its chunks.
echo "bench-cni: $N attachments, ADD then DEL, each plugin, alternating in chunks of 10 (a few minutes)…" >&2
ref=0
ours=0
for from in $(seq 1 10 "$N"); do
	to=$((from + 9 > N ? N : from + 9))
	if [ $(((from / 10) % 2)) = 0 ]; then
		ref=$(echo "$ref + $(chunk "$REF/macvlan" macvlan "$from" "$to")" | bc)
		ours=$(echo "$ours + $(chunk "$PLUGIN" vmlink "$from" "$to")" | bc)
	else
		ours=$(echo "$ours + $(chunk "$PLUGIN" vmlink "$from" "$to")" | bc)
		ref=$(echo "$ref + $(chunk "$REF/macvlan" macvlan "$from" "$to")" | bc)
	fi
done
left=$(for i in $(seq 1 "$N"); do ip -n "$P-c$i" -o link show | grep -vc ' lo:' || true; done | paste -sd+ | bc)

# One wire-proving CHECK: attachment 1 with a sibling (attachment 2).
c=$(conf vmlink "$TMP/ipam-check")
res=$(cni ADD "$PLUGIN" "$c" 1)
cni ADD "$PLUGIN" "$c" 2 >/dev/null
chk=$(printf '%s' "$c" | sed "s|}\$|,\"prevResult\":$(printf '%s' "$res" | tr -d '\n')}|")
start=$(date +%s.%N)
if ! out=$(cni CHECK "$PLUGIN" "$chk" 1); then
	echo "bench-cni: CHECK failed: $out" >&2
	exit 1
fi
end=$(date +%s.%N)
check=$(echo "$end - $start" | bc)
cni DEL "$PLUGIN" "$c" 1 >/dev/null
cni DEL "$PLUGIN" "$c" 2 >/dev/null

printf 'bench-cni: reference macvlan  %6.2f s for %d ADD + %d DEL (%.1f ms per attachment)\n' "$ref" "$N" "$N" "$(echo "$ref * 1000 / $N" | bc -l)"
printf 'bench-cni: vmlink             %6.2f s for %d ADD + %d DEL (%.1f ms per attachment)\n' "$ours" "$N" "$N" "$(echo "$ours * 1000 / $N" | bc -l)"
printf 'bench-cni: ratio reference/vmlink %.2f (>= 1: vmlink no slower)\n' "$(echo "$ref / $ours" | bc -l)"
printf 'bench-cni: one wire-proving CHECK (capture, ARP/ICMP probes with a sibling): %.3f s\n' "$check"
if [ "$left" != 0 ]; then
	echo "bench-cni: $left links left in the containers after DEL" >&2
	exit 1
fi
