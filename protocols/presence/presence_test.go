package presence_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/natterim/natter/protocols/presence"
	"github.com/natterim/natter/protocols/presence/pb"
	"github.com/natterim/natter/protocols/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

type roster struct {
	allow map[peer.ID]bool
	mu    sync.Mutex
	got   []presence.Presence
}

func (r *roster) Allow(_ context.Context, p peer.ID) bool { return r.allow[p] }

func (r *roster) Presence(_ peer.ID, _ network.Conn, p presence.Presence) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, p)
}

func TestPushAndRefuse(t *testing.T) {
	mn, err := mocknet.WithNPeers(3)
	require.NoError(t, err)
	defer mn.Close()
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	hs := mn.Hosts()
	r := &roster{allow: map[peer.ID]bool{hs[1].ID(): true}}
	m := wire.NewMetrics(prometheus.NewRegistry())
	s := presence.New(hs[0], r, presence.WithMetrics(m))
	defer func() { require.NoError(t, s.Close()) }()

	set := time.UnixMilli(time.Now().UnixMilli())
	want := []presence.Presence{
		{State: presence.Away, Message: "at lunch 🍜", ProfileVersion: 7, Set: set},
		{State: presence.Busy, Set: set},
		{State: presence.Online, Set: set},
		{State: presence.Offline, Set: set},
	}
	for _, p := range want {
		require.NoError(t, presence.Push(context.Background(), hs[1], hs[0].ID(), p))
	}
	// Invisible is sent as offline: contacts cannot tell.
	require.NoError(t, presence.Push(context.Background(), hs[1], hs[0].ID(), presence.Presence{State: presence.Invisible, Set: set}))
	want = append(want, presence.Presence{State: presence.Offline, Set: set})
	require.Equal(t, want, r.got)

	// A stranger is refused and counted.
	require.Error(t, presence.Push(context.Background(), hs[2], hs[0].ID(), presence.Presence{State: presence.Online}))
	require.Eventually(t, func() bool { return m.Count("presence", "refused") == 1 }, 5*time.Second, 10*time.Millisecond)

	// Invalid frames from a contact are reset and counted; nothing applied.
	for _, bad := range []*pb.Presence{
		{State: pb.State(9)},
		{State: pb.State_STATE_UNSPECIFIED},
		{State: pb.State_AWAY, Message: strings.Repeat("z", presence.MaxMessageBytes+1)},
		{State: pb.State_AWAY, Message: "line\nbreak"},
	} {
		st, err := hs[1].NewStream(context.Background(), hs[0].ID(), presence.ID)
		require.NoError(t, err)
		require.NoError(t, wire.WriteMsg(st, bad, presence.MaxFrameSize))
		var ack pb.Ack
		require.Error(t, wire.ReadMsg(st, &ack, presence.MaxFrameSize))
	}
	require.Eventually(t, func() bool { return m.Count("presence", "invalid") == 4 }, 5*time.Second, 10*time.Millisecond)
	require.Len(t, r.got, 5)

	// The sender refuses a message it could not send.
	require.ErrorIs(t, presence.Push(context.Background(), hs[1], hs[0].ID(), presence.Presence{State: presence.Away, Message: "\x1b[31m"}), wire.ErrInvalid)
}

func TestParseState(t *testing.T) {
	for in, want := range map[string]string{"online": "online", " Away ": "away", "BUSY": "busy", "invisible": "invisible"} {
		got, err := presence.ParseState(in)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	for _, in := range []string{"", "offline", "gone", "online!"} {
		_, err := presence.ParseState(in)
		require.Error(t, err, in)
	}
}

// stuck allows everyone and holds every push until released.
type stuck struct {
	entered chan struct{}
	release chan struct{}
}

func (s stuck) Allow(context.Context, peer.ID) bool { return true }

func (s stuck) Presence(peer.ID, network.Conn, presence.Presence) {
	s.entered <- struct{}{}
	<-s.release
}

// Close waits for the push in flight before it returns.
func TestCloseWaitsForHandler(t *testing.T) {
	mn, err := mocknet.FullMeshConnected(2)
	require.NoError(t, err)
	defer mn.Close()
	hs := mn.Hosts()
	r := stuck{entered: make(chan struct{}, 1), release: make(chan struct{})}
	s := presence.New(hs[0], r)
	pushed := make(chan error, 1)
	go func() {
		pushed <- presence.Push(context.Background(), hs[1], hs[0].ID(), presence.Presence{State: presence.Online})
	}()
	<-r.entered
	closed := make(chan struct{})
	go func() {
		_ = s.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned with a handler in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(r.release)
	<-closed
	require.NoError(t, s.Close(), "idempotent")
	<-pushed
}
