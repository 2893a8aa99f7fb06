#!/bin/sh
# Runs every fuzz target briefly on top of the committed seed corpora, so
# that a decoder regression fails CI.
#
# Time per target: FUZZTIME if set (e.g. FUZZTIME=10m for real fuzzing, as
# `make fuzz` does with 1m), else FUZZBUDGET (default 120s) shared evenly by
# the targets, between 3s and 10s each: adding targets does not make CI
# grow without bound. Targets run one after the other: each already uses
# every core (one fuzzing worker per core).
#
# -fuzzminimizetime 20x: when the fuzzer finds a new interesting input it
# minimizes it, by default for up to 60 s of re-runs; a slow target (a
# config loader) would spend a whole smoke run minimizing its first find.
# A failure found here is still minimized a little, enough to read.
#
# FUZZPARALLEL=N limits the fuzzing workers per target (default: one per
# core); make test sets 1, as it fuzzes beside the NAT-lab tests.
#
# One target for longer:
#   go test -run '^$' -fuzz '^FuzzLoad$' -fuzztime 10m ./cmd/internal/cfgload
set -eu
cd "$(dirname "$0")/.."

targets=$(mktemp)
log=$(mktemp)
trap 'rm -f "$targets" "$log"' EXIT
go list -f '{{.Dir}} {{.ImportPath}}' ./... | while read -r dir pkg; do
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "$dir $pkg $f" >>"$targets"
	done
done
n=$(wc -l <"$targets")
if [ -n "${FUZZTIME:-}" ]; then
	t=$FUZZTIME
else
	budget=${FUZZBUDGET:-120}
	budget=${budget%s}
	per=$((budget / (n > 0 ? n : 1)))
	if [ "$per" -lt 3 ]; then per=3; fi
	if [ "$per" -gt 10 ]; then per=10; fi
	t=${per}s
fi
echo "fuzz: $n targets, $t each"
start=$(date +%s)
# Go's fuzzing coordinator can fail a run as its -fuzztime ends with a bare
# "context deadline exceeded" and no failing input (golang/go#75804, a race
# in internal/fuzz, worse on a loaded machine): that is not a finding. A
# run counts as failed when it wrote a failing input under testdata/fuzz,
# or failed for any other reason.
corpus() { ls "$1" 2>/dev/null | wc -l; }
while read -r dir pkg f; do
	echo "fuzz $pkg $f ($t)"
	before=$(corpus "$dir/testdata/fuzz/$f")
	go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" -fuzzminimizetime 20x ${FUZZPARALLEL:+-parallel "$FUZZPARALLEL"} "$pkg" >"$log" 2>&1 || {
		if [ "$(corpus "$dir/testdata/fuzz/$f")" -eq "$before" ] &&
			grep -q '^    context deadline exceeded$' "$log" &&
			! grep -q 'Failing input written' "$log"; then
			echo "fuzz $pkg $f: Go's fuzz coordinator stopped with 'context deadline exceeded' and no failing input (golang/go#75804); not a finding" >&2
			continue
		fi
		tail -n 40 "$log" >&2
		echo "fuzz $pkg $f FAILED; the input is saved under $dir/testdata/fuzz/$f/ and replays with: go test -run '$f' $pkg" >&2
		exit 1
	}
done <"$targets"
echo "fuzz: done in $(($(date +%s) - start))s"
