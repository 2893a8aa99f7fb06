package wire_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/natterim/natter/protocols/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
		// The QUIC round-trip test's hosts (roundtrip_test.go).
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/host/resource-manager.(*stats).background"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/tcpreuse.(*ConnMgr).run"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-flow-metrics.(*sweeper).run"),
	)
}

const testProto = protocol.ID("/natter/test-call/1.0.0")

// pair is two connected mocknet hosts: a client and a server.
func pair(t *testing.T) (client, server host.Host) {
	t.Helper()
	mn, err := mocknet.FullMeshConnected(2)
	require.NoError(t, err)
	t.Cleanup(func() { mn.Close() })
	return mn.Hosts()[0], mn.Hosts()[1]
}

// echo answers one request with "re: " + its value.
func echo(st network.Stream) {
	var req wrapperspb.StringValue
	if err := wire.ReadMsg(st, &req, 1<<10); err != nil {
		st.Reset()
		return
	}
	if err := wire.WriteMsg(st, wrapperspb.String("re: "+req.GetValue()), 1<<10); err != nil {
		st.Reset()
		return
	}
	_ = st.Close()
}

func opts() wire.CallOptions {
	return wire.CallOptions{Service: "natter.test", RequestMax: 64, ResponseMax: 64, Memory: 64, Timeout: 10 * time.Second}
}

func TestCall(t *testing.T) {
	c, s := pair(t)
	s.SetStreamHandler(testProto, echo)
	var resp wrapperspb.StringValue
	require.NoError(t, wire.Call(context.Background(), c, s.ID(), testProto, opts(), wrapperspb.String("hi"), &resp))
	require.Equal(t, "re: hi", resp.GetValue())
}

func TestCallSizeLimits(t *testing.T) {
	c, s := pair(t)
	received := make(chan string, 2) // requests read in full
	s.SetStreamHandler(testProto, func(st network.Stream) {
		var req wrapperspb.StringValue
		if err := wire.ReadMsg(st, &req, 1<<10); err != nil {
			st.Reset() // the oversized call's stream, reset by the client
			return
		}
		received <- req.GetValue()
		if err := wire.WriteMsg(st, wrapperspb.String(strings.Repeat("x", 100)), 1<<10); err != nil {
			st.Reset()
			return
		}
		_ = st.Close()
	})

	// A request over RequestMax is refused before anything is sent.
	err := wire.Call(context.Background(), c, s.ID(), testProto, opts(), wrapperspb.String(strings.Repeat("y", 100)), &wrapperspb.StringValue{})
	require.ErrorIs(t, err, wire.ErrTooLarge)

	// A response over ResponseMax is refused before it is read.
	err = wire.Call(context.Background(), c, s.ID(), testProto, opts(), wrapperspb.String("small"), &wrapperspb.StringValue{})
	require.ErrorIs(t, err, wire.ErrTooLarge)
	require.Equal(t, "small", <-received, "only the small request reached the server")
}

func TestCallDeadline(t *testing.T) {
	c, s := pair(t)
	release := make(chan struct{})
	entered, exited := make(chan struct{}, 2), make(chan struct{}, 2)
	s.SetStreamHandler(testProto, func(st network.Stream) {
		defer func() { exited <- struct{}{} }()
		entered <- struct{}{}
		<-release // never answers
		st.Reset()
	})

	o := opts()
	o.Timeout = 100 * time.Millisecond
	err := wire.Call(context.Background(), c, s.ID(), testProto, o, wrapperspb.String("hi"), &wrapperspb.StringValue{})
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// The caller's context counts too.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	err = wire.Call(ctx, c, s.ID(), testProto, opts(), wrapperspb.String("hi"), &wrapperspb.StringValue{})
	require.ErrorIs(t, err, context.Canceled)

	<-entered
	<-entered
	close(release)
	<-exited
	<-exited
}

func TestCallNoResponse(t *testing.T) {
	c, s := pair(t)
	got := make(chan string, 1)
	s.SetStreamHandler(testProto, func(st network.Stream) {
		var req wrapperspb.StringValue
		if err := wire.ReadMsg(st, &req, 64); err != nil {
			st.Reset()
			return
		}
		got <- req.GetValue()
		_ = st.Close()
	})
	require.NoError(t, wire.Call(context.Background(), c, s.ID(), testProto, opts(), wrapperspb.String("bye"), nil))
	require.Equal(t, "bye", <-got)

	// A server that answers what should have no answer is an error.
	s.SetStreamHandler(testProto, echo)
	err := wire.Call(context.Background(), c, s.ID(), testProto, opts(), wrapperspb.String("bye"), nil)
	require.ErrorIs(t, err, wire.ErrMalformed)
}

// limitedOnly opens streams as a host whose only connection to the peer
// is limited (relayed) would: refused unless the caller opted in. (Mocknet
// has no limited connections and dials even with NoDial: the test checks
// that Call asks for both.)
type limitedOnly struct {
	host.Host
	noDial bool // whether the last call asked not to dial
}

func (l *limitedOnly) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	l.noDial, _ = network.GetNoDial(ctx)
	if ok, _ := network.GetAllowLimitedConn(ctx); !ok {
		return nil, network.ErrLimitedConn
	}
	return l.Host.NewStream(ctx, p, pids...)
}

func TestCallLimitedConnOptIn(t *testing.T) {
	c, s := pair(t)
	s.SetStreamHandler(testProto, echo)
	h := &limitedOnly{Host: c}

	err := wire.Call(context.Background(), h, s.ID(), testProto, opts(), wrapperspb.String("hi"), &wrapperspb.StringValue{})
	require.ErrorIs(t, err, network.ErrLimitedConn)
	require.False(t, h.noDial)

	o := opts()
	o.AllowLimited, o.NoDial = true, true
	var resp wrapperspb.StringValue
	require.NoError(t, wire.Call(context.Background(), h, s.ID(), testProto, o, wrapperspb.String("hi"), &resp))
	require.Equal(t, "re: hi", resp.GetValue())
	require.True(t, h.noDial)
}

func TestTrackerCloseWaitsForHandler(t *testing.T) {
	c, s := pair(t)
	tr := wire.NewTracker()
	entered := make(chan struct{})
	var finished sync.WaitGroup
	finished.Add(1)
	var readErr error
	s.SetStreamHandler(testProto, tr.Handler(func(st network.Stream) {
		defer finished.Done()
		close(entered)
		// Blocks until Close resets the stream.
		_, readErr = io.ReadAll(st)
		<-tr.Context().Done()
	}))

	st, err := c.NewStream(context.Background(), s.ID(), testProto)
	require.NoError(t, err)
	defer st.Reset()
	_, err = st.Write([]byte("x")) // mocknet opens the stream on first write
	require.NoError(t, err)
	<-entered
	require.Equal(t, 1, tr.InFlight())

	closed := make(chan struct{})
	go func() {
		s.RemoveStreamHandler(testProto)
		tr.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	finished.Wait() // returned already: Close waited for it
	require.Error(t, readErr, "the stream in flight was reset")
	require.Equal(t, 0, tr.InFlight())

	// Idempotent, and handlers after Close do not run: their streams are
	// reset.
	tr.Close()
	ran := false
	late := &resetStream{}
	tr.Handler(func(network.Stream) { ran = true })(late)
	require.False(t, ran)
	require.True(t, late.reset)
	require.False(t, tr.Go(func(context.Context) { ran = true }))
	require.False(t, ran)
}

// resetStream records Reset (the only method the Tracker calls on a
// stream it refuses).
type resetStream struct {
	network.Stream
	reset bool
}

func (r *resetStream) Reset() error { r.reset = true; return nil }

func TestTrackerGo(t *testing.T) {
	tr := wire.NewTracker()
	started := make(chan struct{})
	stopped := false
	require.True(t, tr.Go(func(ctx context.Context) {
		close(started)
		<-ctx.Done()
		stopped = true
	}))
	<-started
	tr.Close()
	require.True(t, stopped, "Close waited for the loop")
	tr.Close()
}

func TestWatchdog(t *testing.T) {
	c, s := pair(t)
	done := make(chan error, 1)
	s.SetStreamHandler(testProto, func(st network.Stream) {
		w := wire.NewWatchdog(st, 50*time.Millisecond)
		_, err := io.ReadAll(st) // the client never closes: the watchdog resets
		done <- w.Stop(err)
	})
	st, err := c.NewStream(context.Background(), s.ID(), testProto)
	require.NoError(t, err)
	defer st.Reset()
	_, err = st.Write([]byte("x"))
	require.NoError(t, err)
	select {
	case err := <-done:
		require.True(t, wire.IsTimeout(err), "err = %v", err)
		require.Equal(t, "timeout", wire.Reason(err))
	case <-time.After(10 * time.Second):
		t.Fatal("the watchdog did not reset the stream")
	}
	require.NoError(t, wire.NewWatchdog(st, time.Hour).Stop(nil))
	require.False(t, errors.Is(wire.NewWatchdog(st, time.Hour).Stop(io.EOF), context.DeadlineExceeded))
}
