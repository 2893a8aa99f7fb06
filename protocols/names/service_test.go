package names_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/protocols/names"
	"github.com/natterim/natter/protocols/names/pb"
	"github.com/natterim/natter/protocols/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

// clock is a settable clock for the server.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// lab is a server and n clients on mocknet; keys[i] is hosts[i]'s key
// (hosts[0] is the server).
type lab struct {
	hosts   []host.Host
	keys    []crypto.PrivKey
	svc     *names.Service
	clock   *clock
	metrics *wire.Metrics
	seq     uint64
}

func newLab(t *testing.T, n int, reg names.Registry, edit func(*names.Limits)) *lab {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	l := &lab{clock: &clock{t: time.Now()}, metrics: wire.NewMetrics(prometheus.NewRegistry())}
	for i := range n + 1 {
		sk, _, err := crypto.GenerateEd25519Key(nil)
		require.NoError(t, err)
		h, err := mn.AddPeer(sk, ma.StringCast(fmt.Sprintf("/ip4/10.0.0.%d/tcp/4001", i+1)))
		require.NoError(t, err)
		l.hosts = append(l.hosts, h)
		l.keys = append(l.keys, sk)
	}
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	limits := names.DefaultLimits()
	if edit != nil {
		edit(&limits)
	}
	if reg == nil {
		reg = names.NewMemRegistry()
	}
	svc, err := names.New(l.hosts[0], names.WithRegistry(reg), names.WithLimits(limits),
		names.WithClock(l.clock.now), names.WithMetrics(l.metrics), names.WithRegisterer(prometheus.NewRegistry()))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	l.svc = svc
	return l
}

func (l *lab) server() peer.ID { return l.hosts[0].ID() }

// nextSeq is a fresh seq by the server's clock.
func (l *lab) nextSeq() uint64 {
	l.seq = names.NextSeq(l.seq, l.clock.now())
	return l.seq
}

func (l *lab) register(i int, name string) error {
	_, err := names.Register(context.Background(), l.hosts[i], l.server(), l.keys[i], name, l.nextSeq())
	return err
}

func (l *lab) release(i int, name string) error {
	return names.Release(context.Background(), l.hosts[i], l.server(), l.keys[i], name, l.nextSeq())
}

func (l *lab) lookup(i int, name string) (names.Record, error) {
	rec, _, err := names.Lookup(context.Background(), l.hosts[i], l.server(), name)
	return rec, err
}

// raw sends one request frame from hosts[i] and returns the response.
func (l *lab) raw(t *testing.T, i int, req *pb.Request) *pb.Response {
	t.Helper()
	st, err := l.hosts[i].NewStream(context.Background(), l.server(), names.ID)
	require.NoError(t, err)
	defer st.Close()
	require.NoError(t, wire.WriteMsg(st, req, names.MaxFrameSize))
	var resp pb.Response
	require.NoError(t, wire.ReadMsg(st, &resp, names.MaxFrameSize))
	return &resp
}

func (l *lab) sign(t *testing.T, i int, op names.Op, name string, seq uint64) []byte {
	t.Helper()
	raw, err := names.Sign(l.keys[i], names.Record{Op: op, Name: name, Peer: l.hosts[i].ID(), Seq: seq})
	require.NoError(t, err)
	return raw
}

func status(err error) pb.Status {
	if se, ok := err.(*names.StatusError); ok {
		return se.Status
	}
	return pb.Status_STATUS_UNSPECIFIED
}

func TestClaimLookupRenewRelease(t *testing.T) {
	l := newLab(t, 3, nil, nil)
	alice, bob, carol := 1, 2, 3

	_, err := l.lookup(carol, "alice")
	require.ErrorIs(t, err, names.ErrNotFound)

	require.NoError(t, l.register(alice, "Alice")) // folded to "alice"
	rec, err := l.lookup(carol, "ALICE")
	require.NoError(t, err)
	require.Equal(t, l.hosts[alice].ID(), rec.Peer)
	require.Equal(t, "alice", rec.Name)
	require.Equal(t, names.OpRegister, rec.Op)

	// First come, first served: nobody else can take it, or anything
	// that looks like it.
	for _, n := range []string{"alice", "a-lice", "a.lice"} {
		err := l.register(bob, n)
		require.ErrorIs(t, err, names.ErrTaken, n)
	}
	// Nor release it.
	require.ErrorIs(t, l.release(bob, "alice"), names.ErrTaken)
	// The holder cannot hold a look-alike either.
	require.ErrorIs(t, l.register(alice, "a-lice"), names.ErrTaken)

	// Renewal: a newer record from the holder.
	l.clock.add(time.Hour)
	before := rec.Seq
	require.NoError(t, l.register(alice, "alice"))
	rec, err = l.lookup(carol, "alice")
	require.NoError(t, err)
	require.Greater(t, rec.Seq, before)

	// An older record is refused; the very same record again is fine.
	raw := l.sign(t, alice, names.OpRegister, "alice", rec.Seq-1)
	resp := l.raw(t, alice, &pb.Request{Op: pb.Op_REGISTER, Record: raw})
	require.Equal(t, pb.Status_OUTDATED, resp.GetStatus())
	seq := l.nextSeq()
	raw = l.sign(t, alice, names.OpRegister, "alice", seq)
	require.Equal(t, pb.Status_OK, l.raw(t, alice, &pb.Request{Op: pb.Op_REGISTER, Record: raw}).GetStatus())
	require.Equal(t, pb.Status_OK, l.raw(t, alice, &pb.Request{Op: pb.Op_REGISTER, Record: raw}).GetStatus())

	require.NoError(t, l.release(alice, "alice"))
	_, err = l.lookup(carol, "alice")
	require.ErrorIs(t, err, names.ErrNotFound)
	require.ErrorIs(t, l.release(alice, "alice"), names.ErrNotFound)
	// Released: the next comer gets it.
	require.NoError(t, l.register(bob, "alice"))
	rec, err = l.lookup(carol, "alice")
	require.NoError(t, err)
	require.Equal(t, l.hosts[bob].ID(), rec.Peer)

	require.Equal(t, 5.0, l.svc.Requests("register", "ok"))
	require.Equal(t, 4.0, l.svc.Requests("register", "taken"))
	require.Equal(t, 1.0, l.svc.Requests("release", "taken"))
	require.Equal(t, 1.0, l.svc.Requests("register", "outdated"))
	ns, err := l.svc.NamesOf(context.Background(), l.hosts[bob].ID())
	require.NoError(t, err)
	require.Equal(t, []string{"alice"}, ns)
}

func TestInactiveRelease(t *testing.T) {
	l := newLab(t, 2, nil, func(lim *names.Limits) { lim.InactiveRelease = 30 * 24 * time.Hour })
	require.NoError(t, l.register(1, "bob"))
	// Renewed within the period: kept.
	l.clock.add(29 * 24 * time.Hour)
	require.NoError(t, l.register(1, "bob"))
	l.clock.add(29 * 24 * time.Hour)
	_, err := l.lookup(2, "bob")
	require.NoError(t, err)
	require.ErrorIs(t, l.register(2, "bob"), names.ErrTaken)

	// Not renewed for longer than the period: released, and free.
	l.clock.add(2 * 24 * time.Hour)
	_, err = l.lookup(2, "bob")
	require.ErrorIs(t, err, names.ErrNotFound)
	ns, err := l.svc.NamesOf(context.Background(), l.hosts[1].ID())
	require.NoError(t, err)
	require.Empty(t, ns)
	require.NoError(t, l.register(2, "bob"))
	rec, err := l.lookup(1, "bob")
	require.NoError(t, err)
	require.Equal(t, l.hosts[2].ID(), rec.Peer)
}

func TestMaxNamesPerPeer(t *testing.T) {
	l := newLab(t, 1, nil, func(lim *names.Limits) { lim.MaxPerPeer = 2 })
	require.NoError(t, l.register(1, "one"))
	require.NoError(t, l.register(1, "two"))
	require.ErrorIs(t, l.register(1, "three"), names.ErrTooManyNames)
	// Renewing what it holds is fine; after a release there is room.
	require.NoError(t, l.register(1, "two"))
	require.NoError(t, l.release(1, "one"))
	require.NoError(t, l.register(1, "three"))
	require.Equal(t, 1.0, l.svc.Requests("register", "too_many_names"))
}

// forged is a claim sealed by whatever key the test likes.
type forged struct{ c *pb.Claim }

func (forged) Domain() string                   { return names.Domain }
func (forged) Codec() []byte                    { return []byte(names.PayloadType) }
func (f forged) MarshalRecord() ([]byte, error) { return proto.Marshal(f.c) }
func (forged) UnmarshalRecord([]byte) error     { return nil }

func seal(t *testing.T, sk crypto.PrivKey, c *pb.Claim) []byte {
	t.Helper()
	env, err := record.Seal(forged{c}, sk)
	require.NoError(t, err)
	b, err := env.Marshal()
	require.NoError(t, err)
	return b
}

// TestBadRecords: every way a REGISTER or RELEASE can be wrong is refused
// with its own status and counted, and leaves nothing behind.
func TestBadRecords(t *testing.T) {
	l := newLab(t, 2, nil, nil)
	mallory, victim := 1, 2
	require.NoError(t, l.register(victim, "victim"))
	victimID := []byte(l.hosts[victim].ID())
	now := func() uint64 { return uint64(l.clock.now().UnixMilli()) }

	tampered := l.sign(t, mallory, names.OpRegister, "mallory", now())
	tampered[len(tampered)-70] ^= 0x01 // inside the payload or signature

	foreignDomain := func() []byte {
		env, err := record.Seal(&peer.PeerRecord{PeerID: l.hosts[mallory].ID(), Seq: 1}, l.keys[mallory])
		require.NoError(t, err)
		b, err := env.Marshal()
		require.NoError(t, err)
		return b
	}()

	cases := []struct {
		name string
		op   pb.Op
		rec  []byte
		want pb.Status
	}{
		{"forged: mallory's key, victim's peer id", pb.Op_REGISTER, seal(t, l.keys[mallory], &pb.Claim{Op: pb.Op_REGISTER, Name: "mallory", PeerId: victimID, Seq: now()}), pb.Status_BAD_RECORD},
		{"forged release of the victim's name", pb.Op_RELEASE, seal(t, l.keys[mallory], &pb.Claim{Op: pb.Op_RELEASE, Name: "victim", PeerId: victimID, Seq: now()}), pb.Status_BAD_RECORD},
		{"tampered", pb.Op_REGISTER, tampered, pb.Status_BAD_RECORD},
		{"not an envelope", pb.Op_REGISTER, []byte("hello"), pb.Status_BAD_RECORD},
		{"empty", pb.Op_REGISTER, nil, pb.Status_BAD_RECORD},
		{"a peer record, not a claim", pb.Op_REGISTER, foreignDomain, pb.Status_BAD_RECORD},
		{"replayed victim record from mallory", pb.Op_REGISTER, l.sign(t, victim, names.OpRegister, "victim", now()+1), pb.Status_WRONG_PEER},
		{"op mismatch", pb.Op_RELEASE, l.sign(t, mallory, names.OpRegister, "mallory", now()), pb.Status_BAD_RECORD},
		{"lookup op in record", pb.Op_REGISTER, seal(t, l.keys[mallory], &pb.Claim{Op: pb.Op_LOOKUP, Name: "mallory", PeerId: []byte(l.hosts[mallory].ID()), Seq: now()}), pb.Status_BAD_RECORD},
		{"zero seq", pb.Op_REGISTER, seal(t, l.keys[mallory], &pb.Claim{Op: pb.Op_REGISTER, Name: "mallory", PeerId: []byte(l.hosts[mallory].ID())}), pb.Status_BAD_RECORD},
		{"name breaks the rule", pb.Op_REGISTER, seal(t, l.keys[mallory], &pb.Claim{Op: pb.Op_REGISTER, Name: "b\u043eb", PeerId: []byte(l.hosts[mallory].ID()), Seq: now()}), pb.Status_INVALID_NAME},
		{"name not canonical", pb.Op_REGISTER, seal(t, l.keys[mallory], &pb.Claim{Op: pb.Op_REGISTER, Name: "Mallory", PeerId: []byte(l.hosts[mallory].ID()), Seq: now()}), pb.Status_INVALID_NAME},
		{"expired (signed an hour ago)", pb.Op_REGISTER, l.sign(t, mallory, names.OpRegister, "mallory", now()-uint64(time.Hour.Milliseconds())), pb.Status_EXPIRED},
		{"from the future", pb.Op_REGISTER, l.sign(t, mallory, names.OpRegister, "mallory", now()+uint64(time.Hour.Milliseconds())), pb.Status_EXPIRED},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := l.raw(t, mallory, &pb.Request{Op: tc.op, Record: tc.rec})
			require.Equal(t, tc.want, resp.GetStatus(), resp.GetReason())
			require.NotEmpty(t, resp.GetReason())
		})
	}
	// Nothing moved: the victim still holds its name; mallory holds none.
	rec, err := l.lookup(mallory, "victim")
	require.NoError(t, err)
	require.Equal(t, l.hosts[victim].ID(), rec.Peer)
	_, err = l.lookup(victim, "mallory")
	require.ErrorIs(t, err, names.ErrNotFound)
	require.Equal(t, 9.0, l.svc.Requests("register", "bad_record")+l.svc.Requests("release", "bad_record"))
	require.Equal(t, 2.0, l.svc.Requests("register", "expired"))
	require.Equal(t, 2.0, l.svc.Requests("register", "invalid_name"))
	require.Equal(t, 1.0, l.svc.Requests("register", "wrong_peer"))

	// A lookup of a name that breaks the rule is refused as such.
	resp := l.raw(t, mallory, &pb.Request{Op: pb.Op_LOOKUP, Name: "no spaces"})
	require.Equal(t, pb.Status_INVALID_NAME, resp.GetStatus())
	// The client refuses to send such names at all.
	_, err = l.lookup(mallory, "no spaces")
	require.ErrorIs(t, err, names.ErrInvalidName)
	require.ErrorIs(t, l.register(mallory, "-x-"), names.ErrInvalidName)
}

// TestBrokenFrames: frames the server cannot read reset the stream and are
// counted; other peers are served all along.
func TestBrokenFrames(t *testing.T) {
	l := newLab(t, 2, nil, nil)
	for _, tc := range []struct {
		name   string
		write  func(network.Stream)
		reason string
	}{
		{"oversize", func(st network.Stream) { _, _ = st.Write([]byte{0xff, 0xff, 0x03}) }, "oversize"},
		{"garbage", func(st network.Stream) { _, _ = st.Write([]byte{0x03, 0xff, 0xff, 0xff}) }, "malformed"},
		{"unknown op", func(st network.Stream) {
			_ = wire.WriteMsg(st, &pb.Request{Op: pb.Op(42)}, names.MaxFrameSize)
		}, "invalid"},
		{"silence", func(network.Stream) {}, "eof"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := l.hosts[1].NewStream(context.Background(), l.server(), names.ID)
			require.NoError(t, err)
			tc.write(st)
			_ = st.CloseWrite()
			var resp pb.Response
			require.Error(t, wire.ReadMsg(st, &resp, names.MaxFrameSize))
			require.Eventually(t, func() bool { return l.metrics.Count("names", tc.reason) == 1 }, 5*time.Second, 10*time.Millisecond)
			require.NoError(t, l.register(2, "fine"))
		})
	}
}

func TestRateLimitIsPerPeer(t *testing.T) {
	l := newLab(t, 2, nil, func(lim *names.Limits) { lim.Rate, lim.Burst = 0.001, 3 })
	limited := 0
	for range 8 {
		_, err := l.lookup(1, "nobody")
		if status(err) == pb.Status_RATE_LIMITED {
			require.ErrorIs(t, err, names.ErrRateLimited)
			limited++
		} else {
			require.ErrorIs(t, err, names.ErrNotFound)
		}
	}
	require.Equal(t, 5, limited)
	require.Equal(t, 5.0, l.svc.Requests("lookup", "rate_limited"))
	// The flood does not touch anyone else.
	require.NoError(t, l.register(2, "calm"))
}

// TestLookupTrustsNothing: a server that lies is caught by the client.
func TestLookupTrustsNothing(t *testing.T) {
	l := newLab(t, 2, nil, nil)
	liar, asker := l.hosts[1], l.hosts[2]
	good := l.sign(t, 1, names.OpRegister, "liar", uint64(time.Now().UnixMilli()))
	tampered := append([]byte(nil), good...)
	tampered[len(tampered)-70] ^= 0x01
	release := l.sign(t, 1, names.OpRelease, "bob", uint64(time.Now().UnixMilli()))
	for _, tc := range []struct {
		name string
		rec  []byte
	}{
		{"record of another name", good},
		{"tampered record", tampered},
		{"a release record", release},
		{"no record", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			liar.SetStreamHandler(names.ID, func(st network.Stream) {
				var req pb.Request
				_ = wire.ReadMsg(st, &req, names.MaxFrameSize)
				_ = wire.WriteMsg(st, &pb.Response{Status: pb.Status_OK, Record: tc.rec}, names.MaxFrameSize)
				_ = st.Close()
			})
			_, _, err := names.Lookup(context.Background(), asker, liar.ID(), "bob")
			require.ErrorIs(t, err, names.ErrBadRecord)
		})
	}
	liar.SetStreamHandler(names.ID, func(st network.Stream) {
		_ = wire.WriteMsg(st, &pb.Response{Status: pb.Status(99)}, names.MaxFrameSize)
		_ = st.Close()
	})
	_, _, err := names.Lookup(context.Background(), asker, liar.ID(), "bob")
	require.ErrorIs(t, err, wire.ErrInvalid)
}

func TestCloseIsIdempotent(t *testing.T) {
	l := newLab(t, 1, nil, nil)
	require.NoError(t, l.svc.Close())
	require.NoError(t, l.svc.Close())
	_, err := l.lookup(1, "anyone")
	require.Error(t, err, "the handler must be gone")
}

func TestNextSeqGrows(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	require.Equal(t, uint64(1_700_000_000_000), names.NextSeq(0, now))
	require.Equal(t, uint64(1_700_000_000_001), names.NextSeq(1_700_000_000_000, now))
	// The clock stepped back: still growing.
	require.Equal(t, uint64(1_800_000_000_001), names.NextSeq(1_800_000_000_000, now))
}
