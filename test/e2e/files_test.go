//go:build linux

package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natterim/natter/internal/lab"
	"github.com/natterim/natter/node/control"
)

// transferWithin bounds how long a test transfer may take: the race
// detector slows natter down several times; this only catches "never".
const transferWithin = 3 * time.Minute

// filePair is pair with extra environment for both daemons.
func filePair(t *testing.T, name string, kind lab.Kind, path string, env ...string) (alice, other *nodeProc) {
	t.Helper()
	l := lab.New(t)
	r := startRendezvous(t, l.Public("rdv"))
	alice = startNode(t, l.Home("alice", lab.Cone), "alice", r, nodeOpts{env: env})
	other = startNode(t, l.Home(name, kind), name, r, nodeOpts{env: env})
	befriend(t, alice, other)
	waitPath(t, alice, other, path, directWithin)
	return alice, other
}

// randomFile writes size random bytes to a new file and returns its path
// and SHA-256 (hex).
func randomFile(t testing.TB, dir, name string, size int64) (string, string) {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	return p, hex.EncodeToString(h.Sum(nil))
}

func sha256File(t testing.TB, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sendFile runs `natter send-file` (without --wait) and returns the id.
func (n *nodeProc) sendFile(t testing.TB, contact, path string, args ...string) string {
	t.Helper()
	out, err := n.cli(t, append([]string{"send-file", contact, path}, args...)...)
	if err != nil {
		t.Fatalf("%s: natter send-file: %v: %s", n.name, err, out)
	}
	return strings.TrimSpace(out)
}

// files runs `natter files --json` (the scripts' contract); nil while the
// daemon is down.
func (n *nodeProc) files(t testing.TB) []control.Transfer {
	t.Helper()
	out, err := n.cli(t, "files", "--json")
	if err != nil {
		return nil
	}
	var ts []control.Transfer
	if err := json.Unmarshal([]byte(out), &ts); err != nil {
		t.Fatalf("%s: files --json: %v: %s", n.name, err, out)
	}
	return ts
}

// transfer returns n's view of transfer id (zero if n is down or does not
// know it yet).
func (n *nodeProc) transfer(t testing.TB, id string) control.Transfer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tr, err := n.api.File(ctx, id)
	if err != nil {
		return control.Transfer{}
	}
	return tr
}

func waitTransferState(t *testing.T, n *nodeProc, id, state string, within time.Duration) control.Transfer {
	t.Helper()
	var tr control.Transfer
	deadline := time.Now().Add(within)
	for {
		tr = n.transfer(t, id)
		if tr.State == state {
			return tr
		}
		if tr.State == control.TransferFailed || tr.State == control.TransferCancelled {
			t.Fatalf("%s: transfer %s %s: %s", n.name, id, tr.State, tr.Reason)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: transfer %s not %s within %s; it is %s at %d bytes (%s)", n.name, id, state, within, tr.State, tr.BytesDone, tr.Reason)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFileDirect: a 64 MiB file across two cone NATs arrives intact over
// the direct link, and both sides say so.
func TestFileDirect(t *testing.T) {
	alice, bob := filePair(t, "bob", lab.Cone, control.PathDirect, "NATTER_FILES_AUTO_ACCEPT_MAX=1073741824")
	src, sum := randomFile(t, t.TempDir(), "dataset.bin", 64<<20)
	out, err := alice.cli(t, "send-file", "bob", src, "--note", "the data", "--wait")
	if err != nil {
		t.Fatalf("send-file --wait: %v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, " done: 64 MiB in ") || !strings.HasSuffix(last, "(direct)") {
		t.Fatalf("send-file --wait ended with %q", last)
	}
	id := strings.Fields(last)[0]
	in := waitTransferState(t, bob, id, control.TransferDone, transferWithin)
	if in.Path != control.PathDirect || in.BytesDone != 64<<20 || in.SHA256 != sum {
		t.Fatalf("bob's transfer: %+v", in)
	}
	if got := sha256File(t, in.FinalPath); got != sum {
		t.Fatalf("received file's SHA-256 %s, want %s", got, sum)
	}
	if filepath.Dir(in.FinalPath) != filepath.Join(bob.dataDir, "downloads") {
		t.Fatalf("saved at %s, outside the downloads folder", in.FinalPath)
	}
	entries, _ := os.ReadDir(filepath.Join(bob.dataDir, "partial"))
	if len(entries) != 0 {
		t.Fatalf("partial files left: %v", entries)
	}
	// The offer is in both histories.
	for _, n := range []*nodeProc{alice, bob} {
		other := "bob"
		if n == bob {
			other = "alice"
		}
		ms := n.history(t, other)
		if len(ms) != 1 || ms[0].Kind != control.KindFile || ms[0].File == nil || ms[0].File.Size != 64<<20 || ms[0].Text != "the data" {
			t.Fatalf("%s's history: %+v", n.name, ms)
		}
	}
}

// TestFileResumeAfterKill: a 256 MiB transfer survives SIGKILL of the
// receiver, then of the sender, in the middle of it; each time it resumes
// from the last durable checkpoint (not from zero) by itself and the file
// arrives intact.
func TestFileResumeAfterKill(t *testing.T) {
	alice, bob := filePair(t, "bob", lab.Cone, control.PathDirect, "NATTER_FILES_AUTO_ACCEPT_MAX=1073741824")
	// A cap keeps the transfer long enough to be killed in the middle
	// whatever the machine's speed (about 6 s for 256 MiB).
	if err := bob.host.Router().LimitWAN(400_000); err != nil {
		t.Fatal(err)
	}
	const size = 256 << 20
	src, sum := randomFile(t, t.TempDir(), "backup.tar", size)
	id := alice.sendFile(t, "bob", src)

	progressed := func(n *nodeProc, min int64) func() bool {
		return func() bool {
			tr := n.transfer(t, id)
			if tr.State == control.TransferDone {
				t.Fatalf("%s: the transfer finished before the kill; make it slower", n.name)
			}
			return tr.BytesDone >= min
		}
	}
	waitFor(t, transferWithin, "a third of the file at bob", progressed(bob, size/3))
	bob.proc.Kill()
	// As in TestReconnectAfterRestart: restart once the survivor noticed.
	waitPath(t, alice, bob, control.PathNone, 30*time.Second)
	bob.start(t)
	waitBothTransports(t, bob)
	// Straight after the restart, before any new data: the checkpoint.
	resumedAt := bob.transfer(t, id).BytesDone
	if resumedAt <= 0 {
		t.Fatalf("bob restarted with %d bytes of the transfer: no checkpoint survived SIGKILL", resumedAt)
	}
	t.Logf("bob resumes at %d MiB", resumedAt>>20)

	waitFor(t, transferWithin, "two thirds of the file at bob", progressed(bob, 2*size/3))
	alice.proc.Kill()
	waitPath(t, bob, alice, control.PathNone, 30*time.Second)
	waitFor(t, 30*time.Second, "bob to pause", func() bool {
		tr := bob.transfer(t, id)
		return tr.State == control.TransferPaused && tr.Reason != ""
	})
	pausedAt := bob.transfer(t, id).BytesDone
	alice.start(t)
	waitBothTransports(t, alice)

	in := waitTransferState(t, bob, id, control.TransferDone, transferWithin)
	if got := sha256File(t, in.FinalPath); got != sum {
		t.Fatalf("received file's SHA-256 %s, want %s", got, sum)
	}
	if pausedAt < 2*size/3-(64<<20) {
		t.Fatalf("bob paused at %d bytes, lost more than a checkpoint interval", pausedAt)
	}
	waitTransferState(t, alice, id, control.TransferDone, transferWithin)
	if strings.Contains(bob.proc.Log(), "starting the transfer over") {
		t.Fatal("the partial file did not match its checkpoint after SIGKILL")
	}
}

// TestFileRelayLimit: between a symmetric NAT and a cone NAT the link
// stays relayed. A file over the relay limit waits and says why, on both
// sides; a small one goes through the relay.
func TestFileRelayLimit(t *testing.T) {
	alice, carol := filePair(t, "carol", lab.Symmetric, control.PathRelayed)
	dir := t.TempDir()
	big, _ := randomFile(t, dir, "big.bin", 9<<20)
	small, sum := randomFile(t, dir, "small.bin", 1<<20)

	bigID := alice.sendFile(t, "carol", big)
	const why = "waiting for a direct link (relay limit 8 MiB)"
	waitFor(t, transferWithin, "carol to wait for a direct link", func() bool {
		tr := carol.transfer(t, bigID)
		return tr.State == control.TransferAccepted && tr.Reason == why
	})
	waitFor(t, 30*time.Second, "alice to say why", func() bool {
		tr := alice.transfer(t, bigID)
		return tr.State == control.TransferAccepted && tr.Reason == why
	})

	smallID := alice.sendFile(t, "carol", small)
	in := waitTransferState(t, carol, smallID, control.TransferDone, transferWithin)
	if in.Path != control.PathRelayed {
		t.Fatalf("the small file went %q, want relayed", in.Path)
	}
	if got := sha256File(t, in.FinalPath); got != sum {
		t.Fatalf("received file's SHA-256 %s, want %s", got, sum)
	}
	// The big one is still waiting, with nothing moved.
	if tr := carol.transfer(t, bigID); tr.State != control.TransferAccepted || tr.BytesDone != 0 || tr.Reason != why {
		t.Fatalf("the big file: %+v", tr)
	}
}
