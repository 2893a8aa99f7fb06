package profile_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/natterim/natter/protocols/profile"
	"github.com/natterim/natter/protocols/profile/pb"
	"github.com/natterim/natter/protocols/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

type owner struct {
	allow map[peer.ID]bool
	mu    sync.Mutex
	prof  profile.Profile
	err   error
}

func (o *owner) Allow(_ context.Context, p peer.ID) bool { return o.allow[p] }

func (o *owner) Profile(context.Context) (profile.Profile, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.prof, o.err
}

func setup(t *testing.T, opts ...profile.Option) ([]host.Host, *owner, *wire.Metrics) {
	t.Helper()
	mn, err := mocknet.WithNPeers(3)
	require.NoError(t, err)
	t.Cleanup(func() { mn.Close() })
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	hs := mn.Hosts()
	o := &owner{allow: map[peer.ID]bool{hs[1].ID(): true}}
	m := wire.NewMetrics(prometheus.NewRegistry())
	s := profile.New(hs[0], o, append([]profile.Option{profile.WithMetrics(m)}, opts...)...)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return hs, o, m
}

func TestFetchAndRefuse(t *testing.T) {
	hs, o, m := setup(t)
	avatar, typ, err := profile.PrepareAvatar(encPNG(t, picture(256, 256)))
	require.NoError(t, err)
	o.prof = profile.Profile{Version: 7, Name: "Bob 🐢", Status: "at lunch", Avatar: avatar, AvatarType: typ}

	got, err := profile.Fetch(context.Background(), hs[1], hs[0].ID())
	require.NoError(t, err)
	require.Equal(t, o.prof, got)

	// A stranger gets nothing, and is counted.
	_, err = profile.Fetch(context.Background(), hs[2], hs[0].ID())
	require.Error(t, err)
	require.Eventually(t, func() bool { return m.Count("profile", "refused") == 1 }, 5*time.Second, 10*time.Millisecond)

	// No profile yet: version 0, nothing else.
	o.prof = profile.Profile{}
	got, err = profile.Fetch(context.Background(), hs[1], hs[0].ID())
	require.NoError(t, err)
	require.Equal(t, profile.Profile{}, got)

	// An owner whose own profile is broken sends nothing rather than
	// something contacts refuse.
	o.prof = profile.Profile{Version: 8, Name: "x\x1b[31m"}
	_, err = profile.Fetch(context.Background(), hs[1], hs[0].ID())
	require.Error(t, err)
	o.err = errors.New("disk on fire")
	_, err = profile.Fetch(context.Background(), hs[1], hs[0].ID())
	require.Error(t, err)
}

func TestRateLimit(t *testing.T) {
	hs, o, m := setup(t, profile.WithRateLimit(0.001, 2))
	o.prof = profile.Profile{Version: 1, Name: "bob"}
	for range 2 {
		_, err := profile.Fetch(context.Background(), hs[1], hs[0].ID())
		require.NoError(t, err)
	}
	_, err := profile.Fetch(context.Background(), hs[1], hs[0].ID())
	require.Error(t, err)
	require.Eventually(t, func() bool { return m.Count("profile", "rate_limited") == 1 }, 5*time.Second, 10*time.Millisecond)
}

// TestFetcherTrustsNothing: a contact that sends a bad profile is refused
// by the fetcher (the stream is reset, the error wraps ErrInvalid).
func TestFetcherTrustsNothing(t *testing.T) {
	hs, _, _ := setup(t)
	liar := hs[2]
	bomb := pngClaiming(t, 50000, 50000)
	for _, tc := range []struct {
		name string
		send func(network.Stream)
		want error
	}{
		{"avatar is not an image", func(st network.Stream) {
			_ = wire.WriteMsg(st, &pb.Profile{Version: 1, Avatar: []byte("MZ\x90\x00 not a picture"), AvatarType: profile.TypePNG}, profile.MaxFrameSize)
		}, profile.ErrBadAvatar},
		{"decompression bomb", func(st network.Stream) {
			_ = wire.WriteMsg(st, &pb.Profile{Version: 1, Avatar: bomb, AvatarType: profile.TypePNG}, profile.MaxFrameSize)
		}, profile.ErrBadAvatar},
		{"avatar too large", func(st network.Stream) {
			_ = wire.WriteMsg(st, &pb.Profile{Version: 1, Avatar: make([]byte, profile.MaxAvatarBytes+1), AvatarType: profile.TypePNG}, profile.MaxFrameSize)
		}, profile.ErrBadAvatar},
		{"frame too large", func(st network.Stream) {
			_, _ = st.Write([]byte{0xff, 0xff, 0xff, 0x01})
		}, wire.ErrTooLarge},
		{"terminal escape in name", func(st network.Stream) {
			_ = wire.WriteMsg(st, &pb.Profile{Version: 1, Name: "\x1b]0;pwned\x07"}, profile.MaxFrameSize)
		}, wire.ErrInvalid},
		{"status too long", func(st network.Stream) {
			_ = wire.WriteMsg(st, &pb.Profile{Version: 1, Status: strings.Repeat("s", profile.MaxStatusBytes+1)}, profile.MaxFrameSize)
		}, wire.ErrInvalid},
		{"garbage", func(st network.Stream) { _, _ = st.Write([]byte{0x02, 0xff, 0xff}) }, wire.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			liar.SetStreamHandler(profile.ID, func(st network.Stream) {
				var req pb.Request
				_ = wire.ReadMsg(st, &req, 64)
				tc.send(st)
				_ = st.Close()
			})
			_, err := profile.Fetch(context.Background(), hs[1], liar.ID())
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	mn, err := mocknet.WithNPeers(2)
	require.NoError(t, err)
	defer mn.Close()
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	s := profile.New(mn.Hosts()[0], &owner{})
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	_, err = profile.Fetch(context.Background(), mn.Hosts()[1], mn.Hosts()[0].ID())
	require.Error(t, err)
}

// slowOwner allows everyone and holds every profile read until released.
type slowOwner struct {
	entered chan struct{}
	release chan struct{}
}

func (o slowOwner) Allow(context.Context, peer.ID) bool { return true }

func (o slowOwner) Profile(context.Context) (profile.Profile, error) {
	o.entered <- struct{}{}
	<-o.release
	return profile.Profile{Name: "late"}, nil
}

// Close waits for the fetch in flight before it returns.
func TestCloseWaitsForHandler(t *testing.T) {
	mn, err := mocknet.FullMeshConnected(2)
	require.NoError(t, err)
	defer mn.Close()
	hs := mn.Hosts()
	o := slowOwner{entered: make(chan struct{}, 1), release: make(chan struct{})}
	s := profile.New(hs[0], o)
	fetched := make(chan error, 1)
	go func() {
		_, err := profile.Fetch(context.Background(), hs[1], hs[0].ID())
		fetched <- err
	}()
	<-o.entered
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
	close(o.release)
	<-closed
	<-fetched
}
