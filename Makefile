# natter: the two commands a newcomer needs are `make demo` and `make test`.
GO ?= go

.PHONY: all build demo test check setup fuzz bench proto

all: build

build:
	$(GO) build -o bin/ ./cmd/...

# A local demo: a rendezvous and two nodes behind simulated home NATs
# (network namespaces; needs root) that find each other and go direct.
demo: setup
	$(GO) run ./internal/lab/demo

# Everything CI runs: setup, formatting, vet, all tests with the race
# detector (the NAT lab end-to-end tests included), and a short run of every
# fuzz target.
test: setup check
	$(GO) test -race -count=1 -timeout 30m ./...
	FUZZTIME=$${FUZZTIME:-10s} scripts/fuzz-smoke.sh

check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

setup:
	scripts/setup.sh

fuzz:
	FUZZTIME=$${FUZZTIME:-1m} scripts/fuzz-smoke.sh

# Benchmarks in the NAT lab (see README): time from daemon start to a
# direct link, chat throughput/latency against a bare libp2p stream, and
# file throughput against a raw TCP copy (capped and uncapped).
bench:
	$(GO) test ./test/e2e -run '^$$' -bench TimeToDirect -benchtime 10x
	$(GO) test ./test/e2e -run '^$$' -bench Chat -benchtime 3x
	$(GO) test ./test/e2e -run '^$$' -bench FileTransfer -benchtime 3x

proto:
	scripts/gen-proto.sh
