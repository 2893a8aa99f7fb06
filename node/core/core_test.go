package core_test

import (
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
)

// TestErrorKinds: a kind is found with errors.Is, the cause stays
// reachable, and the message is the cause's alone.
func TestErrorKinds(t *testing.T) {
	cause := errors.New("no such contact: bob")
	for _, tc := range []struct {
		wrap func(error) error
		kind error
	}{
		{core.Invalid, core.ErrInvalid},
		{core.NotFound, core.ErrNotFound},
		{core.Conflict, core.ErrConflict},
		{core.Unavailable, core.ErrUnavailable},
		{core.Upstream, core.ErrUpstream},
		{core.DiskFull, core.ErrDiskFull},
	} {
		err := tc.wrap(cause)
		require.ErrorIs(t, err, tc.kind)
		require.ErrorIs(t, err, cause)
		require.Equal(t, cause.Error(), err.Error())
		require.NotErrorIs(t, err, core.ErrClosed)
	}
}

func TestTransportAndPath(t *testing.T) {
	for addr, want := range map[string]string{
		"/ip4/11.0.0.2/tcp/4001":         "tcp",
		"/ip4/11.0.0.2/udp/4001/quic-v1": "quic",
		"/ip4/11.0.0.2/tcp/4001/p2p/12D3KooWEHwhV2KAcYjMSasufWxNxkvmPC68a3tWwm9AYHfSaUPE/p2p-circuit": "relay",
		"/ip4/11.0.0.2/udp/4001/webrtc-direct":                                                        "other",
	} {
		a, err := ma.NewMultiaddr(addr)
		if err != nil {
			continue // a protocol this go-multiaddr does not know
		}
		require.Equal(t, want, core.Transport(a), addr)
		require.Equal(t, want == "relay", core.IsCircuit(a), addr)
	}
	require.Equal(t, "none", core.PathNone.String())
	require.Equal(t, "relayed", core.PathRelayed.String())
	require.Equal(t, "direct", core.PathDirect.String())
	require.Less(t, core.PathRelayed, core.PathDirect, "BestPath relies on the order")
}

// TestCanChat: only accepted contacts can be written to; the others are a
// conflict that says why.
func TestCanChat(t *testing.T) {
	c := store.Contact{Name: "bob", State: store.StateAccepted}
	require.NoError(t, core.CanChat(c))
	for state, says := range map[store.ContactState]string{
		store.StatePendingOut: "has not accepted",
		store.StatePendingIn:  "accept first",
		store.StateBlocked:    "blocked",
	} {
		c.State = state
		err := core.CanChat(c)
		require.ErrorIs(t, err, core.ErrConflict, state)
		require.Contains(t, err.Error(), says)
	}
}

// TestPeerWatch: Fire closes the channel Changed handed out for that peer
// only, and the next Changed is a fresh, open one.
func TestPeerWatch(t *testing.T) {
	var w core.PeerWatch
	a, b := peer.ID("a"), peer.ID("b")
	ca, cb := w.Changed(a), w.Changed(b)
	require.Equal(t, ca, w.Changed(a), "one channel per peer until it fires")
	w.Fire(a)
	select {
	case <-ca:
	default:
		t.Fatal("Fire(a) left a's channel open")
	}
	select {
	case <-cb:
		t.Fatal("Fire(a) closed b's channel")
	default:
	}
	select {
	case <-w.Changed(a):
		t.Fatal("a's next channel is already closed")
	default:
	}
	w.Fire(peer.ID("nobody waits")) // no channel: nothing to do
}
