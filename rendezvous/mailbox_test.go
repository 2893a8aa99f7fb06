package rendezvous_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/protocols/mailbox"
	"github.com/natterim/natter/protocols/mailbox/seal"
	rdvproto "github.com/natterim/natter/protocols/rendezvous"
	"github.com/natterim/natter/rendezvous"
)

// TestMailboxAcrossRestart: a registered node has a mailbox; a contact's
// deposit survives a restart of the server; the operator sees counts and
// sizes; no file in the data dir holds the message.
func TestMailboxAcrossRestart(t *testing.T) {
	cfg := testConfig(t)
	cfg.MetricsListen = "127.0.0.1:0"
	s, err := rendezvous.New(context.Background(), cfg, rendezvous.WithLogger(testLogger()))
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			s.Close()
		}
	})
	alice, bob := newNode(t), newNode(t)
	connect(t, alice, s)
	connect(t, bob, s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Bob registers: that gives him a mailbox.
	_, err = rdvproto.NewClient(bob).Register(ctx, s.ID(), rdvproto.PeerNamespace(bob.ID()), nil, 0)
	require.NoError(t, err)
	admin := rendezvous.NewAdminClient(cfg.DataDir)
	require.Eventually(t, func() bool {
		rep, err := admin.Mailboxes(ctx)
		return err == nil && rep.Totals.Mailboxes == 1
	}, 10*time.Second, 20*time.Millisecond)

	secret := "the cake is in the oven, do not tell carol"
	tok, err := mailbox.IssueToken(bob.Peerstore().PrivKey(bob.ID()), alice.ID(), time.Now().Add(time.Hour))
	require.NoError(t, err)
	var id mailbox.DepositID
	id[0] = 1
	box, err := seal.Seal(alice.Peerstore().PrivKey(alice.ID()), bob.ID(), id, []byte(secret), time.Now())
	require.NoError(t, err)
	codes, err := mailbox.NewClient(alice).Deposit(ctx, s.ID(), bob.ID(), tok, []mailbox.Item{{ID: id, Box: box}})
	require.NoError(t, err)
	require.Equal(t, []mailbox.Code{mailbox.CodeOK}, codes)

	rep, err := admin.Mailboxes(ctx)
	require.NoError(t, err)
	require.True(t, rep.Enabled)
	require.Equal(t, 1, rep.Totals.Boxes)
	require.Equal(t, int64(len(box)), rep.Totals.Bytes)
	require.Len(t, rep.Mailboxes, 1)
	require.Equal(t, bob.ID(), rep.Mailboxes[0].Owner)
	require.Equal(t, cfg.Mailbox.MaxMessages, rep.Limits.MaxMessages)

	resp, err := http.Get("http://" + s.MetricsAddr() + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Contains(t, string(body), "natter_mailbox_boxes 1")
	require.Contains(t, string(body), `natter_mailbox_deposits_total{result="ok"} 1`)

	// Restart: the box is still there.
	require.NoError(t, s.Close())
	closed = true
	s = startServer(t, cfg)
	connect(t, bob, s)
	boxes, more, err := mailbox.NewClient(bob).Fetch(ctx, s.ID(), 0, 10)
	require.NoError(t, err)
	require.False(t, more)
	require.Len(t, boxes, 1)
	o, err := seal.Open(bob.Peerstore().PrivKey(bob.ID()), boxes[0].Box, 1<<20)
	require.NoError(t, err)
	require.Equal(t, secret, string(o.Payload))
	requireNoPlaintext(t, cfg.DataDir, secret)
}

func requireNoPlaintext(t *testing.T, dir, text string) {
	t.Helper()
	n := 0
	require.NoError(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.False(t, bytes.Contains(b, []byte(text)), "%s holds the plaintext", p)
		n++
		return nil
	}))
	require.NotZero(t, n)
}
