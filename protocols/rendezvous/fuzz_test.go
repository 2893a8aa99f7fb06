package rendezvous_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/protocols/rendezvous"
	"github.com/natterim/natter/protocols/rendezvous/pb"
	"github.com/natterim/natter/protocols/wire"
)

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite testdata/fuzz/FuzzDecode from fuzzSeeds")

const seedDir = "testdata/fuzz/FuzzDecode"

// fuzzKey is the fixed key of the peer that sends the fuzzed frames, so
// that records in the seeds verify.
func fuzzKey(tb testing.TB, b byte) crypto.PrivKey {
	tb.Helper()
	k, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize)))
	require.NoError(tb, err)
	return k
}

func fuzzID(tb testing.TB, b byte) peer.ID {
	tb.Helper()
	id, err := peer.IDFromPrivateKey(fuzzKey(tb, b))
	require.NoError(tb, err)
	return id
}

// fixedRecord seals a record with a fixed sequence number (Ed25519 is
// deterministic, so the seeds are too).
func fixedRecord(tb testing.TB, key byte, addrs ...string) []byte {
	tb.Helper()
	rec := &peer.PeerRecord{PeerID: fuzzID(tb, key), Seq: 1}
	for _, a := range addrs {
		rec.Addrs = append(rec.Addrs, ma.StringCast(a))
	}
	env, err := record.Seal(rec, fuzzKey(tb, key))
	require.NoError(tb, err)
	b, err := env.Marshal()
	require.NoError(tb, err)
	return b
}

func frames(tb testing.TB, msgs ...*pb.Message) []byte {
	tb.Helper()
	var b bytes.Buffer
	for _, m := range msgs {
		require.NoError(tb, wire.WriteMsg(&b, m, 1<<20))
	}
	return b.Bytes()
}

func regMsg(ns string, rec []byte, ttl uint64) *pb.Message {
	return &pb.Message{Type: pb.Message_REGISTER.Enum(), Register: &pb.Message_Register{Ns: proto.String(ns), SignedPeerRecord: rec, Ttl: proto.Uint64(ttl)}}
}

func discMsg(ns string, limit uint64, cookie []byte) *pb.Message {
	return &pb.Message{Type: pb.Message_DISCOVER.Enum(), Discover: &pb.Message_Discover{Ns: proto.String(ns), Limit: proto.Uint64(limit), Cookie: cookie}}
}

func unregMsg(ns string) *pb.Message {
	return &pb.Message{Type: pb.Message_UNREGISTER.Enum(), Unregister: &pb.Message_Unregister{Ns: proto.String(ns)}}
}

// fuzzSeeds is the committed seed corpus, by file name.
func fuzzSeeds(tb testing.TB) map[string][]byte {
	self := fixedRecord(tb, 1, "/ip4/192.0.2.1/tcp/4001", "/ip4/192.0.2.1/udp/4001/quic-v1")
	other := fixedRecord(tb, 2, "/ip4/192.0.2.2/tcp/4001")
	selfNS := rendezvous.PeerNamespace(fuzzID(tb, 1))
	return map[string][]byte{
		"register-self":    frames(tb, regMsg(selfNS, self, 0)),
		"register-other":   frames(tb, regMsg(rendezvous.PeerNamespace(fuzzID(tb, 2)), self, 0)),
		"foreign-record":   frames(tb, regMsg("room", other, 3600)),
		"session":          frames(tb, regMsg("room", self, 7200), regMsg("hall", self, 120), discMsg("room", 1, nil), discMsg("", 0, nil), unregMsg("room"), discMsg("room", 0, nil)),
		"refresh":          frames(tb, regMsg(selfNS, self, 600), regMsg(selfNS, self, 0), unregMsg(""), discMsg(selfNS, 5, nil)),
		"bad-ttl":          frames(tb, regMsg("room", self, 1), regMsg("room", self, 1<<63)),
		"bad-cookie":       frames(tb, discMsg("room", 0, []byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2})),
		"response-type":    frames(tb, &pb.Message{Type: pb.Message_DISCOVER_RESPONSE.Enum(), DiscoverResponse: &pb.Message_DiscoverResponse{}}),
		"missing-body":     frames(tb, &pb.Message{Type: pb.Message_REGISTER.Enum()}),
		"garbage":          []byte("\x03\xff\xff\xff"),
		"oversized-prefix": binary.AppendUvarint(nil, 1<<24),
	}
}

// corpusFile is the "go test fuzz v1" encoding of one []byte input.
func corpusFile(data []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data)
}

// TestFuzzSeedsCommitted keeps testdata/fuzz/FuzzDecode in step with
// fuzzSeeds (go test -run TestFuzzSeedsCommitted -update-fuzz-seeds).
func TestFuzzSeedsCommitted(t *testing.T) {
	seeds := fuzzSeeds(t)
	names := make([]string, 0, len(seeds))
	for name := range seeds {
		names = append(names, name)
	}
	sort.Strings(names)
	if *updateSeeds {
		require.NoError(t, os.MkdirAll(seedDir, 0o755))
	}
	for _, name := range names {
		path := filepath.Join(seedDir, name)
		want := corpusFile(seeds[name])
		if *updateSeeds {
			require.NoError(t, os.WriteFile(path, want, 0o644))
			continue
		}
		got, err := os.ReadFile(path)
		require.NoError(t, err, "run: go test -run TestFuzzSeedsCommitted -update-fuzz-seeds")
		require.Equal(t, string(want), string(got), path)
	}

	// The seeds reach the registry: the session registers, discovers
	// and unregisters.
	svc := rendezvous.NewOffline()
	resps, err := rendezvous.HandleFrames(svc, fuzzID(t, 1), seeds["session"])
	require.NoError(t, err)
	require.Len(t, resps, 5)
	require.Equal(t, pb.Message_OK, resps[0].GetRegisterResponse().GetStatus())
	require.Equal(t, pb.Message_OK, resps[1].GetRegisterResponse().GetStatus())
	require.Len(t, resps[2].GetDiscoverResponse().GetRegistrations(), 1)
	require.Len(t, resps[3].GetDiscoverResponse().GetRegistrations(), 2)
	require.Empty(t, resps[4].GetDiscoverResponse().GetRegistrations())
	require.Len(t, svc.Registrations(), 1)
}

// FuzzDecode runs arbitrary bytes through the server's request path (frame
// decoding, request checks, validation, the registry) without a network,
// as if the fixed peer fuzzID(1) had sent them on one stream.
func FuzzDecode(f *testing.F) {
	remote := fuzzID(f, 1)
	limits := rendezvous.DefaultLimits()
	limits.MaxRegistrationsPerPeer = 4
	limits.MaxRegistrations = 6
	limits.MaxDiscoverLimit = 8
	now := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := rendezvous.NewOffline(rendezvous.WithLimits(limits), rendezvous.WithClock(func() time.Time { return now }))
		resps, _ := rendezvous.HandleFrames(s, remote, data)
		for _, m := range resps {
			if n := proto.Size(m); n > rendezvous.MaxResponseSize {
				t.Fatalf("response of %d bytes", n)
			}
			switch m.GetType() {
			case pb.Message_REGISTER_RESPONSE:
				if m.GetRegisterResponse() == nil {
					t.Fatal("register response without body")
				}
			case pb.Message_DISCOVER_RESPONSE:
				dr := m.GetDiscoverResponse()
				if dr == nil {
					t.Fatal("discover response without body")
				}
				if len(dr.GetRegistrations()) > limits.MaxDiscoverLimit {
					t.Fatalf("%d registrations over the limit", len(dr.GetRegistrations()))
				}
				if dr.GetStatus() == pb.Message_OK && len(dr.GetCookie()) == 0 {
					t.Fatal("OK discover response without cookie")
				}
			default:
				t.Fatalf("server answered with %s", m.GetType())
			}
		}
		regs := s.Registrations()
		if len(regs) > limits.MaxRegistrations || len(regs) > limits.MaxRegistrationsPerPeer {
			t.Fatalf("%d registrations over the limits", len(regs))
		}
		for _, r := range regs {
			if r.Peer.ID != remote {
				t.Fatalf("registration for %s accepted from %s", r.Peer.ID, remote)
			}
			if len(r.Peer.Addrs) > limits.MaxAddrs || r.Namespace == "" || len(r.Namespace) > limits.MaxNamespaceLen {
				t.Fatalf("invalid registration stored: %+v", r)
			}
			if ttl := r.Expires.Sub(now); ttl < limits.MinTTL || ttl > limits.MaxTTL {
				t.Fatalf("ttl %v out of bounds", ttl)
			}
			if r.Namespace != rendezvous.PeerNamespace(remote) && len(r.Namespace) >= len(rendezvous.PeerNamespacePrefix) && r.Namespace[:len(rendezvous.PeerNamespacePrefix)] == rendezvous.PeerNamespacePrefix {
				t.Fatalf("peer namespace %q of another peer accepted", r.Namespace)
			}
		}
	})
}
