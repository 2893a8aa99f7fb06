package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/natterim/natter/internal/lab"
	"github.com/natterim/natter/node/control"
)

// offlineBound is the documented bound for showing a dead contact offline
// with the default heartbeat (10 s x 2 misses + 5 s ping timeout = 25 s),
// plus slack for a busy machine.
const offlineBound = 35 * time.Second

// TestFriendRequestAcrossNATs: a request crosses two NATs, shows as
// pending on both sides with its note, nothing can be chatted until it is
// accepted, and acceptance reaches the requester, after which chat and
// presence flow. A former contact that keeps writing is refused.
func TestFriendRequestAcrossNATs(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	r := startRendezvous(t, l.Public("rdv"))
	alice := startNode(t, l.Home("alice", lab.Cone), "alice", r, nodeOpts{})
	bob := startNode(t, l.Home("bob", lab.Cone), "bob", r, nodeOpts{})

	if out, err := alice.cli(t, "contacts", "add", bob.id, "--name", "bob", "--note", "hi Bob, it's Alice"); err != nil || !strings.Contains(out, "pending") {
		t.Fatalf("contacts add: %v: %s", err, out)
	}
	waitState(t, alice, bob, control.StatePendingOut)
	req := waitState(t, bob, alice, control.StatePendingIn)
	if req.Note != "hi Bob, it's Alice" {
		t.Fatalf("note %q", req.Note)
	}
	if out, err := alice.cli(t, "send", "bob", "before accept"); err == nil || !strings.Contains(out, "not accepted") {
		t.Fatalf("send before accept: %v: %s", err, out)
	}
	if out, err := bob.cli(t, "contacts", "accept", alice.id, "--name", "alice"); err != nil {
		t.Fatalf("accept: %v: %s", err, out)
	}
	waitState(t, alice, bob, control.StateAccepted)
	sendWait(t, alice, "bob", "after accept")
	waitFor(t, deliverWithin, "bob sees alice online", func() bool {
		return bob.contact(t, alice.id).Presence == control.PresenceOnline
	})
	if out, err := alice.cli(t, "presence", "busy", "--message", "climbing"); err != nil {
		t.Fatalf("presence: %v: %s", err, out)
	}
	waitFor(t, deliverWithin, "bob sees alice busy", func() bool {
		c := bob.contact(t, alice.id)
		return c.Presence == control.PresenceBusy && c.StatusMessage == "climbing"
	})

	// Bob drops Alice; her node still has him and keeps trying to
	// deliver. Nothing reaches his history.
	if out, err := bob.cli(t, "contacts", "remove", "alice"); err != nil {
		t.Fatalf("remove: %v: %s", err, out)
	}
	out, err := alice.cli(t, "send", "bob", "--wait", "--timeout", "5s", "are we still friends?")
	if err == nil || !strings.Contains(out, "not delivered") {
		t.Fatalf("a stranger's message was delivered: %v: %s", err, out)
	}
	if out, err := bob.cli(t, "history", "alice"); err == nil {
		t.Fatalf("bob has a history with a stranger: %s", out)
	}
}

// TestRejectAndBlockAcrossNATs: a rejection reaches the requester
// through the relay (symmetric NAT), and a blocked peer cannot even
// connect.
func TestRejectAndBlockAcrossNATs(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	r := startRendezvous(t, l.Public("rdv"))
	alice := startNode(t, l.Home("alice", lab.Cone), "alice", r, nodeOpts{})
	carol := startNode(t, l.Home("carol", lab.Symmetric), "carol", r, nodeOpts{})

	if out, err := carol.cli(t, "contacts", "add", alice.id, "--name", "alice"); err != nil {
		t.Fatalf("contacts add: %v: %s", err, out)
	}
	waitState(t, alice, carol, control.StatePendingIn)
	if out, err := alice.cli(t, "contacts", "reject", carol.id); err != nil {
		t.Fatalf("reject: %v: %s", err, out)
	}
	waitState(t, carol, alice, "")
	waitState(t, alice, carol, "")

	if out, err := alice.cli(t, "contacts", "block", carol.id); err != nil {
		t.Fatalf("block: %v: %s", err, out)
	}
	waitState(t, alice, carol, control.StateBlocked)
	if out, err := carol.cli(t, "contacts", "add", alice.id, "--name", "alice"); err != nil {
		t.Fatalf("contacts add: %v: %s", err, out)
	}
	// Carol's node keeps trying; Alice's gater refuses every connection.
	// Carol sees each relayed connection open and close at once, so she
	// must back off rather than dial again at once (she once dialled
	// every 50 ms).
	dialsBefore := strings.Count(carol.proc.Log(), "path=relayed")
	time.Sleep(5 * time.Second)
	if c := alice.contact(t, carol.id); c.Connected || c.State != control.StateBlocked {
		t.Fatalf("blocked peer: %+v", c)
	}
	if c := carol.contact(t, alice.id); c.State != control.StatePendingOut {
		t.Fatalf("carol: %+v", c)
	}
	dials := strings.Count(carol.proc.Log(), "path=relayed") - dialsBefore
	t.Logf("carol connected %d times while blocked", dials)
	if dials > 8 {
		t.Fatalf("carol's node connected to alice %d times in 5 s: no backoff", dials)
	}
}

// TestPresenceOfflineAfterKill: a contact whose daemon is SIGKILLed shows
// offline within the documented bound with the default heartbeat (at once
// here, since the kernel closes its sockets); so does one whose network
// vanishes without a word (its router cut off: only the heartbeat can
// tell); one that stops cleanly shows offline at once.
func TestPresenceOfflineAfterKill(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	r := startRendezvous(t, l.Public("rdv"))
	defaults := nodeOpts{env: []string{"NATTER_HEARTBEAT=10s"}}
	alice := startNode(t, l.Home("alice", lab.Cone), "alice", r, defaults)
	bob := startNode(t, l.Home("bob", lab.Cone), "bob", r, defaults)
	befriend(t, alice, bob)
	waitPath(t, alice, bob, control.PathDirect, directWithin)
	waitFor(t, deliverWithin, "alice sees bob online", func() bool {
		return alice.contact(t, bob.id).Presence == control.PresenceOnline
	})

	bob.proc.Kill()
	killed := time.Now()
	waitFor(t, offlineBound, "alice sees bob offline after SIGKILL", func() bool {
		return alice.contact(t, bob.id).Presence == control.PresenceOffline
	})
	t.Logf("offline %.1f s after SIGKILL", time.Since(killed).Seconds())

	bob.start(t)
	waitFor(t, deliverWithin, "alice sees bob online again", func() bool {
		return alice.contact(t, bob.id).Presence == control.PresenceOnline
	})
	bob.host.Router().CutWAN()
	cut := time.Now()
	waitFor(t, offlineBound, "alice sees bob offline after his network vanished", func() bool {
		return alice.contact(t, bob.id).Presence == control.PresenceOffline
	})
	t.Logf("offline %.1f s after bob's WAN was cut", time.Since(cut).Seconds())
	bob.host.Router().RestoreWAN()
	waitFor(t, deliverWithin, "alice sees bob online after the WAN is back", func() bool {
		return alice.contact(t, bob.id).Presence == control.PresenceOnline
	})
	if err := bob.proc.Stop(); err != nil {
		t.Fatalf("stop bob: %v", err)
	}
	stopped := time.Now()
	waitFor(t, 10*time.Second, "alice sees bob offline after a clean stop", func() bool {
		return alice.contact(t, bob.id).Presence == control.PresenceOffline
	})
	t.Logf("offline %.1f s after a clean stop", time.Since(stopped).Seconds())
}
