//go:build linux

package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a tiny network tool run inside namespaces:
//
//	lab.test lab-helper serve ADDR
//	    TCP and UDP "who am I" server: answers every connection or datagram
//	    with the peer's address as seen by the server.
//	lab.test lab-helper dial PROTO LPORT TIMEOUT_MS TARGET...
//	    PROTO is tcp, udp (one unconnected socket for all targets) or
//	    udpc (connected socket per target, reports ICMP errors). Prints one
//	    line per target: "ok TARGET OBSERVED" or "err TARGET KIND MESSAGE"
//	    with KIND timeout, refused or other.
//	lab.test lab-helper punch LPORT PEER TIMEOUT_MS
//	    UDP hole punching: sends to PEER from LPORT every 100 ms until a
//	    datagram from PEER arrives (prints "punched", exit 0) or the time
//	    is up (prints "timeout", exit 1).
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "lab-helper" {
		os.Exit(helper(os.Args[2], os.Args[3:]))
	}
	if os.Getenv("GORACE") == "" {
		// A race-enabled helper would otherwise linger 1 s at exit.
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	os.Exit(m.Run())
}

func helper(mode string, args []string) int {
	switch mode {
	case "serve":
		return serve(args[0])
	case "dial":
		return dial(args)
	case "punch":
		return punch(args)
	case "exit":
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

func serve(addr string) int {
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			fmt.Println("udp from", from)
			_, _ = pc.WriteTo([]byte(from.String()+"\n"), from)
		}
	}()
	fmt.Println("listening", addr)
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println("tcp from", c.RemoteAddr())
		_, _ = c.Write([]byte(c.RemoteAddr().String() + "\n"))
		_ = c.Close()
	}
}

func reuseAddr(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}

func dial(args []string) int {
	proto := args[0]
	lport, _ := strconv.Atoi(args[1])
	ms, _ := strconv.Atoi(args[2])
	timeout := time.Duration(ms) * time.Millisecond
	targets := args[3:]
	report := func(target, observed string, err error) {
		if err != nil {
			fmt.Printf("err %s %s %v\n", target, errKind(err), err)
			return
		}
		fmt.Printf("ok %s %s\n", target, strings.TrimSpace(observed))
	}
	switch proto {
	case "tcp":
		var conns []net.Conn // keep all open: mappings must coexist
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for _, t := range targets {
			d := net.Dialer{Timeout: timeout, Control: reuseAddr, LocalAddr: &net.TCPAddr{Port: lport}}
			c, err := d.Dial("tcp4", t)
			if err != nil {
				report(t, "", err)
				continue
			}
			conns = append(conns, c)
			_ = c.SetDeadline(time.Now().Add(timeout))
			line, err := bufio.NewReader(c).ReadString('\n')
			report(t, line, err)
		}
	case "udp":
		pc, err := net.ListenUDP("udp4", &net.UDPAddr{Port: lport})
		if err != nil {
			fmt.Println(err)
			return 1
		}
		defer pc.Close()
		buf := make([]byte, 1500)
		for _, t := range targets {
			ua, err := net.ResolveUDPAddr("udp4", t)
			if err != nil {
				report(t, "", err)
				continue
			}
			if _, err := pc.WriteToUDP([]byte("who\n"), ua); err != nil {
				report(t, "", err)
				continue
			}
			_ = pc.SetReadDeadline(time.Now().Add(timeout))
			for {
				n, from, err := pc.ReadFromUDP(buf)
				if err != nil {
					report(t, "", err)
					break
				}
				if from.String() == ua.String() {
					report(t, string(buf[:n]), nil)
					break
				}
			}
		}
	case "udpc":
		for _, t := range targets {
			c, err := net.Dial("udp4", t)
			if err != nil {
				report(t, "", err)
				continue
			}
			buf := make([]byte, 1500)
			_ = c.SetDeadline(time.Now().Add(timeout))
			var n int
			// Send twice: an ICMP error for the first datagram is only
			// reported on a later socket call.
			if _, err = c.Write([]byte("who\n")); err == nil {
				time.Sleep(50 * time.Millisecond)
				if _, err = c.Write([]byte("who\n")); err == nil {
					n, err = c.Read(buf)
				}
			}
			report(t, string(buf[:n]), err)
			c.Close()
		}
	default:
		fmt.Println("unknown proto", proto)
		return 2
	}
	return 0
}

func punch(args []string) int {
	lport, _ := strconv.Atoi(args[0])
	peer, err := net.ResolveUDPAddr("udp4", args[1])
	if err != nil {
		fmt.Println(err)
		return 2
	}
	ms, _ := strconv.Atoi(args[2])
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{Port: lport})
	if err != nil {
		fmt.Println(err)
		return 2
	}
	defer pc.Close()
	deadline := time.Now().Add(time.Duration(ms) * time.Millisecond)
	buf := make([]byte, 1500)
	got := time.Time{}
	for time.Now().Before(deadline) {
		_, _ = pc.WriteToUDP([]byte("punch"), peer)
		if !got.IsZero() && time.Since(got) > 300*time.Millisecond {
			fmt.Println("punched")
			return 0 // kept sending a while so the peer gets through too
		}
		_ = pc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, from, err := pc.ReadFromUDP(buf); err == nil && from.String() == peer.String() && got.IsZero() {
			got = time.Now()
		}
	}
	if !got.IsZero() {
		fmt.Println("punched")
		return 0
	}
	fmt.Println("timeout")
	return 1
}

// result is one line of the dial helper's output.
type result struct {
	ok       bool
	observed string // ip:port seen by the server
	kind     string // error kind
	line     string
}

func self(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// startServer runs the who-am-I server on h port 7000 and waits until it
// listens.
func startServer(t *testing.T, h *Host) string {
	t.Helper()
	addr := net.JoinHostPort(h.IP(), "7000")
	p := h.Start(self(t), "lab-helper", "serve", addr)
	if err := p.WaitLog("listening", 10*time.Second); err != nil {
		t.Fatalf("server on %s: %v\n%s", h.Name(), err, p.Log())
	}
	return addr
}

// dialFrom runs the dial helper on h and returns one result per target.
func dialFrom(t *testing.T, h *Host, proto string, lport int, timeout time.Duration, targets ...string) []result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(len(targets))*timeout+10*time.Second)
	defer cancel()
	args := append([]string{"lab-helper", "dial", proto, strconv.Itoa(lport), strconv.Itoa(int(timeout / time.Millisecond))}, targets...)
	out, err := h.Run(ctx, self(t), args...)
	if err != nil {
		t.Fatalf("dial helper on %s: %v\n%s", h.Name(), err, out)
	}
	var res []result
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "ok":
			res = append(res, result{ok: true, observed: f[2], line: line})
		case len(f) >= 3 && f[0] == "err":
			res = append(res, result{kind: f[2], line: line})
		default:
			t.Fatalf("dial helper on %s: bad output %q", h.Name(), out)
		}
	}
	if len(res) != len(targets) {
		t.Fatalf("dial helper on %s: want %d results, got:\n%s", h.Name(), len(targets), out)
	}
	return res
}

func splitHostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, p
}

func TestMasquerade(t *testing.T) {
	t.Parallel()
	l := New(t)
	srv := l.Public("srv")
	addr := startServer(t, srv)
	for _, k := range []Kind{Cone, Symmetric} {
		home := l.Home("home-"+k.String(), k)
		if home.Router().WANIP() == home.IP() || !strings.HasPrefix(home.IP(), "192.168.") {
			t.Fatalf("bad addresses: host %s, WAN %s", home.IP(), home.Router().WANIP())
		}
		for _, proto := range []string{"tcp", "udp"} {
			r := dialFrom(t, home, proto, 0, 2*time.Second, addr)[0]
			if !r.ok {
				t.Fatalf("%v %s: %s", k, proto, r.line)
			}
			ip, _ := splitHostPort(t, r.observed)
			if ip != home.Router().WANIP() {
				t.Errorf("%v %s: server saw %s, want router WAN IP %s (host %s)", k, proto, ip, home.Router().WANIP(), home.IP())
			}
		}
	}
}

func TestMapping(t *testing.T) {
	t.Parallel()
	l := New(t)
	s1, s2 := l.Public("s1"), l.Public("s2")
	a1, a2 := startServer(t, s1), startServer(t, s2)
	cone := l.Home("cone", Cone)
	sym := l.Home("sym", Symmetric)
	const lport = 40000
	for _, proto := range []string{"tcp", "udp"} {
		for _, h := range []*Host{cone, sym} {
			res := dialFrom(t, h, proto, lport, 2*time.Second, a1, a2)
			var ports []int
			for _, r := range res {
				if !r.ok {
					t.Fatalf("%s %s: %s", h.Name(), proto, r.line)
				}
				ip, port := splitHostPort(t, r.observed)
				if ip != h.Router().WANIP() {
					t.Errorf("%s %s: seen from %s, want %s", h.Name(), proto, ip, h.Router().WANIP())
				}
				ports = append(ports, port)
			}
			t.Logf("%s %s: local port %d mapped to %v", h.Name(), proto, lport, ports)
			switch h.Router().Kind() {
			case Cone:
				if ports[0] != ports[1] {
					t.Errorf("cone %s: external ports %v differ per destination", proto, ports)
				}
			case Symmetric:
				if ports[0] == ports[1] {
					t.Errorf("symmetric %s: same external port %d for both destinations", proto, ports[0])
				}
			}
		}
	}
}

func TestUnsolicitedInboundDropped(t *testing.T) {
	t.Parallel()
	l := New(t)
	pub := l.Public("pub")
	other := l.Public("other")
	home := l.Home("home", Cone)
	startServer(t, home) // a listener on the LAN host must not help
	wan := net.JoinHostPort(home.Router().WANIP(), "7000")
	closed := net.JoinHostPort(other.IP(), "7000") // no listener there

	// Control: a closed port on a public host is refused right away.
	for _, proto := range []string{"tcp", "udpc"} {
		if r := dialFrom(t, pub, proto, 0, time.Second, closed)[0]; r.kind != "refused" {
			t.Fatalf("control %s to closed public port: want refused, got %q", proto, r.line)
		}
	}
	// The router drops silently: no RST, no ICMP.
	for _, proto := range []string{"tcp", "udpc"} {
		r := dialFrom(t, pub, proto, 0, time.Second, wan)[0]
		if r.kind != "timeout" {
			t.Errorf("%s to router WAN %s: want timeout (silent drop), got %q", proto, wan, r.line)
		}
	}
	// Outbound from the home host still works.
	srvAddr := startServer(t, pub)
	if r := dialFrom(t, home, "tcp", 0, 2*time.Second, srvAddr)[0]; !r.ok {
		t.Errorf("outbound: %s", r.line)
	}
}

func TestCutWAN(t *testing.T) {
	t.Parallel()
	l := New(t)
	srv := l.Public("srv")
	addr := startServer(t, srv)
	home := l.Home("home", Cone)
	r := home.Router()

	if res := dialFrom(t, home, "tcp", 0, 2*time.Second, addr)[0]; !res.ok {
		t.Fatalf("before cut: %s", res.line)
	}
	r.CutWAN()
	for _, proto := range []string{"tcp", "udp"} {
		if res := dialFrom(t, home, proto, 0, 700*time.Millisecond, addr)[0]; res.ok {
			t.Errorf("%s during cut: still reachable: %s", proto, res.line)
		}
	}
	r.RestoreWAN()
	for _, proto := range []string{"tcp", "udp"} {
		if res := dialFrom(t, home, proto, 0, 2*time.Second, addr)[0]; !res.ok {
			t.Errorf("%s after restore: %s", proto, res.line)
		}
	}
}

func TestLimitWAN(t *testing.T) {
	t.Parallel()
	l := New(t)
	srv := l.Public("srv")
	addr := startServer(t, srv)
	home := l.Home("home", Cone)
	r := home.Router()
	if err := r.LimitWAN(1000); err != nil {
		t.Fatal(err)
	}
	out, err := r.Run(context.Background(), "tc", "qdisc", "show", "dev", "wan")
	if err != nil || !strings.Contains(string(out), "tbf") {
		t.Fatalf("tc qdisc show: %v: %s", err, out)
	}
	if res := dialFrom(t, home, "tcp", 0, 2*time.Second, addr)[0]; !res.ok {
		t.Errorf("limited: %s", res.line)
	}
	if err := r.LimitWAN(0); err != nil {
		t.Fatal(err)
	}
	if err := r.LimitWAN(0); err != nil {
		t.Fatalf("removing an absent limit: %v", err)
	}
	out, _ = r.Run(context.Background(), "tc", "qdisc", "show", "dev", "wan")
	if strings.Contains(string(out), "tbf") {
		t.Fatalf("limit not removed: %s", out)
	}
}

func TestProc(t *testing.T) {
	t.Parallel()
	l := New(t)
	h := l.Public("h")
	h.Env = append(h.Env, "LAB_TEST_VAR=hello")
	p := h.Start("sh", "-c", `echo "var=$LAB_TEST_VAR"; trap 'echo got term; exit 3' TERM; while :; do sleep 0.1; done`)
	if err := p.WaitLog("var=hello", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if p.Exited() || p.Pid() <= 0 {
		t.Fatalf("exited=%v pid=%d", p.Exited(), p.Pid())
	}
	err := p.Stop()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Stop: want exit status 3, got %v; log:\n%s", err, p.Log())
	}
	if !strings.Contains(p.Log(), "got term") {
		t.Errorf("log: %q", p.Log())
	}
	out, err := h.Run(context.Background(), "sh", "-c", "echo $LAB_TEST_VAR")
	if err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Errorf("Run: %v %q", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := h.Run(ctx, "sleep", "30"); err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("Run with expired context: err=%v after %v", err, time.Since(start))
	}
	k := h.Start("sleep", "30")
	k.Kill()
	if !k.Exited() {
		t.Error("Kill: still running")
	}
	if err := k.Wait(time.Second); err == nil {
		t.Error("Wait after Kill: want error")
	}
}

func nsExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

func TestCleanup(t *testing.T) {
	// Not parallel: nothing else runs while it checks for stale namespaces.
	var nss []string
	var procs []*Proc
	stale := ""
	ok := t.Run("lab", func(t *testing.T) {
		if os.Geteuid() == 0 {
			// A namespace of a crashed run: pid of an exited process.
			c := exec.Command(self(t), "lab-helper", "exit")
			if err := c.Run(); err != nil {
				t.Fatal(err)
			}
			stale = fmt.Sprintf("nl%d-1-stale", c.Process.Pid)
			if out, err := exec.Command("ip", "netns", "add", stale).CombinedOutput(); err != nil {
				t.Fatalf("ip netns add: %v %s", err, out)
			}
		}
		l := New(t)
		if stale != "" && nsExists(stale) {
			t.Errorf("stale namespace %s not removed", stale)
		}
		srv := l.Public("srv")
		home := l.Home("home", Symmetric)
		procs = append(procs, srv.Start("sleep", "60"), home.Start("sleep", "60"))
		nss = l.Namespaces()
		if len(nss) != 4 {
			t.Errorf("namespaces: %v", nss)
		}
		for _, ns := range nss {
			if !nsExists(ns) {
				t.Errorf("namespace %s missing", ns)
			}
		}
	})
	if stale != "" && nsExists(stale) {
		_ = exec.Command("ip", "netns", "del", stale).Run()
	}
	if !ok || len(nss) == 0 {
		if len(nss) == 0 && ok {
			t.Skip(SkipMessage)
		}
		return
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range nss {
		if nsExists(ns) || strings.Contains(string(out), ns) {
			t.Errorf("namespace %s still exists after cleanup", ns)
		}
	}
	for _, p := range procs {
		if !p.Exited() {
			t.Errorf("process %d still running after cleanup", p.Pid())
		}
	}
}

func TestUDPHolePunch(t *testing.T) {
	t.Parallel()
	l := New(t)
	a, b := l.Home("a", Cone), l.Home("b", Cone)
	sym := l.Home("sym", Symmetric)
	try := func(x, y *Host, port int) (bool, bool) {
		t.Helper()
		p := strconv.Itoa(port)
		px := x.Start(self(t), "lab-helper", "punch", p, net.JoinHostPort(y.Router().WANIP(), p), "1500")
		py := y.Start(self(t), "lab-helper", "punch", p, net.JoinHostPort(x.Router().WANIP(), p), "1500")
		ex, ey := px.Wait(10*time.Second), py.Wait(10*time.Second)
		if errors.Is(ex, ErrTimeout) || errors.Is(ey, ErrTimeout) {
			t.Fatalf("punch helpers hang: %v %v", ex, ey)
		}
		return ex == nil, ey == nil
	}
	// Cone to cone: both learn the peer's port in advance (the local port).
	if okA, okB := try(a, b, 41000); !okA || !okB {
		t.Errorf("cone<->cone punching failed: a=%v b=%v", okA, okB)
	}
	// Symmetric: the port predicted from the local port is wrong, and the
	// cone side filters the symmetric side's real port.
	if okA, okS := try(a, sym, 41001); okA || okS {
		t.Errorf("cone<->symmetric punching to predicted ports succeeded: cone=%v sym=%v", okA, okS)
	}
}
