//go:build linux

// Command demo is natter's one-command demo (make demo): it builds both
// programs, makes a tiny internet out of network namespaces (a public
// rendezvous server, alice and bob behind cone NATs, carol behind a
// symmetric NAT), starts everything, makes them contacts through invites,
// and shows the links come up: alice <-> bob goes direct by hole punching,
// alice <-> carol stays relayed. Then it pings over both links and tears
// everything down. Needs root (network namespaces, nftables).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/natterim/natter/internal/lab"
	"github.com/natterim/natter/node/control"
)

func main() {
	r := &runner{start: time.Now()}
	dir, err := os.MkdirTemp("", "natter-demo")
	if err != nil {
		r.Fatalf("%v", err)
	}
	r.dir = dir
	r.Cleanup(func() { os.RemoveAll(dir) })
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		r.Fatalf("interrupted")
	}()
	demo(r)
	r.cleanup()
}

func demo(r *runner) {
	r.say("building natter and natter-rendezvous")
	natter := filepath.Join(r.dir, "natter")
	rdvBin := filepath.Join(r.dir, "natter-rendezvous")
	for out, pkg := range map[string]string{natter: "./cmd/natter", rdvBin: "./cmd/natter-rendezvous"} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			r.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}

	r.say("building the lab: a public segment (11.0.0.0/24) and three home routers")
	l := lab.New(r)
	rdvHost := l.Public("rdv")
	homes := map[string]*lab.Host{
		"alice": l.Home("alice", lab.Cone),
		"bob":   l.Home("bob", lab.Cone),
		"carol": l.Home("carol", lab.Symmetric),
	}
	for _, name := range []string{"alice", "bob", "carol"} {
		h := homes[name]
		r.say("  %-5s at %s behind a %s NAT (router WAN %s)", name, h.IP(), h.Router().Kind(), h.Router().WANIP())
	}

	rdvDir := r.TempDir()
	out := r.run(rdvBin, "id", "--data-dir", rdvDir)
	rdvID := strings.Fields(out)[0]
	rdvAddrs := []string{
		fmt.Sprintf("/ip4/%s/tcp/4001/p2p/%s", rdvHost.IP(), rdvID),
		fmt.Sprintf("/ip4/%s/udp/4001/quic-v1/p2p/%s", rdvHost.IP(), rdvID),
	}
	r.say("starting natter-rendezvous on %s (peer %s)", rdvHost.IP(), short(rdvID))
	rdvHost.Start(rdvBin, "run", "--data-dir", rdvDir, "--listen", "/ip4/0.0.0.0/tcp/4001", "--listen", "/ip4/0.0.0.0/udp/4001/quic-v1")
	r.waitFor(15*time.Second, "the rendezvous", func() bool {
		_, err := os.Stat(filepath.Join(rdvDir, "admin.sock"))
		return err == nil
	})

	dirs := map[string]string{}
	for _, name := range []string{"alice", "bob", "carol"} {
		d := r.TempDir()
		dirs[name] = d
		r.run(natter, "init", "--data-dir", d, "--name", name, "--no-passphrase")
		args := []string{"daemon", "--data-dir", d, "--nat-port-map=false"}
		for _, a := range rdvAddrs {
			args = append(args, "--rendezvous", a)
		}
		homes[name].Start(natter, args...)
	}
	for _, name := range []string{"alice", "bob", "carol"} {
		c := control.NewClient(control.SocketPath(dirs[name]))
		r.waitFor(15*time.Second, name+"'s daemon", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			st, err := c.Status(ctx)
			return err == nil && len(st.Rendezvous) == 1 && st.Rendezvous[0].Registered
		})
	}
	r.say("three daemons up, each registered on the rendezvous with a relay reservation")

	invites := map[string]string{}
	for name, d := range dirs {
		lines := strings.Split(strings.TrimSpace(r.run(natter, "id", "--data-dir", d)), "\n")
		invites[name] = lines[len(lines)-1]
	}
	r.say("alice's invite: %s", invites["alice"])
	for _, to := range []string{"bob", "carol"} {
		r.run(natter, "contacts", "add", invites[to], "--note", "hi "+to+", it's alice", "--data-dir", dirs["alice"])
	}
	r.say("alice sent friend requests to bob and carol (from their invites); bob's contacts:")
	for _, name := range []string{"bob", "carol"} {
		c := control.NewClient(control.SocketPath(dirs[name]))
		r.waitFor(30*time.Second, name+" gets alice's request", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			cs, err := c.Contacts(ctx)
			return err == nil && len(cs) == 1 && cs[0].State == control.StatePendingIn
		})
	}
	fmt.Println(indent(r.run(natter, "contacts", "list", "--data-dir", dirs["bob"])))
	for _, name := range []string{"bob", "carol"} {
		r.run(natter, "contacts", "accept", "alice", "--data-dir", dirs[name])
	}
	r.say("bob and carol accepted; watching alice's links:")

	alice := control.NewClient(control.SocketPath(dirs["alice"]))
	seen := map[string]string{}
	r.waitFor(60*time.Second, "alice <-> bob direct and alice <-> carol relayed", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := alice.Status(ctx)
		if err != nil {
			return false
		}
		done := 0
		for _, c := range st.Contacts {
			if seen[c.Name] != c.Path {
				seen[c.Name] = c.Path
				r.say("  alice -> %-5s %-8s %s", c.Name, c.Path, c.RemoteAddr)
			}
			if c.Name == "bob" && c.Path == control.PathDirect || c.Name == "carol" && c.Path == control.PathRelayed {
				done++
			}
		}
		return done == 2
	})

	r.say("bob sets his presence: natter presence busy --message 'in a meeting'")
	r.run(natter, "presence", "busy", "--message", "in a meeting", "--data-dir", dirs["bob"])
	r.waitFor(10*time.Second, "alice sees bob busy", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := alice.Status(ctx)
		if err != nil {
			return false
		}
		for _, c := range st.Contacts {
			if c.Name == "bob" {
				return c.Presence == control.PresenceBusy
			}
		}
		return false
	})
	r.say("natter status (alice):")
	fmt.Println(indent(r.run(natter, "status", "--data-dir", dirs["alice"])))
	r.say("natter ping bob, carol (alice):")
	fmt.Println(indent(r.run(natter, "ping", "bob", "-c", "3", "--data-dir", dirs["alice"])))
	fmt.Println(indent(r.run(natter, "ping", "carol", "-c", "3", "--data-dir", dirs["alice"])))
	r.say("chat: alice writes to bob (direct) and carol (relayed), and waits until each has it:")
	fmt.Println(indent(r.run(natter, "send", "bob", "Hi Bob! This went straight through both NATs.", "--wait", "--data-dir", dirs["alice"])))
	fmt.Println(indent(r.run(natter, "send", "carol", "Hi Carol, your NAT is strict, so this took the relay.", "--wait", "--data-dir", dirs["alice"])))
	fmt.Println(indent(r.run(natter, "nudge", "bob", "--data-dir", dirs["alice"])))
	r.run(natter, "send", "alice", "Got it - nudge received too :)", "--wait", "--data-dir", dirs["bob"])
	r.run(natter, "read", "alice", "--data-dir", dirs["bob"])
	r.waitFor(10*time.Second, "bob's read receipt", func() bool {
		return strings.Contains(r.run(natter, "history", "bob", "--data-dir", dirs["alice"]), "[read, direct]")
	})
	r.say("natter history bob (alice; bob has read her messages):")
	fmt.Println(indent(r.run(natter, "history", "bob", "--data-dir", dirs["alice"])))
	r.say("natter search relay (carol):")
	fmt.Println(indent(r.run(natter, "search", "relay", "--data-dir", dirs["carol"])))
	r.say("natter-rendezvous peers (who is online):")
	fmt.Println(indent(r.run(rdvBin, "peers", "--data-dir", rdvDir)))

	var st control.Status
	if err := json.Unmarshal([]byte(r.run(natter, "status", "--json", "--data-dir", dirs["bob"])), &st); err != nil {
		r.Fatalf("status --json: %v", err)
	}
	r.say("bob sees alice %s at %s; carol's symmetric NAT cannot be punched, so her link uses the relay.", st.Contacts[0].Path, st.Contacts[0].RemoteAddr)
	r.say("demo done; tearing the lab down")
}

// runner lets the lab run outside a test: failures print one line, tear
// everything down and exit 1.
type runner struct {
	start    time.Time
	dir      string
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	n        int
}

func (r *runner) say(format string, args ...any) {
	fmt.Printf("[%5.1fs] %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *runner) Helper()                          {}
func (r *runner) Skip(args ...any)                 { r.Fatalf("%s", fmt.Sprint(args...)) }
func (r *runner) Skipf(format string, args ...any) { r.Fatalf(format, args...) }
func (r *runner) Logf(format string, args ...any)  { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (r *runner) Failed() bool                     { r.mu.Lock(); defer r.mu.Unlock(); return r.failed }
func (r *runner) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}
func (r *runner) Fatalf(format string, args ...any) { r.fail(fmt.Sprintf(format, args...)) }

func (r *runner) TempDir() string {
	r.mu.Lock()
	r.n++
	d := filepath.Join(r.dir, fmt.Sprintf("d%d", r.n))
	r.mu.Unlock()
	if err := os.MkdirAll(d, 0o700); err != nil {
		r.Fatalf("%v", err)
	}
	return d
}

func (r *runner) fail(msg string) {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	fmt.Fprintf(os.Stderr, "demo: %s\n", msg)
	r.cleanup()
	os.Exit(1)
}

func (r *runner) cleanup() {
	r.mu.Lock()
	fs := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func (r *runner) run(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		r.Fatalf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out)
}

func (r *runner) waitFor(timeout time.Duration, what string, cond func() bool) {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			r.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:6] + "…" + id[len(id)-6:]
	}
	return id
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
