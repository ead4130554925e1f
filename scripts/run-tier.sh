#!/usr/bin/env bash
# run-tier.sh NAME LOG CMD... — runs one test tier (a `go test` command; -v
# is added so every skip carries its reason into LOG), prints the package
# lines, every failure with its output and every skip with its reason, and
# ends with "== tier NAME: N passed, N failed, N skipped in Ns". Exits with
# the tier's status. Next to LOG it leaves LOG.tier (the counts, for the
# summary) and LOG.skips (one "NAME<TAB>package<TAB>test<TAB>reason" line
# per skipped test).
#
# run-tier.sh --note LOGDIR NAME TEXT... — records a line the summary
# repeats under the tier (the VM tier's boot-to-test times, a VM that did
# not boot).
#
# run-tier.sh --summary LOGDIR [SECONDS] — the closing summary over the
# tiers that ran: each tier's line and notes, the total, and (with CI=true,
# or always when there are few) every skipped test with its reason, so a
# reviewer sees what did not run. Exits 1 if any tier failed.
set -uo pipefail

# skips LOG TIER: "TIER<TAB>package<TAB>test<TAB>reason" for every
# "--- SKIP" in a go test -v log. The reason is the last t.Log/t.Skip line
# of that test: output lines belong to the test named by the latest
# "=== RUN/CONT/NAME" line, and subtests' "--- SKIP" lines come later in
# their parent's block. A package's lines end with its "ok"/"FAIL" line.
skips() {
	awk -v tier="$2" '
		/^=== (RUN|CONT|NAME|PAUSE) / { cur = $3; next }
		/^ *--- SKIP: / { n++; name[n] = $3; next }
		/^ *--- (PASS|FAIL): / { next }
		/^ +[^ ]+\.go:[0-9]+: / {
			if (cur != "") { l = $0; sub(/^ +/, "", l); last[cur] = l }
			next
		}
		/^(ok|FAIL)[ \t]/ && NF >= 2 {
			pkg = $2
			for (i = done + 1; i <= n; i++) {
				r = (name[i] in last) ? last[name[i]] : "(no reason given)"
				printf "%s\t%s\t%s\t%s\n", tier, pkg, name[i], r
			}
			done = n
			delete last
		}
		END {
			for (i = done + 1; i <= n; i++) {
				r = (name[i] in last) ? last[name[i]] : "(no reason given)"
				printf "%s\t%s\t%s\t%s\n", tier, "?", name[i], r
			}
		}' "$1"
}

# failures LOG: each failing test with its own output (the lines logged
# while it was the running test, at most 30), panics, the VM runner's
# reports of runs without a result, and the failing package lines.
failures() {
	awk '
		/^=== (RUN|CONT|NAME|PAUSE) / { cur = $3; next }
		/^ *--- (PASS|SKIP): / { next }
		/^ *--- FAIL: / {
			name = $3; print
			for (i = 1; i <= nb[name]; i++) print buf[name, i]
			if (nb[name] >= 30) print "        ... (more in the log)"
			next
		}
		/^panic: / || /^vmtest: FAIL / { block = 45 }
		block > 0 { print; block--; next }
		/^FAIL[ \t]/ && NF >= 2 { print; cur = ""; next }
		/^(ok|PASS|FAIL)([ \t]|$)/ { cur = ""; next }
		cur != "" && nb[cur] < 30 { nb[cur]++; buf[cur, nb[cur]] = $0 }
	' "$1"
}

# count LOG: "passed failed skipped" over every test and subtest.
count() {
	printf '%s %s %s\n' "$(grep -cE '^\s*--- PASS' "$1")" "$(grep -cE '^\s*--- FAIL' "$1")" "$(grep -cE '^\s*--- SKIP' "$1")"
}

if [ "${1:-}" = "--note" ]; then
	dir=$2 name=$3
	shift 3
	printf '%s\n' "$*" >>"$dir/$name.notes"
	exit 0
fi

if [ "${1:-}" = "--summary" ]; then
	dir=$2 wall=${3:-}
	echo
	echo "== summary"
	tp=0 tf=0 ts=0 failed=0 times="" vmsecs=0
	# Tiers in the order they ran (the .tier files are written in order).
	for t in $(ls -tr "$dir"/*.tier 2>/dev/null); do
		read -r name pass failn skip secs rc <"$t"
		echo "== tier $name: $pass passed, $failn failed, $skip skipped in ${secs}s$([ "$rc" != 0 ] && echo " — FAILED (exit $rc)")"
		[ -f "$dir/$name.notes" ] && sed 's/^/     /' "$dir/$name.notes"
		tp=$((tp + pass)) tf=$((tf + failn)) ts=$((ts + skip))
		times="$times${times:+, }$name ${secs}s"
		seen="${seen:-} $name "
		case $name in vm-*) vmsecs=$((vmsecs + secs)) ;; esac
		[ "$rc" != 0 ] && failed=1
	done
	# A tier that never produced counts (its VM did not boot) is noted only.
	for n in "$dir"/*.notes; do
		[ -f "$n" ] || continue
		name=$(basename "$n" .notes)
		case "${seen:-}" in *" $name "*) continue ;; esac
		echo "== tier $name: did not run — FAILED"
		sed 's/^/     /' "$n"
		failed=1
	done
	nskips=$(cat "$dir"/*.skips 2>/dev/null | wc -l)
	if [ "$nskips" -gt 0 ]; then
		if [ "${CI:-}" = "true" ] || [ "$nskips" -le 40 ]; then
			echo "skipped tests ($nskips), each with its reason:"
			for t in $(ls -tr "$dir"/*.tier 2>/dev/null); do
				f="${t%.tier}.skips"
				[ -f "$f" ] && awk -F'\t' '{ p = $2; sub(/^github.com\/vmlink\/vmlink\/?/, "", p); if (p == "") p = "."; printf "  SKIP %-8s %-22s %s: %s\n", $1, p, $3, $4 }' "$f"
			done
		else
			echo "skipped tests ($nskips) by reason (CI=true lists each one):"
			cat "$dir"/*.skips | awk -F'\t' '{ print $1 ": " $4 }' | sort | uniq -c | sort -rn | head -30
		fi
	fi
	[ -n "$times" ] && echo "tier times: $times (VM tiers ${vmsecs}s, boot checks not included)"
	echo "tests: $tp passed, $tf failed, $ts skipped${wall:+ in ${wall}s}"
	[ "$failed" -eq 0 ] && [ "$tf" -eq 0 ]
	exit
fi

name=$1 log=$2
shift 2
start=$(date +%s)
echo "== tier $name: $*"
"$@" -v >"$log" 2>&1
rc=$?
secs=$(( $(date +%s) - start ))
# Package lines, failures, panics and the VM runner's own reports; passes
# stay in the log.
grep -E '^(ok|FAIL|--- FAIL|panic:|vmtest: FAIL)\s|^ +--- FAIL' "$log" || true
skips "$log" "$name" >"$log.skips"
if [ -s "$log.skips" ]; then
	echo "-- skipped in $name:"
	awk -F'\t' '{ p = $2; sub(/^github.com\/vmlink\/vmlink\/?/, "", p); if (p == "") p = "."; printf "  SKIP %-22s %s: %s\n", p, $3, $4 }' "$log.skips"
fi
if [ $rc -ne 0 ]; then
	echo "== tier $name FAILED (exit $rc); failures:"
	# Build errors ("# pkg" then compiler lines), then each failing test
	# with its output.
	grep -E -A20 '^# ' "$log" | head -100
	failures "$log" | head -400
fi
read -r pass failn skip < <(count "$log")
# A package that failed without a failing test (build error, panic, VM
# failure) must not read as "0 failed".
if [ $rc -ne 0 ] && [ "$failn" -eq 0 ]; then
	failn=$(grep -cE '^FAIL\s' "$log")
	[ "$failn" -eq 0 ] && failn=1
fi
echo "$name $pass $failn $skip $secs $rc" >"$log.tier"
echo "== tier $name: $pass passed, $failn failed, $skip skipped in ${secs}s (log: $log)"
exit $rc
