//go:build linux

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/natterim/natter/internal/lab"
	"github.com/natterim/natter/node/control"
)

// Roles of TestFileBenchChild (in benchRoleEnv, so TestMain lets the
// child run without building binaries).
const (
	roleTCPSink   = "tcp-sink"
	roleTCPSource = "tcp-source"
	fileBenchAddr = "NATTER_FILEBENCH_ADDR" // source: sink address
	fileBenchSize = "NATTER_FILEBENCH_SIZE" // source: bytes to send
	tcpBenchPort  = 5201
)

// BenchmarkFileTransfer measures, in the NAT lab (cone <-> cone, direct
// link), natter's file throughput against a raw TCP copy between the very
// same two hosts, through the same two NAT routers, in the same run:
//
//	natter-MB/s   bytes of the file / (receiver's "transferring" event ->
//	              its "done" event): fetch, verify every chunk and the whole
//	              SHA-256, write, fsync checkpoints, save
//	tcp-MB/s      a plain Go TCP copy of the same number of bytes (to the
//	              receiver's memory), through a port forward on the
//	              receiver's router
//	ratio         natter-MB/s / tcp-MB/s
//	alice-cpu-ms/MiB, bob-cpu-ms/MiB
//	              CPU time the sending and receiving daemons spent per MiB
//	              (what bounds the uncapped rate on a small machine)
//	tcp-cpu-ms/MiB
//	              the same for both ends of the raw TCP copy
//	alice-rss-MiB, bob-rss-MiB
//	              the largest resident set of the sending and receiving
//	              daemons while the file moved; base-*-rss-MiB before it
//	              (memory must not grow with the file)
//
// uncapped runs at whatever the machine does; 100Mbit caps alice's router
// (both directions) with tc tbf. Medians of b.N runs.
//
// Run: go test ./test/e2e -run '^$' -bench FileTransfer -benchtime 3x
func BenchmarkFileTransfer(b *testing.B) {
	l := lab.New(b)
	r := startRendezvous(b, l.Public("rdv"))
	env := []string{"NATTER_FILES_AUTO_ACCEPT_MAX=1099511627776", "NATTER_LOG_LEVEL=info"}
	alice := startNode(b, l.Home("alice", lab.Cone), "alice", r, nodeOpts{env: env})
	bob := startNode(b, l.Home("bob", lab.Cone), "bob", r, nodeOpts{env: env})
	befriend(b, alice, bob)
	waitPath(b, alice, bob, control.PathDirect, directWithin)

	// A port forward on bob's router, for the raw TCP baseline only.
	ctx := context.Background()
	rt := bob.host.Router()
	for _, args := range [][]string{
		{"add", "rule", "ip", "labnat", "prerouting", "iifname", "wan", "tcp", "dport", strconv.Itoa(tcpBenchPort),
			"dnat", "to", fmt.Sprintf("%s:%d", bob.host.IP(), tcpBenchPort)},
		{"insert", "rule", "inet", "labfilter", "forward", "ct", "status", "dnat", "accept"},
	} {
		if out, err := rt.Run(ctx, "nft", args...); err != nil {
			b.Fatalf("port forward: %v: %s", err, out)
		}
	}
	sink := *bob.host
	sink.Env = []string{benchRoleEnv + "=" + roleTCPSink}
	sinkProc := sink.Start(os.Args[0], "-test.run=^TestFileBenchChild$", "-test.v")
	if err := sinkProc.WaitLog("LISTENING", 30*time.Second); err != nil {
		b.Fatal(err)
	}
	tcpAddr := fmt.Sprintf("%s:%d", rt.WANIP(), tcpBenchPort)

	dir := b.TempDir()
	for _, tc := range []struct {
		name    string
		capKbit int
		size    int64
	}{
		{"uncapped", 0, 512 << 20},
		{"100Mbit", 100_000, 96 << 20},
	} {
		b.Run(tc.name, func(b *testing.B) {
			if err := alice.host.Router().LimitWAN(tc.capKbit); err != nil {
				b.Fatal(err)
			}
			defer alice.host.Router().LimitWAN(0)
			src, _ := randomFile(b, dir, tc.name+".bin", tc.size)
			var natter, tcp, tcpCPU, rssA, rssB, baseA, baseB, cpuA, cpuB []float64
			for range b.N {
				rate, cpu := rawTCP(b, alice.host, tcpAddr, tc.size)
				tcp, tcpCPU = append(tcp, rate), append(tcpCPU, cpu)
				res := natterTransfer(b, alice, bob, src, tc.size)
				natter = append(natter, res.rate)
				rssA, rssB = append(rssA, res.rssA), append(rssB, res.rssB)
				baseA, baseB = append(baseA, res.baseA), append(baseB, res.baseB)
				cpuA, cpuB = append(cpuA, res.cpuA), append(cpuB, res.cpuB)
			}
			b.StopTimer()
			b.ReportMetric(median(natter), "natter-MB/s")
			b.ReportMetric(median(tcp), "tcp-MB/s")
			b.ReportMetric(median(natter)/median(tcp), "ratio")
			b.ReportMetric(median(rssA), "alice-rss-MiB")
			b.ReportMetric(median(rssB), "bob-rss-MiB")
			b.ReportMetric(median(baseA), "base-alice-rss-MiB")
			b.ReportMetric(median(baseB), "base-bob-rss-MiB")
			b.ReportMetric(median(cpuA), "alice-cpu-ms/MiB")
			b.ReportMetric(median(cpuB), "bob-cpu-ms/MiB")
			b.ReportMetric(median(tcpCPU), "tcp-cpu-ms/MiB")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// rawTCP copies size bytes from h to addr with a plain Go TCP connection
// and returns MB/s (until the sink confirmed it read everything) and the
// CPU both ends spent per MiB.
func rawTCP(b *testing.B, h *lab.Host, addr string, size int64) (float64, float64) {
	b.Helper()
	src := *h
	src.Env = []string{benchRoleEnv + "=" + roleTCPSource, fileBenchAddr + "=" + addr, fileBenchSize + "=" + strconv.FormatInt(size, 10)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := src.Run(ctx, os.Args[0], "-test.run=^TestFileBenchChild$", "-test.v")
	if err != nil {
		b.Fatalf("tcp source: %v: %s", err, out)
	}
	s := string(out)
	i := strings.Index(s, "RESULT ")
	if i < 0 {
		b.Fatalf("tcp source printed no result: %s", s)
	}
	var rate, cpu float64
	if _, err := fmt.Sscan(s[i+len("RESULT "):], &rate, &cpu); err != nil {
		b.Fatalf("tcp source result: %v: %s", err, s)
	}
	return rate, cpu
}

type transferResult struct {
	rate                     float64
	rssA, rssB, baseA, baseB float64
	cpuA, cpuB               float64 // ms of CPU per MiB moved
}

// natterTransfer sends src from alice to bob and measures it on bob's
// event stream (times stamped by bob's daemon), sampling both daemons'
// RSS meanwhile.
func natterTransfer(b *testing.B, alice, bob *nodeProc, src string, size int64) transferResult {
	b.Helper()
	res := transferResult{baseA: rssMiB(alice.proc.Pid()), baseB: rssMiB(bob.proc.Pid())}
	cpuA0, cpuB0 := cpuMillis(alice.proc.Pid()), cpuMillis(bob.proc.Pid())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ev := bob.events(ctx, b)
	var (
		mu         sync.Mutex
		maxA, maxB float64
		stop       = make(chan struct{})
		sampled    = make(chan struct{})
	)
	go func() {
		defer close(sampled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				a, bb := rssMiB(alice.proc.Pid()), rssMiB(bob.proc.Pid())
				mu.Lock()
				maxA, maxB = max(maxA, a), max(maxB, bb)
				mu.Unlock()
			}
		}
	}()
	id := alice.sendFile(b, "bob", src)
	var (
		start, end time.Time
		from       int64
		final      control.Transfer
	)
	for end.IsZero() {
		select {
		case e, ok := <-ev:
			if !ok {
				b.Fatal("bob's event stream ended")
			}
			if e.Type != control.EventFile || e.Transfer == nil || e.Transfer.ID != id {
				continue
			}
			switch e.Transfer.State {
			case control.TransferTransferring:
				if start.IsZero() {
					start, from = e.Time, e.Transfer.BytesDone
				}
			case control.TransferDone:
				end, final = e.Time, *e.Transfer
			case control.TransferFailed, control.TransferCancelled, control.TransferPaused:
				b.Fatalf("transfer %s: %s", e.Transfer.State, e.Transfer.Reason)
			}
		case <-ctx.Done():
			b.Fatal("the transfer did not finish in 10 minutes")
		}
	}
	close(stop)
	<-sampled
	mib := float64(size) / (1 << 20)
	res.cpuA = (cpuMillis(alice.proc.Pid()) - cpuA0) / mib
	res.cpuB = (cpuMillis(bob.proc.Pid()) - cpuB0) / mib
	if start.IsZero() || final.Path != control.PathDirect {
		b.Fatalf("transfer not seen moving, or not direct: %+v", final)
	}
	_ = os.Remove(final.FinalPath)
	res.rate = float64(size-from) / 1e6 / end.Sub(start).Seconds()
	res.rssA, res.rssB = maxA, maxB
	return res
}

// rssMiB is the resident set of process pid, in MiB (0 if unknown).
func rssMiB(pid int) float64 {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			var kb float64
			fmt.Sscan(rest, &kb)
			return kb / 1024
		}
	}
	return 0
}

// selfCPUMillis is the CPU time this process used so far, in ms.
func selfCPUMillis() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
}

// cpuMillis is the CPU time (user + system) process pid used so far, in
// ms.
func cpuMillis(pid int) float64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields count from the
	// closing parenthesis. utime and stime are fields 14 and 15, in
	// clock ticks (100 per second on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) * 10
}

// TestFileBenchChild is the raw TCP side of BenchmarkFileTransfer; it does
// nothing unless started by it.
func TestFileBenchChild(t *testing.T) {
	switch os.Getenv(benchRoleEnv) {
	case roleTCPSink:
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", tcpBenchPort))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("LISTENING")
		for {
			c, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				defer c.Close()
				cpu0 := selfCPUMillis()
				n, _ := io.CopyBuffer(io.Discard, c, make([]byte, 1<<20))
				fmt.Fprintf(c, "%d %f\n", n, selfCPUMillis()-cpu0)
			}()
		}
	case roleTCPSource:
		size, err := strconv.ParseInt(os.Getenv(fileBenchSize), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.DialTimeout("tcp", os.Getenv(fileBenchAddr), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 1<<20)
		cpu0 := selfCPUMillis()
		start := time.Now()
		for sent := int64(0); sent < size; {
			n := int(min(int64(len(buf)), size-sent))
			if _, err := c.Write(buf[:n]); err != nil {
				t.Fatal(err)
			}
			sent += int64(n)
		}
		_ = c.(*net.TCPConn).CloseWrite()
		var (
			got     int64
			sinkCPU float64
		)
		if _, err := fmt.Fscan(c, &got, &sinkCPU); err != nil || got != size {
			t.Fatalf("sink read %d of %d bytes: %v", got, size, err)
		}
		rate := float64(size) / 1e6 / time.Since(start).Seconds()
		fmt.Printf("RESULT %f %f\n", rate, (selfCPUMillis()-cpu0+sinkCPU)/(float64(size)/(1<<20)))
	default:
		t.Skip("runs only as a child of BenchmarkFileTransfer")
	}
}
