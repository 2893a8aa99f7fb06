//go:build linux

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/natterim/natter/internal/lab"
	"github.com/natterim/natter/node/control"
)

// directWithin bounds how long a hole punch may take in the lab before a
// test fails. The benchmark measures the real figure (about a second); this
// is generous because CI machines are noisy and binaries run with -race.
const directWithin = 45 * time.Second

// assertDirect checks that a contact status really describes a direct
// link: the remote address is the peer's public (router or host) address,
// not a relay circuit.
func assertDirect(t *testing.T, c control.ContactStatus, wantIP, wantTransport string) {
	t.Helper()
	if !c.Connected || c.Path != control.PathDirect {
		t.Fatalf("want connected direct, got %+v", c)
	}
	if strings.Contains(c.RemoteAddr, "p2p-circuit") || !strings.Contains(c.RemoteAddr, "/"+wantIP+"/") {
		t.Fatalf("direct link's remote_addr %q is not at %s", c.RemoteAddr, wantIP)
	}
	if wantTransport != "" && c.Transport != wantTransport {
		t.Fatalf("transport %q, want %q (remote %s)", c.Transport, wantTransport, c.RemoteAddr)
	}
}

func pingVia(t *testing.T, n *nodeProc, contact, wantPath string) {
	t.Helper()
	out, err := n.cli(t, "ping", contact)
	if err != nil {
		t.Fatalf("%s: natter ping %s: %v: %s", n.name, contact, err, out)
	}
	if !strings.Contains(out, "via "+wantPath) {
		t.Fatalf("%s: natter ping %s: want path %s, got %q", n.name, contact, wantPath, out)
	}
}

// TestConeToCone: two nodes behind cone NATs end up on a direct link,
// with both transports and with each one alone.
func TestConeToCone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ transports, want string }{
		{"tcp,quic", ""},
		{"tcp", "tcp"},
		{"quic", "quic"},
	} {
		t.Run(strings.ReplaceAll(tc.transports, ",", "+"), func(t *testing.T) {
			t.Parallel()
			l := lab.New(t)
			r := startRendezvous(t, l.Public("rdv"))
			alice := startNode(t, l.Home("alice", lab.Cone), "alice", r, nodeOpts{transports: tc.transports})
			bob := startNode(t, l.Home("bob", lab.Cone), "bob", r, nodeOpts{transports: tc.transports})
			befriend(t, alice, bob)

			ca := waitPath(t, alice, bob, control.PathDirect, directWithin)
			assertDirect(t, ca, bob.host.Router().WANIP(), tc.want)
			cb := waitPath(t, bob, alice, control.PathDirect, directWithin)
			assertDirect(t, cb, alice.host.Router().WANIP(), tc.want)

			// The --json contract, through the real CLI.
			st := alice.status(t)
			if len(st.Contacts) != 1 || st.Contacts[0].PeerID != bob.id || st.Contacts[0].Name != "bob" || st.Contacts[0].Path != "direct" {
				t.Fatalf("status --json contacts = %+v", st.Contacts)
			}
			if len(st.Rendezvous) != 1 || !st.Rendezvous[0].Connected || st.Rendezvous[0].Reservation != "active" || !st.Rendezvous[0].Registered {
				t.Fatalf("status --json rendezvous = %+v", st.Rendezvous)
			}
			pingVia(t, alice, "bob", "direct")
			pingVia(t, bob, alice.id, "direct")
		})
	}
}

// TestSymmetricRelayed: a symmetric NAT cannot be punched; the link stays
// relayed and works.
func TestSymmetricRelayed(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	r := startRendezvous(t, l.Public("rdv"))
	alice := startNode(t, l.Home("alice", lab.Symmetric), "alice", r, nodeOpts{})
	bob := startNode(t, l.Home("bob", lab.Cone), "bob", r, nodeOpts{})
	befriend(t, alice, bob)

	c := waitPath(t, alice, bob, control.PathRelayed, directWithin)
	if !strings.Contains(c.RemoteAddr, "p2p-circuit") || c.Transport != "relay" {
		t.Fatalf("relayed link's remote_addr %q / transport %q do not name the relay", c.RemoteAddr, c.Transport)
	}
	waitPath(t, bob, alice, control.PathRelayed, directWithin)
	// Give hole punching (and one retry) the chance to fail for real, then
	// check nothing claims a direct link.
	time.Sleep(8 * time.Second)
	if c := alice.contact(t, bob.id); c.Path != control.PathRelayed {
		t.Fatalf("alice -> bob: path %s, want relayed through symmetric NAT: %+v", c.Path, c)
	}
	pingVia(t, alice, "bob", "relayed")
	pingVia(t, bob, "alice", "relayed")
	// The relayed link is still there after several heartbeats.
	time.Sleep(5 * time.Second)
	pingVia(t, alice, "bob", "relayed")
}

// TestPublicToNATed: a node with a public address and one behind a cone
// NAT connect directly.
func TestPublicToNATed(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	r := startRendezvous(t, l.Public("rdv"))
	carolHost := l.Public("carol")
	carol := startNode(t, carolHost, "carol", r, nodeOpts{})
	alice := startNode(t, l.Home("alice", lab.Cone), "alice", r, nodeOpts{})
	befriend(t, alice, carol)

	assertDirect(t, waitPath(t, alice, carol, control.PathDirect, directWithin), carolHost.IP(), "")
	assertDirect(t, waitPath(t, carol, alice, control.PathDirect, directWithin), alice.host.Router().WANIP(), "")
	pingVia(t, carol, "alice", "direct")
}

// TestRendezvousOutage: a direct link survives the rendezvous dying, and
// nodes re-register by themselves when it comes back.
func TestRendezvousOutage(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	r := startRendezvous(t, l.Public("rdv"))
	alice := startNode(t, l.Home("alice", lab.Cone), "alice", r, nodeOpts{})
	bob := startNode(t, l.Home("bob", lab.Cone), "bob", r, nodeOpts{})
	befriend(t, alice, bob)
	waitPath(t, alice, bob, control.PathDirect, directWithin)
	waitPath(t, bob, alice, control.PathDirect, directWithin)

	online := r.peers(t)
	if len(online) != 2 {
		b, _ := json.Marshal(online)
		t.Fatalf("rendezvous peers: want alice and bob online, got %s", b)
	}

	r.proc.Kill()
	// Both nodes notice the rendezvous is gone (heartbeat 2 s x 2)...
	for _, n := range []*nodeProc{alice, bob} {
		waitFor(t, 30*time.Second, n.name+" sees rendezvous down", func() bool {
			st := n.status(t)
			return len(st.Rendezvous) == 1 && !st.Rendezvous[0].Connected
		})
	}
	// ...and the direct link between them stays up and usable.
	time.Sleep(6 * time.Second)
	assertDirect(t, alice.contact(t, bob.id), bob.host.Router().WANIP(), "")
	pingVia(t, alice, "bob", "direct")
	pingVia(t, bob, "alice", "direct")

	// The rendezvous comes back (same key, same address): both nodes
	// reconnect, reserve and register again without help.
	r.start(t)
	for _, n := range []*nodeProc{alice, bob} {
		waitFor(t, 90*time.Second, n.name+" re-registered", func() bool {
			st := n.status(t)
			return len(st.Rendezvous) == 1 && st.Rendezvous[0].Connected && st.Rendezvous[0].Registered && st.Rendezvous[0].Reservation == "active"
		})
	}
	waitFor(t, 10*time.Second, "both online on the rendezvous again", func() bool { return len(r.peers(t)) == 2 })
	assertDirect(t, alice.contact(t, bob.id), bob.host.Router().WANIP(), "")
}

// TestReconnectAfterRestart: a contact that restarts is found again on the
// rendezvous and the link becomes direct again.
func TestReconnectAfterRestart(t *testing.T) {
	t.Parallel()
	alice, bob := pair(t, "bob", lab.Cone, control.PathDirect)

	bob.proc.Kill()
	waitPath(t, alice, bob, control.PathNone, 30*time.Second)
	bob.start(t)
	waitBothTransports(t, bob)
	waitPath(t, alice, bob, control.PathDirect, directWithin)
	waitPath(t, bob, alice, control.PathDirect, directWithin)
	pingVia(t, bob, "alice", "direct")
}
