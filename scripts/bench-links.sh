#!/usr/bin/env bash
# bench-links.sh — `make bench-links`: link creation and deletion speed of
# rtnl against iproute2, both sides in one run, each iteration in its own
# throwaway network namespace (unnamed: they vanish with the benchmark
# process, nothing to clean up on the host).
#
#   create  1,000 macvlans on a veth parent: rtnl Batch (pipelined, 256 per
#           sendmsg) vs `ip -batch` with the same 1,000 lines
#   delete  1,000 macvlans: one RTM_DELLINK each, a pipelined batch of them,
#           one RTM_DELLINK by IFLA_GROUP, and `ip -batch`
#   dump    10,000 links
#
# Targets (issue 2, item 6): create via Batch at least as fast as
# `ip -batch` (ratio >= 1), delete by group >= 100x faster than one by one.
# Exits 1 when a target is missed. Needs root.
#
# Env: CREATE_BENCHTIME (default 5x), DELETE_BENCHTIME (default 1x: deleting
# one by one takes ~20 s per 1,000 links), GO (default go).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

if [ "$(id -u)" != 0 ]; then
	echo "bench-links: needs root to create network namespaces; run: sudo make bench-links" >&2
	exit 3
fi

run() { # benchtime, regexp
	"$GO" test -run '^$' -count 1 -benchtime "$1" -bench "$2" ./rtnl
}

out=$(run "${CREATE_BENCHTIME:-5x}" '^Benchmark(BatchCreateMacvlan|ExecuteCreateMacvlan|IPBatchCreateMacvlan|Dump10kLinks)$')
out+=$'\n'$(run "${DELETE_BENCHTIME:-1x}" '^Benchmark(DeleteOneByOne|DeleteBatch|DeleteByGroup|IPBatchDelete)$')

# ns/op of each benchmark, keyed by name without "Benchmark" and "-CPUS".
declare -A ns
while read -r name _ nsop unit _; do
	[ "$unit" = "ns/op" ] || continue
	name=${name#Benchmark}
	ns[${name%-*}]=$nsop
done < <(grep -E '^Benchmark' <<<"$out")

for k in BatchCreateMacvlan IPBatchCreateMacvlan DeleteOneByOne DeleteByGroup Dump10kLinks; do
	if [ -z "${ns[$k]:-}" ]; then
		echo "bench-links: no result for $k; go test said:" >&2
		echo "$out" >&2
		exit 1
	fi
done

row() { # label, benchmark, links
	local v=${ns[$2]:-}
	[ -n "$v" ] || return 0
	awk -v l="$1" -v v="$v" -v n="$3" 'BEGIN { printf "  %-36s %10.3f s  %10.0f links/s\n", l, v/1e9, n/(v/1e9) }'
}

echo "create 1,000 macvlans (veth parent, fresh namespace each run):"
row "rtnl Batch" BatchCreateMacvlan 1000
row "rtnl Execute, one by one" ExecuteCreateMacvlan 1000
row "ip -batch (iproute2)" IPBatchCreateMacvlan 1000
echo "delete 1,000 macvlans:"
row "one RTM_DELLINK each" DeleteOneByOne 1000
row "rtnl Batch of RTM_DELLINK" DeleteBatch 1000
row "one RTM_DELLINK by IFLA_GROUP" DeleteByGroup 1000
row "ip -batch (iproute2)" IPBatchDelete 1000
echo "dump:"
row "10,000 links" Dump10kLinks 10000

status=0
ratio() { # label, slower, faster, target
	awk -v l="$1" -v a="${ns[$2]}" -v b="${ns[$3]}" -v t="$4" 'BEGIN {
		r = a / b
		printf "%-52s %8.2fx  (target >= %gx) %s\n", l, r, t, (r >= t ? "ok" : "MISSED")
		exit (r >= t ? 0 : 1)
	}' || status=1
}
echo
ratio "create: ip -batch time / rtnl Batch time" IPBatchCreateMacvlan BatchCreateMacvlan 1
ratio "delete: one by one time / by group time" DeleteOneByOne DeleteByGroup 100
exit $status
