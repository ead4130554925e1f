#!/usr/bin/env bash
# capture.sh — regenerates the golden requests in this directory from
# iproute2 (never from our encoder): each command runs under strace in a
# throwaway namespace and the last sendmsg's netlink message is stored as
# "type flags body-hex" next to the command that made it.
# Run as root: rtnl/testdata/addr-route/capture.sh
set -euo pipefail
cd "$(dirname "$0")"
ns=vmlt-$$-cap
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
ip -n "$ns" link add v0 type veth peer name v1
ip -n "$ns" link set v0 up
ip -n "$ns" link set v1 up
idx=$(ip -n "$ns" -j link show v0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["ifindex"])')
[ "$idx" = 3 ] || { echo "v0 has ifindex $idx, want 3" >&2; exit 1; }

capture() { # name, then the ip arguments (after `ip -n NS`)
	local name=$1; shift
	strace -f -e trace=sendmsg -xx -s 4096 -o "/tmp/$ns.strace" ip -n "$ns" "$@" >/dev/null
	python3 - "$name" "ip $*" "/tmp/$ns.strace" <<'PY'
import re, sys
name, cmd, path = sys.argv[1:]
last = [l for l in open(path) if 'sendmsg(' in l][-1]
m = re.search(r'nlmsg_type=(0x[0-9a-f]+|[A-Z_]+)[^,]*, nlmsg_flags=([^,]+), .*?\}, "((?:\\x[0-9a-f]{2})*)"', last)
typ, flags, body = m.group(1), m.group(2), m.group(3)
names = {'NLM_F_REQUEST': 0x1, 'NLM_F_ACK': 0x4, 'NLM_F_EXCL': 0x200, 'NLM_F_CREATE': 0x400, 'NLM_F_REPLACE': 0x100}
f = 0
for part in flags.split('|'):
    f |= int(part, 16) if part.startswith('0x') else names[part]
with open(name + '.txt', 'w') as out:
    out.write('# ' + cmd + '\n')
    out.write('type %d\nflags 0x%x\nbody %s\n' % (int(typ, 16), f, body.replace('\\x', '')))
PY
	rm -f "/tmp/$ns.strace"
}

capture addr-add-v4        addr add 10.1.2.3/24 dev v0
capture addr-add-v6-nodad  addr add 2001:db8::1/64 dev v0 nodad
capture route-default-v4   route add default via 10.1.2.1
capture route-default-v6   route add default via 2001:db8::fe
capture route-v4-dev-metric route add 192.0.2.0/24 via 10.1.2.1 dev v0 metric 50
capture route-v4-link      route add 198.51.100.0/24 dev v0
capture neigh-add-v4       neigh add 10.1.2.9 lladdr 02:00:00:00:00:09 dev v0
capture addr-del-v4        addr del 10.1.2.3/24 dev v0
echo "captured into $(pwd)"
