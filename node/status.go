package node

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/invite"
	"github.com/natterim/natter/node/store"
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
	st.Presence, st.AutoAway = n.social.Self()
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

// Ping measures the round trip to a contact over the current path.
func (n *Node) Ping(ctx context.Context, ref string) (control.PingResult, error) {
	c, err := n.findContactRef(ctx, ref)
	if err != nil {
		return control.PingResult{}, err
	}
	res := control.PingResult{PeerID: c.PeerID.String(), Path: control.PathNone}
	if path, _ := n.p2p.Path(c.PeerID); path == core.PathNone {
		return res, core.Unavailable(fmt.Errorf("%s is not connected (see: natter status)", c.Label()))
	}
	rtt, conn, err := n.p2p.Ping(ctx, c.PeerID)
	if err != nil {
		return res, core.Unavailable(fmt.Errorf("ping %s: %w", c.Label(), err))
	}
	res.RTTMillis = millis(rtt)
	res.RemoteAddr = conn.RemoteMultiaddr().String()
	res.Path = core.PathOf(conn).String()
	return res, nil
}

func strs[T fmt.Stringer](xs []T) []string {
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		out = append(out, x.String())
	}
	return out
}

// contactStatus is the status of every contact's link.
func (n *Node) contactStatus(ctx context.Context) ([]control.ContactStatus, error) {
	cs, err := n.store.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	unread, err := n.store.Unread(ctx)
	if err != nil {
		return nil, err
	}
	queued, err := n.store.Queued(ctx)
	if err != nil {
		return nil, err
	}
	warnings := n.social.NameWarnings(ctx)
	out := make([]control.ContactStatus, 0, len(cs))
	for _, c := range cs {
		st := control.ContactStatus{PeerID: c.PeerID.String(), Name: c.Name, State: string(c.State), Warning: warnings[c.PeerID]}
		path, conn := n.p2p.Path(c.PeerID)
		st.Path = path.String()
		st.Connected = path != core.PathNone
		if conn != nil {
			st.RemoteAddr = conn.RemoteMultiaddr().String()
			st.Transport = core.Transport(conn.RemoteMultiaddr())
			if path == core.PathDirect {
				// Read off the connection itself, so that it agrees with
				// path even before the link's loop has noticed the change.
				st.DirectSince = conn.Stat().Opened
			}
		}
		st.Presence = control.PresenceOffline
		if ls, ok := n.p2p.LinkState(c.PeerID); ok {
			st.RTTMillis = millis(ls.RTT)
			st.LastError = ls.LastError
		}
		if c.State == store.StateAccepted {
			st.Presence, st.StatusMessage = n.social.ContactPresence(c.PeerID, st.Connected)
		}
		if !st.Connected {
			st.RTTMillis = 0
		}
		st.Unread, st.Queued = unread[c.PeerID], queued[c.PeerID]
		out = append(out, st)
	}
	return out, nil
}

// reachabilityString names the AutoNAT verdict.
func reachabilityString(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return "public"
	case network.ReachabilityPrivate:
		return "private"
	}
	return "unknown"
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
