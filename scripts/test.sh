#!/bin/sh
# Runs every Go test with the race detector: the NAT lab end-to-end tests
# (test/e2e) in one go test process and every other package in another, at
# the same time. The lab tests mostly wait (on links, heartbeats, fsyncs),
# so starting them first, beside the CPU-bound packages, instead of last
# (go test's package order) shortens the run by their length. Exits non-zero
# if either fails; each one's output is printed whole once it ends.
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
wait $e2e
e2erc=$?
cat "$out/e2e"
[ "$rest" -eq 0 ] && [ "$e2erc" -eq 0 ]
