#!/usr/bin/env bash
# capture.sh — regenerates rtnl/testdata/golden/ and rtnl/testdata/dumps/
# from iproute2 and the running kernel, never from our own encoder.
#
#   golden/<name>.txt  the RTM_{NEW,SET,DEL}LINK request `ip link …` sends,
#                      captured with strace (the command line is the first
#                      line; "result" says what the kernel answered: VLAN,
#                      ipvlan and dummy requests fail on a kernel without
#                      those drivers, but the request is what we compare).
#   dumps/<name>.txt   the kernel's RTM_NEWLINK reply to `ip -d link show`
#                      (captured with strace from recvmsg);
#   dumps/<name>.json  `ip -d -j link show` of the same link, the reference
#                      the decode tests assert against.
#
# Every golden/<name>.txt needs an entry in rtnl/golden_test.go's table (the
# request our encoder builds for the same command), or TestGoldenRequests
# fails; every dumps/<name>.txt needs its .json.
#
# Everything happens in two throwaway namespaces (vmlt-<pid>-cap, -cap2)
# that are deleted on exit; nothing touches the host's links.
# Run as root from anywhere: rtnl/testdata/capture.sh
# Needs: iproute2 (ip), strace, python3.
#
# Kernel dumps of vlan/ipvlan/dummy links cannot be made on a kernel
# without 8021q/ipvlan/dummy. On a host with those drivers, run this script
# with VMLINK_CAPTURE_VLAN=1 to add dumps/vlan-*.txt and dumps/ipvlan-*.txt.
# The VM guest has neither strace nor python, so there the same dumps come
# from TestVMCaptureDumps (rtnl/vmdump_test.go, build tag vm), which reads
# the kernel's reply with a raw netlink socket and prints it in this
# format: see that file for the command.
set -euo pipefail
cd "$(dirname "$0")"
ns=vmlt-$$-cap
ns2=vmlt-$$-cap2
tmp=$(mktemp -d)
cleanup() {
	ip netns del "$ns" 2>/dev/null || true
	ip netns del "$ns2" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$ns"
ip netns add "$ns2"
ipn() { ip -n "$ns" "$@"; }
ipn link set lo up
ipn link add p0 type veth peer name p1 # parent of most links
ipn link add p2 type veth peer name p3 # passthru needs a parent of its own
ipn link add p4 type veth peer name p5 # bridge port (hairpin)
ipn link set p0 up
ipn link set p2 up

# Where each file came from, for the header line.
origin="$(ip -V | sed 's/,.*//') on Linux $(uname -r)"

# parse.py turns strace's hex dumps (-e write=all / -e read=all) into
# netlink messages. Modes: request NAME CMD RESULT < strace output;
#                          reply NAME CMD IFNAME < strace output.
cat >"$tmp/parse.py" <<'PY'
import re, struct, sys

def messages(lines, call):
    """Yield the netlink messages in the buffers strace dumped for call."""
    buf, cur = [], None
    for line in lines:
        line = re.sub(r'^(\[pid\s+\d+\]|\d+)\s+', '', line.rstrip('\n'))
        if re.match(r'^(\w+)\(', line):
            if cur is not None:
                buf.append(cur)
            cur = bytearray() if line.startswith(call + '(') else None
            continue
        m = re.match(r'^\s*\| ([0-9a-f]{5})  (.{48})', line)
        if m and cur is not None:
            cur += bytes.fromhex(m.group(2).replace(' ', ''))
    if cur is not None:
        buf.append(cur)
    for b in buf:
        i = 0
        while i + 16 <= len(b):
            ln, typ, flags = struct.unpack_from('=IHH', b, i)
            if ln < 16 or i + ln > len(b):
                break
            yield typ, flags, bytes(b[i + 16:i + ln])
            i += (ln + 3) & ~3

def ifname(body):
    i = 16
    while i + 4 <= len(body):
        ln, typ = struct.unpack_from('=HH', body, i)
        if ln < 4:
            break
        if typ & 0x3fff == 3:  # IFLA_IFNAME
            return body[i + 4:i + ln].rstrip(b'\0').decode()
        i += (ln + 3) & ~3
    return None

mode, name, cmd, extra, origin = sys.argv[1:6]
lines = sys.stdin.readlines()
if mode == 'request':
    # Keep the last link mutation: `ip` first resolves names with
    # RTM_GETLINK (18), which is not what we compare.
    msgs = [m for m in messages(lines, 'sendmsg') if m[0] in (16, 17, 19)]
    if not msgs:
        sys.exit('%s: no RTM_NEWLINK/DELLINK/SETLINK in the trace' % name)
    typ, flags, body = msgs[-1]
    out = 'golden/%s.txt' % name
    head = ['# ' + cmd, '# result: ' + extra]
else:
    msgs = [m for m in messages(lines, 'recvmsg') if m[0] == 16 and ifname(m[2]) == extra]
    if not msgs:
        sys.exit('%s: no RTM_NEWLINK for %s in the trace' % (name, extra))
    typ, flags, body = msgs[0]
    out = 'dumps/%s.txt' % name
    head = ['# ' + cmd, '# kernel reply (RTM_NEWLINK) for ' + extra]
with open(out, 'w') as f:
    f.write('\n'.join(head) + '\n# captured by capture.sh from ' + origin + '\n')
    f.write('type %d\nflags 0x%x\nbody %s\n' % (typ, flags, body.hex()))
PY

# req NAME ARGS...: run `ip ARGS` in $ns under strace and store the request.
req() {
	local name=$1
	shift
	local rc=0 result
	strace -f -e trace=sendmsg -e write=all -xx -s 4096 -o "$tmp/trace" \
		"${IPBIN:-ip}" -n "$ns" "$@" >/dev/null 2>"$tmp/err" || rc=$?
	if [ "$rc" = 0 ]; then
		result=ok
	else
		result="exit $rc: $(tr '\n' ' ' <"$tmp/err" | sed 's/ *$//')"
	fi
	python3 "$tmp/parse.py" request "$name" "ip $*" "$result" "$origin" <"$tmp/trace"
	echo "golden/$name.txt: $result"
}

# dump NAME IFNAME: store the kernel's reply for IFNAME, and ip's JSON.
dump() {
	local name=$1 dev=$2
	strace -f -e trace=recvmsg -e read=all -xx -s 65536 -o "$tmp/trace" \
		ip -n "$ns" -d link show dev "$dev" >/dev/null
	python3 "$tmp/parse.py" reply "$name" "ip -d link show dev $dev" "$dev" "$origin" <"$tmp/trace"
	ip -n "$ns" -d -j -p link show dev "$dev" >"dumps/$name.json"
	echo "dumps/$name.txt"
}

m1=02:00:00:00:00:01 m2=02:00:00:00:00:02 m3=02:00:00:00:00:03

# --- vlan (EOPNOTSUPP without 8021q; the request is still sent) ---
req vlan-id                 link add v10 link p0 type vlan id 10
req vlan-8021q              link add v20 link p0 type vlan protocol 802.1Q id 20
req vlan-8021ad             link add q100 link p0 type vlan protocol 802.1ad id 100
req vlan-flags-on           link add v30 link p0 type vlan id 30 reorder_hdr off gvrp on mvrp on loose_binding on bridge_binding on
req vlan-flags-off          link add v31 link p0 type vlan id 31 reorder_hdr on gvrp off mvrp off loose_binding off bridge_binding off
req vlan-qos                link add v40 link p0 type vlan id 40 ingress-qos-map 1:2 3:4 egress-qos-map 5:6 7:7
req vlan-issue-example      link add q101 link p0 type vlan protocol 802.1ad id 101 reorder_hdr off loose_binding on ingress-qos-map 1:2 egress-qos-map 3:4
req vlan-set-egress         link set dev p0 type vlan egress-qos-map 2:5 gvrp on
req vlan-set-flags          link set dev p0 type vlan reorder_hdr off mvrp on loose_binding on bridge_binding off ingress-qos-map 1:2 3:4
req vlan-set-qos            link set dev p0 type vlan ingress-qos-map 0:1 7:7 egress-qos-map 1:0 2:5 6:7
req vlan-protocol-number    link add q102 link p0 type vlan protocol 0x88a8 id 0x66
req vlan-id-max             link add v4094 link p0 type vlan id 4094
req vlan-id-zero            link add v0 link p0 type vlan id 0
req vlan-common             link add v50 link p0 mtu 1400 address 02:00:00:00:00:50 txqueuelen 77 group 3 up type vlan id 50
req vlan-netns              link add v51 link p0 netns "$ns2" type vlan id 51

# --- macvlan: every mode, flags, source list, bcqueuelen ---
req macvlan-nomode          link add mvdef link p0 type macvlan
req macvlan-private         link add mvpriv link p0 type macvlan mode private
dump macvlan-private mvpriv
req macvlan-vepa            link add mvvepa link p0 type macvlan mode vepa
dump macvlan-vepa mvvepa
req macvlan-bridge          link add mvbr link p0 type macvlan mode bridge
dump macvlan-bridge mvbr
req macvlan-passthru        link add mvpt link p2 type macvlan mode passthru
dump macvlan-passthru mvpt
ipn link del mvpt
req macvlan-passthru-nopromisc link add mvpt link p2 type macvlan mode passthru nopromisc
dump macvlan-passthru-nopromisc mvpt
ipn link del mvpt
req macvlan-passthru-flag   link add mvpt link p2 type macvlan mode passthru flag nopromisc
ipn link del mvpt
req macvlan-source          link add mvsrc link p0 type macvlan mode source
req macvlan-source-nodst    link add mvnodst link p0 type macvlan mode source nodst
dump macvlan-source-nodst mvnodst
req macvlan-source-nodst-add link add src1 link p0 type macvlan mode source nodst macaddr add $m3
req macvlan-flag-null       link add mvnull link p0 type macvlan mode bridge flag null
req macvlan-common          link add mvc link p0 mtu 1400 address 02:00:00:00:00:10 txqueuelen 77 group 5 up type macvlan mode vepa
req macvlan-source-set      link add src0 link p0 type macvlan mode source macaddr set $m1 $m2
dump macvlan-source-list src0
req macvlan-macaddr-add     link set src0 type macvlan macaddr add $m3
req macvlan-macaddr-del     link set src0 type macvlan macaddr del $m1
req macvlan-macaddr-set     link set src0 type macvlan macaddr set $m1 $m3
req macvlan-macaddr-flush   link set src0 type macvlan macaddr flush
dump macvlan-source-flushed src0
req macvlan-bcqueuelen      link add mv2 link p0 type macvlan mode private bcqueuelen 2000
dump macvlan-bcqueuelen mv2
req macvlan-set-bcqueuelen  link set mv2 type macvlan bcqueuelen 3000
# bclim (IFLA_MACVLAN_BC_CUTOFF, kernel 6.4+) is newer than Debian 12's ip
# (iproute2 6.1). Point BCLIM_IP at an iproute2 >= 6.4 `ip` built from
# source (not installed) to capture it; without BCLIM_IP the stored files
# stay as they are.
if [ -n "${BCLIM_IP:-}" ]; then
	bclim_origin="$("$BCLIM_IP" -V) (built from source) on Linux $(uname -r)"
	IPBIN=$BCLIM_IP origin=$bclim_origin req macvlan-bclim link add mv6 link p0 type macvlan mode bridge bcqueuelen 500 bclim 8
	IPBIN=$BCLIM_IP origin=$bclim_origin req macvlan-set-bclim link set mv2 type macvlan bclim -1
fi
req macvlan-set-mode        link set mvpriv type macvlan mode bridge
req macvlan-set-nodst       link set mvnodst type macvlan mode source flag nodst
# bclim (IFLA_MACVLAN_BC_CUTOFF) needs iproute2 6.4+: Debian 12's ip 6.1
# does not know the keyword, so it has no golden capture here.

# --- macvtap ---
req macvtap-vepa            link add tap0 link p0 type macvtap mode vepa
dump macvtap-vepa tap0
req macvtap-bridge          link add tap1 link p0 type macvtap mode bridge
req macvtap-passthru        link add tap2 link p2 type macvtap mode passthru nopromisc
ipn link del tap2
req macvtap-source          link add tap3 link p0 type macvtap mode source macaddr set $m1
req macvtap-private-bcqueuelen link add tap4 link p0 type macvtap mode private bcqueuelen 100

# --- ipvlan (EOPNOTSUPP without ipvlan) ---
req ipvlan-l2               link add ipv0 link p0 type ipvlan mode l2
req ipvlan-l3-private       link add ipv1 link p0 type ipvlan mode l3 private
req ipvlan-l3s-vepa         link add ipv2 link p0 type ipvlan mode l3s vepa
req ipvlan-bridge           link add ipv3 link p0 type ipvlan mode l2 bridge
req ipvlan-noopts           link add ipv4 link p0 type ipvlan
req ipvlan-l3               link add ipv5 link p0 type ipvlan mode l3
req ipvlan-l2-private       link add ipv6 link p0 type ipvlan mode l2 private
req ipvlan-l3s-bridge       link add ipv7 link p0 type ipvlan mode l3s bridge
req ipvlan-set-mode         link set dev p0 type ipvlan mode l2
req ipvlan-set-vepa         link set dev p0 type ipvlan mode l3 vepa

# --- dummy (EOPNOTSUPP without dummy) ---
req dummy                   link add d0 type dummy

# --- link set / del ---
req set-up                  link set mvbr up
req set-down                link set mvbr down
req set-mtu                 link set mvbr mtu 1400
req set-address             link set mvbr address 02:00:00:00:00:99
req set-group               link set mvbr group 7
req set-netns               link set mvpriv netns "$ns2"
req set-several             link set dev mvvepa mtu 1300 address 02:00:00:00:00:98 up
req add-in-netns            link add mvn link p0 netns "$ns2" type macvlan mode bridge
req del-name                link del mvvepa
req del-group               link del group 7

# --- veth ---
req veth                    link add va type veth peer name vb
dump veth va
req veth-peer-netns         link add vc type veth peer name vd netns "$ns2"

# --- bridge and a hairpin port (the reflective relay for vepa) ---
# Kernels without CONFIG_BRIDGE_VLAN_FILTERING refuse vlan_filtering with
# EOPNOTSUPP; the request is what we compare, the dump is of br1.
req bridge                  link add br0 type bridge vlan_filtering 1 vlan_default_pvid 10
req bridge-plain            link add br1 type bridge
dump bridge br1
req set-master              link set dev p4 master br1
req bridge-slave-hairpin    link set dev p4 type bridge_slave hairpin on
dump bridge-port p4
req bridge-slave-hairpin-off link set dev p4 type bridge_slave hairpin off

if [ "${VMLINK_CAPTURE_VLAN:-}" = 1 ]; then
	ipn link add v10 link p0 type vlan id 10
	dump vlan-id v10
	ipn link add q101 link p0 type vlan protocol 802.1ad id 101 reorder_hdr off loose_binding on ingress-qos-map 1:2 egress-qos-map 3:4
	dump vlan-issue-example q101
	ipn link add ipv1 link p0 type ipvlan mode l3 private
	dump ipvlan-l3-private ipv1
fi
echo "captured into $(pwd)"
