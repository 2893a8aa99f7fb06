package links

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// Ping measures one round trip to p over the connection libp2p picks for a
// new stream (the direct one when there is one) and returns that
// connection. It never dials, allows a relayed connection, and is bounded
// by half the heartbeat, at most 5 s.
func (s *Service) Ping(ctx context.Context, p peer.ID) (time.Duration, network.Conn, error) {
	return s.ping(ctx, p, s.pingTimeout())
}

// pingTimeout bounds one contact heartbeat: half the interval, at most
// 5 s. A contact whose node died is offline after at most
// heartbeat*heartbeat_misses + pingTimeout.
func (s *Service) pingTimeout() time.Duration { return min(s.cfg.Heartbeat/2, 5*time.Second) }

// ping is the one ping of contact and rendezvous links, bounded by
// timeout. It speaks go-libp2p's ping protocol by hand rather than through
// ping.Ping because the caller needs the connection the ping went over (to
// tell which path answered), which ping.Ping does not return.
func (s *Service) ping(ctx context.Context, p peer.ID, timeout time.Duration) (time.Duration, network.Conn, error) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := s.host.NewStream(network.WithNoDial(network.WithAllowLimitedConn(pctx, "ping"), "ping"), p, ping.ID)
	if err != nil {
		return 0, nil, err
	}
	defer st.Close()
	// As ping.Ping does: the stream counts against the ping service's
	// limits (a few per peer), like every stream we open.
	if err := st.Scope().SetService(ping.ServiceName); err != nil {
		st.Reset()
		return 0, nil, fmt.Errorf("attach ping stream: %w", err)
	}
	if dl, ok := pctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	// A stream read does not watch the context: reset the stream when it
	// ends, so that a ping over a dead path (a cut WAN) ends with the
	// links' lifetime instead of running to its deadline and holding up
	// the daemon's stop.
	stop := context.AfterFunc(pctx, func() { st.Reset() })
	defer stop()
	buf := make([]byte, ping.PingSize)
	if _, err := rand.Read(buf); err != nil {
		st.Reset()
		return 0, nil, err
	}
	start := time.Now()
	if _, err := st.Write(buf); err != nil {
		st.Reset()
		return 0, nil, err
	}
	got := make([]byte, ping.PingSize)
	if _, err := io.ReadFull(st, got); err != nil {
		st.Reset()
		return 0, nil, err
	}
	rtt := time.Since(start)
	if !bytes.Equal(buf, got) {
		st.Reset()
		return 0, nil, errors.New("ping: wrong echo")
	}
	s.host.Peerstore().RecordLatency(p, rtt)
	return rtt, st.Conn(), nil
}
