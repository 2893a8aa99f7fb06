package links

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
)

// waitReady closes s.ready once the DCUtR handler is registered (we know
// our public address), or after cfg.ReadyTimeout so that a node that can
// never punch still dials through the relay.
func (s *Service) waitReady(ctx context.Context) {
	defer close(s.ready)
	if len(s.rdvs) == 0 || !s.cfg.HolePunching {
		return
	}
	armed, err := waitProtocol(ctx, s.host, holepunch.Protocol, s.cfg.ReadyTimeout)
	switch {
	case err != nil:
		s.log.Warn("cannot watch for hole punching; contacts are dialled at once", "err", err)
	case armed:
		s.log.Debug("hole punching armed", "after", time.Since(s.created))
	case ctx.Err() == nil:
		s.log.Warn("no public address learned yet; contacts will be dialled through the relay only until one is")
	}
}

// waitProtocol waits until h serves proto, for at most timeout. go-libp2p
// tells of handlers coming and going on the host's event bus
// (EvtLocalProtocolsUpdated); the handler may also be there already, so it
// looks once after subscribing.
func waitProtocol(ctx context.Context, h host.Host, proto protocol.ID, timeout time.Duration) (bool, error) {
	sub, err := h.EventBus().Subscribe(new(event.EvtLocalProtocolsUpdated), eventbus.Name("natter-ready"))
	if err != nil {
		return false, fmt.Errorf("subscribe to protocol updates: %w", err)
	}
	defer sub.Close()
	if slices.Contains(h.Mux().Protocols(), proto) {
		return true, nil
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case <-deadline.C:
			return false, nil
		case e, ok := <-sub.Out():
			if !ok {
				return false, nil
			}
			if u, ok := e.(event.EvtLocalProtocolsUpdated); ok && slices.Contains(u.Added, proto) {
				return true, nil
			}
		}
	}
}
