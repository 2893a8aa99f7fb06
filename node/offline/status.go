package offline

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/store"
)

// Mailbox reports offline delivery: our mailboxes, and per accepted
// contact its deposit token and what waits in its mailbox.
func (s *Service) Mailbox(ctx context.Context) (control.Mailbox, error) {
	out := control.Mailbox{Enabled: s.cfg.Enabled, Servers: []control.MailboxServer{}, Contacts: []control.MailboxContact{}}
	cs, err := s.st.Contacts(ctx)
	if err != nil {
		return out, fmt.Errorf("read contacts: %w", err)
	}
	stored, err := s.st.MailboxCounts(ctx)
	if err != nil {
		return out, fmt.Errorf("read mailbox counts: %w", err)
	}
	expires := map[peer.ID]time.Time{}
	for _, c := range cs {
		if c.State != store.StateAccepted {
			continue
		}
		if _, exp, err := s.st.Token(ctx, c.PeerID); err == nil {
			expires[c.PeerID] = exp
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ai := range s.cfg.Rendezvous {
		st := s.server(ai.ID)
		out.Servers = append(out.Servers, control.MailboxServer{
			PeerID: ai.ID.String(), LastDrain: st.lastDrain, Received: st.received, Rejected: st.rejected, LastError: st.lastErr,
		})
	}
	for _, c := range cs {
		if c.State != store.StateAccepted {
			continue
		}
		mc := control.MailboxContact{PeerID: c.PeerID.String(), Name: c.Name, Stored: stored[c.PeerID], TokenExpires: expires[c.PeerID]}
		if st, ok := s.contacts[c.PeerID]; ok {
			if st.server != "" {
				mc.Server = st.server.String()
			}
			mc.LastError = st.lastErr
		}
		out.Contacts = append(out.Contacts, mc)
	}
	return out, nil
}
