package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/api"
	"github.com/natterim/natter/node/control"
)

// TestControlTCPLoopbackOnly: the TCP control API only ever listens on a
// loopback address; anything else is refused at startup, saying why.
func TestControlTCPLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want string // "" = accepted
	}{
		{"127.0.0.1:7420", ""},
		{"127.0.0.2:7420", ""},
		{"[::1]:7420", ""},
		{"0.0.0.0:7420", "not a loopback address"},
		{"[::]:7420", "not a loopback address"},
		{"192.168.1.10:7420", "not a loopback address"},
		{"[fe80::1]:7420", "not a loopback address"},
		{"localhost:7420", "is not ip:port"},
		{"7420", "is not ip:port"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			c := DefaultConfig()
			c.DataDir = "/x"
			c.Control.TCPListen = tc.addr
			err := c.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, "control.tcp_listen")
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestControlTCPToken: the node serves the loopback TCP API when
// control.tcp_listen is set, guarded by the token in control.token
// (0600); the unix socket needs none. Without control.tcp_listen there is
// no TCP API and no token file. (The token check itself, row by row, is
// node/api's TestTCPToken.)
func TestControlTCPToken(t *testing.T) {
	ctx := context.Background()
	plain := newTestNode(t, testConfig(t), "bob")
	_, err := os.Stat(filepath.Join(plain.cfg.DataDir, api.TokenName))
	require.ErrorIs(t, err, os.ErrNotExist, "no TCP API configured: no token either")

	cfg := testConfig(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg.Control.TCPListen = addr
	n := newTestNode(t, cfg, "alice")

	tokPath := filepath.Join(cfg.DataDir, api.TokenName)
	fi, err := os.Stat(tokPath)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	b, err := os.ReadFile(tokPath)
	require.NoError(t, err)
	token := strings.TrimSpace(string(b))
	require.Len(t, token, 64)

	_, err = control.NewTCPClient(addr, "").Status(ctx)
	ae, ok := errors.AsType[*control.APIError](err)
	require.True(t, ok, "%v", err)
	require.Equal(t, http.StatusUnauthorized, ae.Code)
	require.Contains(t, ae.Message, "bearer token")

	st, err := control.NewTCPClient(addr, token).Status(ctx)
	require.NoError(t, err)
	require.Equal(t, n.ID().String(), st.PeerID)
	ev, err := control.NewTCPClient(addr, token).Events(ctx)
	require.NoError(t, err)
	e, err := ev.Next()
	require.NoError(t, err)
	require.Equal(t, control.EventHello, e.Type)
	require.NoError(t, ev.Close())

	// The unix socket (0600) needs no token.
	_, err = apiClient(n).Status(ctx)
	require.NoError(t, err)
}
