//go:build linux

// Package lab builds a small NAT laboratory out of Linux network namespaces,
// for end-to-end tests that run real binaries (natter-rendezvous, natter
// daemon) behind simulated home routers.
//
// Topology of one Lab:
//
//	                      namespace "internet" (bridge br0, 11.0.0.1/24)
//	  +-----------------+----------------+-------------------+
//	  |                 |                |                   |
//	eth0 11.0.0.2     wan 11.0.0.3     wan 11.0.0.4        ...
//	Public("rdv")     router "alice"   router "bob"
//	                  (Cone NAT)       (Symmetric NAT)
//	                  lan 192.168.1.1  lan 192.168.2.1
//	                    |                |
//	                  eth0 192.168.1.2 eth0 192.168.2.2
//	                  Home("alice")    Home("bob")
//
// The public segment uses 11.0.0.0/24 on purpose: it looks like a public
// range to go-libp2p (manet.IsPublicAddr), unlike the private, CGNAT and
// documentation ranges. It only exists inside the lab's namespaces; nothing
// is routed to or from the host's real network.
//
// Every host and router has a default route via 11.0.0.1 (routers and public
// hosts) or via its router (home hosts). The internet namespace does not
// forward, so traffic to any address outside the lab is answered with
// "unreachable" and never leaves the lab. IPv6 is disabled in every
// namespace so that link-local addresses cannot bypass the NAT.
//
// Routers use nftables: "masquerade" on the WAN for [Cone] (Linux keeps the
// source port, so the mapping is endpoint independent) and "masquerade
// random" for [Symmetric] (the external port depends on the destination).
// Both filter like a typical home router: inbound traffic that does not
// belong to a connection started from the LAN is silently dropped (no TCP
// RST, no ICMP), so TCP and UDP hole punching behave as on real routers.
//
// Namespaces are named nl<pid>-<seq>-<name>. [New] deletes namespaces left
// by earlier runs whose process no longer exists, and the cleanup registered
// by New kills every process started through the lab and deletes all its
// namespaces, also when the test fails.
//
// The lab needs root, iproute2 (ip), nftables (nft), sh and, for
// [Router.LimitWAN], tc. [New] skips the test when not root or when ip or
// nft is missing.
package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// SkipMessage is the reason given when a test is skipped because the
// machine cannot run the lab.
const SkipMessage = "NAT lab needs root and nftables; run scripts/setup.sh (make setup) or: apt-get install -y nftables iproute2"

// Kind selects the NAT behaviour of a home router.
type Kind int

const (
	// Cone is an endpoint-independent mapping NAT (nft "masquerade"): one
	// local address:port keeps the same external port for every
	// destination. Inbound traffic is only accepted for connections
	// started from the LAN (port-restricted filtering).
	Cone Kind = iota
	// Symmetric is an endpoint-dependent mapping NAT (nft "masquerade
	// random"): the external port is chosen per destination, so the port
	// seen by one peer is useless to another.
	Symmetric
)

// String returns "cone" or "symmetric".
func (k Kind) String() string {
	switch k {
	case Cone:
		return "cone"
	case Symmetric:
		return "symmetric"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

const (
	bridgeIP  = "11.0.0.1"
	publicNet = "11.0.0."
	maxHosts  = 254
)

var nsSeq atomic.Int64

// Lab is a set of namespaces connected through one simulated internet.
// Its methods may be called from several goroutines, but the ones that
// fail the test (t.Fatal) must be called from the test goroutine.
type Lab struct {
	t    TB
	dir  string
	inet string

	mu      sync.Mutex
	nss     []string
	procs   []*Proc
	names   map[string]bool
	nextPub int // last octet of the next public address
	nextLAN int // third octet of the next LAN subnet
	closed  bool
}

// TB is the part of testing.TB the lab uses, so that programs (the demo)
// can run a lab too. *testing.T and *testing.B satisfy it.
type TB interface {
	Helper()
	Skip(args ...any)
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	TempDir() string
	Cleanup(func())
	Failed() bool
}

var _ TB = testing.TB(nil)

// New creates an empty lab (the internet namespace with its bridge) and
// registers a cleanup that kills all processes started in the lab and
// deletes its namespaces. It skips the test when not running as root or
// when ip or nft is missing, and first deletes stale namespaces of earlier
// crashed runs.
func New(t TB) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip(SkipMessage + " (not root)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s (%s not found)", SkipMessage, tool)
		}
	}
	removeStale(t)

	l := &Lab{
		t:       t,
		dir:     t.TempDir(), // before Cleanup, so logs outlive the dump
		names:   map[string]bool{},
		nextPub: 2,
		nextLAN: 1,
	}
	t.Cleanup(l.cleanup)

	l.inet = nsName("internet")
	if err := l.addNS(l.inet); err != nil {
		t.Skipf("%s (cannot create network namespace: %v)", SkipMessage, err)
	}
	l.mustIP(l.inet,
		"link set lo up",
		"link add br0 type bridge",
		"addr add "+bridgeIP+"/24 dev br0",
		"link set br0 up",
	)
	return l
}

// Namespaces returns the names of all namespaces created by the lab so far,
// the internet namespace first.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.nss...)
}

// Host is a namespace running programs: a public host or the machine
// behind a home router.
type Host struct {
	// Env holds extra environment variables ("KEY=value") for programs
	// started later with Run or Start, on top of the test's environment.
	Env []string

	lab    *Lab
	name   string
	ns     string
	ip     string
	router *Router
}

// Name returns the name given to Public or Home.
func (h *Host) Name() string { return h.name }

// Netns returns the network namespace name (usable with ip netns exec).
func (h *Host) Netns() string { return h.ns }

// IP returns the host's own address: 11.0.0.N for a public host, the LAN
// address 192.168.K.2 for a home host.
func (h *Host) IP() string { return h.ip }

// Router returns the home router in front of the host, nil for a public
// host.
func (h *Host) Router() *Router { return h.router }

// Router is the NAT router namespace of a home host.
type Router struct {
	lab   *Lab
	name  string
	ns    string
	kind  Kind
	wanIP string
	lanIP string
	port  string // bridge port in the internet namespace
}

// Kind returns the NAT behaviour of the router.
func (r *Router) Kind() Kind { return r.kind }

// WANIP returns the router's public address (11.0.0.N), the address peers
// on the internet see for the home host.
func (r *Router) WANIP() string { return r.wanIP }

// Public adds a host directly on the internet with the next free address
// 11.0.0.N. It fails the test on error.
func (l *Lab) Public(name string) *Host {
	l.t.Helper()
	n := l.reserve(name)
	h := &Host{lab: l, name: name, ns: nsName(name), ip: publicNet + strconv.Itoa(n)}
	l.must(l.addNS(h.ns))
	port := "p" + strconv.Itoa(n)
	l.mustRun("ip", "link", "add", "eth0", "netns", h.ns, "type", "veth", "peer", "name", port, "netns", l.inet)
	l.mustIP(l.inet, "link set "+port+" master br0", "link set "+port+" up")
	l.mustIP(h.ns,
		"link set lo up",
		"addr add "+h.ip+"/24 dev eth0",
		"link set eth0 up",
		"route add default via "+bridgeIP,
	)
	return h
}

// Home adds a home router of the given kind with a WAN address 11.0.0.N
// and a LAN 192.168.K.0/24, and behind it a host 192.168.K.2 whose default
// route is the router. It returns the host; use Host.Router for the router.
// It fails the test on error.
func (l *Lab) Home(name string, k Kind) *Host {
	l.t.Helper()
	if k != Cone && k != Symmetric {
		l.t.Fatalf("lab: unknown NAT kind %v", k)
	}
	n, lan := l.reserveHome(name)
	subnet := "192.168." + strconv.Itoa(lan) + "."
	r := &Router{
		lab:   l,
		name:  name + "-router",
		ns:    nsName(name + "-r"),
		kind:  k,
		wanIP: publicNet + strconv.Itoa(n),
		lanIP: subnet + "1",
		port:  "p" + strconv.Itoa(n),
	}
	h := &Host{lab: l, name: name, ns: nsName(name), ip: subnet + "2", router: r}
	l.must(l.addNS(r.ns))
	l.must(l.addNS(h.ns))
	l.must(writeSysctls(r.ns, map[string]string{
		"net/ipv4/ip_forward":          "1",
		"net/ipv4/conf/all/forwarding": "1",
	}))
	l.mustRun("ip", "link", "add", "wan", "netns", r.ns, "type", "veth", "peer", "name", r.port, "netns", l.inet)
	l.mustRun("ip", "link", "add", "lan", "netns", r.ns, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
	l.mustIP(l.inet, "link set "+r.port+" master br0", "link set "+r.port+" up")
	l.mustIP(r.ns,
		"link set lo up",
		"addr add "+r.wanIP+"/24 dev wan",
		"link set wan up",
		"addr add "+r.lanIP+"/24 dev lan",
		"link set lan up",
		"route add default via "+bridgeIP,
	)
	l.mustIP(h.ns,
		"link set lo up",
		"addr add "+h.ip+"/24 dev eth0",
		"link set eth0 up",
		"route add default via "+r.lanIP,
	)
	if err := nft(r.ns, rulesetFor(k)); err != nil {
		l.t.Fatalf("lab: nftables in router %s: %v", r.name, err)
	}
	return h
}

// rulesetFor returns the nftables ruleset of a home router.
func rulesetFor(k Kind) string {
	masq := "masquerade"
	if k == Symmetric {
		masq = "masquerade random"
	}
	return `table ip labnat {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan" ` + masq + `
	}
}
table inet labfilter {
	chain input {
		type filter hook input priority filter; policy drop;
		iifname "lo" accept
		ct state established,related accept
		iifname "lan" accept
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "lan" accept
	}
}
`
}

// CutWAN simulates an uplink outage: the internet side of the router's WAN
// link goes down, so everything sent either way is silently lost while the
// router keeps its address and connection tracking state. It fails the test
// on error.
func (r *Router) CutWAN() {
	r.lab.t.Helper()
	r.lab.mustIP(r.lab.inet, "link set "+r.port+" down")
}

// RestoreWAN ends an outage started with CutWAN. It fails the test on
// error.
func (r *Router) RestoreWAN() {
	r.lab.t.Helper()
	r.lab.mustIP(r.lab.inet, "link set "+r.port+" up")
	r.lab.mustIP(r.ns, "route replace default via "+bridgeIP+" dev wan")
	// The link is only back once the router's side has its carrier
	// again. Neighbours that went unanswered during the outage are FAILED
	// entries, which answer "no route to host" for a while: forget them,
	// on the router and wherever the router's address was asked for.
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := exec.Command("ip", "-n", r.ns, "-o", "link", "show", "wan").Output()
		if err == nil && bytes.Contains(out, []byte("LOWER_UP")) {
			break
		}
		if time.Now().After(deadline) {
			r.lab.t.Fatalf("lab: %s: WAN link has no carrier 5 s after RestoreWAN: %v %s", r.name, err, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.lab.mustIP(r.ns, "neigh flush dev wan")
	for _, ns := range r.lab.Namespaces() {
		if ns != r.ns {
			// Best effort: most namespaces have no entry to flush.
			_ = exec.Command("ip", "-n", ns, "neigh", "flush", "to", r.wanIP).Run()
		}
	}
}

// LimitWAN limits the router's uplink and downlink to rateKbit kbit/s each
// with a tc token bucket filter; rateKbit <= 0 removes the limit.
func (r *Router) LimitWAN(rateKbit int) error {
	if _, err := exec.LookPath("tc"); err != nil {
		return fmt.Errorf("lab: LimitWAN needs tc: %w", err)
	}
	for _, side := range []struct{ ns, dev string }{{r.ns, "wan"}, {r.lab.inet, r.port}} {
		var args []string
		if rateKbit <= 0 {
			args = []string{"qdisc", "del", "dev", side.dev, "root"}
		} else {
			burst := max(rateKbit*125/10, 4096) // bytes: 100 ms worth, at least a few packets
			args = []string{"qdisc", "replace", "dev", side.dev, "root", "tbf",
				"rate", strconv.Itoa(rateKbit) + "kbit",
				"burst", strconv.Itoa(burst), "latency", "200ms"}
		}
		out, err := run(context.Background(), nil, "ip", append([]string{"netns", "exec", side.ns, "tc"}, args...)...)
		if err != nil {
			if rateKbit <= 0 && (bytes.Contains(out, []byte("No such file")) || bytes.Contains(out, []byte("handle of zero"))) {
				continue // no limit was set
			}
			return fmt.Errorf("lab: tc %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// Run runs a program in the router's namespace and returns its combined
// output (for example "nft", "list", "ruleset").
func (r *Router) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return runIn(ctx, r.ns, nil, name, args...)
}

// Run runs a program in the host's namespace (ip netns exec) and returns
// its combined output. The program and everything it started are killed
// when ctx is done.
func (h *Host) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return runIn(ctx, h.ns, h.Env, name, args...)
}

func runIn(ctx context.Context, ns string, env []string, name string, args ...string) ([]byte, error) {
	out, err := run(ctx, env, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	if err != nil {
		err = fmt.Errorf("%s in %s: %w", name, ns, err)
	}
	return out, err
}

// run runs a command in its own process group, killing the group when ctx
// is done.
func run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	return cmd.CombinedOutput()
}

// reserve registers a unique host name and allocates a public address.
func (l *Lab) reserve(name string) int {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.names[name] {
		l.t.Fatalf("lab: host %q already exists", name)
	}
	if l.nextPub > maxHosts {
		l.t.Fatalf("lab: out of public addresses")
	}
	l.names[name] = true
	n := l.nextPub
	l.nextPub++
	return n
}

func (l *Lab) reserveHome(name string) (pub, lan int) {
	l.t.Helper()
	pub = l.reserve(name)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.nextLAN > maxHosts {
		l.t.Fatalf("lab: out of LAN subnets")
	}
	lan = l.nextLAN
	l.nextLAN++
	return pub, lan
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// nsName returns a new unique namespace name nl<pid>-<seq>-<name>.
func nsName(name string) string {
	s := unsafeChars.ReplaceAllString(name, "")
	if len(s) > 12 {
		s = s[:12]
	}
	return fmt.Sprintf("nl%d-%d-%s", os.Getpid(), nsSeq.Add(1), s)
}

var staleRe = regexp.MustCompile(`^nl([0-9]+)-[0-9]+`)

// removeStale deletes lab namespaces whose creating process is gone.
func removeStale(t TB) {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range ents {
		m := staleRe.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + m[1]); err == nil {
			continue // still running
		}
		t.Logf("lab: removing stale namespace %s", e.Name())
		killNS(e.Name())
		_, _ = run(context.Background(), nil, "ip", "netns", "del", e.Name())
	}
}

// killNS SIGKILLs every process left in a namespace.
func killNS(ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := run(ctx, nil, "ip", "netns", "pids", ns)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// addNS creates a namespace, records it for cleanup and applies the common
// sysctls (no IPv6, no reverse path filtering).
func (l *Lab) addNS(ns string) error {
	if out, err := run(context.Background(), nil, "ip", "netns", "add", ns); err != nil {
		return fmt.Errorf("ip netns add %s: %v: %s", ns, err, bytes.TrimSpace(out))
	}
	l.mu.Lock()
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	return writeSysctls(ns, map[string]string{
		"net/ipv6/conf/all/disable_ipv6":     "1",
		"net/ipv6/conf/default/disable_ipv6": "1",
		"net/ipv4/conf/all/rp_filter":        "0",
		"net/ipv4/conf/default/rp_filter":    "0",
	})
}

// writeSysctls writes /proc/sys entries inside a namespace.
func writeSysctls(ns string, kv map[string]string) error {
	var script strings.Builder
	for k, v := range kv {
		fmt.Fprintf(&script, "echo %s > /proc/sys/%s || exit 1\n", v, k)
	}
	out, err := run(context.Background(), nil, "ip", "netns", "exec", ns, "sh", "-c", script.String())
	if err != nil {
		return fmt.Errorf("sysctl in %s: %v: %s", ns, err, bytes.TrimSpace(out))
	}
	return nil
}

// nft loads a ruleset in a namespace.
func nft(ns, ruleset string) error {
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

func (l *Lab) must(err error) {
	l.t.Helper()
	if err != nil {
		l.t.Fatalf("lab: %v", err)
	}
}

func (l *Lab) mustRun(name string, args ...string) {
	l.t.Helper()
	if out, err := run(context.Background(), nil, name, args...); err != nil {
		l.t.Fatalf("lab: %s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

// mustIP runs ip commands in batch mode inside namespace ns.
func (l *Lab) mustIP(ns string, cmds ...string) {
	l.t.Helper()
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("lab: ip -n %s: %v: %s\ncommands:\n%s", ns, err, bytes.TrimSpace(out), strings.Join(cmds, "\n"))
	}
}

// cleanup kills all processes, dumps their logs when the test failed and
// deletes every namespace.
func (l *Lab) cleanup() {
	l.mu.Lock()
	l.closed = true
	procs := append([]*Proc(nil), l.procs...)
	nss := append([]string(nil), l.nss...)
	l.mu.Unlock()

	for _, p := range procs {
		p.Kill()
	}
	if l.t.Failed() {
		for _, p := range procs {
			l.t.Logf("lab: last lines of %s on %s (%s):\n%s", p.name, p.host, p.logPath, tail(p.Log(), 100))
		}
	}
	for i := len(nss) - 1; i >= 0; i-- {
		killNS(nss[i])
		if out, err := run(context.Background(), nil, "ip", "netns", "del", nss[i]); err != nil {
			l.t.Logf("lab: ip netns del %s: %v: %s", nss[i], err, bytes.TrimSpace(out))
		}
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
