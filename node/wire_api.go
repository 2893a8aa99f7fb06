package node

import (
	"context"
	"path/filepath"

	"github.com/natterim/natter/node/api"
	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/store"
)

// startAPI serves the control API on the control socket (and the loopback
// TCP port, if configured). The node itself still implements every
// interface node/api declares; as features move to their own packages,
// their values are passed here instead.
func (n *Node) startAPI() (*api.Server, error) {
	return api.New(api.Config{
		Socket:    n.socketPath(),
		TCPListen: n.cfg.Control.TCPListen,
		TokenFile: filepath.Join(n.cfg.DataDir, api.TokenName),
	}, api.Services{
		Node:     n,
		Contacts: n,
		Presence: n,
		Chat:     n.chat,
		Files:    n.files,
		Profiles: n,
		Names:    n,
		Mailbox:  n,
		Events:   n.events,
	}, api.WithLogger(n.log))
}

func (n *Node) socketPath() string {
	if n.cfg.Control.Socket != "" {
		return n.cfg.Control.Socket
	}
	return control.SocketPath(n.cfg.DataDir)
}

// Touch records user activity (api.Presence); it ends an automatic away.
func (n *Node) Touch() { n.touch() }

// Contacts lists every contact with its name warning, if any.
func (n *Node) Contacts(ctx context.Context) ([]control.Contact, error) {
	cs, err := n.store.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	warnings := n.nameWarnings(ctx)
	out := make([]control.Contact, 0, len(cs))
	for _, c := range cs {
		ac := toAPIContact(c)
		ac.Warning = warnings[c.PeerID]
		out = append(out, ac)
	}
	return out, nil
}

// RemoveContact removes a contact in any state and returns it as it was:
// removing a blocked peer unblocks it, removing a pending_out one
// withdraws the request (telling the other node if it is connected).
func (n *Node) RemoveContact(ctx context.Context, ref string) (store.Contact, error) {
	c, err := n.findContactRef(ctx, ref)
	if err != nil {
		return c, err
	}
	// Remove the row first, under the lock of every friend-request
	// transition: a request crossing ours (mutual add) would otherwise
	// accept the contact again and restart the link we are stopping.
	n.reqs.mu.Lock()
	err = n.store.RemoveContact(ctx, c.PeerID)
	n.reqs.mu.Unlock()
	if err != nil {
		return c, err
	}
	if c.State == store.StatePendingOut {
		// Before the link stops: over it, the contact learns at once.
		n.withdrawRequest(ctx, c)
	}
	n.stopContact(c.PeerID)
	n.p2p.SetBlocked(c.PeerID, false)
	n.log.Info("contact removed", "peer", c.PeerID.ShortString(), "name", c.Name)
	return c, nil
}
