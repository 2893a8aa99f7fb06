package links_test

import (
	"context"
	"errors"
	"testing"
	"time"

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

// TestTransportRedialer: a rendezvous session that lacks a transport
// dials the server again after a delay that grows, until the transport is
// back, at most TransportRedialAttempts times in a row; a transport lost
// mid-session is redialled too.
func TestTransportRedialer(t *testing.T) {
	want := []string{"quic", "tcp"}
	const first = 10 * time.Second
	both, tcp, quic := []string{"quic", "tcp"}, []string{"tcp"}, []string{"quic"}
	errLost := errors.New("connection to rendezvous lost")
	for _, tc := range []struct {
		name  string
		start []string // what the session has when it starts
		// at step lostAt (if > 0) the host is down to lost
		lostAt int
		lost   []string
		// the missing transport is back after that many redials (-1:
		// never)
		backAfter int
		dialErr   error
		wantDials int
		wantErr   error
	}{
		{"both at once: nothing to do", both, 0, nil, -1, nil, 0, nil},
		{"quic failed at start, comes at the first redial", tcp, 0, nil, 1, nil, 1, nil},
		{"tcp failed at start, comes at the third redial", quic, 0, nil, 3, nil, 3, nil},
		{"tcp lost mid-session comes back", both, 3, quic, 1, nil, 1, nil},
		{"quic never comes: bounded", tcp, 0, nil, -1, nil, links.TransportRedialAttempts, nil},
		{"the redial loses the server", tcp, 0, nil, -1, errLost, 1, errLost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := links.NewTransportRedialer(want, first)
			now := time.Unix(1_700_000_000, 0)
			have, dials := tc.start, 0
			redial := func() error {
				dials++
				if tc.backAfter >= 0 && dials >= tc.backAfter {
					have = both
				}
				return tc.dialErr
			}
			var (
				next    time.Time
				lastGap time.Duration
				err     error
			)
			for step := 1; step <= 50 && err == nil; step++ {
				if step == tc.lostAt {
					have, dials = tc.lost, 0
				}
				next, _, err = r.Step(now, func() []string { return have }, redial)
				if next.IsZero() {
					now = now.Add(time.Hour) // nothing planned: time passes
					continue
				}
				gap := next.Sub(now)
				require.GreaterOrEqual(t, gap, first/2, "never sooner than half the first delay")
				require.GreaterOrEqual(t, gap, lastGap/2, "the delay grows (jitter aside)")
				lastGap, now = gap, next
			}
			require.ErrorIs(t, err, tc.wantErr)
			require.Equal(t, tc.wantDials, dials, "redials")
			require.True(t, next.IsZero(), "no redial planned at the end")
			if tc.backAfter >= 0 && tc.wantErr == nil {
				require.Equal(t, both, have)
			}
		})
	}
}
