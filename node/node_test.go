package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/identity"
	"github.com/natterim/natter/node/invite"
	"github.com/natterim/natter/node/store"
)

// testConfig is a loopback-only node without rendezvous servers.
func testConfig(t *testing.T) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	cfg.NATPortMap = false
	cfg.DHT = false
	cfg.Heartbeat = time.Second
	return cfg
}

func newTestNode(t *testing.T, cfg Config, name string) *Node {
	t.Helper()
	sk, err := identity.Generate()
	require.NoError(t, err)
	return startTestNode(t, cfg, sk, name)
}

func startTestNode(t *testing.T, cfg Config, sk crypto.PrivKey, name string) *Node {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(cfg.DataDir, store.FileName))
	require.NoError(t, err)
	require.NoError(t, st.SetSetting(ctx, store.SettingName, name))
	require.NoError(t, st.Close())
	n, err := New(ctx, cfg, sk)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, n.Close()) })
	return n
}

func apiClient(n *Node) *control.Client { return control.NewClient(n.socketPath()) }

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = "/x"
	require.NoError(t, cfg.Validate())

	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no data dir", func(c *Config) { c.DataDir = "" }, "data_dir"},
		{"bad listen", func(c *Config) { c.Listen = []string{"/ip4/1.2.3.4/tcpx/1"} }, "listen"},
		{"bad transport", func(c *Config) { c.Transports = []string{"udp"} }, "transports"},
		{"rendezvous without /p2p", func(c *Config) { c.Rendezvous = []string{"/ip4/1.2.3.4/tcp/4001"} }, "must end in /p2p/"},
		{"rendezvous garbage", func(c *Config) { c.Rendezvous = []string{"hello"} }, "rendezvous"},
		{"ttl", func(c *Config) { c.RegistrationTTL = time.Second }, "registration_ttl"},
		{"heartbeat", func(c *Config) { c.Heartbeat = 0 }, "heartbeat"},
		{"retry", func(c *Config) { c.DirectRetryMax = time.Second }, "direct_retry"},
		{"control tcp not loopback", func(c *Config) { c.Control.TCPListen = "0.0.0.0:7420" }, "loopback"},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, "log_level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.DataDir = "/x"
			tc.edit(&c)
			err := c.Validate()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestNewBadInput(t *testing.T) {
	sk, err := identity.Generate()
	require.NoError(t, err)
	cfg := testConfig(t)
	cfg.DataDir = filepath.Join(t.TempDir(), "missing")
	_, err = New(context.Background(), cfg, sk)
	require.ErrorContains(t, err, "natter init")

	// A second daemon on the same data dir.
	cfg = testConfig(t)
	startTestNode(t, cfg, sk, "a")
	_, err = New(context.Background(), cfg, sk)
	require.ErrorIs(t, err, ErrAlreadyRunning)
}

func TestAPIContacts(t *testing.T) {
	n := newTestNode(t, testConfig(t), "alice")
	c := apiClient(n)
	ctx := context.Background()

	fi, err := os.Stat(n.socketPath())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "control socket must be owner-only")

	id, err := c.ID(ctx)
	require.NoError(t, err)
	require.Equal(t, n.ID().String(), id.PeerID)
	inv, err := invite.Parse(id.Invite)
	require.NoError(t, err)
	require.Equal(t, n.ID(), inv.Peer)
	require.Equal(t, "alice", inv.Name)

	other, err := identity.Generate()
	require.NoError(t, err)
	otherID, err := peerIDOf(other)
	require.NoError(t, err)
	third, err := identity.Generate()
	require.NoError(t, err)
	thirdID, err := peerIDOf(third)
	require.NoError(t, err)

	added, err := c.AddContact(ctx, control.AddContactRequest{Target: otherID.String(), Name: "bob"})
	require.NoError(t, err)
	require.Equal(t, "bob", added.Name)
	// By invite: the name comes from the invite.
	added, err = c.AddContact(ctx, control.AddContactRequest{Target: invite.Invite{Peer: thirdID, Name: "carol"}.String()})
	require.NoError(t, err)
	require.Equal(t, "carol", added.Name)

	for _, tc := range []struct {
		req  control.AddContactRequest
		code int
		msg  string
	}{
		{control.AddContactRequest{Target: otherID.String()}, http.StatusConflict, "already a contact"},
		{control.AddContactRequest{Target: n.ID().String()}, http.StatusBadRequest, "own peer ID"},
		{control.AddContactRequest{Target: "not a peer!"}, http.StatusBadRequest, "neither a peer ID, an invite (natter:...) nor a directory name"},
		// A valid directory name, but no rendezvous to ask.
		{control.AddContactRequest{Target: "not-a-peer"}, http.StatusServiceUnavailable, "not connected to any rendezvous server"},
		{control.AddContactRequest{Target: "natter:garbage"}, http.StatusBadRequest, "invalid invite"},
		{control.AddContactRequest{Target: thirdID.String()[:10]}, http.StatusBadRequest, "neither"},
	} {
		_, err := c.AddContact(ctx, tc.req)
		var ae *control.APIError
		require.True(t, errors.As(err, &ae), "%v", err)
		require.Equal(t, tc.code, ae.Code, ae.Message)
		require.Contains(t, ae.Message, tc.msg)
	}

	cs, err := c.Contacts(ctx)
	require.NoError(t, err)
	require.Len(t, cs, 2)

	st, err := c.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, "alice", st.Name)
	require.Len(t, st.Contacts, 2)
	for _, cs := range st.Contacts {
		require.Equal(t, control.PathNone, cs.Path)
		require.False(t, cs.Connected)
	}

	// Ping: unknown contact is 404, an unconnected one 503.
	_, err = c.Ping(ctx, "nobody")
	var ae *control.APIError
	require.True(t, errors.As(err, &ae))
	require.Equal(t, http.StatusNotFound, ae.Code)
	_, err = c.Ping(ctx, "bob")
	require.True(t, errors.As(err, &ae))
	require.Equal(t, http.StatusServiceUnavailable, ae.Code)

	require.NoError(t, c.RemoveContact(ctx, "BOB")) // names are case-insensitive
	require.NoError(t, c.RemoveContact(ctx, thirdID.String()))
	cs, err = c.Contacts(ctx)
	require.NoError(t, err)
	require.Empty(t, cs)
	err = c.RemoveContact(ctx, "bob")
	require.True(t, errors.As(err, &ae))
	require.Equal(t, http.StatusNotFound, ae.Code)
}

// TestDirectLinkLoopback: two nodes that know each other's addresses keep
// a direct link, report it truthfully, ping over it and announce it.
func TestDirectLinkLoopback(t *testing.T) {
	a := newTestNode(t, testConfig(t), "alice")
	b := newTestNode(t, testConfig(t), "bob")
	ctx := context.Background()
	ca, cb := apiClient(a), apiClient(b)

	events, err := ca.Stream(ctx, "/events")
	require.NoError(t, err)
	defer events.Close()

	// No rendezvous here: teach each the other's addresses directly.
	a.Host().Peerstore().AddAddrs(b.ID(), b.Host().Addrs(), peerstore.PermanentAddrTTL)
	b.Host().Peerstore().AddAddrs(a.ID(), a.Host().Addrs(), peerstore.PermanentAddrTTL)
	_, err = ca.AddContact(ctx, control.AddContactRequest{Target: b.ID().String(), Name: "bob"})
	require.NoError(t, err)
	_, err = cb.AddContact(ctx, control.AddContactRequest{Target: a.ID().String(), Name: "alice"})
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		st, err := ca.Status(ctx)
		return err == nil && len(st.Contacts) == 1 && st.Contacts[0].Path == control.PathDirect
	}, 20*time.Second, 50*time.Millisecond)
	st, err := ca.Status(ctx)
	require.NoError(t, err)
	c := st.Contacts[0]
	require.True(t, c.Connected)
	require.Equal(t, "bob", c.Name)
	require.True(t, strings.HasPrefix(c.RemoteAddr, "/ip4/127.0.0.1/"), c.RemoteAddr)
	require.False(t, c.DirectSince.IsZero())

	r, err := ca.Ping(ctx, "bob")
	require.NoError(t, err)
	require.Equal(t, control.PathDirect, r.Path)
	require.Greater(t, r.RTTMillis, 0.0)

	// The event stream said hello, then announced the direct link.
	dec := newEventReader(events)
	e, err := dec.next()
	require.NoError(t, err)
	require.Equal(t, control.EventHello, e.Type)
	for {
		e, err = dec.next()
		require.NoError(t, err)
		if e.Type == control.EventLink && e.Path == control.PathDirect {
			require.Equal(t, b.ID().String(), e.PeerID)
			require.Equal(t, "bob", e.Name)
			break
		}
	}

	// Removing the contact stops its link. (Both asked, so both end up
	// accepted; removing it while a's request is still pending_out would
	// withdraw it, and b's own request could then arrive as a new one.)
	waitState(t, a, b, control.StateAccepted)
	waitState(t, b, a, control.StateAccepted)
	require.NoError(t, ca.RemoveContact(ctx, "bob"))
	_, linked := a.p2p.LinkState(b.ID())
	require.False(t, linked, "the link to a removed contact must stop")
	st, err = ca.Status(ctx)
	require.NoError(t, err)
	require.Empty(t, st.Contacts)
}

func peerIDOf(sk crypto.PrivKey) (peer.ID, error) { return peer.IDFromPrivateKey(sk) }

type eventReader struct{ sc *bufio.Scanner }

func newEventReader(r io.Reader) *eventReader { return &eventReader{sc: bufio.NewScanner(r)} }

func (r *eventReader) next() (control.Event, error) {
	var e control.Event
	if !r.sc.Scan() {
		if r.sc.Err() != nil {
			return e, r.sc.Err()
		}
		return e, io.EOF
	}
	return e, json.Unmarshal(r.sc.Bytes(), &e)
}
