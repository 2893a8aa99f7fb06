#!/bin/sh
# Runs every fuzz target briefly (FUZZTIME, default 10s each) on top of the
# committed seed corpora, so a decoder regression fails CI. For real fuzzing
# run one target for longer: go test -run '^$' -fuzz FuzzReadMsg -fuzztime 10m ./protocols/wire
set -eu
cd "$(dirname "$0")/.."
t=${FUZZTIME:-10s}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "fuzz $pkg $f ($t)"
		go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg" >/dev/null
	done
done
