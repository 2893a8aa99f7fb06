//go:build linux

package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/natterim/natter/internal/lab"
	"github.com/natterim/natter/node/control"
)

// BenchmarkTimeToDirect measures, in the NAT lab (cone <-> cone), how long
// after both daemons start their link becomes direct, and how long after
// the relayed connection. Each iteration restarts both daemons (contacts
// already added) and reads the times off alice's event stream, stamped by
// the daemon itself. It reports medians:
//
//	start-to-direct-ms    daemon start -> direct link
//	relayed-to-direct-ms  relayed connection -> direct link (the DCUtR cost)
//	start-to-relayed-ms   daemon start -> relayed link (the baseline: what
//	                      the rendezvous alone costs)
//	direct/relayed        start-to-direct / start-to-relayed, a ratio that
//	                      does not depend on how fast this machine is
//
// Run: go test ./test/e2e -run '^$' -bench TimeToDirect -benchtime 10x
func BenchmarkTimeToDirect(b *testing.B) {
	l := lab.New(b)
	r := startRendezvous(b, l.Public("rdv"))
	alice := startNode(b, l.Home("alice", lab.Cone), "alice", r, nodeOpts{})
	bob := startNode(b, l.Home("bob", lab.Cone), "bob", r, nodeOpts{})
	befriend(b, alice, bob)
	waitPath(b, alice, bob, control.PathDirect, directWithin)

	var toDirect, toRelayed, relayedToDirect []float64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		alice.proc.Stop()
		bob.proc.Stop()
		// Daemons listen on port 0: every restart gets new ports, so every
		// run needs fresh NAT mappings and a fresh hole punch.
		b.StartTimer()
		start := time.Now()
		bob.start(b)
		alice.start(b)
		ctx, cancel := context.WithTimeout(context.Background(), directWithin)
		ev := alice.events(ctx, b)
		var relayedAt, directAt time.Time
		// The link may have come up before we subscribed: the status
		// poll below catches that case.
	loop:
		for {
			select {
			case e, ok := <-ev:
				if !ok {
					break loop
				}
				if e.Type != control.EventLink || e.PeerID != bob.id {
					continue
				}
				switch e.Path {
				case control.PathRelayed:
					relayedAt = e.Time
				case control.PathDirect:
					directAt = e.Time
					break loop
				}
			case <-time.After(100 * time.Millisecond):
				if c := alice.contact(b, bob.id); c.Path == control.PathDirect && !c.DirectSince.IsZero() {
					directAt = c.DirectSince
					break loop
				}
			}
		}
		cancel()
		if directAt.IsZero() {
			b.Fatalf("run %d: no direct link within %s", len(toDirect)+1, directWithin)
		}
		b.Logf("run %d: start-to-direct %.0f ms, start-to-relayed %.0f ms", len(toDirect)+1, ms(directAt.Sub(start)), msSince(relayedAt, start))
		toDirect = append(toDirect, ms(directAt.Sub(start)))
		if !relayedAt.IsZero() {
			toRelayed = append(toRelayed, ms(relayedAt.Sub(start)))
			relayedToDirect = append(relayedToDirect, ms(directAt.Sub(relayedAt)))
		}
	}
	b.StopTimer()
	b.ReportMetric(median(toDirect), "start-to-direct-ms")
	if len(toRelayed) > 0 {
		b.ReportMetric(median(toRelayed), "start-to-relayed-ms")
		b.ReportMetric(median(relayedToDirect), "relayed-to-direct-ms")
		b.ReportMetric(median(toDirect)/median(toRelayed), "direct/relayed")
	}
	b.ReportMetric(0, "ns/op")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// msSince is t-start in ms, or -1 when t is unset.
func msSince(t, start time.Time) float64 {
	if t.IsZero() {
		return -1
	}
	return ms(t.Sub(start))
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
