package chat_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/wire"
)

// scripted is the receiving end of one chat stream, driven by the test:
// it reads the batches as they come and acknowledges only when told.
type scripted struct {
	st     network.Stream
	frames chan *pb.Frame
	ended  chan struct{} // closed when reading ended, err says why
	err    error         // io.EOF: the sender closed its side
}

func (r *scripted) read() {
	defer close(r.ended)
	for {
		var f pb.Frame
		if err := wire.ReadMsg(r.st, &f, chat.MaxFrameSize); err != nil {
			r.err = err
			return
		}
		r.frames <- &f
	}
}

// next returns the next batch the sender wrote.
func (r *scripted) next(t *testing.T) []*pb.Message {
	t.Helper()
	select {
	case f := <-r.frames:
		return f.GetMessages()
	case <-r.ended:
		t.Fatalf("stream ended before a batch: %v", r.err)
	case <-time.After(5 * time.Second):
		t.Fatal("no batch")
	}
	return nil
}

// ack acknowledges ids.
func (r *scripted) ack(t *testing.T, ids []chat.MsgID) {
	t.Helper()
	f := &pb.Frame{}
	for _, id := range ids {
		f.Acks = append(f.Acks, id[:])
	}
	require.NoError(t, wire.WriteMsg(r.st, f, chat.MaxFrameSize))
}

// end waits for the stream to end on the receiving side.
func (r *scripted) end(t *testing.T) error {
	t.Helper()
	select {
	case <-r.ended:
		return r.err
	case <-time.After(5 * time.Second):
		t.Fatal("receiving side did not end")
	}
	return nil
}

// mockPair is two connected mocknet hosts (mocknet streams ignore
// deadlines).
func mockPair(t *testing.T) (h1, h2 host.Host) {
	t.Helper()
	mn, err := mocknet.WithNPeers(2)
	require.NoError(t, err)
	t.Cleanup(func() { _ = mn.Close() })
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	return mn.Hosts()[0], mn.Hosts()[1]
}

// tcpPair is two hosts connected over loopback TCP + yamux, whose streams
// honour deadlines.
func tcpPair(t *testing.T) (h1, h2 host.Host) {
	t.Helper()
	newHost := func() host.Host {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.Transport(tcp.NewTCPTransport))
		require.NoError(t, err)
		t.Cleanup(func() { _ = h.Close() })
		return h
	}
	h1, h2 = newHost(), newHost()
	require.NoError(t, h1.Connect(context.Background(), peer.AddrInfo{ID: h2.ID(), Addrs: h2.Addrs()}))
	return h1, h2
}

// openSender opens a Sender from h1 to h2, whose side the test scripts.
func openSender(t *testing.T, h1, h2 host.Host, ackTimeout time.Duration) (*chat.Sender, *scripted) {
	t.Helper()
	got := make(chan *scripted, 1)
	h2.SetStreamHandler(chat.ID, func(st network.Stream) {
		r := &scripted{st: st, frames: make(chan *pb.Frame, 64), ended: make(chan struct{})}
		go r.read()
		got <- r
	})
	t.Cleanup(func() { h2.RemoveStreamHandler(chat.ID) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := chat.Open(ctx, h1, h2.ID(), ackTimeout)
	require.NoError(t, err)
	s := chat.NewSender(st, chat.DefaultWindow)
	var r *scripted
	// The handler runs once the first frame announces the protocol.
	first := []*pb.Message{textMsg("hello")}
	require.NoError(t, s.Send(ctx, first))
	select {
	case r = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream never reached the receiver")
	}
	t.Cleanup(func() {
		s.Reset()
		_ = r.st.Reset()
		<-r.ended
	})
	require.Equal(t, ids(first), ids(r.next(t)))
	r.ack(t, ids(first))
	requireAck(t, s, ids(first))
	return s, r
}

// requireAck waits for the next ack on s.
func requireAck(t *testing.T, s *chat.Sender, want []chat.MsgID) {
	t.Helper()
	select {
	case got, ok := <-s.Acks():
		require.True(t, ok, "acks ended: %v", s.Err())
		require.Equal(t, want, got)
	case <-time.After(5 * time.Second):
		t.Fatal("no ack")
	}
}

// requireEnded waits for s's acks to end and returns why.
func requireEnded(t *testing.T, s *chat.Sender) error {
	t.Helper()
	for {
		select {
		case got, ok := <-s.Acks():
			require.False(t, ok, "unexpected ack %v", got)
			return s.Err()
		case <-time.After(5 * time.Second):
			t.Fatal("acks did not end")
		}
	}
}

func batch(n int) []*pb.Message {
	msgs := make([]*pb.Message, n)
	for i := range msgs {
		msgs[i] = textMsg("x")
	}
	return msgs
}

func TestSender(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name       string
		tcp        bool // needs deadlines: a real transport
		ackTimeout time.Duration
		run        func(t *testing.T, s *chat.Sender, r *scripted)
	}{
		{name: "window", run: func(t *testing.T, s *chat.Sender, r *scripted) {
			var sent [][]chat.MsgID
			for i := range chat.DefaultWindow {
				b := batch(i + 1)
				require.NoError(t, s.Send(ctx, b))
				sent = append(sent, ids(b))
				require.Equal(t, ids(b), ids(r.next(t)))
			}
			require.Equal(t, chat.DefaultWindow, s.InFlight())
			// The window is full: Send waits, here until its context ends.
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			extra := batch(3)
			require.ErrorIs(t, s.Send(cancelled, extra), context.Canceled)
			// A blocked Send goes on once the oldest batch is acknowledged.
			done := make(chan error, 1)
			go func() { done <- s.Send(ctx, extra) }()
			r.ack(t, sent[0])
			requireAck(t, s, sent[0])
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(5 * time.Second):
				t.Fatal("Send still blocked after an ack freed the window")
			}
			require.Equal(t, ids(extra), ids(r.next(t)))
			require.Equal(t, chat.DefaultWindow, s.InFlight())
		}},
		{name: "ack order", run: func(t *testing.T, s *chat.Sender, r *scripted) {
			bs := [][]*pb.Message{batch(2), batch(1), batch(5)}
			for _, b := range bs {
				require.NoError(t, s.Send(ctx, b))
				require.Equal(t, ids(b), ids(r.next(t)))
			}
			for _, b := range bs {
				r.ack(t, ids(b))
			}
			for _, b := range bs {
				requireAck(t, s, ids(b))
			}
			require.Zero(t, s.InFlight())
			finished := make(chan error, 1)
			go func() { finished <- s.Finish() }()
			require.ErrorIs(t, r.end(t), io.EOF, "the sender closed its side")
			require.NoError(t, r.st.Close())
			select {
			case err := <-finished:
				require.NoError(t, err)
			case <-time.After(5 * time.Second):
				t.Fatal("Finish did not return")
			}
			require.NoError(t, requireEnded(t, s))
		}},
		{name: "finish waits for the acks in flight", run: func(t *testing.T, s *chat.Sender, r *scripted) {
			b := batch(3)
			require.NoError(t, s.Send(ctx, b))
			require.Equal(t, ids(b), ids(r.next(t)))
			finished := make(chan error, 1)
			go func() { finished <- s.Finish() }()
			require.ErrorIs(t, r.end(t), io.EOF, "the sender closed its side")
			r.ack(t, ids(b))
			require.NoError(t, r.st.Close())
			requireAck(t, s, ids(b))
			select {
			case err := <-finished:
				require.NoError(t, err)
			case <-time.After(5 * time.Second):
				t.Fatal("Finish did not return")
			}
			require.ErrorIs(t, s.Send(ctx, batch(1)), chat.ErrSenderClosed, "the stream is over")
		}},
		{name: "ack mismatch", run: func(t *testing.T, s *chat.Sender, r *scripted) {
			b1, b2 := batch(2), batch(2)
			require.NoError(t, s.Send(ctx, b1))
			require.NoError(t, s.Send(ctx, b2))
			r.next(t)
			r.next(t)
			r.ack(t, ids(b2)) // not the oldest
			require.ErrorIs(t, requireEnded(t, s), chat.ErrAckMismatch)
			require.ErrorIs(t, r.end(t), network.ErrReset)
			require.Error(t, s.Send(ctx, batch(1)))
		}},
		{name: "ack with nothing in flight", run: func(t *testing.T, s *chat.Sender, r *scripted) {
			r.ack(t, []chat.MsgID{chat.NewID()})
			require.ErrorIs(t, requireEnded(t, s), chat.ErrAckMismatch)
			require.ErrorIs(t, r.end(t), network.ErrReset)
		}},
		{name: "ack timeout", tcp: true, ackTimeout: 200 * time.Millisecond, run: func(t *testing.T, s *chat.Sender, r *scripted) {
			b := batch(1)
			require.NoError(t, s.Send(ctx, b))
			require.Equal(t, ids(b), ids(r.next(t)))
			err := requireEnded(t, s) // never acknowledged
			require.True(t, wire.IsTimeout(err), "err = %v", err)
			require.ErrorIs(t, r.end(t), network.ErrReset)
		}},
		{name: "idle stream outlives the ack timeout", tcp: true, ackTimeout: 200 * time.Millisecond, run: func(t *testing.T, s *chat.Sender, r *scripted) {
			// Everything was acknowledged: the deadline is off. The
			// receiver's next ack (of a batch sent much later) still
			// arrives, which proves the reader did not time out.
			timer := time.NewTimer(600 * time.Millisecond)
			defer timer.Stop()
			select {
			case got, ok := <-s.Acks():
				t.Fatalf("acks changed while idle: %v %v (%v)", got, ok, s.Err())
			case <-timer.C:
			}
			b := batch(1)
			require.NoError(t, s.Send(ctx, b))
			require.Equal(t, ids(b), ids(r.next(t)))
			r.ack(t, ids(b))
			requireAck(t, s, ids(b))
		}},
		{name: "reset mid-batch", run: func(t *testing.T, s *chat.Sender, r *scripted) {
			b1, b2 := batch(2), batch(4)
			require.NoError(t, s.Send(ctx, b1))
			require.NoError(t, s.Send(ctx, b2))
			r.next(t)
			r.next(t)
			r.ack(t, ids(b1))
			requireAck(t, s, ids(b1))
			require.NoError(t, r.st.Reset()) // b2 never acknowledged
			require.ErrorIs(t, requireEnded(t, s), network.ErrReset)
			require.Equal(t, 1, s.InFlight(), "b2 is still unacknowledged")
			require.Error(t, s.Send(ctx, batch(1)))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h1, h2 host.Host
			if tc.tcp {
				h1, h2 = tcpPair(t)
			} else {
				h1, h2 = mockPair(t)
			}
			to := tc.ackTimeout
			if to == 0 {
				to = ackTimeout
			}
			s, r := openSender(t, h1, h2, to)
			tc.run(t, s, r)
		})
	}
}

func TestSenderResetIsIdempotent(t *testing.T) {
	h1, h2 := mockPair(t)
	s, r := openSender(t, h1, h2, ackTimeout)
	s.Reset()
	s.Reset()
	require.ErrorIs(t, requireEnded(t, s), chat.ErrSenderClosed)
	require.ErrorIs(t, r.end(t), network.ErrReset)
}
