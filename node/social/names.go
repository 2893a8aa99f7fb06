package social

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/names"
)

// The name directory (protocols/names), node side.
//
// Our names: `natter names register` claims a name on every connected
// rendezvous server and stores it (own_names); namesLoop keeps it alive by
// registering it again — with a freshly signed record — on each server
// every RenewInterval and whenever a connection to a server (re)opens
// (KickNames), so a restart or an outage renews at once. A name that is
// taken on one server stays ours on the others; `names list` shows the
// state per server.
//
// Other people's names: a lookup asks every connected server and verifies
// each answer itself (names.Lookup: signed by the key of the peer it
// names, for exactly that name, and not older than MaxRecordAge). Servers
// that know the name must agree on the peer; if they do not, the lookup
// fails and says so rather than pick one.
//
// Key changes: a contact added by name keeps its dir_name. namesLoop looks
// those names up again every RecheckInterval and when a rendezvous
// connection opens; if the name now points to another peer (or the
// servers disagree), natter warns — log at Warn, a key_change event, a
// warning on the contact in status and contacts list — and keeps talking
// to the key it has. The warning goes away if the name points back to it.

// nameDir is the state of the name directory.
type nameDir struct {
	kick chan struct{}
	// ops serialises changes to our names (register, renew, release), so
	// that a release is never followed by a renewal in flight.
	ops sync.Mutex

	mu    sync.Mutex                        // guards the following fields
	state map[string]map[peer.ID]*nameState // our name -> server -> state
	// lastRecheck is when contacts' names were last looked up again.
	lastRecheck time.Time
}

// nameState is one of our names on one server.
type nameState struct {
	state     string
	renewed   time.Time
	releaseAt time.Time
	err       string
	tried     time.Time
	// session is the connectedAt of the server connection it was last
	// tried on: a new connection renews at once.
	session time.Time
}

func (d *nameDir) init() {
	d.kick = make(chan struct{}, 1)
	d.state = map[string]map[peer.ID]*nameState{}
}

// KickNames wakes the names loop: a rendezvous connection opened, so our
// names are renewed there and contacts' names checked again.
func (s *Service) KickNames() {
	select {
	case s.names.kick <- struct{}{}:
	default:
	}
}

func (d *nameDir) get(name string, server peer.ID) nameState {
	d.mu.Lock()
	defer d.mu.Unlock()
	if st := d.state[name][server]; st != nil {
		return *st
	}
	return nameState{}
}

func (d *nameDir) set(name string, server peer.ID, st nameState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state[name] == nil {
		d.state[name] = map[peer.ID]*nameState{}
	}
	d.state[name][server] = &st
}

func (d *nameDir) forget(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.state, name)
}

// namesLoop renews our names and re-checks contacts' names for the
// service's lifetime.
func (s *Service) namesLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.NamesTick)
	defer t.Stop()
	for {
		s.renewNames(ctx)
		s.maybeRecheck(ctx)
		select {
		case <-ctx.Done():
			return
		case <-s.names.kick:
		case <-t.C:
		}
	}
}

// due reports whether st needs a new register on a server whose current
// connection opened at session.
func (s *Service) due(st nameState, session, now time.Time) bool {
	switch {
	case st.state == "", !st.session.Equal(session):
		return true
	case st.state == control.NameRegistered, st.state == control.NameTaken, st.state == control.NameRefused:
		// Refusals (taken, too many names, a clock too far off) are
		// retried as seldom as renewals: asking sooner changes nothing.
		return now.Sub(st.tried) >= s.cfg.RenewInterval
	}
	return now.Sub(st.tried) >= s.cfg.NameRetryFailed
}

// renewNames registers each of our names again on each connected server
// where it is due.
func (s *Service) renewNames(ctx context.Context) {
	s.names.ops.Lock()
	defer s.names.ops.Unlock()
	own, err := s.store.OwnNames(ctx)
	if err != nil || len(own) == 0 {
		return
	}
	now := s.now()
	var wg sync.WaitGroup
	for server, session := range s.links.ConnectedServers() {
		var todo []string
		for _, o := range own {
			if s.due(s.names.get(o.Name, server), session, now) {
				todo = append(todo, o.Name)
			}
		}
		if len(todo) == 0 {
			continue
		}
		wg.Go(func() {
			for _, name := range todo {
				s.registerOn(ctx, name, server, session)
			}
		})
	}
	wg.Wait()
}

// nextNameSeq durably reserves the sequence of our next record for name:
// the signing time in milliseconds, above the last one.
func (s *Service) nextNameSeq(ctx context.Context, name string) (uint64, error) {
	return s.store.NextNameSeq(ctx, name, func(last uint64) uint64 { return names.NextSeq(last, s.now()) })
}

// registerOn claims or renews name on server with a new record and
// records the outcome. Callers hold names.ops.
func (s *Service) registerOn(ctx context.Context, name string, server peer.ID, session time.Time) nameState {
	st := nameState{tried: s.now(), session: session}
	seq, err := s.nextNameSeq(ctx, name)
	if err != nil {
		st.state, st.err = control.NameError, err.Error()
		s.names.set(name, server, st)
		return st
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.ServerTimeout)
	releaseAt, err := s.net.RegisterName(rctx, server, name, seq)
	cancel()
	prev := s.names.get(name, server)
	switch {
	case err == nil, errors.Is(err, names.ErrOutdated):
		// OUTDATED: the server holds a newer record of ours already.
		st.state, st.renewed, st.releaseAt = control.NameRegistered, s.now(), releaseAt
		if err != nil {
			st.releaseAt = prev.releaseAt
		}
		if prev.state != control.NameRegistered {
			s.log.Info("name registered", "name", name, "server", server.ShortString(), "release_at", releaseAt.Format(time.RFC3339))
		}
	case errors.Is(err, names.ErrTaken):
		st.state, st.err = control.NameTaken, err.Error()
		if prev.state != control.NameTaken {
			s.log.Warn("name taken on a rendezvous", "name", name, "server", server.ShortString(), "err", err)
		}
	case isStatus(err) && !errors.Is(err, names.ErrRateLimited) && !errors.Is(err, names.ErrUnavailable):
		st.state, st.err = control.NameRefused, err.Error()
		if prev.state != control.NameRefused || prev.err != st.err {
			s.log.Warn("name refused by a rendezvous", "name", name, "server", server.ShortString(), "err", err)
		}
	default:
		st.state, st.err = control.NameError, err.Error()
		s.log.Debug("name registration failed", "name", name, "server", server.ShortString(), "err", err)
	}
	s.names.set(name, server, st)
	return st
}

func isStatus(err error) bool {
	_, ok := errors.AsType[*names.StatusError](err)
	return ok
}

// RegisterName claims name on every connected rendezvous server (renews
// it, if it is ours already) and keeps it alive from then on. It fails if
// no server accepted it; a name new to us is then not kept.
func (s *Service) RegisterName(ctx context.Context, name string) (control.OwnName, error) {
	canon, err := names.Normalize(name)
	if err != nil {
		return control.OwnName{}, core.Invalid(err)
	}
	servers := s.links.ConnectedServers()
	if len(servers) == 0 {
		return control.OwnName{}, core.Unavailable(errors.New("not connected to any rendezvous server; names live there (see: natter status)"))
	}
	s.names.ops.Lock()
	defer s.names.ops.Unlock()
	own, err := s.store.OwnNames(ctx)
	if err != nil {
		return control.OwnName{}, err
	}
	isNew := !slices.ContainsFunc(own, func(o store.OwnName) bool { return o.Name == canon })
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		ok      bool
		reasons []string
		taken   = true
	)
	for server, session := range servers {
		wg.Go(func() {
			st := s.registerOn(ctx, canon, server, session)
			mu.Lock()
			defer mu.Unlock()
			if st.state == control.NameRegistered {
				ok = true
				return
			}
			taken = taken && st.state == control.NameTaken
			reasons = append(reasons, server.ShortString()+": "+st.err)
		})
	}
	wg.Wait()
	if !ok {
		if isNew {
			if err := s.store.RemoveOwnName(ctx, canon); err != nil {
				s.log.Warn("forget refused name", "name", canon, "err", err)
			}
			s.names.forget(canon)
		}
		slices.Sort(reasons)
		err := fmt.Errorf("%q was not registered: %s", canon, strings.Join(reasons, "; "))
		if taken {
			return control.OwnName{}, core.Conflict(err)
		}
		return control.OwnName{}, core.Upstream(err)
	}
	if isNew {
		s.log.Info("name claimed", "name", canon)
	}
	return s.ownName(ctx, canon)
}

// ReleaseName gives one of our names up on every connected server and
// forgets it. Servers not connected now release it after their
// inactivity period.
func (s *Service) ReleaseName(ctx context.Context, name string) (control.OwnName, error) {
	canon, err := names.Normalize(name)
	if err != nil {
		return control.OwnName{}, core.Invalid(err)
	}
	s.names.ops.Lock()
	defer s.names.ops.Unlock()
	own, err := s.store.OwnNames(ctx)
	if err != nil {
		return control.OwnName{}, err
	}
	if !slices.ContainsFunc(own, func(o store.OwnName) bool { return o.Name == canon }) {
		return control.OwnName{}, core.NotFound(fmt.Errorf("%q is not one of your names (see: natter names list)", canon))
	}
	servers := s.links.ConnectedServers()
	out := control.OwnName{Name: canon, Servers: []control.NameServerState{}}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, server := range s.links.Servers() {
		if _, up := servers[server]; !up {
			out.Servers = append(out.Servers, control.NameServerState{Server: server.String(), State: control.NamePending,
				Error: "not connected: the server releases the name after its inactivity period"})
			continue
		}
		wg.Go(func() {
			st := control.NameServerState{Server: server.String(), State: control.NameReleased}
			seq, err := s.nextNameSeq(ctx, canon)
			if err == nil {
				rctx, cancel := context.WithTimeout(ctx, s.cfg.ServerTimeout)
				err = s.net.ReleaseName(rctx, server, canon, seq)
				cancel()
			}
			switch {
			case err == nil, errors.Is(err, names.ErrNotFound):
			case errors.Is(err, names.ErrTaken):
				st.State, st.Error = control.NameTaken, err.Error()
			default:
				st.State, st.Error = control.NameError, err.Error()
			}
			mu.Lock()
			out.Servers = append(out.Servers, st)
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := s.store.RemoveOwnName(ctx, canon); err != nil {
		return out, err
	}
	s.names.forget(canon)
	slices.SortFunc(out.Servers, func(a, b control.NameServerState) int { return strings.Compare(a.Server, b.Server) })
	s.log.Info("name released", "name", canon)
	return out, nil
}

// ownName is one of our names with its state on every configured server.
func (s *Service) ownName(ctx context.Context, name string) (control.OwnName, error) {
	own, err := s.OwnNames(ctx)
	if err != nil {
		return control.OwnName{}, err
	}
	for _, o := range own {
		if o.Name == name {
			return o, nil
		}
	}
	return control.OwnName{}, core.NotFound(fmt.Errorf("%q is not one of your names", name))
}

// OwnNames lists our names and their state on each rendezvous server.
func (s *Service) OwnNames(ctx context.Context) ([]control.OwnName, error) {
	own, err := s.store.OwnNames(ctx)
	if err != nil {
		return nil, err
	}
	servers := s.links.Servers()
	out := make([]control.OwnName, 0, len(own))
	for _, o := range own {
		on := control.OwnName{Name: o.Name, CreatedAt: o.CreatedAt, Servers: []control.NameServerState{}}
		for _, server := range servers {
			st := s.names.get(o.Name, server)
			ss := control.NameServerState{Server: server.String(), State: st.state, Renewed: st.renewed, ReleaseAt: st.releaseAt, Error: st.err}
			if ss.State == "" {
				ss.State = control.NamePending
			}
			on.Servers = append(on.Servers, ss)
		}
		out = append(out, on)
	}
	return out, nil
}

// errDisagree marks a lookup the servers answered with different peers.
var errDisagree = errors.New("rendezvous servers disagree")

// LookupName asks every connected rendezvous server who holds name and
// verifies the answers (see the comment at the top of this file).
func (s *Service) LookupName(ctx context.Context, name string) (control.NameLookup, error) {
	canon, err := names.Normalize(name)
	if err != nil {
		return control.NameLookup{}, core.Invalid(err)
	}
	servers := s.links.ConnectedServers()
	if len(servers) == 0 {
		return control.NameLookup{}, core.Unavailable(errors.New("not connected to any rendezvous server; cannot look names up (see: natter status)"))
	}
	type answer struct {
		server peer.ID
		rec    names.Record
		err    error
	}
	// One goroutine per server, each bounded by ServerTimeout; all of
	// them are read below before LookupName returns.
	answers := make(chan answer, len(servers))
	for server := range servers {
		go func() {
			rctx, cancel := context.WithTimeout(ctx, s.cfg.ServerTimeout)
			defer cancel()
			rec, err := s.net.LookupName(rctx, server, canon)
			if err == nil {
				if age := s.now().Sub(time.UnixMilli(int64(rec.Seq))); age > s.cfg.MaxRecordAge {
					err = fmt.Errorf("the record for %q was signed %s ago (names.max_record_age %s): %w", canon, age.Round(time.Hour), s.cfg.MaxRecordAge, names.ErrExpired)
				}
			}
			answers <- answer{server, rec, err}
		}()
	}
	res := control.NameLookup{Name: canon, Servers: []string{}}
	byPeer := map[peer.ID][]peer.ID{}
	var failures []string
	var best names.Record
	for range servers {
		a := <-answers
		switch {
		case a.err == nil:
			byPeer[a.rec.Peer] = append(byPeer[a.rec.Peer], a.server)
			if a.rec.Seq > best.Seq {
				best = a.rec
			}
		case errors.Is(a.err, names.ErrNotFound):
			res.NotFound = append(res.NotFound, a.server.String())
		default:
			if errors.Is(a.err, names.ErrBadRecord) {
				s.log.Warn("rendezvous answered a name lookup with a bad record", "server", a.server.String(), "name", canon, "err", a.err)
			}
			failures = append(failures, a.server.ShortString()+": "+a.err.Error())
		}
	}
	slices.Sort(res.NotFound)
	slices.Sort(failures)
	switch len(byPeer) {
	case 0:
		if len(failures) > 0 {
			return res, core.Upstream(fmt.Errorf("looking up %q failed: %s", canon, strings.Join(failures, "; ")))
		}
		return res, core.NotFound(fmt.Errorf("nobody has registered %q on the connected rendezvous servers", canon))
	case 1:
	default:
		var says []string
		for p, ss := range byPeer {
			for _, sv := range ss {
				says = append(says, fmt.Sprintf("%s says %s", sv.ShortString(), p))
			}
		}
		slices.Sort(says)
		return res, core.Conflict(fmt.Errorf("%w about %q: %s; not trusting either", errDisagree, canon, strings.Join(says, ", ")))
	}
	for p, ss := range byPeer {
		res.PeerID = p.String()
		res.Servers = make([]string, 0, len(ss))
		for _, sv := range ss {
			res.Servers = append(res.Servers, sv.String())
		}
	}
	slices.Sort(res.Servers)
	res.Signed = time.UnixMilli(int64(best.Seq))
	return res, nil
}

// maybeRecheck looks contacts' names up again when RecheckInterval has
// passed or a rendezvous connection opened since the last time.
func (s *Service) maybeRecheck(ctx context.Context) {
	servers := s.links.ConnectedServers()
	if len(servers) == 0 {
		return
	}
	s.names.mu.Lock()
	last := s.names.lastRecheck
	s.names.mu.Unlock()
	due := s.now().Sub(last) >= s.cfg.RecheckInterval
	for _, session := range servers {
		due = due || session.After(last)
	}
	if due {
		s.RecheckNames(ctx)
	}
}

// RecheckNames looks up the name of every contact added by name now and warns
// when it no longer points to the contact's key.
func (s *Service) RecheckNames(ctx context.Context) {
	s.names.mu.Lock()
	s.names.lastRecheck = s.now()
	s.names.mu.Unlock()
	cs, err := s.store.Contacts(ctx)
	if err != nil {
		return
	}
	for _, c := range cs {
		if c.DirName == "" || c.State == store.StateBlocked || ctx.Err() != nil {
			continue
		}
		res, err := s.LookupName(ctx, c.DirName)
		switch {
		case err == nil && res.PeerID == c.PeerID.String():
			if cleared, _ := s.store.ClearNameWarning(ctx, c.PeerID); cleared {
				s.log.Info("directory name points to the contact's key again", "contact", c.Label(), "dir_name", c.DirName)
				s.pub.Publish(control.Event{Type: control.EventKeyChange, PeerID: c.PeerID.String(), Name: c.Name})
			}
		case err == nil:
			seen, _ := peer.Decode(res.PeerID)
			s.warnKeyChange(ctx, c, store.NameWarning{DirName: c.DirName, SeenPeer: seen, SeenAt: s.now(),
				Warning: fmt.Sprintf("the directory name %q now points to another key (%s), not to this contact's; natter keeps using the key you added (%s)", c.DirName, res.PeerID, c.PeerID)})
		case errors.Is(err, errDisagree):
			s.warnKeyChange(ctx, c, store.NameWarning{DirName: c.DirName, SeenAt: s.now(),
				Warning: fmt.Sprintf("rendezvous servers disagree about the directory name %q; natter keeps using the key you added (%s)", c.DirName, c.PeerID)})
		default:
			// Not registered any more, or no answer: nothing to warn about.
			s.log.Debug("contact's directory name not checked", "contact", c.Label(), "dir_name", c.DirName, "err", err)
		}
	}
}

func (s *Service) warnKeyChange(ctx context.Context, c store.Contact, w store.NameWarning) {
	changed, err := s.store.SetNameWarning(ctx, c.PeerID, w)
	if err != nil || !changed {
		return
	}
	s.log.Warn("contact's directory name points to another key; keeping the contact's key", "contact", c.Label(),
		"peer", c.PeerID.String(), "dir_name", c.DirName, "now", w.SeenPeer.String())
	s.pub.Publish(control.Event{Type: control.EventKeyChange, PeerID: c.PeerID.String(), Name: c.Name, Warning: w.Warning})
}

// NameWarnings maps contacts to their key-change warning text (an empty
// map on error: warnings are advisory and must not break listing
// contacts).
func (s *Service) NameWarnings(ctx context.Context) map[peer.ID]string {
	ws, err := s.store.NameWarnings(ctx)
	out := make(map[peer.ID]string, len(ws))
	if err != nil {
		s.log.Warn("read name warnings", "err", err)
		return out
	}
	for p, w := range ws {
		out[p] = w.Warning
	}
	return out
}

// resolveContactName fills c from directory name dn for `contacts add
// <name>`: the verified holder's peer ID, dn as its dir_name (so a later
// key change under that name is noticed) and as its local name unless
// one was given.
func (s *Service) resolveContactName(ctx context.Context, c *store.Contact, dn string) error {
	res, err := s.LookupName(ctx, dn)
	if err != nil {
		return err
	}
	id, err := peer.Decode(res.PeerID)
	if err != nil {
		return err
	}
	if old, err := s.store.ContactByDirName(ctx, dn); err == nil && old.PeerID != id {
		return core.Conflict(fmt.Errorf("you added %s by the name %q before, with another key (%s); the name now points to %s: remove the old contact first if you trust the new key",
			old.Label(), dn, old.PeerID, id))
	}
	c.PeerID, c.DirName = id, dn
	if c.Name == "" {
		c.Name = dn
	}
	return nil
}
