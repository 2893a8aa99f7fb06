package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/cmd/internal/cfgload"
	"github.com/natterim/natter/cmd/natter-rendezvous/cli"
	"github.com/natterim/natter/rendezvous"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = cli.Main(args, &o, &e)
	return code, o.String(), e.String()
}

// oneLineErr checks the contract for bad input: exit code, one line on
// stderr, prefixed, containing want, and no stack trace.
func oneLineErr(t *testing.T, code int, stderr string, wantCode int, want string) {
	t.Helper()
	require.Equal(t, wantCode, code, stderr)
	require.True(t, strings.HasPrefix(stderr, "natter-rendezvous: "), stderr)
	require.Equal(t, 1, strings.Count(stderr, "\n"), "want exactly one line, got %q", stderr)
	require.Contains(t, stderr, want)
	require.NotContains(t, stderr, "goroutine")
}

// dataDir is short: the admin socket path must fit in 107 bytes.
func dataDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "rdvcli")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(d) })
	return filepath.Join(d, "data")
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestIDStableAndDialable(t *testing.T) {
	dir := dataDir(t)
	code, out, errOut := run(t, "id", "--data-dir", dir)
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.GreaterOrEqual(t, len(lines), 2, out)
	id, err := peer.Decode(lines[0])
	require.NoError(t, err)
	for _, l := range lines[1:] {
		a, err := ma.NewMultiaddr(l)
		require.NoError(t, err)
		got, err := peer.IDFromP2PAddr(a)
		require.NoError(t, err)
		require.Equal(t, id, got)
		require.NotContains(t, l, "/0.0.0.0/", "unspecified addresses are expanded")
	}
	require.Contains(t, out, "/ip4/127.0.0.1/tcp/4001/p2p/"+id.String())

	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())

	// Same key the next time.
	code, out2, _ := run(t, "id", "--data-dir", dir)
	require.Equal(t, 0, code)
	require.Equal(t, out, out2)

	// Announce addresses replace the listen ones.
	code, out3, errOut := run(t, "id", "--data-dir", dir, "--announce", "/ip4/203.0.113.7/tcp/4001")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, id.String()+"\n/ip4/203.0.113.7/tcp/4001/p2p/"+id.String()+"\n", out3)
}

func TestDataDirFromEnv(t *testing.T) {
	dir := dataDir(t)
	t.Setenv("NATTER_DATA_DIR", dir)
	code, out, errOut := run(t, "id")
	require.Equal(t, 0, code, errOut)
	_, err := os.Stat(filepath.Join(dir, rendezvous.KeyFile))
	require.NoError(t, err)
	// An explicit flag wins over the environment.
	other := dataDir(t)
	code, out2, _ := run(t, "id", "--data-dir", other)
	require.Equal(t, 0, code)
	require.NotEqual(t, strings.Split(out, "\n")[0], strings.Split(out2, "\n")[0])
}

func TestBadInput(t *testing.T) {
	dir := dataDir(t)
	badYAML := writeFile(t, "listen: [\n")
	typo := writeFile(t, "relay:\n  max_reservation: 10\n")
	badValue := writeFile(t, "relay:\n  reservation_ttl: soon\n")
	badMailbox := writeFile(t, "mailbox:\n  max_message_size: 99999999\n")
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad listen multiaddr", []string{"run", "--data-dir", dir, "--listen", "/ip4/300.1.1.1/tcp/1"}, 1, `listen: "/ip4/300.1.1.1/tcp/1" is not a multiaddr`},
		{"bad listen on id", []string{"id", "--data-dir", dir, "--listen", "tcp://1.2.3.4"}, 1, "listen:"},
		{"bad announce", []string{"run", "--data-dir", dir, "--announce", "nope"}, 1, "announce:"},
		{"bad bootstrap", []string{"run", "--data-dir", dir, "--bootstrap", "/ip4/1.2.3.4/tcp/1"}, 1, "dht.bootstrap:"},
		{"bad config file", []string{"run", "--data-dir", dir, "--config", badYAML}, 1, "config " + badYAML + ":"},
		{"unknown config key", []string{"run", "--data-dir", dir, "--config", typo}, 1, `unknown key "relay.max_reservation"`},
		{"unknown config key on id", []string{"id", "--data-dir", dir, "--config", typo}, 1, "unknown key"},
		{"bad duration", []string{"run", "--data-dir", dir, "--config", badValue}, 1, "reservation_ttl"},
		{"missing config file", []string{"run", "--data-dir", dir, "--config", missing}, 1, "config " + missing + ": no such file or directory"},
		{"bad log level", []string{"run", "--data-dir", dir, "--log-level", "loud"}, 1, "log_level:"},
		{"unknown flag", []string{"run", "--nope"}, 2, "unknown flag: --nope"},
		{"unknown flag on default command", []string{"--nope"}, 2, "unknown flag: --nope"},
		{"unknown command", []string{"serve"}, 2, `unknown command "serve"`},
		{"extra argument", []string{"id", "--data-dir", dir, "extra"}, 2, "natter-rendezvous id:"},
		{"peers without server", []string{"peers", "--data-dir", dir}, 1,
			"no natter-rendezvous is running on data dir " + dir + " (start it with: natter-rendezvous run --data-dir " + dir + ")"},
		{"peers on missing data dir", []string{"peers", "--data-dir", filepath.Join(dir, "nope")}, 1, "no natter-rendezvous is running on data dir"},
		{"mailboxes without server", []string{"mailboxes", "--data-dir", dir}, 1, "no natter-rendezvous is running on data dir " + dir},
		{"bad mailbox limit", []string{"run", "--data-dir", dir, "--config", badMailbox}, 1, "mailbox.max_message_size:"},
		{"backup without a server key", []string{"backup", "--data-dir", dir, filepath.Join(t.TempDir(), "b.tar")}, 1, "backup:"},
		{"backup without file", []string{"backup", "--data-dir", dir}, 2, "natter-rendezvous backup:"},
		{"restore of a missing file", []string{"restore", "--data-dir", dir, missing}, 1, "restore: open " + missing},
		{"restore of garbage", []string{"restore", "--data-dir", dir, badYAML}, 1, "not a natter-rendezvous backup"},
		{"bench with bad levels", []string{"bench", "--nodes", "10,x"}, 2, `--nodes: "x" is not a node count`},
		{"bench with bad transports", []string{"bench", "--transports", "udp"}, 2, "transports are tcp and/or quic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(t, tc.args...)
			oneLineErr(t, code, errOut, tc.code, tc.want)
		})
	}
}

func TestHelp(t *testing.T) {
	code, out, _ := run(t, "--help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "run")
	require.Contains(t, out, "peers")
}

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunPeersAndShutdown(t *testing.T) {
	dir := dataDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.MainContext(ctx, []string{
			"--data-dir", dir, // no subcommand: run
			"--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1",
			"--log-level", "debug",
		}, &out, &errOut)
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "running as") }, 20*time.Second, 20*time.Millisecond, errOut.String())
	first := strings.SplitN(out.String(), "\n", 2)[0]
	require.Contains(t, first, "natter-rendezvous running as 12D3KooW")
	require.Contains(t, out.String(), "/ip4/127.0.0.1/tcp/")

	code, table, e := run(t, "peers", "--data-dir", dir)
	require.Equal(t, 0, code, e)
	require.True(t, strings.HasPrefix(table, "PEER"), table)
	for _, col := range []string{"ADDR", "RESERVATION", "LAST HEARTBEAT", "CONNECTED", "CIRCUITS"} {
		require.Contains(t, table, col)
	}

	code, js, e := run(t, "peers", "--data-dir", dir, "--json")
	require.Equal(t, 0, code, e)
	var peers []rendezvous.OnlinePeer
	require.NoError(t, json.Unmarshal([]byte(js), &peers))
	require.Empty(t, peers)

	code, mtable, e := run(t, "mailboxes", "--data-dir", dir)
	require.Equal(t, 0, code, e)
	require.True(t, strings.HasPrefix(mtable, "0 mailboxes, 0 boxes waiting, 0 B"), mtable)
	code, js, e = run(t, "mailboxes", "--data-dir", dir, "--json")
	require.Equal(t, 0, code, e)
	var rep rendezvous.MailboxReport
	require.NoError(t, json.Unmarshal([]byte(js), &rep))
	require.True(t, rep.Enabled)
	require.Equal(t, 1000, rep.Limits.MaxMessages)
	require.Equal(t, "168h0m0s", rep.Limits.MaxAge)

	// A second server on the same data dir refuses to start.
	code, _, e = run(t, "run", "--data-dir", dir, "--listen", "/ip4/127.0.0.1/tcp/0")
	oneLineErr(t, code, e, 1, "already running")

	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, errOut.String())
	case <-time.After(20 * time.Second):
		t.Fatal("run did not stop")
	}
	require.Contains(t, errOut.String(), "shutting down")
	_, err := os.Stat(filepath.Join(dir, rendezvous.AdminSocket))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestRunPortInUse(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	addr := "/ip4/127.0.0.1/tcp/" + port
	code, _, e := run(t, "run", "--data-dir", dataDir(t), "--listen", addr)
	oneLineErr(t, code, e, 1, "natter-rendezvous: listen "+addr+": address already in use")
}

func TestBackupRestore(t *testing.T) {
	dir := dataDir(t)
	code, idOut, e := run(t, "id", "--data-dir", dir)
	require.Equal(t, 0, code, e)
	id := strings.SplitN(idOut, "\n", 2)[0]

	// No server running: backup reads the data dir itself.
	file := filepath.Join(t.TempDir(), "rdv.tar")
	code, out, e := run(t, "backup", "--data-dir", dir, file)
	require.Equal(t, 0, code, e)
	require.Contains(t, out, "no server running")
	st, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	code, _, e = run(t, "backup", "--data-dir", dir, file)
	oneLineErr(t, code, e, 1, "already exists; pass --force")
	code, _, e = run(t, "backup", "--data-dir", dir, "--force", file)
	require.Equal(t, 0, code, e)

	other := dataDir(t)
	code, out, e = run(t, "restore", "--data-dir", other, file)
	require.Equal(t, 0, code, e)
	require.Contains(t, out, "restored "+id)
	code, idOut, e = run(t, "id", "--data-dir", other)
	require.Equal(t, 0, code, e)
	require.True(t, strings.HasPrefix(idOut, id+"\n"), "the same server after a restore")
	code, _, e = run(t, "restore", "--data-dir", other, file)
	oneLineErr(t, code, e, 1, "already exists; pass --force")
}

// configs/rendezvous.yaml documents every key with its default value.
func TestExampleConfigIsTheDefaults(t *testing.T) {
	var cfg rendezvous.Config
	require.NoError(t, cfgload.Load("../../../configs/rendezvous.yaml", rendezvous.DefaultConfig(), &cfg, nil, nil))
	// "[]" in YAML is an empty list where the default is a nil one.
	require.Empty(t, cfg.Announce)
	require.Empty(t, cfg.DHT.Bootstrap)
	cfg.Announce, cfg.DHT.Bootstrap = nil, nil
	require.Equal(t, rendezvous.DefaultConfig(), cfg)

	// And it is accepted as a config file.
	dir := dataDir(t)
	code, out, e := run(t, "id", "--data-dir", dir, "--config", "../../../configs/rendezvous.yaml")
	require.Equal(t, 0, code, e)
	code, out2, _ := run(t, "id", "--data-dir", dir)
	require.Equal(t, 0, code)
	require.Equal(t, out2, out)
}
