package node

import (
	"context"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/store"
)

// Mailbox reports offline delivery: our mailboxes, and per accepted
// contact its deposit token and what waits in its mailbox.
func (n *Node) Mailbox(ctx context.Context) (control.Mailbox, error) {
	out := control.Mailbox{Enabled: n.cfg.Mailbox.Enabled, Servers: []control.MailboxServer{}, Contacts: []control.MailboxContact{}}
	cs, err := n.store.Contacts(ctx)
	if err != nil {
		return out, err
	}
	stored, err := n.store.MailboxCounts(ctx)
	if err != nil {
		return out, err
	}
	m := n.mail
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ai := range n.p2p.Rendezvous() {
		s := m.server(ai.ID)
		out.Servers = append(out.Servers, control.MailboxServer{
			PeerID: ai.ID.String(), LastDrain: s.lastDrain, Received: s.received, Rejected: s.rejected, LastError: s.lastErr,
		})
	}
	for _, c := range cs {
		if c.State != store.StateAccepted {
			continue
		}
		mc := control.MailboxContact{PeerID: c.PeerID.String(), Name: c.Name, Stored: stored[c.PeerID]}
		if _, exp, err := n.store.Token(ctx, c.PeerID); err == nil {
			mc.TokenExpires = exp
		}
		if st, ok := m.contacts[c.PeerID]; ok {
			if st.server != "" {
				mc.Server = st.server.String()
			}
			mc.LastError = st.lastErr
		}
		out.Contacts = append(out.Contacts, mc)
	}
	return out, nil
}
