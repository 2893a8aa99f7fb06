package invite_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/test"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/invite"
)

func TestRoundTrip(t *testing.T) {
	me, _ := test.RandPeerID()
	rdv, _ := test.RandPeerID()
	inv := invite.Invite{
		Peer: me,
		Rendezvous: []peer.AddrInfo{{ID: rdv, Addrs: []ma.Multiaddr{
			ma.StringCast("/ip4/11.0.0.1/tcp/4001"), ma.StringCast("/ip4/11.0.0.1/udp/4001/quic-v1"),
		}}},
		Name: "Zoë & co",
	}
	s := inv.String()
	require.True(t, invite.IsInvite(s))
	got, err := invite.Parse("  " + s + "\n")
	require.NoError(t, err)
	require.Equal(t, me, got.Peer)
	require.Equal(t, "Zoë & co", got.Name)
	require.Len(t, got.Rendezvous, 1)
	require.Equal(t, rdv, got.Rendezvous[0].ID)
	require.Len(t, got.Rendezvous[0].Addrs, 2)

	bare, err := invite.Parse("natter:" + me.String())
	require.NoError(t, err)
	require.Empty(t, bare.Rendezvous)
}

func TestParseRejects(t *testing.T) {
	me, _ := test.RandPeerID()
	id := me.String()
	for name, s := range map[string]string{
		"no scheme":        id,
		"bad peer":         "natter:notapeer",
		"bad multiaddr":    "natter:" + id + "?r=/ip4/999.1.1.1/tcp/1/p2p/" + id,
		"no p2p component": "natter:" + id + "?r=/ip4/1.1.1.1/tcp/1",
		"unknown field":    "natter:" + id + "?x=1",
		"control in name":  "natter:" + id + "?n=a%00b",
		"too long":         "natter:" + id + "?n=" + strings.Repeat("a", invite.MaxLen),
		"too many rdv":     "natter:" + id + strings.Repeat("&r=/ip4/1.1.1.1/tcp/1/p2p/"+id, 9),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := invite.Parse(s)
			require.ErrorIs(t, err, invite.ErrInvalid)
		})
	}
}

func FuzzParse(f *testing.F) {
	me, _ := test.RandPeerID()
	f.Add("natter:" + me.String() + "?r=/ip4/1.2.3.4/tcp/4001/p2p/" + me.String() + "&n=bob")
	f.Add("natter:")
	f.Add("natter:" + me.String() + "?r=%zz")
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := invite.Parse(s)
		if err != nil {
			return
		}
		again, err := invite.Parse(inv.String())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", inv.String(), err)
		}
		if again.Peer != inv.Peer || again.Name != inv.Name {
			t.Fatalf("round trip changed the invite")
		}
		if !slices.Equal(rendezvousSet(again), rendezvousSet(inv)) {
			t.Fatalf("round trip changed the rendezvous servers: %v, then %v", inv.Rendezvous, again.Rendezvous)
		}
		if len(inv.Rendezvous) > invite.MaxRendezvous || len(inv.Name) > invite.MaxNameLen {
			t.Fatalf("accepted over the limits: %d servers, name of %d bytes", len(inv.Rendezvous), len(inv.Name))
		}
	})
}

// rendezvousSet lists an invite's servers as sorted "id addr" strings.
func rendezvousSet(inv invite.Invite) []string {
	var out []string
	for _, ai := range inv.Rendezvous {
		for _, a := range ai.Addrs {
			out = append(out, ai.ID.String()+" "+a.String())
		}
		if len(ai.Addrs) == 0 {
			out = append(out, ai.ID.String())
		}
	}
	slices.Sort(out)
	return out
}
