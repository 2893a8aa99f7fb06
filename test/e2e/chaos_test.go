//go:build linux

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natterim/natter/internal/lab"
	"github.com/natterim/natter/node/control"
)

// chaosSender sends count texts "<prefix> NNNN" from n to contact, one
// every pace, for as long as it takes: while n's daemon is down (nothing
// answers on its socket, so nothing was sent) it retries the same text.
// It returns the indexes the daemon confirmed (201) and those whose fate
// it could not know (the daemon died during the request): those may or
// may not be in the history, but never twice.
func chaosSender(ctx context.Context, n *nodeProc, contact, prefix string, count int, pace time.Duration) (confirmed, unsure map[int]bool, err error) {
	confirmed, unsure = map[int]bool{}, map[int]bool{}
	for i := 0; i < count; {
		if ctx.Err() != nil {
			return confirmed, unsure, fmt.Errorf("%s: gave up at message %d: %w", n.name, i, ctx.Err())
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := n.api.Send(rctx, contact, control.SendRequest{Text: fmt.Sprintf("%s %04d", prefix, i)})
		cancel()
		var apiErr *control.APIError
		switch {
		case err == nil:
			confirmed[i] = true
		case errors.Is(err, control.ErrNoDaemon):
			time.Sleep(100 * time.Millisecond)
			continue // not sent: the same text again
		case errors.As(err, &apiErr):
			return confirmed, unsure, fmt.Errorf("%s: send %d refused: %w", n.name, i, err)
		default:
			unsure[i] = true // died mid-request
		}
		i++
		time.Sleep(pace)
	}
	return confirmed, unsure, nil
}

// checkChaosHistory checks one direction of the conversation: the
// sender's history holds every confirmed text, possibly some unsure ones,
// nothing else, each once and in the order sent; the receiver's history
// holds exactly the same messages (same ids), in the same order.
func checkChaosHistory(t *testing.T, from, to *nodeProc, prefix string, confirmed, unsure map[int]bool) int {
	t.Helper()
	pick := func(ms []control.Message, dir string) []control.Message {
		var out []control.Message
		for _, m := range ms {
			if m.Direction == dir && strings.HasPrefix(m.Text, prefix+" ") {
				out = append(out, m)
			}
		}
		return out
	}
	out := pick(from.history(t, to.name), "out")
	in := pick(to.history(t, from.name), "in")
	last := -1
	seen := map[int]bool{}
	for _, m := range out {
		i, err := strconv.Atoi(strings.TrimPrefix(m.Text, prefix+" "))
		if err != nil {
			t.Fatalf("%s: unexpected text %q", from.name, m.Text)
		}
		if seen[i] {
			t.Fatalf("%s: %q twice in the sender's history", from.name, m.Text)
		}
		if !confirmed[i] && !unsure[i] {
			t.Fatalf("%s: %q in the history, but never sent", from.name, m.Text)
		}
		if i < last {
			t.Fatalf("%s: %q after %s %04d: order broken", from.name, m.Text, prefix, last)
		}
		seen[i], last = true, i
		if m.Status != control.StatusDelivered && m.Status != control.StatusRead {
			t.Fatalf("%s: %q is %s at the end, want delivered", from.name, m.Text, m.Status)
		}
	}
	for i := range confirmed {
		if !seen[i] {
			t.Fatalf("%s: %s %04d was confirmed by the daemon but is not in its history: lost", from.name, prefix, i)
		}
	}
	if len(in) != len(out) {
		t.Fatalf("%s holds %d %q messages from %s, who sent %d", to.name, len(in), prefix, from.name, len(out))
	}
	via := map[string]int{}
	for k := range out {
		if in[k].ID != out[k].ID || in[k].Text != out[k].Text {
			t.Fatalf("message %d: %s has %s %q, %s sent %s %q", k, to.name, in[k].ID, in[k].Text, from.name, out[k].ID, out[k].Text)
		}
		via[out[k].Via]++
	}
	t.Logf("%s -> %s: %d messages, delivered via %v", from.name, to.name, len(out), via)
	return len(out)
}

// TestChaos: a conversation of 2 x 1,500 messages and a 32 MiB file
// transfer run while, twice over, the rendezvous, bob and alice are each
// SIGKILLed and restarted and alice's router loses its WAN link for a
// while. At the end every message is in both histories exactly once and
// in order (none confirmed by a daemon is lost, none appears twice), all
// are delivered, the file verifies, and the rendezvous lists both nodes
// online again.
func TestChaos(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	r := startRendezvous(t, l.Public("rdv"))
	// A short mailbox delay: while bob is down, alice's messages also go
	// through his mailbox, and must still land once.
	env := []string{"NATTER_FILES_AUTO_ACCEPT_MAX=1073741824", "NATTER_MAILBOX_AFTER=2s", "NATTER_MAILBOX_POLL=5s"}
	alice := startNode(t, l.Home("alice", lab.Cone), "alice", r, nodeOpts{env: env})
	bob := startNode(t, l.Home("bob", lab.Cone), "bob", r, nodeOpts{env: env})
	befriend(t, alice, bob)
	waitPath(t, alice, bob, control.PathDirect, directWithin)

	src, sum := randomFile(t, t.TempDir(), "chaos.bin", 32<<20)
	// A cap makes the transfer last through the first outages.
	if err := alice.host.Router().LimitWAN(40_000); err != nil {
		t.Fatal(err)
	}
	fileID := alice.sendFile(t, "bob", src)

	const perSide = 1500
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	type result struct {
		confirmed, unsure map[int]bool
		err               error
	}
	var wg sync.WaitGroup
	res := make([]result, 2)
	for k, s := range []struct {
		from     *nodeProc
		to, pref string
	}{{alice, "bob", "a2b"}, {bob, "alice", "b2a"}} {
		wg.Go(func() {
			c, u, err := chaosSender(ctx, s.from, s.to, s.pref, perSide, 15*time.Millisecond)
			res[k] = result{c, u, err}
		})
	}

	// The chaos, twice over.
	pause := func(d time.Duration) { time.Sleep(d) }
	for round := 1; round <= 2; round++ {
		t.Logf("chaos round %d: rendezvous SIGKILL", round)
		r.proc.Kill()
		pause(2 * time.Second)
		r.start(t)
		pause(3 * time.Second)

		t.Logf("chaos round %d: bob SIGKILL", round)
		bob.proc.Kill()
		pause(4 * time.Second) // past mailbox.after: some go to his mailbox
		bob.start(t)
		pause(3 * time.Second)

		t.Logf("chaos round %d: alice's WAN cut", round)
		alice.host.Router().CutWAN()
		pause(6 * time.Second) // past the heartbeat bound: links drop
		alice.host.Router().RestoreWAN()
		pause(3 * time.Second)

		t.Logf("chaos round %d: alice SIGKILL", round)
		alice.proc.Kill()
		pause(2 * time.Second)
		alice.start(t)
		pause(3 * time.Second)
	}
	if err := alice.host.Router().LimitWAN(0); err != nil {
		t.Fatal(err)
	}
	t.Log("chaos over; waiting for the senders and deliveries")
	wg.Wait()
	for _, r := range res {
		if r.err != nil {
			t.Fatal(r.err)
		}
	}

	// Everything settles by itself.
	in := waitTransferState(t, bob, fileID, control.TransferDone, transferWithin)
	if got := sha256File(t, in.FinalPath); got != sum || in.SHA256 != sum {
		t.Fatalf("received file's SHA-256 %s (transfer says %s), want %s", got, in.SHA256, sum)
	}
	if entries, _ := os.ReadDir(filepath.Join(bob.dataDir, "partial")); len(entries) != 0 {
		t.Fatalf("partial files left: %v", entries)
	}
	waitTransferState(t, alice, fileID, control.TransferDone, transferWithin)
	waitAllDelivered(t, alice, "bob")
	waitAllDelivered(t, bob, "alice")

	n1 := checkChaosHistory(t, alice, bob, "a2b", res[0].confirmed, res[0].unsure)
	n2 := checkChaosHistory(t, bob, alice, "b2a", res[1].confirmed, res[1].unsure)
	t.Logf("%d + %d messages exactly once in both histories (%d + %d sends of unknown fate)", n1, n2, len(res[0].unsure), len(res[1].unsure))

	// The registry recovered: both nodes registered and online.
	waitFor(t, time.Minute, "both nodes in the rendezvous's online list", func() bool {
		found := 0
		for _, p := range r.peers(t) {
			if (p["peer_id"] == alice.id || p["peer_id"] == bob.id) && p["presence"] == "online" && p["reservation"] == true {
				found++
			}
		}
		return found == 2
	})
}
