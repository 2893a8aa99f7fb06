package cli_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
)

// TestChatPreflight: natter chat says what is wrong in one line before it
// takes over the terminal.
func TestChatPreflight(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	code, _, errOut := run(t, "init", "--data-dir", dir, "--name", "alice", "--no-passphrase")
	require.Equal(t, 0, code, errOut)

	code, _, errOut = run(t, "chat", "--data-dir", dir)
	oneLineErr(t, code, errOut, 1, "no natter daemon is running on data dir "+dir)
	require.Contains(t, errOut, "natter daemon --data-dir "+dir)
	require.Contains(t, errOut, "natter chat --start")
	code, _, errOut = run(t, "chat", "--data-dir", filepath.Join(t.TempDir(), "missing"))
	oneLineErr(t, code, errOut, 1, "natter init")
	code, _, errOut = run(t, "chat", "a", "b", "--data-dir", dir)
	oneLineErr(t, code, errOut, 2, "accepts at most 1 arg")

	nodeOn(t, dir)
	code, _, errOut = run(t, "chat", "zed", "--data-dir", dir)
	oneLineErr(t, code, errOut, 1, `no contact "zed"`)
	// Everything is fine but this is no terminal.
	code, _, errOut = run(t, "chat", "--data-dir", dir)
	oneLineErr(t, code, errOut, 1, "needs a terminal")

	// The daemon's flags are there for --start.
	code, out, _ := run(t, "chat", "--help")
	require.Equal(t, 0, code)
	for _, f := range []string{"--start", "--rendezvous", "--config", "--passphrase-file", "--control-tcp-listen"} {
		require.Contains(t, out, f)
	}
}

// TestJSONEverywhere: every command that talks to the daemon can print
// its answer as JSON for scripts.
func TestJSONEverywhere(t *testing.T) {
	a, dirA := startNode(t, "alice")
	b, dirB := startNode(t, "bob")
	a.Host().Peerstore().AddAddrs(b.ID(), b.Host().Addrs(), peerstore.PermanentAddrTTL)
	b.Host().Peerstore().AddAddrs(a.ID(), a.Host().Addrs(), peerstore.PermanentAddrTTL)

	jsonOut := func(v any, args ...string) {
		t.Helper()
		code, out, errOut := run(t, args...)
		require.Equal(t, 0, code, "%v: %s", args, errOut)
		require.NoError(t, json.Unmarshal([]byte(out), v), "%v printed %q", args, out)
	}
	var id control.Identity
	jsonOut(&id, "id", "--json", "--data-dir", dirA)
	require.Equal(t, a.ID().String(), id.PeerID)
	require.True(t, strings.HasPrefix(id.Invite, "natter:"))

	var c control.Contact
	jsonOut(&c, "contacts", "add", b.ID().String(), "--name", "bob", "--json", "--data-dir", dirA)
	require.Equal(t, control.StatePendingOut, c.State)
	require.Equal(t, "bob", c.Name)
	require.Eventually(t, func() bool {
		var cs []control.Contact
		code, out, _ := run(t, "contacts", "--json", "--data-dir", dirB)
		return code == 0 && json.Unmarshal([]byte(out), &cs) == nil && len(cs) == 1 && cs[0].State == control.StatePendingIn
	}, 20*time.Second, 50*time.Millisecond)
	jsonOut(&c, "contacts", "accept", a.ID().String(), "--name", "alice", "--json", "--data-dir", dirB)
	require.Equal(t, control.StateAccepted, c.State)
	require.Eventually(t, func() bool {
		var cs []control.Contact
		code, out, _ := run(t, "contacts", "list", "--json", "--data-dir", dirA)
		return code == 0 && json.Unmarshal([]byte(out), &cs) == nil && len(cs) == 1 && cs[0].State == control.StateAccepted
	}, 20*time.Second, 50*time.Millisecond)

	var m control.Message
	jsonOut(&m, "send", "bob", "hi", "--wait", "--timeout", "30s", "--json", "--data-dir", dirA)
	require.Equal(t, "hi", m.Text)
	require.Equal(t, control.StatusDelivered, m.Status)
	require.Equal(t, "direct", m.Via)
	jsonOut(&m, "nudge", "bob", "--json", "--data-dir", dirA)
	require.Equal(t, control.KindNudge, m.Kind)

	require.Eventually(t, func() bool {
		ms, err := control.NewClient(control.SocketPath(dirB)).History(t.Context(), "alice", "", 10)
		return err == nil && len(ms) == 2
	}, 20*time.Second, 50*time.Millisecond)
	var r control.ReadResult
	jsonOut(&r, "read", "alice", "--json", "--data-dir", dirB)
	require.Equal(t, control.ReadResult{Marked: 2, Receipts: true}, r)

	var p control.PingResult
	jsonOut(&p, "ping", "bob", "--json", "--data-dir", dirA)
	require.Equal(t, b.ID().String(), p.PeerID)
	require.Equal(t, control.PathDirect, p.Path)

	var st control.Status
	jsonOut(&st, "presence", "busy", "--message", "in a meeting", "--json", "--data-dir", dirA)
	require.Equal(t, control.PresenceBusy, st.Presence)
	require.Equal(t, "in a meeting", st.StatusMessage)

	jsonOut(&c, "contacts", "receipts", "bob", "off", "--json", "--data-dir", dirA)
	require.NotNil(t, c.ReadReceipts)
	require.False(t, *c.ReadReceipts)
	jsonOut(&c, "contacts", "block", "bob", "--json", "--data-dir", dirA)
	require.Equal(t, control.StateBlocked, c.State)
	jsonOut(&c, "contacts", "remove", "bob", "--json", "--data-dir", dirA)
	require.Equal(t, b.ID().String(), c.PeerID)
	var cs []control.Contact
	jsonOut(&cs, "contacts", "list", "--json", "--data-dir", dirA)
	require.Empty(t, cs)

	// Errors stay one line on stderr, JSON or not.
	code, out, errOut := run(t, "contacts", "reject", "nobody", "--json", "--data-dir", dirA)
	oneLineErr(t, code, errOut, 1, `no contact "nobody"`)
	require.Empty(t, out)
}

// TestDaemonControlTCPLoopback: the daemon refuses to serve its control
// API on anything but loopback, in one line.
func TestDaemonControlTCPLoopback(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	code, _, errOut := run(t, "init", "--data-dir", dir, "--name", "alice", "--no-passphrase")
	require.Equal(t, 0, code, errOut)
	code, _, errOut = run(t, "daemon", "--data-dir", dir, "--control-tcp-listen", "0.0.0.0:7420")
	oneLineErr(t, code, errOut, 1, "control.tcp_listen: 0.0.0.0 is not a loopback address")
}
