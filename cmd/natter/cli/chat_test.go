package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/cmd/natter/cli"
	"github.com/natterim/natter/node"
	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/identity"
)

// startNode runs an in-process daemon on a fresh data dir (loopback only).
func startNode(t *testing.T, name string) (*node.Node, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	code, _, errOut := run(t, "init", "--data-dir", dir, "--name", name, "--no-passphrase")
	require.Equal(t, 0, code, errOut)
	return nodeOn(t, dir), dir
}

// nodeOn runs an in-process daemon (loopback, TCP) on an initialised dir.
func nodeOn(t *testing.T, dir string) *node.Node {
	t.Helper()
	sk, err := identity.Load(dir, nil)
	require.NoError(t, err)
	cfg := node.DefaultConfig()
	cfg.DataDir = dir
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Transports = []string{"tcp"}
	cfg.NATPortMap, cfg.DHT = false, false
	n, err := node.New(context.Background(), cfg, sk)
	require.NoError(t, err)
	t.Cleanup(func() { n.Close() })
	return n
}

func runIn(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var o, e bytes.Buffer
	code := cli.Run(args, strings.NewReader(stdin), &o, &e)
	return code, o.String(), e.String()
}

func TestChatCommands(t *testing.T) {
	a, dirA := startNode(t, "alice")
	b, dirB := startNode(t, "bob")
	a.Host().Peerstore().AddAddrs(b.ID(), b.Host().Addrs(), peerstore.PermanentAddrTTL)
	b.Host().Peerstore().AddAddrs(a.ID(), a.Host().Addrs(), peerstore.PermanentAddrTTL)
	code, out, errOut := run(t, "contacts", "add", b.ID().String(), "--name", "bob", "--note", "hi, Alice here", "--data-dir", dirA)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "pending")
	// Bob sees the request and accepts it.
	require.Eventually(t, func() bool {
		code, out, _ := run(t, "contacts", "list", "--json", "--data-dir", dirB)
		var cs []control.Contact
		return code == 0 && json.Unmarshal([]byte(out), &cs) == nil && len(cs) == 1 &&
			cs[0].State == control.StatePendingIn && cs[0].Note == "hi, Alice here"
	}, 20*time.Second, 50*time.Millisecond)
	code, out, errOut = run(t, "contacts", "accept", a.ID().String(), "--name", "alice", "--data-dir", dirB)
	require.Equal(t, 0, code, errOut)
	require.True(t, strings.HasPrefix(out, "accepted alice"), out)
	require.Eventually(t, func() bool {
		code, out, _ := run(t, "contacts", "list", "--json", "--data-dir", dirA)
		var cs []control.Contact
		return code == 0 && json.Unmarshal([]byte(out), &cs) == nil && len(cs) == 1 && cs[0].State == control.StateAccepted
	}, 20*time.Second, 50*time.Millisecond)

	code, out, errOut = run(t, "send", "bob", "hello", "there", "--wait", "--timeout", "30s", "--data-dir", dirA)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `^[0-9a-f-]{36} delivered \(direct\)\n$`, out)
	id := strings.Fields(out)[0]

	code, out, errOut = runIn(t, "from stdin\nsecond line\n", "send", "bob", "--data-dir", dirA)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `^[0-9a-f-]{36}\n$`, out)
	code, _, errOut = run(t, "nudge", "bob", "--data-dir", dirA)
	require.Equal(t, 0, code, errOut)

	var hist []map[string]any
	require.Eventually(t, func() bool {
		code, out, _ := run(t, "history", "alice", "--json", "--data-dir", dirB)
		return code == 0 && json.Unmarshal([]byte(out), &hist) == nil && len(hist) == 3
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, id, hist[0]["id"])
	require.Equal(t, a.ID().String(), hist[0]["from"])
	require.Equal(t, "hello there", hist[0]["text"])
	require.Equal(t, "delivered", hist[0]["status"])
	require.NotEmpty(t, hist[0]["sent_at"])
	require.Equal(t, "from stdin\nsecond line", hist[1]["text"])
	require.Equal(t, "nudge", hist[2]["kind"])

	code, out, errOut = run(t, "history", "alice", "--data-dir", dirB)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "alice: hello there")
	require.Contains(t, out, "*** nudge ***")
	code, out, errOut = run(t, "history", "alice", "--before", hist[1]["id"].(string), "--json", "--data-dir", dirB)
	require.Equal(t, 0, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &hist))
	require.Len(t, hist, 1)
	require.Equal(t, id, hist[0]["id"])

	code, out, errOut = run(t, "search", "stdin", "--data-dir", dirB)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "alice -> me: from stdin")
	code, out, errOut = run(t, "search", "nothing-like-this", "--data-dir", dirB)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "no matches\n", out)

	code, out, errOut = run(t, "read", "alice", "--data-dir", dirB)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "marked 3 read (a read receipt is on its way)\n", out)
	require.Eventually(t, func() bool {
		code, out, _ := run(t, "history", "bob", "--json", "--data-dir", dirA)
		var h []control.Message
		return code == 0 && json.Unmarshal([]byte(out), &h) == nil && len(h) == 3 && h[0].Status == control.StatusRead
	}, 30*time.Second, 50*time.Millisecond)
	code, out, errOut = run(t, "contacts", "receipts", "alice", "off", "--data-dir", dirB)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "read receipts for alice")

	// Bad input: one line, non-zero exit, nothing sent.
	for _, tc := range []struct {
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"bad \xff\xfe", []string{"send", "bob"}, 1, "not valid UTF-8"},
		{"", []string{"send", "bob", "bad \xff"}, 1, "not valid UTF-8"},
		{"\n", []string{"send", "bob"}, 2, "empty"},
		{strings.Repeat("x", 70_000), []string{"send", "bob"}, 1, "longer than"},
		{"", []string{"send", "nobody", "hi"}, 1, `no contact "nobody"`},
		{"", []string{"send"}, 2, "requires at least 1 arg"},
		{"", []string{"history", "bob", "--before", "zzz"}, 2, "not a message id"},
		{"", []string{"history", "bob", "--limit", "0"}, 2, "--limit"},
		{"", []string{"search", "  "}, 1, "at least one word"},
		{"", []string{"contacts", "receipts", "bob", "maybe"}, 2, "not on, off or default"},
		{"", []string{"send", "bob", "x", "--wait", "--timeout", "1h"}, 2, "--timeout"},
	} {
		code, _, errOut := runIn(t, tc.stdin, append(tc.args, "--data-dir", dirA)...)
		oneLineErr(t, code, errOut, tc.code, tc.want)
	}
	code, out, _ = run(t, "history", "bob", "--json", "--data-dir", dirA)
	require.Equal(t, 0, code)
	require.NoError(t, json.Unmarshal([]byte(out), &hist))
	require.Len(t, hist, 3, "refused sends left nothing behind")
}
