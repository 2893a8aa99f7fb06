//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/natterim/natter/internal/lab"
	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/rendezvous"
)

// mailboxEnv shortens the mailbox timers so that the test runs in seconds.
var mailboxEnv = []string{"NATTER_MAILBOX_AFTER=2s", "NATTER_MAILBOX_POLL=2s", "NATTER_MAILBOX_STATUS_INTERVAL=2s"}

// mailbox runs `natter mailbox --json`.
func (n *nodeProc) mailbox(t *testing.T) control.Mailbox {
	t.Helper()
	out, err := n.cli(t, "mailbox", "--json")
	if err != nil {
		t.Fatalf("%s: natter mailbox: %v: %s", n.name, err, out)
	}
	var mb control.Mailbox
	if err := json.Unmarshal([]byte(out), &mb); err != nil {
		t.Fatalf("%s: mailbox --json: %v: %s", n.name, err, out)
	}
	return mb
}

// waitToken waits until n holds a deposit token from other.
func waitToken(t *testing.T, n, other *nodeProc) {
	t.Helper()
	waitFor(t, directWithin, n.name+" to hold a deposit token from "+other.name, func() bool {
		for _, c := range n.mailbox(t).Contacts {
			if c.PeerID == other.id && c.TokenExpires.After(time.Now()) {
				return true
			}
		}
		return false
	})
}

// mailboxes runs `natter-rendezvous mailboxes --json`.
func (r *rdv) mailboxes(t *testing.T) rendezvous.MailboxReport {
	t.Helper()
	out, err := exec.Command(bin.rendezvous, "mailboxes", "--json", "--data-dir", r.dataDir).Output()
	if err != nil {
		t.Fatalf("natter-rendezvous mailboxes: %v", err)
	}
	var rep rendezvous.MailboxReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("mailboxes --json: %v: %s", err, out)
	}
	return rep
}

// boxesOf is how many boxes the rendezvous holds for peer id.
func (r *rdv) boxesOf(t *testing.T, id string) int {
	for _, m := range r.mailboxes(t).Mailboxes {
		if m.Owner.String() == id {
			return m.Boxes
		}
	}
	return 0
}

// requireNoPlaintext fails if any file under dir contains one of texts.
func requireNoPlaintext(t *testing.T, dir string, texts []string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		for _, s := range texts {
			if bytes.Contains(b, []byte(s)) {
				t.Fatalf("%s holds the plaintext %q", p, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("no files in %s", dir)
	}
}

func outStatuses(ms []control.Message) map[string]int {
	out := map[string]int{}
	for _, m := range ms {
		if m.Direction == "out" {
			out[m.Status]++
		}
	}
	return out
}

// TestMailboxOffline: bob is offline; alice writes 20 messages, which are
// sealed into bob's mailbox on the rendezvous, and goes offline too. The
// rendezvous restarts. Bob comes back and gets all 20 exactly once, in
// order; his delivered receipt waits in alice's mailbox; alice comes back
// (bob gone again) and sees all 20 delivered through the mailbox. No file
// of the rendezvous ever holds a message in the clear.
func TestMailboxOffline(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	r := startRendezvous(t, l.Public("rdv"))
	alice := startNode(t, l.Home("alice", lab.Cone), "alice", r, nodeOpts{env: mailboxEnv})
	bob := startNode(t, l.Home("bob", lab.Cone), "bob", r, nodeOpts{env: mailboxEnv})
	befriend(t, alice, bob)
	waitToken(t, alice, bob)
	waitToken(t, bob, alice)
	for _, n := range []*nodeProc{alice, bob} {
		waitFor(t, directWithin, n.name+" to open its mailbox", func() bool {
			mb := n.mailbox(t)
			return len(mb.Servers) == 1 && !mb.Servers[0].LastDrain.IsZero()
		})
	}

	if err := bob.proc.Stop(); err != nil {
		t.Fatalf("stop bob: %v", err)
	}
	waitPath(t, alice, bob, control.PathNone, 30*time.Second)
	const n = 20
	ids := sendBurst(t, alice, "bob", "while you were away", n)
	texts := make([]string, n)
	for i := range texts {
		texts[i] = fmt.Sprintf("while you were away %04d", i)
	}
	waitFor(t, deliverWithin, "alice's 20 messages stored in bob's mailbox", func() bool {
		return outStatuses(alice.history(t, "bob"))[control.StatusStored] == n
	})
	if got := r.boxesOf(t, bob.id); got != n {
		t.Fatalf("the rendezvous holds %d boxes for bob, want %d", got, n)
	}
	if mb := alice.mailbox(t); mb.Contacts[0].Stored != n || mb.Contacts[0].Server != r.id {
		t.Fatalf("natter mailbox at alice: %+v", mb.Contacts[0])
	}
	requireNoPlaintext(t, r.dataDir, texts)

	// Alice goes offline too; the rendezvous restarts before bob drains.
	if err := alice.proc.Stop(); err != nil {
		t.Fatalf("stop alice: %v", err)
	}
	if err := r.proc.Stop(); err != nil {
		t.Fatalf("stop rendezvous: %v", err)
	}
	r.start(t)
	if got := r.boxesOf(t, bob.id); got != n {
		t.Fatalf("after a restart the rendezvous holds %d boxes for bob, want %d", got, n)
	}
	requireNoPlaintext(t, r.dataDir, texts)

	bob.start(t)
	waitHistory(t, bob, "alice", n)
	assertExactlyOnce(t, bob.history(t, "alice"), "in", "while you were away", ids)
	waitFor(t, deliverWithin, "bob's mailbox emptied and his receipt stored in alice's", func() bool {
		return r.boxesOf(t, bob.id) == 0 && r.boxesOf(t, alice.id) == 1
	})
	if err := bob.proc.Stop(); err != nil {
		t.Fatalf("stop bob: %v", err)
	}

	// Alice comes back alone: her mailbox tells her.
	alice.start(t)
	waitAllDelivered(t, alice, "bob")
	hist := alice.history(t, "bob")
	assertExactlyOnce(t, hist, "out", "while you were away", ids)
	for _, m := range hist {
		if m.Via != control.PathMailbox {
			t.Fatalf("message %s delivered via %q, want mailbox", m.ID, m.Via)
		}
	}
	waitFor(t, deliverWithin, "alice's mailbox emptied and her outbox", func() bool {
		return r.boxesOf(t, alice.id) == 0 && alice.contact(t, bob.id).Queued == 0
	})
	requireNoPlaintext(t, r.dataDir, texts)

	rep := r.mailboxes(t)
	if rep.Refused["bad_token"] != 0 || rep.Requests["deposit/ok"] < 1 || rep.Requests["fetch/ok"] < 1 {
		t.Fatalf("rendezvous counters since its restart: refused %v, requests %v", rep.Refused, rep.Requests)
	}
}
