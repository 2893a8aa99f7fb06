package cli_test

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
)

func TestFileCommands(t *testing.T) {
	a, dirA := startNode(t, "alice")
	b, dirB := startNode(t, "bob")
	a.Host().Peerstore().AddAddrs(b.ID(), b.Host().Addrs(), peerstore.PermanentAddrTTL)
	b.Host().Peerstore().AddAddrs(a.ID(), a.Host().Addrs(), peerstore.PermanentAddrTTL)
	for _, p := range [][3]string{{dirA, b.ID().String(), "bob"}, {dirB, a.ID().String(), "alice"}} {
		code, _, errOut := run(t, "contacts", "add", p[1], "--name", p[2], "--data-dir", p[0])
		require.Equal(t, 0, code, errOut)
	}
	require.Eventually(t, func() bool {
		code, out, _ := run(t, "contacts", "list", "--json", "--data-dir", dirA)
		var cs []control.Contact
		return code == 0 && json.Unmarshal([]byte(out), &cs) == nil && len(cs) == 1 && cs[0].State == control.StateAccepted
	}, 20*time.Second, 50*time.Millisecond)

	dir := t.TempDir()
	src := filepath.Join(dir, "report.pdf")
	data := make([]byte, 3<<20+17)
	_, _ = rand.Read(data)
	require.NoError(t, os.WriteFile(src, data, 0o600))

	// --wait follows it to the end; not a terminal: plain lines.
	code, out, errOut := run(t, "send-file", "bob", src, "--as", "Q3 report.pdf", "--note", "numbers", "--wait", "--data-dir", dirA)
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Regexp(t, `^[0-9a-f-]{36} done: 3 MiB in [0-9.]+m?s, [0-9.]+ [KMG]iB/s \(direct\)$`, lines[len(lines)-1])
	require.Regexp(t, `^[0-9a-f-]{36} offered `, lines[0])
	id := strings.Fields(lines[len(lines)-1])[0]

	// The receiver's view: done, saved under the offered name.
	var ts []control.Transfer
	require.Eventually(t, func() bool {
		code, out, _ := run(t, "files", "--json", "--data-dir", dirB)
		return code == 0 && json.Unmarshal([]byte(out), &ts) == nil && len(ts) == 1 && ts[0].State == control.TransferDone
	}, 20*time.Second, 50*time.Millisecond)
	require.Equal(t, id, ts[0].ID)
	require.Equal(t, "in", ts[0].Direction)
	require.Equal(t, "alice", ts[0].Contact)
	require.Equal(t, "Q3 report.pdf", ts[0].Name)
	require.Equal(t, "numbers", ts[0].Note)
	require.Equal(t, "application/pdf", ts[0].MediaType)
	require.Equal(t, filepath.Join(dirB, "downloads", "Q3 report.pdf"), ts[0].FinalPath)
	got, err := os.ReadFile(ts[0].FinalPath)
	require.NoError(t, err)
	require.Equal(t, data, got)
	code, out, errOut = run(t, "files", "--data-dir", dirB)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, regexp.MustCompile(`(?m)^`+id+`\s+in\s+alice\s+Q3 report.pdf\s+3 MiB\s+done\s+100%`), out)
	code, out, errOut = run(t, "history", "alice", "--data-dir", dirB)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "alice: [file] Q3 report.pdf (3 MiB, done) numbers")

	// Without --wait: the id alone.
	code, out, errOut = run(t, "send-file", "bob", src, "--data-dir", dirA)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `^[0-9a-f-]{36}\n$`, out)

	// Bad input: one line, non-zero exit, nothing offered.
	require.NoError(t, os.Mkdir(filepath.Join(dir, "folder"), 0o700))
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"send-file", "bob", filepath.Join(dir, "folder")}, 1, "is a directory"},
		{[]string{"send-file", "bob", filepath.Join(dir, "missing")}, 1, "there is no file"},
		{[]string{"send-file", "bob", src, "--as", "../../x"}, 2, "path separator"},
		{[]string{"send-file", "nobody", src}, 1, `no contact "nobody"`},
		{[]string{"send-file", "bob"}, 2, "accepts 2 arg"},
		{[]string{"files", "accept", "nonsense"}, 1, `no transfer "nonsense"`},
		{[]string{"files", "cancel", id}, 1, "already done"},
		{[]string{"files", "reject", id}, 1, "only an offer you received"},
	} {
		code, _, errOut := run(t, append(tc.args, "--data-dir", dirA)...)
		oneLineErr(t, code, errOut, tc.code, tc.want)
	}
	if os.Geteuid() != 0 {
		locked := filepath.Join(dir, "locked")
		require.NoError(t, os.WriteFile(locked, []byte("x"), 0o000))
		code, _, errOut := run(t, "send-file", "bob", locked, "--data-dir", dirA)
		oneLineErr(t, code, errOut, 1, "permission denied")
	}
	code, out, _ = run(t, "files", "--json", "--data-dir", dirA)
	require.Equal(t, 0, code)
	require.NoError(t, json.Unmarshal([]byte(out), &ts))
	require.Len(t, ts, 2, "refused sends offered nothing")
}
