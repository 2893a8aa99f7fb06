package api_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/api"
	"github.com/natterim/natter/node/control"
)

// TestSocket: the socket is 0600, a stale file in its place is replaced,
// Close removes it and can be called again.
func TestSocket(t *testing.T) {
	f := newFake(t)
	sock := filepath.Join(socketDir(t), control.SocketName)
	require.NoError(t, os.WriteFile(sock, []byte("left by a dead daemon"), 0o644))

	s, err := api.New(api.Config{Socket: sock}, f.services())
	require.NoError(t, err)
	fi, err := os.Stat(sock)
	require.NoError(t, err)
	require.Equal(t, os.ModeSocket, fi.Mode().Type())
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	st, err := control.NewClient(sock).Status(context.Background())
	require.NoError(t, err)
	require.Equal(t, cannedStatus, st)

	require.NoError(t, s.Close())
	_, err = os.Stat(sock)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.NoError(t, s.Close(), "Close is idempotent")
	_, err = control.NewClient(sock).Status(context.Background())
	require.ErrorIs(t, err, control.ErrNoDaemon)
}

// TestNewRefuses: a missing service, a missing socket path or a TCP
// address that is not loopback ip:port stop New, saying why, and leave
// no socket behind.
func TestNewRefuses(t *testing.T) {
	f := newFake(t)
	for _, tc := range []struct {
		addr string
		want string // "" = accepted
	}{
		{"127.0.0.1:0", ""},
		{"127.0.0.2:0", ""},
		{"0.0.0.0:7420", "not a loopback address"},
		{"[::]:7420", "not a loopback address"},
		{"192.168.1.10:7420", "not a loopback address"},
		{"[fe80::1]:7420", "not a loopback address"},
		{"localhost:7420", "is not ip:port"},
		{"7420", "is not ip:port"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			dir := socketDir(t)
			cfg := api.Config{Socket: filepath.Join(dir, control.SocketName), TCPListen: tc.addr, TokenFile: filepath.Join(dir, api.TokenName)}
			s, err := api.New(cfg, f.services())
			if tc.want == "" {
				require.NoError(t, err)
				require.NoError(t, s.Close())
				return
			}
			require.ErrorContains(t, err, "control.tcp_listen")
			require.ErrorContains(t, err, tc.want)
			_, err = os.Stat(cfg.Socket)
			require.ErrorIs(t, err, os.ErrNotExist)
		})
	}

	dir := socketDir(t)
	sock := filepath.Join(dir, control.SocketName)
	svc := f.services()
	svc.Files = nil
	_, err := api.New(api.Config{Socket: sock}, svc)
	require.ErrorContains(t, err, "no Files service")
	_, err = api.New(api.Config{}, f.services())
	require.Error(t, err)
	_, err = api.New(api.Config{Socket: sock, TCPListen: "127.0.0.1:0"}, f.services())
	require.ErrorContains(t, err, "no token file")
	_, err = os.Stat(sock)
	require.ErrorIs(t, err, os.ErrNotExist)

	// The TCP port taken: New fails and removes the socket it made.
	taken, _ := start(t, f, api.Config{TCPListen: "127.0.0.1:0", TokenFile: filepath.Join(dir, "other.token")})
	_, err = api.New(api.Config{Socket: sock, TCPListen: taken.TCPAddr(), TokenFile: filepath.Join(dir, api.TokenName)}, f.services())
	require.ErrorContains(t, err, "control.tcp_listen "+taken.TCPAddr())
	_, err = os.Stat(sock)
	require.ErrorIs(t, err, os.ErrNotExist)
}

// TestTCPToken: the loopback TCP API answers only requests that carry the
// token from the token file (0600, 64 hex characters, kept across
// restarts); the unix socket needs none. Without TCPListen there is no
// TCP API and no token file.
func TestTCPToken(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	dir := socketDir(t)
	tokPath := filepath.Join(dir, api.TokenName)

	plain, _ := start(t, f, api.Config{Socket: filepath.Join(dir, "plain.sock"), TokenFile: tokPath})
	require.Empty(t, plain.TCPAddr())
	_, err := os.Stat(tokPath)
	require.ErrorIs(t, err, os.ErrNotExist, "no TCP API configured: no token either")

	sock := filepath.Join(dir, control.SocketName)
	s, _ := start(t, f, api.Config{Socket: sock, TCPListen: "127.0.0.1:0", TokenFile: tokPath})
	addr := s.TCPAddr()

	fi, err := os.Stat(tokPath)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	b, err := os.ReadFile(tokPath)
	require.NoError(t, err)
	token := strings.TrimSpace(string(b))
	require.Len(t, token, 64)

	for _, tc := range []struct{ name, token string }{
		{"none", ""},
		{"wrong", strings.Repeat("0", 64)},
		{"prefix", token[:32]},
		{"longer", token + "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := control.NewTCPClient(addr, tc.token).Status(ctx)
			ae, ok := errors.AsType[*control.APIError](err)
			require.True(t, ok, "%v", err)
			require.Equal(t, http.StatusUnauthorized, ae.Code)
			require.Contains(t, ae.Message, "bearer token")
			// The event stream is guarded too.
			_, err = control.NewTCPClient(addr, tc.token).Events(ctx)
			ae, ok = errors.AsType[*control.APIError](err)
			require.True(t, ok, "%v", err)
			require.Equal(t, http.StatusUnauthorized, ae.Code)
		})
	}
	calls, _ := f.take()
	require.Empty(t, calls, "a refused request reaches no domain method")

	st, err := control.NewTCPClient(addr, token).Status(ctx)
	require.NoError(t, err)
	require.Equal(t, cannedStatus.PeerID, st.PeerID)
	ev, err := control.NewTCPClient(addr, token).Events(ctx)
	require.NoError(t, err)
	e, err := ev.Next()
	require.NoError(t, err)
	require.Equal(t, control.EventHello, e.Type)
	require.Equal(t, f.id.String(), e.PeerID)
	require.NoError(t, ev.Close())

	// The unix socket (0600) needs no token.
	_, err = control.NewClient(sock).Status(ctx)
	require.NoError(t, err)

	// A restart keeps the token.
	require.NoError(t, s.Close())
	s2, _ := start(t, f, api.Config{Socket: sock, TCPListen: "127.0.0.1:0", TokenFile: tokPath})
	_, err = control.NewTCPClient(s2.TCPAddr(), token).Status(ctx)
	require.NoError(t, err)
}

// TestEvents: the stream starts with a hello line carrying our peer ID,
// then carries every published event in order, and ends when the server
// closes; a client that leaves ends its subscription.
func TestEvents(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	sock := filepath.Join(socketDir(t), control.SocketName)
	s, err := api.New(api.Config{Socket: sock}, f.services())
	require.NoError(t, err)
	defer s.Close()

	ev, err := control.NewClient(sock).Events(ctx)
	require.NoError(t, err)
	hello, err := ev.Next()
	require.NoError(t, err)
	require.Equal(t, control.EventHello, hello.Type)
	require.Equal(t, f.id.String(), hello.PeerID)
	require.False(t, hello.Time.IsZero())

	// The hello line is written after the subscription is made: nothing
	// published from now on is lost.
	for i := range 3 {
		f.bus.Publish(control.Event{Type: control.EventMessage, PeerID: "p", Name: string(rune('a' + i))})
	}
	for i := range 3 {
		e, err := ev.Next()
		require.NoError(t, err)
		require.Equal(t, control.EventMessage, e.Type)
		require.Equal(t, string(rune('a'+i)), e.Name)
		require.False(t, e.Time.IsZero())
	}

	// A second stream whose client leaves: its subscription ends.
	ev2, err := control.NewClient(sock).Events(ctx)
	require.NoError(t, err)
	_, err = ev2.Next()
	require.NoError(t, err)
	require.Equal(t, 2, f.subscribers())
	require.NoError(t, ev2.Close())
	require.Eventually(t, func() bool { return f.subscribers() == 1 }, 10*time.Second, 5*time.Millisecond)

	done := make(chan error, 1)
	go func() {
		_, err := ev.Next()
		done <- err
	}()
	require.NoError(t, s.Close())
	select {
	case err := <-done:
		require.Error(t, err, "the stream ends when the server closes")
	case <-time.After(10 * time.Second):
		t.Fatal("the event stream did not end on Close")
	}
	require.Zero(t, f.subscribers())
}

// TestEventsEndWithTheBus: when the bus ends a subscription (it closed,
// or the client fell too far behind) the stream ends.
func TestEventsEndWithTheBus(t *testing.T) {
	f := newFake(t)
	sock := filepath.Join(socketDir(t), control.SocketName)
	start(t, f, api.Config{Socket: sock})
	ev, err := control.NewClient(sock).Events(context.Background())
	require.NoError(t, err)
	_, err = ev.Next()
	require.NoError(t, err)
	f.bus.Close()
	_, err = ev.Next()
	require.Error(t, err)
}

// TestCloseCancelsRequests: Close cancels the context of the requests in
// flight (a send --wait), so that they end and Close does not hang.
func TestCloseCancelsRequests(t *testing.T) {
	f := newFake(t)
	f.block = true
	sock := filepath.Join(socketDir(t), control.SocketName)
	s, err := api.New(api.Config{Socket: sock}, f.services(), api.WithShutdownTimeout(time.Minute))
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		_, err := control.NewClient(sock).Send(context.Background(), "bob", control.SendRequest{Text: "hi", Wait: "10m"})
		done <- err
	}()
	require.Eventually(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.calls) == 1
	}, 10*time.Second, 5*time.Millisecond)

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not cancel the request in flight")
	}
	err = <-done
	ae, ok := errors.AsType[*control.APIError](err)
	require.True(t, ok, "%v", err)
	require.Equal(t, http.StatusInternalServerError, ae.Code)
	require.Contains(t, ae.Message, "context canceled")
}
