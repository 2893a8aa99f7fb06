//go:build linux

package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natterim/natter/internal/lab"
	"github.com/natterim/natter/node/control"
)

// deliverWithin bounds how long a burst may take to arrive in a test. The
// benchmarks measure the real rates; this only catches "never".
const deliverWithin = 90 * time.Second

// burstSenders is how many sends of a burst are in flight at once: a user
// (or a script) sending as fast as it can. Concurrent sends share the
// daemon's group commit, so a burst costs a few fsyncs rather than one per
// message.
const burstSenders = 8

// sentTexts remembers the text of every message a burst sent, by id, so
// that a history can be checked message by message.
var sentTexts sync.Map

// sendBurst sends count messages "<prefix> NNNN" to contact through n's
// control API, burstSenders at a time, and returns their ids in the order
// the daemon queued them (their sequence numbers): the order the
// conversation must show them in.
func sendBurst(t *testing.T, n *nodeProc, contact, prefix string, count int) []string {
	t.Helper()
	type sent struct {
		id  string
		seq uint64
	}
	var (
		mu   sync.Mutex
		out  = make([]sent, 0, count)
		errs = make(chan error, burstSenders)
		next = make(chan int)
		wg   sync.WaitGroup
	)
	for range burstSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				text := fmt.Sprintf("%s %04d", prefix, i)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				m, err := n.api.Send(ctx, contact, control.SendRequest{Text: text})
				cancel()
				if err != nil {
					errs <- fmt.Errorf("%s: send %d to %s: %w", n.name, i, contact, err)
					return
				}
				sentTexts.Store(m.ID, text)
				mu.Lock()
				out = append(out, sent{m.ID, m.Seq})
				mu.Unlock()
			}
		}()
	}
	func() {
		defer close(next)
		for i := range count {
			select {
			case next <- i:
			case err := <-errs:
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	slices.SortFunc(out, func(a, b sent) int { return cmp.Compare(a.seq, b.seq) })
	ids := make([]string, len(out))
	for i, s := range out {
		ids[i] = s.id
	}
	return ids
}

// history runs `natter history --json` (the scripts' contract).
func (n *nodeProc) history(t *testing.T, contact string) []control.Message {
	t.Helper()
	out, err := n.cli(t, "history", contact, "--json", "--limit", "10000")
	if err != nil {
		t.Fatalf("%s: natter history %s: %v: %s", n.name, contact, err, out)
	}
	var ms []control.Message
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("%s: history --json: %v: %s", n.name, err, out)
	}
	return ms
}

// historyCount is the number of messages in n's conversation with contact
// (0 while n is down).
func (n *nodeProc) historyCount(contact string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ms, err := n.api.History(ctx, contact, "", 10000)
	if err != nil {
		return -1
	}
	return len(ms)
}

// assertExactlyOnce checks that the messages of direction dir in ms are
// exactly ids, in order, each once, with the texts sendBurst wrote.
func assertExactlyOnce(t *testing.T, ms []control.Message, dir, prefix string, ids []string) {
	t.Helper()
	var got []control.Message
	for _, m := range ms {
		if m.Direction == dir && strings.HasPrefix(m.Text, prefix+" ") {
			got = append(got, m)
		}
	}
	if len(got) != len(ids) {
		seen := map[string]int{}
		for _, m := range got {
			seen[m.ID]++
		}
		missing, dup := 0, 0
		for _, id := range ids {
			if seen[id] == 0 {
				missing++
			}
			if seen[id] > 1 {
				dup++
			}
		}
		t.Fatalf("%d %q messages, want %d (missing %d, doubled %d)", len(got), prefix, len(ids), missing, dup)
	}
	for i, m := range got {
		want, _ := sentTexts.Load(ids[i])
		if m.ID != ids[i] || m.Text != want {
			t.Fatalf("message %d is %s %q, want %s %q: order broken", i, m.ID, m.Text, ids[i], want)
		}
	}
}

func waitHistory(t *testing.T, n *nodeProc, contact string, want int) {
	t.Helper()
	waitFor(t, deliverWithin, fmt.Sprintf("%s to hold %d messages with %s", n.name, want, contact), func() bool {
		return n.historyCount(contact) >= want
	})
}

func waitAllDelivered(t *testing.T, n *nodeProc, contact string) {
	t.Helper()
	waitFor(t, deliverWithin, n.name+"'s messages to "+contact+" delivered", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ms, err := n.api.History(ctx, contact, "", 10000)
		if err != nil {
			return false
		}
		for _, m := range ms {
			if m.Direction == "out" && m.Status != control.StatusDelivered && m.Status != control.StatusRead {
				return false
			}
		}
		return true
	})
}

var waitOut = regexp.MustCompile(`^[0-9a-f-]{36} delivered \((direct|relayed)\)\n$`)

// sendWait runs `natter send --wait` and returns the path it reports.
func sendWait(t *testing.T, n *nodeProc, contact, text string) string {
	t.Helper()
	out, err := n.cli(t, "send", contact, text, "--wait", "--timeout", "60s")
	if err != nil {
		t.Fatalf("%s: natter send --wait: %v: %s", n.name, err, out)
	}
	m := waitOut.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s: natter send --wait printed %q", n.name, out)
	}
	return m[1]
}

// TestChatBurstCone: both ways at once across two cone NATs, over the
// direct link: complete, in order, exactly once, all delivered.
func TestChatBurstCone(t *testing.T) {
	t.Parallel()
	alice, bob := pair(t, "bob", lab.Cone, control.PathDirect)
	if via := sendWait(t, alice, "bob", "hello over the direct link"); via != control.PathDirect {
		t.Fatalf("send --wait says %s, want direct", via)
	}

	const n = 1000
	var (
		wg         sync.WaitGroup
		aIDs, bIDs []string
	)
	wg.Add(2)
	go func() { defer wg.Done(); aIDs = sendBurst(t, alice, "bob", "a2b", n) }()
	go func() { defer wg.Done(); bIDs = sendBurst(t, bob, "alice", "b2a", n/2) }()
	wg.Wait()
	waitHistory(t, bob, "alice", 1+n+n/2)
	waitHistory(t, alice, "bob", 1+n+n/2)
	assertExactlyOnce(t, bob.history(t, "alice"), "in", "a2b", aIDs)
	assertExactlyOnce(t, alice.history(t, "bob"), "in", "b2a", bIDs)
	assertExactlyOnce(t, alice.history(t, "bob"), "out", "a2b", aIDs)
	waitAllDelivered(t, alice, "bob")
	waitAllDelivered(t, bob, "alice")
}

// TestChatBurstRelayed: a symmetric NAT on one side keeps the link on the
// relay; chat works over it all the same.
func TestChatBurstRelayed(t *testing.T) {
	t.Parallel()
	alice, carol := pair(t, "carol", lab.Symmetric, control.PathRelayed)
	if via := sendWait(t, carol, "alice", "hello through the relay"); via != control.PathRelayed {
		t.Fatalf("send --wait says %s, want relayed", via)
	}
	const n = 500
	ids := sendBurst(t, carol, "alice", "c2a", n)
	waitHistory(t, alice, "carol", 1+n)
	assertExactlyOnce(t, alice.history(t, "carol"), "in", "c2a", ids)
	waitAllDelivered(t, carol, "alice")
	for _, m := range carol.history(t, "alice") {
		if m.Via != control.PathRelayed {
			t.Fatalf("message %s went %q, want relayed", m.ID, m.Via)
		}
	}
	// Read receipts travel back through the relay too.
	if out, err := alice.cli(t, "read", "carol"); err != nil {
		t.Fatalf("natter read: %v: %s", err, out)
	}
	waitFor(t, deliverWithin, "read receipts at carol", func() bool {
		ms := carol.history(t, "alice")
		return ms[len(ms)-1].Status == control.StatusRead
	})
}

// TestChatReceiverKilled: the receiver is SIGKILLed in the middle of a
// burst and restarted; nothing is lost, nothing doubled.
func TestChatReceiverKilled(t *testing.T) {
	t.Parallel()
	alice, bob := pair(t, "bob", lab.Cone, control.PathDirect)

	const n = 2000
	done := make(chan []string)
	go func() { done <- sendBurst(t, alice, "bob", "burst", n) }()
	// Kill bob once part of the burst has arrived.
	waitFor(t, deliverWithin, "the burst to start arriving", func() bool { return bob.historyCount("alice") >= 200 })
	bob.proc.Kill()
	ids := <-done
	bob.start(t)
	waitHistory(t, bob, "alice", n)
	waitAllDelivered(t, alice, "bob")
	assertExactlyOnce(t, bob.history(t, "alice"), "in", "burst", ids)
}

// TestChatSenderKilled: the sender is SIGKILLed with messages in its
// outbox (the contact was offline); restarted, it delivers them by itself.
func TestChatSenderKilled(t *testing.T) {
	t.Parallel()
	alice, bob := pair(t, "bob", lab.Cone, control.PathDirect)

	bob.proc.Kill()
	const n = 50
	ids := sendBurst(t, alice, "bob", "queued", n)
	st := alice.contact(t, bob.id)
	if st.Queued != n {
		t.Fatalf("%d messages queued for bob, want %d", st.Queued, n)
	}
	alice.proc.Kill()
	bob.start(t)
	alice.start(t)
	waitHistory(t, bob, "alice", n)
	assertExactlyOnce(t, bob.history(t, "alice"), "in", "queued", ids)
	waitAllDelivered(t, alice, "bob")
	if q := alice.contact(t, bob.id).Queued; q != 0 {
		t.Fatalf("%d still queued after delivery", q)
	}
}
