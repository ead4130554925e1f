#!/usr/bin/env bash
# run-tier.sh NAME LOG CMD... — runs one test tier with `go test -v`-style
# output kept in LOG, prints the package lines and every failure or skip with
# its reason, and exits with the tier's status.
# run-tier.sh --summary LOGDIR — prints the closing line over all tiers:
# "tests: N passed, N failed, N skipped".
set -uo pipefail

if [ "${1:-}" = "--summary" ]; then
	dir=$2
	pass=$(cat "$dir"/*.log 2>/dev/null | grep -cE '^\s*--- PASS')
	failn=$(cat "$dir"/*.log 2>/dev/null | grep -cE '^\s*--- FAIL')
	skip=$(cat "$dir"/*.log 2>/dev/null | grep -cE '^\s*--- SKIP')
	echo "tests: $pass passed, $failn failed, $skip skipped"
	[ "$failn" -eq 0 ]
	exit
fi

name=$1 log=$2
shift 2
start=$(date +%s)
echo "== tier $name: $*"
# -v so skips carry their reason into the log; only the interesting lines
# reach the terminal.
"$@" -v >"$log" 2>&1
rc=$?
grep -E '^(ok|FAIL|---|panic:|\?)\s' "$log" | grep -vE '^\s*--- PASS' | grep -vE '^\?\s' || true
grep -E -A3 '^\s*--- SKIP' "$log" | grep -vE '^\s*(=== |--- PASS)' | head -60 || true
if [ $rc -ne 0 ]; then
	echo "== tier $name FAILED (exit $rc); failures:"
	grep -E -B2 -A25 '^\s*--- FAIL|^panic:|^FAIL\s' "$log" | head -300
fi
pass=$(grep -cE '^\s*--- PASS' "$log")
failn=$(grep -cE '^\s*--- FAIL' "$log")
skip=$(grep -cE '^\s*--- SKIP' "$log")
echo "== tier $name: $pass passed, $failn failed, $skip skipped in $(( $(date +%s) - start ))s (log: $log)"
exit $rc
