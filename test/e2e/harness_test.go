//go:build linux

// Package e2e runs the real natter and natter-rendezvous binaries inside the
// NAT lab (internal/lab): a public segment with the rendezvous and home
// routers doing cone or symmetric NAT. It needs root and nftables; without
// them every test skips with a message saying so.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/natterim/natter/internal/lab"
	"github.com/natterim/natter/node/control"
)

// binaries built once by TestMain.
var bin struct{ natter, rendezvous string }

func TestMain(m *testing.M) {
	if os.Getenv(benchRoleEnv) != "" {
		os.Exit(m.Run()) // a BenchmarkChat child: needs no binaries
	}
	dir, err := os.MkdirTemp("", "natter-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin.natter = filepath.Join(dir, "natter")
	bin.rendezvous = filepath.Join(dir, "natter-rendezvous")
	for out, pkg := range map[string]string{bin.natter: "../../cmd/natter", bin.rendezvous: "../../cmd/natter-rendezvous"} {
		cmd := exec.Command("go", "build", "-race", "-o", out, pkg)
		if os.Getenv("NATTER_E2E_NORACE") != "" || !raceEnabled {
			cmd = exec.Command("go", "build", "-o", out, pkg)
		}
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, b)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// rdv is a running natter-rendezvous in the lab.
type rdv struct {
	host    *lab.Host
	dataDir string
	id      string
	addrs   []string // dialable, with /p2p/
	proc    *lab.Proc
}

// startRendezvous starts a rendezvous on a public host, listening on port
// 4001 over TCP and QUIC.
func startRendezvous(t testing.TB, h *lab.Host) *rdv {
	t.Helper()
	r := &rdv{host: h, dataDir: t.TempDir()}
	out, err := exec.Command(bin.rendezvous, "id", "--data-dir", r.dataDir).Output()
	if err != nil {
		t.Fatalf("natter-rendezvous id: %v", err)
	}
	r.id = strings.Fields(string(out))[0]
	r.addrs = []string{
		fmt.Sprintf("/ip4/%s/tcp/4001/p2p/%s", h.IP(), r.id),
		fmt.Sprintf("/ip4/%s/udp/4001/quic-v1/p2p/%s", h.IP(), r.id),
	}
	r.start(t)
	return r
}

func (r *rdv) start(t testing.TB) {
	t.Helper()
	r.proc = r.host.Start(bin.rendezvous, "run", "--data-dir", r.dataDir,
		"--listen", "/ip4/0.0.0.0/tcp/4001", "--listen", "/ip4/0.0.0.0/udp/4001/quic-v1", "--log-level", "debug")
	waitFor(t, 15*time.Second, "rendezvous admin socket", func() bool {
		_, err := os.Stat(filepath.Join(r.dataDir, "admin.sock"))
		return err == nil
	})
}

// peers runs `natter-rendezvous peers --json`.
func (r *rdv) peers(t testing.TB) []map[string]any {
	t.Helper()
	out, err := exec.Command(bin.rendezvous, "peers", "--json", "--data-dir", r.dataDir).Output()
	if err != nil {
		t.Fatalf("natter-rendezvous peers: %v", err)
	}
	var ps []map[string]any
	if err := json.Unmarshal(out, &ps); err != nil {
		t.Fatalf("peers --json: %v: %s", err, out)
	}
	return ps
}

// nodeProc is a natter daemon in the lab.
type nodeProc struct {
	name    string
	host    *lab.Host
	dataDir string
	id      string
	args    []string
	env     []string
	proc    *lab.Proc
	api     *control.Client
}

type nodeOpts struct {
	transports string // "tcp,quic" by default
	env        []string
}

// startNode initialises a data dir and starts `natter daemon` on h.
func startNode(t testing.TB, h *lab.Host, name string, r *rdv, o nodeOpts) *nodeProc {
	t.Helper()
	n := newNode(t, h, name, r, o)
	n.start(t)
	return n
}

func newNode(t testing.TB, h *lab.Host, name string, r *rdv, o nodeOpts) *nodeProc {
	t.Helper()
	n := &nodeProc{name: name, host: h, dataDir: t.TempDir()}
	out, err := exec.Command(bin.natter, "init", "--data-dir", n.dataDir, "--name", name, "--no-passphrase").Output()
	if err != nil {
		t.Fatalf("natter init: %v", err)
	}
	n.id = strings.TrimSpace(string(out))
	if o.transports == "" {
		o.transports = "tcp,quic"
	}
	n.args = []string{"daemon", "--data-dir", n.dataDir, "--transports", o.transports, "--log-level", "debug",
		"--listen", "/ip4/0.0.0.0/tcp/0", "--listen", "/ip4/0.0.0.0/udp/0/quic-v1"}
	for _, a := range r.addrs {
		n.args = append(n.args, "--rendezvous", a)
	}
	// Short heartbeats so that outages are noticed within the test's time.
	n.env = append([]string{"NATTER_HEARTBEAT=2s", "NATTER_DIRECT_RETRY=5s", "NATTER_DIRECT_RETRY_MAX=20s"}, o.env...)
	n.api = control.NewClient(control.SocketPath(n.dataDir))
	return n
}

func (n *nodeProc) start(t testing.TB) {
	t.Helper()
	n.host.Env = n.env
	n.proc = n.host.Start(bin.natter, n.args...)
	waitFor(t, 15*time.Second, n.name+" control socket", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := n.api.Status(ctx)
		return err == nil
	})
}

// cli runs the natter CLI against n's data dir.
func (n *nodeProc) cli(t testing.TB, args ...string) (string, error) {
	t.Helper()
	args = append(args, "--data-dir", n.dataDir)
	out, err := exec.Command(bin.natter, args...).CombinedOutput()
	return string(out), err
}

// status runs `natter status --json`: the contract scripts use.
func (n *nodeProc) status(t testing.TB) control.Status {
	t.Helper()
	out, err := exec.Command(bin.natter, "status", "--json", "--data-dir", n.dataDir).Output()
	if err != nil {
		t.Fatalf("%s: natter status: %v", n.name, err)
	}
	var st control.Status
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("%s: status --json: %v: %s", n.name, err, out)
	}
	return st
}

func (n *nodeProc) contact(t testing.TB, id string) control.ContactStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := n.api.Status(ctx)
	if err != nil {
		t.Fatalf("%s: status: %v", n.name, err)
	}
	for _, c := range st.Contacts {
		if c.PeerID == id {
			return c
		}
	}
	t.Fatalf("%s: no contact %s in status", n.name, id)
	return control.ContactStatus{}
}

// befriend makes a and b contacts of each other: both add the other,
// which accepts both requests once they cross.
func befriend(t testing.TB, a, b *nodeProc) {
	t.Helper()
	for _, p := range [][2]*nodeProc{{a, b}, {b, a}} {
		if out, err := p[0].cli(t, "contacts", "add", p[1].id, "--name", p[1].name); err != nil {
			t.Fatalf("%s: contacts add %s: %v: %s", p[0].name, p[1].name, err, out)
		}
	}
	waitState(t, a, b, control.StateAccepted)
	waitState(t, b, a, control.StateAccepted)
}

// waitState waits until n lists other in state ("" = not listed), as
// `natter contacts list --json` shows it.
func waitState(t testing.TB, n, other *nodeProc, state string) control.Contact {
	t.Helper()
	var c control.Contact
	waitFor(t, directWithin, fmt.Sprintf("%s: %s %q", n.name, other.name, state), func() bool {
		c = control.Contact{}
		for _, x := range n.contacts(t) {
			if x.PeerID == other.id {
				c = x
			}
		}
		return c.State == state
	})
	return c
}

// contacts runs `natter contacts list --json`.
func (n *nodeProc) contacts(t testing.TB) []control.Contact {
	t.Helper()
	out, err := exec.Command(bin.natter, "contacts", "list", "--json", "--data-dir", n.dataDir).Output()
	if err != nil {
		t.Fatalf("%s: natter contacts list: %v", n.name, err)
	}
	var cs []control.Contact
	if err := json.Unmarshal(out, &cs); err != nil {
		t.Fatalf("%s: contacts list --json: %v: %s", n.name, err, out)
	}
	return cs
}

// pair starts a lab with a rendezvous, alice behind a cone NAT and a
// contact called name behind a NAT of kind, makes them contacts, and waits
// until alice sees the link on path.
func pair(t testing.TB, name string, kind lab.Kind, path string) (alice, other *nodeProc) {
	t.Helper()
	l := lab.New(t)
	r := startRendezvous(t, l.Public("rdv"))
	alice = startNode(t, l.Home("alice", lab.Cone), "alice", r, nodeOpts{})
	other = startNode(t, l.Home(name, kind), name, r, nodeOpts{})
	befriend(t, alice, other)
	waitPath(t, alice, other, path, directWithin)
	return alice, other
}

// waitPath waits until n sees the contact on path.
func waitPath(t testing.TB, n, other *nodeProc, path string, timeout time.Duration) control.ContactStatus {
	t.Helper()
	var c control.ContactStatus
	waitFor(t, timeout, fmt.Sprintf("%s -> %s path %s", n.name, other.name, path), func() bool {
		c = n.contact(t, other.id)
		return c.Path == path
	})
	return c
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// events subscribes to n's event stream; events arrive on the channel
// until ctx ends.
func (n *nodeProc) events(ctx context.Context, t testing.TB) <-chan control.Event {
	t.Helper()
	body, err := n.api.Stream(ctx, "/events")
	if err != nil {
		t.Fatalf("%s: events: %v", n.name, err)
	}
	ch := make(chan control.Event, 64)
	go func() {
		defer close(ch)
		defer body.Close()
		sc := bufio.NewScanner(body)
		for sc.Scan() {
			var e control.Event
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				select {
				case ch <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ch
}

// waitBothTransports waits until n is connected to its rendezvous over
// TCP and QUIC: a node left with one transport cannot punch a hole to a
// contact left with the other (after a restart it once got QUIC only,
// its contact TCP only, and their link stayed relayed).
func waitBothTransports(t testing.TB, n *nodeProc) {
	t.Helper()
	waitFor(t, 30*time.Second, n.name+" connected to the rendezvous over tcp and quic", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := n.api.Status(ctx)
		if err != nil || len(st.Rendezvous) == 0 {
			return false
		}
		return slices.Equal(st.Rendezvous[0].Transports, []string{"quic", "tcp"})
	})
}
