//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/natterim/natter/internal/lab"
	"github.com/natterim/natter/node"
	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/identity"
	"github.com/natterim/natter/node/store"
)

// The chat benchmark runs two in-process nodes, each in a child process
// (this test binary, re-executed as TestChatBenchChild) inside a lab host,
// because the sender side must measure both natter chat and a bare libp2p
// stream echo over the very same connection. Children are configured by
// environment variables.
const (
	benchRoleEnv = "NATTER_CHATBENCH_ROLE" // "receiver" or "sender"
	benchDirEnv  = "NATTER_CHATBENCH_DIR"
	benchRdvEnv  = "NATTER_CHATBENCH_RDV"  // comma-separated multiaddrs
	benchPeerEnv = "NATTER_CHATBENCH_PEER" // the receiver's peer ID (sender)
	benchPathEnv = "NATTER_CHATBENCH_PATH" // path to wait for (sender)
	benchNEnv    = "NATTER_CHATBENCH_N"    // messages in the throughput run
)

const echoProto = protocol.ID("/natter-bench/echo/1.0.0")

// benchMsgSize is the payload of one echo frame, about what a short chat
// message is on the wire (id, seq, time, text, framing).
const benchMsgSize = 100

// chatBenchResult is what the sender child prints.
type chatBenchResult struct {
	Path     string  `json:"path"`
	EchoP50  float64 `json:"echo_p50_ms"`
	EchoP99  float64 `json:"echo_p99_ms"`
	ChatP50  float64 `json:"chat_p50_ms"`
	ChatP99  float64 `json:"chat_p99_ms"`
	EchoRate float64 `json:"echo_msgs_per_s"`
	ChatRate float64 `json:"chat_msgs_per_s"`
	// CommitP50 is one small durable SQLite transaction on this disk.
	CommitP50 float64 `json:"commit_p50_ms"`
}

// BenchmarkChat measures, in the NAT lab, one conversation with durable
// storage on both ends against a bare libp2p stream echo on the same
// connection, over the direct link (cone <-> cone) and over the relay
// (cone <-> symmetric):
//
//	chat-p50-ms, chat-p99-ms  send -> delivered (receiver stored it, sender
//	                          saw the ack and recorded it), one at a time
//	echo-p50-ms, echo-p99-ms  a 100-byte write -> its echo, one at a time
//	chat-msgs/s               messages pushed by 64 concurrent senders until
//	                          all are delivered
//	echo-msgs/s               100-byte frames echoed, pipelined
//	p50-ratio, p99-ratio      chat / echo latency
//	rate-ratio                echo-msgs/s / chat-msgs/s
//	commit-ms                 one small durable SQLite commit on this disk
//	floor-ms                  echo-p50 + 2 x commit-ms: the least a durable
//	                          delivery can cost (the sender's outbox write,
//	                          then the receiver's)
//	p50/floor                 chat-p50 / floor-ms
//
// Run: go test ./test/e2e -run '^$' -bench Chat -benchtime 1x
func BenchmarkChat(b *testing.B) {
	for _, tc := range []struct {
		name  string
		other lab.Kind
		path  string
	}{
		{"direct", lab.Cone, control.PathDirect},
		{"relayed", lab.Symmetric, control.PathRelayed},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var res []chatBenchResult
			for range b.N {
				res = append(res, runChatBench(b, tc.other, tc.path))
			}
			b.StopTimer()
			pick := func(f func(chatBenchResult) float64) float64 {
				xs := make([]float64, len(res))
				for i, r := range res {
					xs[i] = f(r)
				}
				return median(xs)
			}
			chatP50 := pick(func(r chatBenchResult) float64 { return r.ChatP50 })
			chatP99 := pick(func(r chatBenchResult) float64 { return r.ChatP99 })
			echoP50 := pick(func(r chatBenchResult) float64 { return r.EchoP50 })
			echoP99 := pick(func(r chatBenchResult) float64 { return r.EchoP99 })
			chatRate := pick(func(r chatBenchResult) float64 { return r.ChatRate })
			echoRate := pick(func(r chatBenchResult) float64 { return r.EchoRate })
			b.ReportMetric(chatP50, "chat-p50-ms")
			b.ReportMetric(chatP99, "chat-p99-ms")
			b.ReportMetric(echoP50, "echo-p50-ms")
			b.ReportMetric(echoP99, "echo-p99-ms")
			b.ReportMetric(chatRate, "chat-msgs/s")
			b.ReportMetric(echoRate, "echo-msgs/s")
			b.ReportMetric(chatP50/echoP50, "p50-ratio")
			b.ReportMetric(chatP99/echoP99, "p99-ratio")
			b.ReportMetric(echoRate/chatRate, "rate-ratio")
			commit := pick(func(r chatBenchResult) float64 { return r.CommitP50 })
			b.ReportMetric(commit, "commit-ms")
			b.ReportMetric(echoP50+2*commit, "floor-ms")
			b.ReportMetric(chatP50/(echoP50+2*commit), "p50/floor")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func runChatBench(b *testing.B, otherKind lab.Kind, path string) chatBenchResult {
	b.Helper()
	l := lab.New(b)
	r := startRendezvous(b, l.Public("rdv"))
	sendHost, recvHost := l.Home("alice", lab.Cone), l.Home("bob", otherKind)
	dirS, idS := initDataDir(b, "alice")
	dirR, idR := initDataDir(b, "bob")
	env := func(role, dir string) []string {
		return []string{benchRoleEnv + "=" + role, benchDirEnv + "=" + dir, benchRdvEnv + "=" + strings.Join(r.addrs, ","),
			benchPeerEnv + "=" + idR, benchPathEnv + "=" + path, benchNEnv + "=20000"}
	}
	recvHost.Env = env("receiver", dirR)
	recvHost.Start(os.Args[0], "-test.run=^TestChatBenchChild$", "-test.v")
	sendHost.Env = env("sender", dirS)
	sender := sendHost.Start(os.Args[0], "-test.run=^TestChatBenchChild$", "-test.v")
	// Befriend them through their control APIs.
	for _, p := range [][3]string{{dirS, idR, "bob"}, {dirR, idS, "alice"}} {
		api := control.NewClient(control.SocketPath(p[0]))
		waitFor(b, 30*time.Second, "bench node control socket", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err := api.AddContact(ctx, control.AddContactRequest{Target: p[1], Name: p[2]})
			return err == nil
		})
	}
	if err := sender.WaitLog("RESULT ", 10*time.Minute); err != nil {
		b.Fatalf("chat bench: %v\n%s", err, sender.Log())
	}
	log := sender.Log()
	line := log[strings.Index(log, "RESULT ")+len("RESULT "):]
	line = line[:strings.IndexByte(line, '\n')]
	var res chatBenchResult
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		b.Fatalf("chat bench result %q: %v", line, err)
	}
	return res
}

// initDataDir runs natter init and returns the dir and peer ID.
func initDataDir(b testing.TB, name string) (string, string) {
	dir := b.TempDir()
	out, err := exec.Command(bin.natter, "init", "--data-dir", dir, "--name", name, "--no-passphrase").Output()
	if err != nil {
		b.Fatalf("natter init: %v", err)
	}
	return dir, strings.TrimSpace(string(out))
}

// TestChatBenchChild is one side of BenchmarkChat; it does nothing unless
// started by it.
func TestChatBenchChild(t *testing.T) {
	role := os.Getenv(benchRoleEnv)
	if role == "" {
		t.Skip("runs only as a child of BenchmarkChat")
	}
	sk, err := identity.Load(os.Getenv(benchDirEnv), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := node.DefaultConfig()
	cfg.DataDir = os.Getenv(benchDirEnv)
	cfg.Listen = []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}
	cfg.Rendezvous = strings.Split(os.Getenv(benchRdvEnv), ",")
	cfg.NATPortMap, cfg.DHT = false, false
	cfg.Heartbeat, cfg.DirectRetry, cfg.DirectRetryMax = 2*time.Second, 5*time.Second, 20*time.Second
	ctx := context.Background()
	n, err := node.New(ctx, cfg, sk)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if role == "receiver" {
		n.Host().SetStreamHandler(echoProto, func(s network.Stream) {
			_, _ = io.Copy(s, s)
			s.Close()
		})
		select {} // until the lab kills us
	}

	bob, err := peer.Decode(os.Getenv(benchPeerEnv))
	if err != nil {
		t.Fatal(err)
	}
	want := os.Getenv(benchPathEnv)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := n.Status(ctx)
		if err == nil && len(st.Contacts) == 1 && st.Contacts[0].Path == want && st.Contacts[0].State == control.StateAccepted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s link to bob: %+v", want, st.Contacts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Warm up both paths (stream setup, database pages).
	if _, err := n.Chat().Send(ctx, "bob", control.SendRequest{Text: "warm-up", Wait: "60s"}); err != nil {
		t.Fatal(err)
	}
	res := chatBenchResult{Path: want}
	const rounds = 1000
	if res.CommitP50, err = commitLatency(ctx, t.TempDir(), rounds); err != nil {
		t.Fatal(err)
	}
	echo, err := openEcho(ctx, n, bob)
	if err != nil {
		t.Fatal(err)
	}
	lat, err := echoLatency(echo, rounds)
	if err != nil {
		t.Fatal(err)
	}
	res.EchoP50, res.EchoP99 = percentile(lat, 50), percentile(lat, 99)
	echo.Close()

	lat = lat[:0]
	for i := range rounds {
		start := time.Now()
		m, err := n.Chat().Send(ctx, "bob", control.SendRequest{Text: fmt.Sprintf("latency %04d: %s", i, strings.Repeat("x", 40)), Wait: "60s"})
		if err != nil {
			t.Fatal(err)
		}
		if m.Status != control.StatusDelivered {
			t.Fatalf("message %d not delivered: %s", i, m.Status)
		}
		lat = append(lat, ms(time.Since(start)))
	}
	res.ChatP50, res.ChatP99 = percentile(lat, 50), percentile(lat, 99)

	var total int
	fmt.Sscan(os.Getenv(benchNEnv), &total)
	echo, err = openEcho(ctx, n, bob)
	if err != nil {
		t.Fatal(err)
	}
	rate, err := echoRate(echo, total)
	if err != nil {
		t.Fatal(err)
	}
	res.EchoRate = rate
	echo.Close()

	res.ChatRate, err = chatRate(ctx, n, total, 64)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(res)
	fmt.Printf("RESULT %s\n", out)
}

func openEcho(ctx context.Context, n *node.Node, p peer.ID) (network.Stream, error) {
	return n.Host().NewStream(network.WithAllowLimitedConn(network.WithNoDial(ctx, "bench"), "bench"), p, echoProto)
}

func echoLatency(s network.Stream, rounds int) ([]float64, error) {
	buf, got := make([]byte, benchMsgSize), make([]byte, benchMsgSize)
	var lat []float64
	for range rounds {
		start := time.Now()
		if _, err := s.Write(buf); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(s, got); err != nil {
			return nil, err
		}
		lat = append(lat, ms(time.Since(start)))
	}
	return lat, nil
}

func echoRate(s network.Stream, total int) (float64, error) {
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, benchMsgSize)
		for range total {
			if _, err := s.Write(buf); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	got := make([]byte, benchMsgSize)
	for range total {
		if _, err := io.ReadFull(s, got); err != nil {
			return 0, err
		}
	}
	if err := <-errc; err != nil {
		return 0, err
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

// chatRate sends total messages from workers goroutines and waits until
// the outbox is empty (every message acknowledged).
func chatRate(ctx context.Context, n *node.Node, total, workers int) (float64, error) {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		errs = make(chan error, workers)
	)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(total) {
					return
				}
				if _, err := n.Chat().Send(ctx, "bob", control.SendRequest{Text: fmt.Sprintf("rate %06d: %s", i, strings.Repeat("x", 40))}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st, err := n.Status(ctx)
		if err != nil {
			return 0, err
		}
		if st.Contacts[0].Queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			return 0, errors.New("outbox not drained in 5 minutes")
		}
		time.Sleep(2 * time.Millisecond)
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

// commitLatency times small durable transactions on a scratch database
// opened exactly like the node's.
func commitLatency(ctx context.Context, dir string, rounds int) (float64, error) {
	st, err := store.Open(ctx, filepath.Join(dir, store.FileName))
	if err != nil {
		return 0, err
	}
	defer st.Close()
	var lat []float64
	for i := range rounds {
		start := time.Now()
		if err := st.SetSetting(ctx, "bench", fmt.Sprint(i)); err != nil {
			return 0, err
		}
		lat = append(lat, ms(time.Since(start)))
	}
	return percentile(lat, 50), nil
}

func percentile(xs []float64, p int) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}
