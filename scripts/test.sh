#!/bin/sh
# What `make test` runs after setup and the gofmt/vet check: every Go test
# with the race detector, then a short run of every fuzz target.
#
# The NAT lab end-to-end tests (test/e2e) spend most of their time waiting
# (on links, heartbeats, fsyncs), so they start first, in a go test process
# of their own, beside the CPU-bound packages, instead of last (go test's
# package order). The fuzz smoke (scripts/fuzz-smoke.sh) starts once the
# other packages are done, beside the rest of the lab tests, with one fuzz
# worker so that the lab's daemons keep a core. Exits non-zero if any part
# fails; each part's output is printed whole once it ends.
set -u
cd "$(dirname "$0")/.."
GO=${GO:-go}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
others=$($GO list ./... | grep -v '/test/e2e$')
$GO test -race -count=1 -timeout 30m ./test/e2e/ >"$out/e2e" 2>&1 &
e2e=$!
# shellcheck disable=SC2086
$GO test -race -count=1 -timeout 30m $others >"$out/rest" 2>&1
rest=$?
cat "$out/rest"
fuzz=0
if [ "${SKIP_FUZZ:-}" = "" ]; then
	FUZZPARALLEL=1 scripts/fuzz-smoke.sh
	fuzz=$?
fi
wait $e2e
e2erc=$?
cat "$out/e2e"
[ "$rest" -eq 0 ] && [ "$fuzz" -eq 0 ] && [ "$e2erc" -eq 0 ]
