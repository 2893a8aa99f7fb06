package node

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/rendezvous"
)

// startRdv runs a rendezvous server on loopback for node tests.
func startRdv(t *testing.T) *rendezvous.Server {
	t.Helper()
	cfg := rendezvous.DefaultConfig()
	dir, err := os.MkdirTemp("", "rdv") // short: the admin socket path is limited
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	cfg.DHT.Enabled = false
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := rendezvous.New(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// rdvNode is a test node using the given rendezvous servers, waiting until
// it is connected to all of them.
func rdvNode(t *testing.T, name string, servers ...*rendezvous.Server) *Node {
	t.Helper()
	cfg := testConfig(t)
	cfg.HolePunching = false // nothing to punch on loopback; dial at once
	for _, s := range servers {
		for _, a := range s.Addrs() {
			cfg.Rendezvous = append(cfg.Rendezvous, a.String())
		}
	}
	n := newTestNode(t, cfg, name)
	require.Eventually(t, func() bool { return len(n.connectedRdvs()) == len(servers) }, 20*time.Second, 20*time.Millisecond)
	return n
}

// namesRequests reads natter_names_requests_total{op,status} off a
// server's registry.
func namesRequests(t *testing.T, s *rendezvous.Server, op, status string) float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "natter_names_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["op"] == op && labels["status"] == status {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func contactByPeer(t *testing.T, n *Node, id string) (control.Contact, control.ContactStatus) {
	t.Helper()
	ctx := context.Background()
	cs, err := apiClient(n).Contacts(ctx)
	require.NoError(t, err)
	st, err := apiClient(n).Status(ctx)
	require.NoError(t, err)
	var c control.Contact
	var s control.ContactStatus
	for _, x := range cs {
		if x.PeerID == id {
			c = x
		}
	}
	for _, x := range st.Contacts {
		if x.PeerID == id {
			s = x
		}
	}
	return c, s
}

// TestNamesAcrossTwoRendezvous: names are claimed on every rendezvous,
// first come first served, looked up and verified from all of them,
// renewed on reconnection, and added as contacts; a name that moves to
// another key raises a warning and the contact keeps its key; servers
// that disagree make lookups fail.
func TestNamesAcrossTwoRendezvous(t *testing.T) {
	r1, r2 := startRdv(t), startRdv(t)
	bob := rdvNode(t, "bob", r1, r2)
	alice := rdvNode(t, "alice", r1, r2)
	carol := rdvNode(t, "carol", r1, r2)
	ctx := context.Background()
	ca, cb, cc := apiClient(alice), apiClient(bob), apiClient(carol)

	on, err := cb.RegisterName(ctx, "Bob-Smith")
	require.NoError(t, err)
	require.Equal(t, "bob-smith", on.Name)
	require.Len(t, on.Servers, 2)
	for _, s := range on.Servers {
		require.Equal(t, control.NameRegistered, s.State, s.Error)
		require.WithinDuration(t, time.Now().Add(30*24*time.Hour), s.ReleaseAt, time.Minute)
	}
	// First come, first served; look-alikes count.
	for _, n := range []string{"bob-smith", "bobsmith", "b0b.smith"} {
		_, err = cc.RegisterName(ctx, n)
		require.Equal(t, http.StatusConflict, apiCode(t, err), n)
		require.ErrorContains(t, err, "held by another key")
	}
	own, err := cc.Names(ctx)
	require.NoError(t, err)
	require.Empty(t, own, "a name refused everywhere is not kept")

	res, err := ca.LookupName(ctx, "BOB-SMITH")
	require.NoError(t, err)
	require.Equal(t, bob.ID().String(), res.PeerID)
	require.ElementsMatch(t, []string{r1.ID().String(), r2.ID().String()}, res.Servers)
	_, err = ca.LookupName(ctx, "nobody-here")
	require.Equal(t, http.StatusNotFound, apiCode(t, err))

	// Renewal when a rendezvous connection (re)opens: a fresh record.
	before := namesRequests(t, r1, "register", "ok")
	// A new connection to r1: the rendezvous link reconnects (a new
	// session) and wakes the names loop.
	session := bob.connectedRdvs()[r1.ID()]
	require.NoError(t, bob.Host().Network().ClosePeer(r1.ID()))
	require.Eventually(t, func() bool { return bob.connectedRdvs()[r1.ID()].After(session) }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return namesRequests(t, r1, "register", "ok") == before+1 }, 10*time.Second, 20*time.Millisecond)
	own, err = cb.Names(ctx)
	require.NoError(t, err)
	require.Len(t, own, 1)
	require.Equal(t, control.NameRegistered, own[0].Servers[0].State)

	// Alice adds Bob by name.
	added, err := ca.AddContact(ctx, control.AddContactRequest{Target: "bob-smith"})
	require.NoError(t, err)
	require.Equal(t, bob.ID().String(), added.PeerID)
	require.Equal(t, "bob-smith", added.DirName)
	require.Equal(t, "bob-smith", added.Name)
	waitPendingIn(t, bob, alice)
	_, err = cb.AcceptContact(ctx, alice.ID().String(), "alice")
	require.NoError(t, err)
	waitAccepted(t, alice, bob)

	// Bob gives the name up; Carol takes it. Alice's node notices, warns,
	// and keeps Bob's key.
	evA := subscribe(t, alice)
	rel, err := cb.ReleaseName(ctx, "bob-smith")
	require.NoError(t, err)
	for _, s := range rel.Servers {
		require.Equal(t, control.NameReleased, s.State, s.Error)
	}
	_, err = cc.RegisterName(ctx, "bob-smith")
	require.NoError(t, err)
	alice.social.RecheckNames(ctx)
	e := waitEvent(t, evA, func(e control.Event) bool { return e.Type == control.EventKeyChange })
	require.Equal(t, bob.ID().String(), e.PeerID)
	require.Contains(t, e.Warning, carol.ID().String())
	c, st := contactByPeer(t, alice, bob.ID().String())
	require.Equal(t, bob.ID().String(), c.PeerID, "never switched to the new key")
	require.Contains(t, c.Warning, "now points to another key")
	require.Contains(t, st.Warning, carol.ID().String())
	m, err := ca.Send(ctx, "bob-smith", control.SendRequest{Text: "still you?", Wait: "20s"})
	require.NoError(t, err)
	require.Equal(t, control.StatusDelivered, m.Status, "messages still go to the key alice added")
	// Adding the name again is refused: it would be a different person.
	_, err = ca.AddContact(ctx, control.AddContactRequest{Target: "bob-smith", Name: "other-bob"})
	require.Equal(t, http.StatusConflict, apiCode(t, err))
	require.ErrorContains(t, err, "remove the old contact first")

	// The same warning is not raised twice; it goes when the name points
	// back to Bob.
	alice.social.RecheckNames(ctx)
	_, err = cc.ReleaseName(ctx, "bob-smith")
	require.NoError(t, err)
	_, err = cb.RegisterName(ctx, "bob-smith")
	require.NoError(t, err)
	alice.social.RecheckNames(ctx)
	e = waitEvent(t, evA, func(e control.Event) bool { return e.Type == control.EventKeyChange })
	require.Empty(t, e.Warning, "cleared")
	c, _ = contactByPeer(t, alice, bob.ID().String())
	require.Empty(t, c.Warning)

	// Servers that disagree: Dave, on the second server only, holds
	// "sam"; Carol then gets it on the first one only.
	dave := rdvNode(t, "dave", r2)
	_, err = apiClient(dave).RegisterName(ctx, "sam")
	require.NoError(t, err)
	on, err = cc.RegisterName(ctx, "sam")
	require.NoError(t, err, "registered where it was free")
	states := map[string]string{}
	for _, s := range on.Servers {
		states[s.Server] = s.State
	}
	require.Equal(t, map[string]string{r1.ID().String(): control.NameRegistered, r2.ID().String(): control.NameTaken}, states)
	_, err = ca.LookupName(ctx, "sam")
	require.Equal(t, http.StatusConflict, apiCode(t, err))
	require.ErrorContains(t, err, "disagree")
	require.True(t, strings.Contains(err.Error(), carol.ID().String()) && strings.Contains(err.Error(), dave.ID().String()), err.Error())
	_, err = ca.AddContact(ctx, control.AddContactRequest{Target: "sam"})
	require.Equal(t, http.StatusConflict, apiCode(t, err))
}

func waitPendingIn(t *testing.T, n, from *Node) {
	t.Helper()
	require.Eventually(t, func() bool {
		c, err := n.store.ContactByPeer(context.Background(), from.ID())
		return err == nil && c.State == control.StatePendingIn
	}, 20*time.Second, 20*time.Millisecond)
}

// TestOwnNamesSurviveRestart: a registered name is renewed by the node
// after it restarts, without being asked again.
func TestOwnNamesSurviveRestart(t *testing.T) {
	r := startRdv(t)
	n := rdvNode(t, "bob", r)
	_, err := apiClient(n).RegisterName(context.Background(), "bob")
	require.NoError(t, err)
	cfg, key := n.cfg, n.key
	require.NoError(t, n.Close())
	before := namesRequests(t, r, "register", "ok")

	n2, err := New(context.Background(), cfg, key)
	require.NoError(t, err)
	t.Cleanup(func() { n2.Close() })
	require.Eventually(t, func() bool { return namesRequests(t, r, "register", "ok") > before }, 20*time.Second, 20*time.Millisecond)
	own, err := apiClient(n2).Names(context.Background())
	require.NoError(t, err)
	require.Len(t, own, 1)
	require.Equal(t, control.NameRegistered, own[0].Servers[0].State)
}
