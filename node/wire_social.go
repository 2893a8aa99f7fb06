package node

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/social"
	"github.com/natterim/natter/node/store"
)

// startSocial makes the social service (contacts, presence, profiles,
// names) and registers its protocol handlers. It needs the host and the
// rendezvous links; the contact links exist by the time it uses them.
func (n *Node) startSocial(ctx context.Context) error {
	cfg := social.Config{
		MaxPending:      n.cfg.Contacts.MaxPending,
		RequestBurst:    n.cfg.Contacts.RequestBurst,
		RequestInterval: n.cfg.Contacts.RequestInterval,
		RejectCooldown:  n.cfg.Contacts.RejectCooldown,
		IdleAway:        n.cfg.Presence.IdleAway,
		RenewInterval:   n.cfg.Names.RenewInterval,
		RecheckInterval: n.cfg.Names.RecheckInterval,
		MaxRecordAge:    n.cfg.Names.MaxRecordAge,
		ServerTimeout:   rdvRequestTimeout,
	}
	d := socialDeps{n}
	s, err := social.New(ctx, cfg, n.store, social.NewNetwork(n.host, n.key), d, d, d, core.Publisher(n.events),
		social.WithLogger(n.log), social.WithMetrics(n.metrics))
	if err != nil {
		return err
	}
	n.social = s
	s.Serve(n.host)
	return nil
}

// socialDeps adapts the node to what social declares it needs
// (social.Links, social.Tokens, social.StatusSource).
type socialDeps struct{ n *Node }

func (d socialDeps) Path(p peer.ID) (core.Path, network.Conn) { return d.n.p2p.Path(p) }

func (d socialDeps) StartContact(p peer.ID) { d.n.startContact(p) }
func (d socialDeps) StopContact(p peer.ID)  { d.n.stopContact(p) }

// KeepLink keeps a link with p alone, without a chat deliverer: p is no
// contact, we owe it the withdrawal of our request.
func (d socialDeps) KeepLink(p peer.ID) {
	if d.n.ctx.Err() == nil {
		d.n.p2p.StartContact(p)
	}
}

func (d socialDeps) SetBlocked(p peer.ID, blocked bool) { d.n.p2p.SetBlocked(p, blocked) }

func (d socialDeps) SetError(p peer.ID, err error) { d.n.p2p.SetError(p, err) }

// Servers are the configured rendezvous servers, in config order.
func (d socialDeps) Servers() []peer.ID {
	ais := d.n.p2p.Rendezvous()
	out := make([]peer.ID, 0, len(ais))
	for _, ai := range ais {
		out = append(out, ai.ID)
	}
	return out
}

func (d socialDeps) ConnectedServers() map[peer.ID]time.Time { return d.n.connectedRdvs() }

func (d socialDeps) PushToken(ctx context.Context, p peer.ID) { d.n.offline.PushToken(ctx, p) }

func (d socialDeps) Status(ctx context.Context) (control.Status, error) { return d.n.Status(ctx) }

// connectedRdvs are the rendezvous links up now, with the time each
// connection opened.
func (n *Node) connectedRdvs() map[peer.ID]time.Time { return n.p2p.ConnectedRendezvous() }

// acceptedOnly is the policy of chat, files and offline delivery: only
// accepted contacts may talk to us over them.
type acceptedOnly struct{ st *store.Store }

func (a acceptedOnly) Allow(ctx context.Context, p peer.ID) bool {
	c, err := a.st.ContactByPeer(ctx, p)
	return err == nil && c.State == store.StateAccepted
}

// findContactRef resolves a contact reference (name or peer ID); kept for
// the callers not moved yet (chat, files, ping).
func (n *Node) findContactRef(ctx context.Context, ref string) (store.Contact, error) {
	return n.social.FindContact(ctx, ref)
}
