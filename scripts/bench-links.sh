#!/usr/bin/env bash
# bench-links.sh — `make bench-links`: link creation and deletion speed of
# rtnl against iproute2, both sides in one run, each in its own throwaway
# network namespace (unnamed: they vanish with the benchmark process, so
# nothing is left on the host even if the run is interrupted).
#
#   create  1,000 macvlans on a veth parent: rtnl Batch (pipelined, up to
#           256 requests per sendmsg) vs `ip -batch` with the same 1,000
#           lines; the two sides alternate within each iteration
#           (BenchmarkCreateVsIPBatch) so a drifting machine load does not
#           bias the ratio
#   delete  1,000 macvlans: one RTM_DELLINK each, a pipelined batch of them,
#           one RTM_DELLINK by IFLA_GROUP, and `ip -batch`
#   dump    10,000 links (Links: dump and decode)
#
# Targets (issue 2, item 6): creating through Batch at least as fast as
# `ip -batch` (ratio >= 1), deleting by group >= 100x faster than one by
# one. Exits 1 when a target is missed, 3 without root.
#
# Env: CREATE_BENCHTIME (default 6x), DELETE_BENCHTIME (default 1x: deleting
# one by one takes ~17 s per 1,000 links), GO (default go).
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

echo "bench-links: running (about a minute)…" >&2
out=$(run "${CREATE_BENCHTIME:-6x}" '^Benchmark(CreateVsIPBatch|ExecuteCreateMacvlan|Dump10kLinks)$')
out+=$'\n'$(run "${DELETE_BENCHTIME:-1x}" '^Benchmark(DeleteOneByOne|DeleteBatch|DeleteByGroup|IPBatchDelete)$')

# metric[Benchmark/unit] = value, for every "value unit" pair of each line.
declare -A metric
while read -r line; do
	set -- $line
	name=${1#Benchmark}
	name=${name%-*}
	shift 2
	while [ $# -ge 2 ]; do
		metric[$name/$2]=$1
		shift 2
	done
done < <(grep -E '^Benchmark' <<<"$out")

need() {
	if [ -z "${metric[$1]:-}" ]; then
		echo "bench-links: no result for $1; go test said:" >&2
		echo "$out" >&2
		exit 1
	fi
}
for k in CreateVsIPBatch/rtnl-s/op CreateVsIPBatch/ip-s/op CreateVsIPBatch/ip/rtnl \
	DeleteOneByOne/ns/op DeleteByGroup/ns/op Dump10kLinks/ns/op; do
	need "$k"
done

row() { # label, seconds, links
	[ -n "$2" ] || return 0
	awk -v l="$1" -v s="$2" -v n="$3" 'BEGIN { printf "  %-34s %9.3f s  %9.0f links/s\n", l, s, n / s }'
}
sec() { [ -n "${metric[$1/ns/op]:-}" ] && awk -v v="${metric[$1/ns/op]}" 'BEGIN { print v / 1e9 }' || true; }

echo "create 1,000 macvlans (veth parent, fresh namespace each run):"
row "rtnl Batch" "${metric[CreateVsIPBatch/rtnl-s/op]}" 1000
row "ip -batch (iproute2)" "${metric[CreateVsIPBatch/ip-s/op]}" 1000
row "rtnl NewLink, one by one" "$(sec ExecuteCreateMacvlan)" 1000
echo "delete 1,000 macvlans:"
row "one RTM_DELLINK each" "$(sec DeleteOneByOne)" 1000
row "rtnl Batch of RTM_DELLINK" "$(sec DeleteBatch)" 1000
row "one RTM_DELLINK by IFLA_GROUP" "$(sec DeleteByGroup)" 1000
row "ip -batch (iproute2)" "$(sec IPBatchDelete)" 1000
echo "list:"
row "10,000 links (dump + decode)" "$(sec Dump10kLinks)" 10000

status=0
verdict() { # label, ratio, target
	awk -v l="$1" -v r="$2" -v t="$3" 'BEGIN {
		printf "%-46s %8.2fx  (target >= %gx) %s\n", l, r, t, (r >= t ? "ok" : "MISSED")
		exit (r >= t ? 0 : 1)
	}' || status=1
}
echo
verdict "create: ip -batch time / rtnl Batch time" "${metric[CreateVsIPBatch/ip/rtnl]}" 1
verdict "delete: one-by-one time / by-group time" \
	"$(awk -v a="${metric[DeleteOneByOne/ns/op]}" -v b="${metric[DeleteByGroup/ns/op]}" 'BEGIN { print a / b }')" 100
exit $status
