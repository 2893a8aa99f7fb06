# natter: the two commands a newcomer needs are `make demo` and `make test`.
GO ?= go

.PHONY: all build demo test check setup fuzz bench bench-capacity proto

all: build

build:
	$(GO) build -o bin/ ./cmd/...

# A local demo: a rendezvous and two nodes behind simulated home NATs
# (network namespaces; needs root) that find each other and go direct.
demo: setup
	$(GO) run ./internal/lab/demo

# Everything CI runs: setup, formatting, vet, all tests with the race
# detector (the NAT lab end-to-end tests included), and a short run of every
# fuzz target (FUZZBUDGET, default 120s, shared by the targets, 3-10s each;
# FUZZTIME=30s sets the time per target). The NAT lab tests spend most of
# their time waiting on the network and on fsyncs, so they run beside the
# other packages and the fuzz smoke rather than after them (scripts/test.sh).
test: setup check
	scripts/test.sh

check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

setup:
	scripts/setup.sh

fuzz:
	FUZZTIME=$${FUZZTIME:-1m} scripts/fuzz-smoke.sh

# Benchmarks in the NAT lab (see README): time from daemon start to a
# direct link, chat throughput/latency against a bare libp2p stream, file
# throughput against a raw TCP copy (capped and uncapped); then the
# rendezvous at 100 and 1,000 nodes against go-libp2p's stock limits (about
# 10 minutes in all; `make bench-capacity` for the full curve).
bench: build
	$(GO) test ./test/e2e -run '^$$' -bench TimeToDirect -benchtime 10x
	$(GO) test ./test/e2e -run '^$$' -bench Chat -benchtime 3x
	$(GO) test ./test/e2e -run '^$$' -bench FileTransfer -benchtime 3x
	bin/natter-rendezvous bench --nodes 100,1000 --baseline 100,1000

# The rendezvous capacity curve of the README: 100 to 5,000 nodes over TCP
# and QUIC, then 5,000 and 10,000 over TCP alone (the load generator needs a
# file descriptor per connection and per QUIC socket: 20,000 for 10,000
# nodes over both). About 25 minutes and 8 GiB of memory.
bench-capacity: build
	bin/natter-rendezvous bench --nodes 100,1000,5000 --baseline 100,1000,5000
	bin/natter-rendezvous bench --nodes 5000,10000 --transports tcp --baseline 10000

proto:
	scripts/gen-proto.sh
