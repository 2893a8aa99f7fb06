#!/bin/sh
# Regenerates every protocols/*/pb/*.pb.go from its .proto. The generated
# files are committed, so building natter never needs protoc; run this only
# after editing a .proto. Needs protoc (Debian: protobuf-compiler) and
# protoc-gen-go at the version go.mod pins for google.golang.org/protobuf.
set -eu
cd "$(dirname "$0")/.."
ver=$(go list -m -f '{{.Version}}' google.golang.org/protobuf)
if ! command -v protoc >/dev/null 2>&1; then
	echo "gen-proto: protoc not found; install it (apt-get install -y protobuf-compiler)" >&2
	exit 1
fi
bin=$(go env GOPATH)/bin
if ! "$bin/protoc-gen-go" --version 2>/dev/null | grep -q "$ver"; then
	GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$ver"
fi
for f in $(find protocols -path '*/pb/*.proto' | sort); do
	dir=$(dirname "$f")
	PATH="$bin:$PATH" protoc -I "$dir" --go_out="$dir" --go_opt=paths=source_relative "$f"
	echo "generated $dir/$(basename "$f" .proto).pb.go"
done
