package chat_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/wire"
)

const (
	benchBatch  = 64
	benchWindow = 8
)

type nopReceiver struct{}

func (nopReceiver) Allow(context.Context, peer.ID) bool { return true }
func (nopReceiver) Receive(context.Context, peer.ID, network.Conn, []*pb.Message) error {
	return nil
}

func benchBatchMsgs() []*pb.Message {
	msgs := make([]*pb.Message, benchBatch)
	for i := range msgs {
		msgs[i] = textMsg("a message of a typical length, say forty")
	}
	return msgs
}

// batches splits n messages into batch sizes of at most benchBatch.
func batches(n int) []int {
	var out []int
	for n > 0 {
		k := min(n, benchBatch)
		out = append(out, k)
		n -= k
	}
	return out
}

func BenchmarkPipelined(b *testing.B) {
	h1, h2, _ := setup(b, nopReceiver{})
	s := open(b, h1, h2)
	msgs := benchBatchMsgs()
	sizes := batches(b.N)

	window := make(chan struct{}, benchWindow)
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() {
		for _, k := range sizes {
			a, err := s.ReadAck()
			if err == nil && len(a) != k {
				err = io.ErrShortBuffer
			}
			if err != nil {
				done <- err
				return
			}
			<-window
		}
		done <- nil
	}()
	for _, k := range sizes {
		window <- struct{}{}
		require.NoError(b, s.Send(msgs[:k]))
	}
	require.NoError(b, <-done)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkBareEcho moves frames of the same size over a plain echo stream,
// as the floor against which the chat protocol's overhead is measured.
func BenchmarkBareEcho(b *testing.B) {
	h1, h2, _ := setup(b, nopReceiver{})
	const echoID = "/bench/echo"
	h2.SetStreamHandler(echoID, func(st network.Stream) {
		_, _ = io.Copy(st, st)
		_ = st.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := h1.NewStream(ctx, h2.ID(), echoID)
	require.NoError(b, err)
	defer func() { _ = st.Reset() }()

	var buf bytes.Buffer
	require.NoError(b, wire.WriteMsg(&buf, &pb.Frame{Messages: benchBatchMsgs()}, chat.MaxFrameSize))
	frame := buf.Bytes()
	sizes := batches(b.N)

	window := make(chan struct{}, benchWindow)
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() {
		in := make([]byte, len(frame))
		for range sizes {
			if _, err := io.ReadFull(st, in); err != nil {
				done <- err
				return
			}
			<-window
		}
		done <- nil
	}()
	for range sizes {
		window <- struct{}{}
		_, err := st.Write(frame)
		require.NoError(b, err)
	}
	require.NoError(b, <-done)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
