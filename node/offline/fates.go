package offline

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/mailbox"
)

// checkFates asks servers what became of our stored deposits not checked
// for mailbox.status_interval (all of them at server if now is true), and
// applies the answers. server "" means every server; servers that are
// ours are only asked while we are connected to them (their loop asks on
// connecting).
func (s *Service) checkFates(ctx context.Context, server peer.ID, now bool) {
	before := time.Now().Add(-s.cfg.StatusInterval)
	if now {
		before = time.Now()
	}
	recs, err := s.st.DepositsToCheck(ctx, before, 4*mailbox.MaxStatusIDs)
	if err != nil {
		s.log.Warn("mailbox: read deposits", "err", err)
		return
	}
	groups := map[peer.ID][]store.DepositRecord{}
	var servers []peer.ID
	for _, r := range recs {
		if server != "" && r.Server != server {
			continue
		}
		if _, ok := groups[r.Server]; !ok {
			servers = append(servers, r.Server)
		}
		groups[r.Server] = append(groups[r.Server], r)
	}
	for _, srv := range servers {
		rs := groups[srv]
		if s.isOurs(srv) {
			if !s.links.Connected(srv) {
				continue
			}
		} else {
			var addrs []ma.Multiaddr
			for _, a := range strings.Fields(rs[0].Addrs) {
				if x, err := ma.NewMultiaddr(a); err == nil {
					addrs = append(addrs, x)
				}
			}
			if err := s.connectServer(ctx, peer.AddrInfo{ID: srv, Addrs: addrs}); err != nil {
				s.log.Debug("mailbox: cannot ask about deposits", "server", srv.ShortString(), "err", err)
				continue
			}
		}
		for chunk := range slices.Chunk(rs, mailbox.MaxStatusIDs) {
			if err := s.applyFates(ctx, srv, chunk); err != nil {
				s.log.Debug("mailbox: status failed", "server", srv.ShortString(), "err", err)
				break
			}
		}
	}
}

// applyFates asks server the fate of the deposits rs and applies it: what
// the contact took leaves the outbox, what expired unfetched is deposited
// again (a receipt) or fails (a message), what the contact refused fails.
func (s *Service) applyFates(ctx context.Context, server peer.ID, rs []store.DepositRecord) error {
	ids := make([]mailbox.DepositID, len(rs))
	for i, r := range rs {
		ids[i] = mailbox.DepositID(r.DepositID)
	}
	fates, err := s.remote.Status(ctx, server, ids)
	if err != nil {
		return err
	}
	us := make([]store.FateUpdate, len(rs))
	for i, r := range rs {
		history := store.IsHistory(r.Kind)
		u := store.FateUpdate{MsgID: r.MsgID, Peer: r.Peer, Action: store.FateWaiting}
		f := fates[i]
		switch {
		case f.State == mailbox.StateDelivered, f.State == mailbox.StateExpired && f.Fetched:
			u.Action = store.FateTaken
		case f.State == mailbox.StateExpired:
			u.Action, u.Reason = store.FateRedeposit, ""
			if history {
				u.Action, u.Reason = store.FateFailed, "expired in the contact's mailbox on the rendezvous before the contact came back for it"
			}
		case f.State == mailbox.StateRejected:
			u.Action = store.FateTaken
			if history {
				u.Action, u.Reason = store.FateFailed, "the contact's node refused it (it could not open or verify it, or no longer takes messages from you)"
			}
		case f.State == mailbox.StateUnknown:
			u.Action = store.FateRedeposit
		}
		us[i] = u
	}
	changes, err := s.st.ApplyFates(ctx, us)
	if err != nil {
		return fmt.Errorf("apply fates: %w", err)
	}
	byPeer := map[peer.ID][]store.StatusChange{}
	owner := map[chat.MsgID]peer.ID{}
	for _, r := range rs {
		owner[r.MsgID] = r.Peer
	}
	for _, ch := range changes {
		byPeer[owner[ch.ID]] = append(byPeer[owner[ch.ID]], ch)
	}
	for p, chs := range byPeer {
		s.log.Info("stored messages failed", "peer", p.ShortString(), "count", len(chs), "reason", chs[0].Reason)
		s.chat.ApplyChanges(p, chs)
	}
	return nil
}
