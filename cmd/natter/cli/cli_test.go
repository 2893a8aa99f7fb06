package cli_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/cmd/natter/cli"
	"github.com/natterim/natter/node/identity"
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
	require.True(t, strings.HasPrefix(stderr, "natter: "), stderr)
	require.Equal(t, 1, strings.Count(stderr, "\n"), "want exactly one line, got %q", stderr)
	require.Contains(t, stderr, want)
	require.NotContains(t, stderr, "goroutine")
}

func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	code, out, errOut := run(t, "init", "--data-dir", dir, "--name", "alice", "--no-passphrase")
	require.Equal(t, 0, code, errOut)
	id, err := identity.PeerID(dir)
	require.NoError(t, err)
	require.Equal(t, id.String()+"\n", out)
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())

	// Never overwrite a key.
	code, _, errOut = run(t, "init", "--data-dir", dir, "--name", "alice", "--no-passphrase")
	oneLineErr(t, code, errOut, 1, "already holds an identity")

	// With a passphrase the key is encrypted, and the daemon says how to
	// unlock it.
	dir2 := filepath.Join(t.TempDir(), "e")
	pf := filepath.Join(t.TempDir(), "pass")
	require.NoError(t, os.WriteFile(pf, []byte("correct horse\n"), 0o600))
	code, _, errOut = run(t, "init", "--data-dir", dir2, "--name", "bob", "--passphrase-file", pf)
	require.Equal(t, 0, code, errOut)
	enc, err := identity.Encrypted(dir2)
	require.NoError(t, err)
	require.True(t, enc)
	t.Setenv("NATTER_PASSPHRASE", "")
	code, _, errOut = run(t, "daemon", "--data-dir", dir2, "--listen", "/ip4/127.0.0.1/tcp/0")
	oneLineErr(t, code, errOut, 1, "encrypted")
}

func TestBadInput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	code, _, errOut := run(t, "init", "--data-dir", dir, "--name", "alice", "--no-passphrase")
	require.Equal(t, 0, code, errOut)
	missing := filepath.Join(t.TempDir(), "missing")
	badCfg := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(badCfg, []byte("listen: [\n"), 0o600))
	typoCfg := filepath.Join(t.TempDir(), "typo.yaml")
	require.NoError(t, os.WriteFile(typoCfg, []byte("rendezvus: []\n"), 0o600))

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"init without name", []string{"init", "--data-dir", missing, "--no-passphrase"}, 2, "--name is required"},
		{"init without passphrase choice", []string{"init", "--data-dir", missing, "--name", "x"}, 2, "--no-passphrase"},
		{"init with a control character in the name", []string{"init", "--data-dir", missing, "--name", "al\x1b[2Jice", "--no-passphrase"}, 2, "--name contains control characters"},
		{"init with a long name", []string{"init", "--data-dir", missing, "--name", strings.Repeat("n", 65), "--no-passphrase"}, 2, "--name is longer than 64 bytes"},
		{"unknown flag", []string{"status", "--bogus"}, 2, "unknown flag"},
		{"extra arg", []string{"status", "extra", "--data-dir", dir}, 2, "unknown command"},
		{"missing arg", []string{"ping", "--data-dir", dir}, 2, "accepts 1 arg"},
		{"no daemon", []string{"status", "--data-dir", dir}, 1, "no natter daemon is running on data dir"},
		{"no data dir", []string{"contacts", "list", "--data-dir", missing}, 1, "does not exist"},
		{"daemon missing data dir", []string{"daemon", "--data-dir", missing}, 1, "natter init"},
		{"bad rendezvous", []string{"daemon", "--data-dir", dir, "--rendezvous", "/ip4/1.2.3.4/tcp/4001"}, 1, "must end in /p2p/"},
		{"garbage rendezvous", []string{"daemon", "--data-dir", dir, "--rendezvous", "rdv.example"}, 1, "not a multiaddr"},
		{"bad listen", []string{"daemon", "--data-dir", dir, "--listen", "/ip4/0.0.0.0/tcp/99999"}, 1, "listen"},
		{"unreadable config", []string{"daemon", "--data-dir", dir, "--config", filepath.Join(missing, "x.yaml")}, 1, "config"},
		{"broken config", []string{"daemon", "--data-dir", dir, "--config", badCfg}, 1, "config"},
		{"typo in config", []string{"daemon", "--data-dir", dir, "--config", typoCfg}, 1, "rendezvus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(t, tc.args...)
			oneLineErr(t, code, errOut, tc.code, tc.want)
		})
	}
}

func TestDaemonPortInUse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	code, _, errOut := run(t, "init", "--data-dir", dir, "--name", "alice", "--no-passphrase")
	require.Equal(t, 0, code, errOut)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	code, _, errOut = run(t, "daemon", "--data-dir", dir, "--nat-port-map=false", "--transports", "tcp",
		"--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))
	oneLineErr(t, code, errOut, 1, "in use")
}

func TestDaemonAlreadyRunning(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	code, _, errOut := run(t, "init", "--data-dir", dir, "--name", "alice", "--no-passphrase")
	require.Equal(t, 0, code, errOut)
	n := nodeOn(t, dir)

	code, _, errOut = run(t, "daemon", "--data-dir", dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--nat-port-map=false")
	oneLineErr(t, code, errOut, 1, "already running")

	// The client commands talk to it.
	code, out, errOut := run(t, "id", "--data-dir", dir)
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2)
	require.Equal(t, n.ID().String(), lines[0])
	require.True(t, strings.HasPrefix(lines[1], "natter:"+n.ID().String()))

	code, out, errOut = run(t, "status", "--data-dir", dir)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, n.ID().String())
	require.Contains(t, out, "contacts: none yet")

	code, _, errOut = run(t, "contacts", "add", "not a peer!", "--data-dir", dir)
	oneLineErr(t, code, errOut, 1, "neither a peer ID, an invite")
}
