package links_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/links"
)

// busHost is a host whose event bus tells the test when someone
// subscribed, and whose protocol list is fixed.
type busHost struct {
	host.Host
	bus       *watchedBus
	protocols []protocol.ID
}

func (h *busHost) EventBus() event.Bus  { return h.bus }
func (h *busHost) Mux() protocol.Switch { return fixedMux{protocols: h.protocols} }

type fixedMux struct {
	protocol.Switch
	protocols []protocol.ID
}

func (m fixedMux) Protocols() []protocol.ID { return m.protocols }

type watchedBus struct {
	event.Bus
	subscribed chan struct{}
}

func (b *watchedBus) Subscribe(t any, opts ...event.SubscriptionOpt) (event.Subscription, error) {
	sub, err := b.Bus.Subscribe(t, opts...)
	close(b.subscribed)
	return sub, err
}

func newBusHost(protocols ...protocol.ID) *busHost {
	return &busHost{bus: &watchedBus{Bus: eventbus.NewBus(), subscribed: make(chan struct{})}, protocols: protocols}
}

// TestWaitProtocol: the ready wait returns at once when the handler is
// there, when the host's event bus announces it, and gives up after its
// bound.
func TestWaitProtocol(t *testing.T) {
	ctx := context.Background()

	ok, err := links.WaitProtocol(ctx, newBusHost(holepunch.Protocol), holepunch.Protocol, time.Minute)
	require.NoError(t, err)
	require.True(t, ok, "already registered")

	h := newBusHost()
	em, err := h.bus.Emitter(new(event.EvtLocalProtocolsUpdated))
	require.NoError(t, err)
	defer em.Close()
	done := make(chan bool, 1)
	go func() {
		ok, _ := links.WaitProtocol(ctx, h, holepunch.Protocol, time.Minute)
		done <- ok
	}()
	<-h.bus.subscribed
	require.NoError(t, em.Emit(event.EvtLocalProtocolsUpdated{Added: []protocol.ID{"/other/1.0.0"}}))
	require.NoError(t, em.Emit(event.EvtLocalProtocolsUpdated{Added: []protocol.ID{holepunch.Protocol}}))
	select {
	case ok := <-done:
		require.True(t, ok, "announced")
	case <-time.After(10 * time.Second):
		t.Fatal("the wait did not see the handler announced")
	}

	ok, err = links.WaitProtocol(ctx, newBusHost(), holepunch.Protocol, 10*time.Millisecond)
	require.NoError(t, err)
	require.False(t, ok, "bounded")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	ok, err = links.WaitProtocol(cctx, newBusHost(), holepunch.Protocol, time.Minute)
	require.NoError(t, err)
	require.False(t, ok, "cancelled")
}

// TestHostAnnouncesProtocols: go-libp2p's host announces a new stream
// handler on its event bus (EvtLocalProtocolsUpdated), which the ready
// wait relies on to see DCUtR armed.
func TestHostAnnouncesProtocols(t *testing.T) {
	mn := mocknet.New()
	defer mn.Close()
	h, err := mn.GenPeer()
	require.NoError(t, err)
	done := make(chan bool, 1)
	sub, err := h.EventBus().Subscribe(new(event.EvtLocalProtocolsUpdated))
	require.NoError(t, err)
	defer sub.Close()
	go func() {
		ok, _ := links.WaitProtocol(context.Background(), h, holepunch.Protocol, time.Minute)
		done <- ok
	}()
	h.SetStreamHandler(holepunch.Protocol, func(s network.Stream) { s.Reset() })
	for e := range sub.Out() {
		if u := e.(event.EvtLocalProtocolsUpdated); len(u.Added) == 1 && u.Added[0] == holepunch.Protocol {
			break
		}
	}
	select {
	case ok := <-done:
		require.True(t, ok)
	case <-time.After(10 * time.Second):
		t.Fatal("the wait did not see the handler")
	}
}
