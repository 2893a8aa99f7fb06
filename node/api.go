package node

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/invite"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/contact"
	"github.com/natterim/natter/protocols/names"
)

// Status returns what `natter status` shows.
func (n *Node) Status(ctx context.Context) (control.Status, error) {
	name, err := n.store.Setting(ctx, store.SettingName)
	if err != nil {
		return control.Status{}, err
	}
	found, mapped := n.p2p.NATStatus()
	st := control.Status{
		PeerID:        n.host.ID().String(),
		Name:          name,
		Version:       Version,
		Reachability:  reachabilityString(n.p2p.Reachability()),
		NATMapping:    control.NATMapping{Enabled: n.cfg.NATPortMap, Found: found, Mapped: strs(mapped)},
		ListenAddrs:   strs(n.host.Network().ListenAddresses()),
		ObservedAddrs: n.p2p.ObservedAddrs(),
		Rendezvous:    n.p2p.RendezvousStatus(),
		StartedAt:     n.startedAt,
	}
	n.self.mu.Lock()
	st.Presence, st.AutoAway = n.self.manual, n.self.autoAway && n.self.manual == control.PresenceOnline
	n.self.mu.Unlock()
	if prof, err := n.store.OwnProfile(ctx); err == nil {
		st.StatusMessage = prof.Status
	}
	if st.NATMapping.Mapped == nil {
		st.NATMapping.Mapped = []string{}
	}
	if st.ObservedAddrs == nil {
		st.ObservedAddrs = []string{}
	}
	if st.Contacts, err = n.contactStatus(ctx); err != nil {
		return control.Status{}, err
	}
	return st, nil
}

// Invite is the invite string for this node: peer ID, rendezvous servers
// and name.
func (n *Node) Invite(ctx context.Context) (string, error) {
	name, err := n.store.Setting(ctx, store.SettingName)
	if err != nil {
		return "", err
	}
	rdvs, _ := n.cfg.RendezvousInfos()
	if len(rdvs) > invite.MaxRendezvous {
		rdvs = rdvs[:invite.MaxRendezvous]
	}
	if len(name) > invite.MaxNameLen {
		name = name[:invite.MaxNameLen]
	}
	return invite.Invite{Peer: n.host.ID(), Rendezvous: rdvs, Name: name}.String(), nil
}

func toAPIContact(c store.Contact) control.Contact {
	return control.Contact{PeerID: c.PeerID.String(), Name: c.Name, State: string(c.State), Rendezvous: strs(c.Rendezvous), AddedAt: c.CreatedAt, ReadReceipts: c.ReadReceipts, Note: c.Note, DirName: c.DirName}
}

// AddContact adds a contact from a peer ID or an invite and sends it a
// friend request (state pending_out) with req.Note. If that peer had asked
// us already (pending_in), adding it accepts its request.
func (n *Node) AddContact(ctx context.Context, req control.AddContactRequest) (store.Contact, error) {
	target := strings.TrimSpace(req.Target)
	c := store.Contact{Name: strings.TrimSpace(req.Name), State: store.StatePendingOut, Note: req.Note}
	if invite.IsInvite(target) {
		inv, err := invite.Parse(target)
		if err != nil {
			return c, core.Invalid(err)
		}
		c.PeerID = inv.Peer
		if c.Name == "" {
			c.Name = inv.Name
		}
		for _, ai := range inv.Rendezvous {
			as, err := peer.AddrInfoToP2pAddrs(&ai)
			if err == nil {
				c.Rendezvous = append(c.Rendezvous, as...)
			}
		}
	} else if id, err := peer.Decode(target); err == nil {
		c.PeerID = id
	} else if strings.HasPrefix(target, "12D3KooW") {
		return c, core.Invalid(fmt.Errorf("%q is neither a peer ID (truncated? %v) nor an invite", target, err))
	} else if dn, nerr := names.Normalize(target); nerr == nil {
		if err := n.resolveContactName(ctx, &c, dn); err != nil {
			return c, err
		}
	} else {
		return c, core.Invalid(fmt.Errorf("%q is neither a peer ID, an invite (natter:...) nor a directory name (%v)", target, nerr))
	}
	if c.PeerID == n.host.ID() {
		return c, core.Invalid(errors.New("that is this node's own peer ID"))
	}
	if c.Name != "" {
		if err := n.checkContactName(c.Name); err != nil {
			return c, err
		}
	}
	if err := contact.ValidateText("note", c.Note, contact.MaxNoteBytes); err != nil {
		return c, core.Invalid(err)
	}
	n.reqs.mu.Lock()
	if old, err := n.store.ContactByPeer(ctx, c.PeerID); err == nil {
		n.reqs.mu.Unlock()
		switch old.State {
		case store.StatePendingIn:
			return n.AcceptContact(ctx, old.PeerID.String(), c.Name)
		case store.StateBlocked:
			return c, core.Conflict(fmt.Errorf("%s is blocked; to unblock it: natter contacts remove %s", old.Label(), old.Label()))
		}
		return c, core.Conflict(fmt.Errorf("%s is already a contact (as %q, %s)", c.PeerID, old.Label(), old.State))
	}
	err := n.store.AddContact(ctx, c)
	n.reqs.mu.Unlock()
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			return c, core.Conflict(fmt.Errorf("the name %q is taken by another contact", c.Name))
		}
		return c, err
	}
	c, err = n.store.ContactByPeer(ctx, c.PeerID)
	if err != nil {
		return c, err
	}
	n.log.Info("contact added, friend request pending", "peer", c.PeerID.ShortString(), "name", c.Name)
	n.startContact(c.PeerID)
	return c, nil
}

// findContact resolves a contact reference (name or peer ID).
func (n *Node) findContactRef(ctx context.Context, ref string) (store.Contact, error) {
	c, err := n.store.FindContact(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return c, core.NotFound(fmt.Errorf("no contact %q (see: natter contacts list)", ref))
	}
	return c, err
}

// Ping measures the round trip to a contact over the current path.
func (n *Node) Ping(ctx context.Context, ref string) (control.PingResult, error) {
	c, err := n.findContactRef(ctx, ref)
	if err != nil {
		return control.PingResult{}, err
	}
	res := control.PingResult{PeerID: c.PeerID.String(), Path: control.PathNone}
	if path, _ := n.pathTo(c.PeerID); path == control.PathNone {
		return res, core.Unavailable(fmt.Errorf("%s is not connected (see: natter status)", c.Label()))
	}
	rtt, conn, err := n.p2p.Ping(ctx, c.PeerID)
	if err != nil {
		return res, core.Unavailable(fmt.Errorf("ping %s: %w", c.Label(), err))
	}
	res.RTTMillis = millis(rtt)
	res.RemoteAddr = conn.RemoteMultiaddr().String()
	res.Path = control.PathDirect
	if isCircuit(conn.RemoteMultiaddr()) || conn.Stat().Limited {
		res.Path = control.PathRelayed
	}
	return res, nil
}

func strs[T fmt.Stringer](xs []T) []string {
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		out = append(out, x.String())
	}
	return out
}
