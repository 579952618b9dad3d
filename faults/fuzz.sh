#!/usr/bin/env bash
# Runs every fuzz target in the module, one after another, for the given
# time each (default 10m), and prints a table of exec counts. Not run by
# .ci/run (it takes 7 × the duration); the closing notes quote its table.
#
#   faults/fuzz.sh [duration] [parallel]
#
# Run it in a checkout that sits beside ../shared (FuzzServe seeds from
# GitHub's webhook fixtures there, and fails saying so without them).
#
# Go's fuzzer runs one target per `go test` and stops at the first failure,
# leaving the failing input under testdata/fuzz/<Target>/: the table says
# FAIL and the log next to it names the input.
set -uo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10m}
par=${2:-1}
logs=${FUZZ_LOGS:-$(mktemp -d)}
mkdir -p "$logs"
echo "fuzz logs: $logs (each target ${dur}, -parallel ${par})"

targets=$(grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do
	dir=$(dirname "$f")
	grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //' | while read -r t; do echo "$dir $t"; done
done)

printf '%-26s %-24s %14s %10s %s\n' target package execs per_sec result
status=0
while read -r dir t; do
	[ -n "$t" ] || continue
	log="$logs/$t.log"
	# Minimising each new interesting input may take 60 s by default, with
	# no execs counted meanwhile; 5 s keeps the time on fuzzing.
	go test -run '^$' -fuzz "^${t}\$" -fuzztime "$dur" -fuzzminimizetime 5s -parallel "$par" "$dir" >"$log" 2>&1
	rc=$?
	# The last progress line: "fuzz: elapsed: 10m0s, execs: N (R/sec), ...";
	# its rate is the last 3 s only, so the average is worked out here.
	last=$(grep -o 'elapsed: [0-9hms.]*, execs: [0-9]*' "$log" | tail -n 1)
	execs=$(echo "$last" | awk '{print $4}')
	secs=$(echo "$last" | awk '{print $2}' | tr -d , | awk '{
		t = 0; s = $0
		if (match(s, /[0-9]+h/)) t += substr(s, RSTART, RLENGTH - 1) * 3600
		if (match(s, /[0-9]+m/)) t += substr(s, RSTART, RLENGTH - 1) * 60
		if (match(s, /[0-9.]+s/)) t += substr(s, RSTART, RLENGTH - 1)
		print t }')
	rate=$(awk -v e="${execs:-0}" -v t="${secs:-0}" 'BEGIN { if (t > 0) printf "%d", e / t; else print "?" }')
	result=PASS
	if [ $rc -ne 0 ]; then result="FAIL (see $log)"; status=1; fi
	printf '%-26s %-24s %14s %10s %s\n' "$t" "${dir#./}" "${execs:-?}" "${rate:-?}" "$result"
done <<<"$targets"
exit $status
