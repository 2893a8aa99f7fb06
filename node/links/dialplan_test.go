package links_test

import (
	"context"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/identity"
	"github.com/natterim/natter/node/links"
)

func addrsOf(ds []network.AddrDelay) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Addr.String())
	}
	return out
}

// TestDialPlan: concurrent dial requests to a rendezvous each get one
// transport (so that go-libp2p keeps both connections), and contacts with
// relay addresses are dialled without libp2p's relay delay.
func TestDialPlan(t *testing.T) {
	sk, err := identity.Generate()
	require.NoError(t, err)
	rdv, err := peer.IDFromPrivateKey(sk)
	require.NoError(t, err)
	tcpA := ma.StringCast("/ip4/11.0.0.2/tcp/4001")
	quicA := ma.StringCast("/ip4/11.0.0.2/udp/4001/quic-v1")
	p := links.NewDialPlan([]peer.AddrInfo{{ID: rdv, Addrs: []ma.Multiaddr{tcpA, quicA}}})
	all := []ma.Multiaddr{tcpA, quicA}

	// Nothing queued: every address, at once.
	got := p.Rank(all)
	require.ElementsMatch(t, []string{tcpA.String(), quicA.String()}, addrsOf(got))
	for _, d := range got {
		require.Zero(t, d.Delay)
	}

	p.Expect(rdv, []string{"tcp", "quic"})
	require.Equal(t, []string{tcpA.String()}, addrsOf(p.Rank(all)))
	require.Equal(t, []string{quicA.String()}, addrsOf(p.Rank(all)))
	require.Len(t, p.Rank(all), 2, "queue drained: back to every address")

	// A queued transport the server has no address for: every address.
	p.Expect(rdv, []string{"webrtc"})
	require.Len(t, p.Rank(all), 2)

	// A contact reachable through a relay: all addresses without delay.
	circuit := ma.StringCast("/ip4/11.0.0.2/tcp/4001/p2p/" + rdv.String() + "/p2p-circuit")
	direct := ma.StringCast("/ip4/11.0.0.9/tcp/5555")
	for _, d := range p.Rank([]ma.Multiaddr{direct, circuit}) {
		require.Zero(t, d.Delay, d.Addr)
	}
	// Anyone else: libp2p's default ranking.
	require.Len(t, p.Rank([]ma.Multiaddr{direct}), 1)
}

// TestConnectEachTransport: when go-libp2p hands every Connect the same
// connection (one came up before the others asked, or something else
// reached the server first), the rendezvous is dialled again until each
// transport has its own connection; a transport whose dial fails is not
// retried.
func TestConnectEachTransport(t *testing.T) {
	ts := []string{"quic", "tcp"}
	ctx := context.Background()
	errDial := errors.New("dial failed")
	for _, tc := range []struct {
		name        string
		results     [][]error  // what each attempt's Connects return
		have        [][]string // the transports after each attempt
		wantMissing []string
		wantResets  int
		wantErr     error
	}{
		{"both at once", [][]error{{nil, nil}}, [][]string{{"quic", "tcp"}}, nil, 0, nil},
		{"one connection shared, then both", [][]error{{nil, nil}, {nil, nil}}, [][]string{{"tcp"}, {"quic", "tcp"}}, nil, 1, nil},
		{"always one", [][]error{{nil, nil}, {nil, nil}, {nil, nil}}, [][]string{{"tcp"}, {"quic"}, {"tcp"}}, []string{"quic"}, 2, nil},
		{"quic blocked", [][]error{{errDial, nil}}, [][]string{{"tcp"}}, []string{"quic"}, 0, nil},
		{"server down", [][]error{{errDial, errDial}}, [][]string{nil}, nil, 0, errDial},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attempt, resets := 0, 0
			missing, err := links.ConnectEachTransport(ctx, ts, 3,
				func(context.Context) []error { attempt++; return tc.results[attempt-1] },
				func() []string { return tc.have[attempt-1] },
				func() { resets++ })
			require.ErrorIs(t, err, tc.wantErr)
			require.ElementsMatch(t, tc.wantMissing, missing)
			require.Equal(t, tc.wantResets, resets)
			require.Equal(t, len(tc.results), attempt, "attempts")
		})
	}
}
