package links

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	rdvproto "github.com/natterim/natter/protocols/rendezvous"
)

// Timeouts of single rendezvous operations.
const (
	rdvConnectTimeout = 20 * time.Second
	rdvRequestTimeout = 10 * time.Second
	// rdvRetryFailed is how soon a failed reservation or registration is
	// tried again while the connection stays up.
	rdvRetryFailed = 15 * time.Second
)

var errRendezvousLost = errors.New("connection to rendezvous lost")

// rdvLink is the node's relationship with one rendezvous server.
type rdvLink struct {
	info peer.AddrInfo

	// addrsChanged wakes the session to re-register with fresh addresses.
	addrsChanged chan struct{}

	mu          sync.Mutex // guards the following fields
	connected   bool
	rsvp        *client.Reservation
	circuits    []ma.Multiaddr
	regExpires  time.Time
	rtt         time.Duration
	observed    map[string]ma.Multiaddr // by transport
	lastErr     string
	connectedAt time.Time
}

func newRdvLink(ai peer.AddrInfo) *rdvLink {
	return &rdvLink{info: ai, addrsChanged: make(chan struct{}, 1), observed: map[string]ma.Multiaddr{}}
}

// circuitAddrs are our relay addresses through this server, while we hold
// a reservation on it.
func (l *rdvLink) circuitAddrs() []ma.Multiaddr {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rsvp == nil || time.Now().After(l.rsvp.Expiration) {
		return nil
	}
	return slices.Clone(l.circuits)
}

func (l *rdvLink) setReservation(r *client.Reservation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rsvp = r
	l.circuits = nil
	if r == nil {
		return
	}
	suffix := ma.StringCast("/p2p/" + l.info.ID.String() + "/p2p-circuit")
	for _, a := range l.info.Addrs {
		l.circuits = append(l.circuits, a.Encapsulate(suffix))
	}
}

func (l *rdvLink) setObserved(local, observed ma.Multiaddr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.observed[core.Transport(local)] = observed
}

func (l *rdvLink) setErr(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.lastErr = ""
	} else {
		l.lastErr = err.Error()
	}
}

func (l *rdvLink) signalAddrsChanged() {
	select {
	case l.addrsChanged <- struct{}{}:
	default:
	}
}

func (l *rdvLink) isConnected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.connected
}

// runRendezvous keeps the link with one server up for the node's lifetime,
// reconnecting with backoff.
func (s *Service) runRendezvous(ctx context.Context, l *rdvLink) {
	bo := core.NewBackoff(500*time.Millisecond, time.Minute)
	for ctx.Err() == nil {
		start := time.Now()
		err := s.rdvSession(ctx, l)
		l.mu.Lock()
		l.connected = false
		l.rsvp, l.circuits, l.regExpires = nil, nil, time.Time{}
		l.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		l.setErr(err)
		s.log.Warn("rendezvous unavailable", "server", l.info.ID.String(), "err", err)
		s.pub.Publish(control.Event{Type: control.EventRendezvous, PeerID: l.info.ID.String(), Connected: false})
		s.emitRendezvous(l.info.ID, false)
		if time.Since(start) > 2*time.Minute {
			bo.Reset() // it was up for a while: this is a fresh outage
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(bo.Next()):
		}
	}
}

// rdvSession runs one connection to the server: connect, reserve,
// register, then refresh and heartbeat until the connection is lost.
func (s *Service) rdvSession(ctx context.Context, l *rdvLink) error {
	id := l.info.ID
	if err := s.connectRendezvous(ctx, l); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	l.mu.Lock()
	l.connected, l.connectedAt = true, time.Now()
	l.mu.Unlock()
	l.setErr(nil)
	s.log.Info("rendezvous connected", "server", id.String(), "transports", s.transportsTo(id))
	s.pub.Publish(control.Event{Type: control.EventRendezvous, PeerID: id.String(), Connected: true})
	s.emitRendezvous(id, true)

	if rtt, _, err := s.ping(ctx, id, s.cfg.Heartbeat); err == nil {
		l.mu.Lock()
		l.rtt = rtt
		l.mu.Unlock()
	}
	var (
		reserveAt  = time.Now()
		registerAt = time.Now()
		misses     int
		hb         = time.NewTicker(s.cfg.Heartbeat)
		timer      = time.NewTimer(0)
		redial     = newTransportRedialer(s.rdvTransports(l), s.cfg.TransportRedial)
	)
	defer hb.Stop()
	defer timer.Stop()
	for {
		changed := s.watch.Changed(id)
		if s.host.Network().Connectedness(id) != network.Connected {
			return errRendezvousLost
		}
		now := time.Now()
		redialAt, redialed, err := redial.step(now,
			func() []string { return s.transportsTo(id) },
			func() error { return s.redialRendezvous(ctx, l, redial.want) })
		if err != nil {
			return err
		}
		if redialed {
			// The server dropped our reservation with the connections
			// (circuit v2 relays do when a peer disconnects), and our
			// observed addresses may have changed: take both again.
			reserveAt, now = now, time.Now()
		}
		if !now.Before(reserveAt) {
			reserveAt = s.reserve(ctx, l)
			registerAt = now // our relay address changed
		}
		if !now.Before(registerAt) {
			registerAt = s.register(ctx, l)
		}
		next := minTime(reserveAt, registerAt)
		if !redialAt.IsZero() {
			next = minTime(next, redialAt)
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-l.addrsChanged:
			registerAt = time.Now()
		case <-timer.C:
		case <-hb.C:
			rtt, _, err := s.ping(ctx, id, s.cfg.Heartbeat)
			if err != nil {
				misses++
				s.log.Debug("rendezvous heartbeat missed", "server", id.String(), "misses", misses, "err", err)
				if misses >= s.cfg.HeartbeatMisses {
					_ = s.host.Network().ClosePeer(id)
					return fmt.Errorf("%d heartbeats missed: %w", misses, errRendezvousLost)
				}
				continue
			}
			misses = 0
			l.mu.Lock()
			l.rtt = rtt
			l.mu.Unlock()
		}
	}
}

// connectRendezvous connects to the server once per transport we share
// with it, concurrently (see dialPlan). It succeeds if any connection
// comes up.
//
// A Connect that starts after another one's connection is up returns at
// once without dialling (go-libp2p: already connected), and so does every
// Connect when something else (the DHT, a contact's relayed dial) reached
// the server first: the node would then hold a single transport to the
// server and could not punch holes over the other one (a QUIC-only node
// and a TCP-only one never meet). When every Connect succeeded and still
// a transport is missing, it closes the connections and dials again, up to
// rdvConnectAttempts times. A Connect that failed (the transport is
// filtered, or the server refused the connection for now) is not retried
// here, so that the session starts at once with what it has: the session
// dials the missing transport again later (see transportRedialer).
func (s *Service) connectRendezvous(ctx context.Context, l *rdvLink) error {
	ts := s.rdvTransports(l)
	if len(ts) == 0 {
		return fmt.Errorf("no address of the server uses our transports %v", s.cfg.Transports)
	}
	missing, err := s.connectEachTransport(ctx, l, ts)
	if err == nil && len(missing) > 0 {
		s.log.Warn("rendezvous reached without some transports: dialling them again in the background", "server", l.info.ID.String(), "missing", missing)
	}
	return err
}

// rdvTransports are the transports we share with the server, in the
// order of its addresses.
func (s *Service) rdvTransports(l *rdvLink) []string {
	var ts []string
	for _, a := range l.info.Addrs {
		t := core.Transport(a)
		if slices.Contains(s.cfg.Transports, t) && !slices.Contains(ts, t) {
			ts = append(ts, t)
		}
	}
	return ts
}

// connectEachTransport is connectEachTransport on the host, logging why a
// Connect failed.
func (s *Service) connectEachTransport(ctx context.Context, l *rdvLink, ts []string) ([]string, error) {
	id := l.info.ID
	return connectEachTransport(ctx, ts, rdvConnectAttempts,
		func(ctx context.Context) []error {
			errs := s.dialEachTransport(ctx, l.info, ts)
			for _, e := range errs {
				if e != nil {
					s.log.Info("rendezvous connect failed", "server", id.String(), "err", e)
				}
			}
			return errs
		},
		func() []string { return s.transportsTo(id) },
		func() {
			s.log.Debug("rendezvous reached over fewer transports than asked, dialling again", "server", id.String(), "have", s.transportsTo(id))
			_ = s.host.Network().ClosePeer(id)
		})
}

// redialRendezvous brings back a transport missing from a running
// session: it closes the connections to the server and dials every
// transport again at once, as connectRendezvous does.
//
// It has to close them: go-libp2p (v0.51) never opens a second direct
// connection to a peer it already has one with. host.Connect returns at
// once when connected, and with network.WithForceDirectDial (which skips
// that check) swarm.dialPeer, and the dial worker for every request that
// joins a dial in flight, still return bestAcceptableConnToPeer, which
// force-direct only makes skip relayed connections. Only dial requests
// that are all queued before the first connection comes up get one
// connection each (what dialPlan arranges). TestForceDirectDialReuses-
// DirectConn fails if an upgrade changes that; dialling only the missing
// transport would then be enough.
//
// The cost is a short outage of this server: the relay drops our
// reservation (the session takes it again at once) and any relayed
// connection through it, which the contact links dial again (and then
// punch over both transports).
func (s *Service) redialRendezvous(ctx context.Context, l *rdvLink, ts []string) error {
	id := l.info.ID
	s.log.Info("rendezvous transport missing: reconnecting over every transport", "server", id.String(), "have", s.transportsTo(id), "want", ts)
	_ = s.host.Network().ClosePeer(id)
	missing, err := s.connectEachTransport(ctx, l, ts)
	if err != nil {
		return fmt.Errorf("reconnect for missing transports: %w", errors.Join(errRendezvousLost, err))
	}
	s.log.Info("rendezvous reconnected", "server", id.String(), "transports", s.transportsTo(id), "missing", missing)
	return nil
}

// rdvConnectAttempts bounds how often connectRendezvous starts over
// because it got fewer connections than transports.
const rdvConnectAttempts = 3

// connectEachTransport runs dial (one Connect per transport in ts, at once)
// until have reports every transport of ts, every Connect succeeded but a
// transport is still missing attempts times (reset closes the connections
// before each new try), or a Connect failed. It fails only if no Connect
// succeeded; it returns the transports still missing.
func connectEachTransport(ctx context.Context, ts []string, attempts int, dial func(context.Context) []error, have func() []string, reset func()) (missing []string, err error) {
	for attempt := 1; ; attempt++ {
		var ok int
		for _, e := range dial(ctx) {
			if e == nil {
				ok++
			} else if err == nil {
				err = e
			}
		}
		if ok == 0 {
			return nil, err
		}
		got := have()
		missing = slices.DeleteFunc(slices.Clone(ts), func(t string) bool { return slices.Contains(got, t) })
		if len(missing) == 0 || ok < len(ts) || attempt >= attempts || ctx.Err() != nil {
			return missing, nil
		}
		reset()
		err = nil
	}
}

// Redials of a transport missing from a running rendezvous session.
const (
	// transportRedialMax caps the delay between two redials.
	transportRedialMax = 5 * time.Minute
	// transportRedialAttempts bounds the redials while a transport stays
	// missing (UDP filtered: QUIC will never come): each one costs the
	// server link a short outage (see redialRendezvous). The count starts
	// again once every transport is back.
	transportRedialAttempts = 5
)

// transportRedialer decides when a rendezvous session dials the server
// again because a transport it wants is missing: the Connect failed when
// the session started (the server refused it, a packet was lost), or the
// connection closed since. It waits first (the first delay, then twice as
// long each time, with jitter: never faster than go-libp2p's resource
// manager admits new connections from one address, one per 5 s after a
// burst) and gives up after transportRedialAttempts until the transports
// are all back.
type transportRedialer struct {
	want  []string
	bo    *core.Backoff
	tries int
	at    time.Time // next redial; zero when none is planned
}

func newTransportRedialer(want []string, first time.Duration) *transportRedialer {
	return &transportRedialer{want: want, bo: core.NewBackoff(first, transportRedialMax)}
}

// step plans a redial when a transport of want is missing from have(),
// runs redial when one is due, and returns when the next one is due
// (zero: none planned) and whether it redialled. An error from redial
// (the server was lost) is returned as is.
func (r *transportRedialer) step(now time.Time, have func() []string, redial func() error) (next time.Time, redialed bool, err error) {
	r.plan(now, have())
	if r.at.IsZero() || now.Before(r.at) {
		return r.at, false, nil
	}
	r.tries++
	r.at = time.Time{}
	if err := redial(); err != nil {
		return time.Time{}, true, err
	}
	r.plan(now, have())
	return r.at, true, nil
}

func (r *transportRedialer) plan(now time.Time, have []string) {
	if !slices.ContainsFunc(r.want, func(t string) bool { return !slices.Contains(have, t) }) {
		r.tries, r.at = 0, time.Time{}
		r.bo.Reset()
		return
	}
	if r.at.IsZero() && r.tries < transportRedialAttempts {
		r.at = now.Add(r.bo.Next())
	}
}

// dialEachTransport issues one Connect to the server per transport, at
// once, after queueing the transports in the dial plan, and returns their
// results.
//
// The Connects are force-direct for go-libp2p's swarm not to refuse an
// address with "dial backoff" (it backs off an address for 5 s and more
// after a failed dial): our own backoffs pace the rendezvous dials, and
// a server that refused a connection a moment ago (rate limit) may well
// take the next one. Force-direct also skips host.Connect's "already
// connected" shortcut, which changes nothing here: the swarm still
// returns the connection it has (see redialRendezvous).
func (s *Service) dialEachTransport(ctx context.Context, info peer.AddrInfo, ts []string) []error {
	cctx, cancel := context.WithTimeout(network.WithForceDirectDial(ctx, "natter rendezvous"), rdvConnectTimeout)
	defer cancel()
	s.plan.expect(info.ID, ts)
	defer s.plan.expect(info.ID, nil)
	results := make(chan error, len(ts))
	for range ts {
		go func() { results <- s.host.Connect(cctx, info) }()
	}
	errs := make([]error, len(ts))
	for i := range errs {
		errs[i] = <-results
	}
	return errs
}

// reserve takes or renews the relay slot; it returns when to do it again.
//
// We reserve by hand, on every configured server, rather than through
// go-libp2p's autorelay (see newHost for why).
func (s *Service) reserve(ctx context.Context, l *rdvLink) time.Time {
	rctx, cancel := context.WithTimeout(ctx, rdvRequestTimeout)
	defer cancel()
	r, err := client.Reserve(rctx, s.host, l.info)
	if err != nil {
		// Without a slot contacts cannot reach us through this server,
		// but registering (next) still works, and so does a direct link
		// where the NATs allow one: the caller goes on either way.
		err = reservationError(err)
		l.setErr(fmt.Errorf("relay reservation: %w", err))
		s.log.Warn("relay reservation failed; registering without a relay address", "server", l.info.ID.String(), "err", err)
		l.setReservation(nil)
		return time.Now().Add(rdvRetryFailed)
	}
	l.setReservation(r)
	s.log.Info("relay reservation", "server", l.info.ID.String(), "expires", r.Expiration.Format(time.RFC3339))
	// Renew when three quarters of the slot's life have passed.
	return time.Now().Add(time.Until(r.Expiration) * 3 / 4)
}

// register publishes our signed peer record under our peer ID; it returns
// when to refresh it.
func (s *Service) register(ctx context.Context, l *rdvLink) time.Time {
	if s.stopping.Load() {
		// Stop is withdrawing our registrations: do not undo it.
		return time.Now().Add(rdvRetryFailed)
	}
	rctx, cancel := context.WithTimeout(ctx, rdvRequestTimeout)
	defer cancel()
	addrs := s.registrationAddrs()
	ttl, err := s.rdvc.Register(rctx, l.info.ID, rdvproto.PeerNamespace(s.host.ID()), addrs, s.cfg.RegistrationTTL)
	if err != nil {
		l.setErr(fmt.Errorf("register: %w", err))
		s.log.Warn("registration failed", "server", l.info.ID.String(), "err", err)
		return time.Now().Add(rdvRetryFailed)
	}
	l.mu.Lock()
	l.regExpires = time.Now().Add(ttl)
	l.mu.Unlock()
	s.log.Debug("registered", "server", l.info.ID.String(), "ttl", ttl, "addrs", len(addrs))
	return time.Now().Add(ttl / 2)
}

// registrationAddrs are the host's addresses plus the relay addresses of
// every current reservation (the host's cached address list lags behind a
// reservation by a few seconds).
func (s *Service) registrationAddrs() []ma.Multiaddr {
	addrs := s.advertisedAddrs()
	for _, l := range s.rdvs {
		addrs = append(addrs, l.circuitAddrs()...)
	}
	return ma.Unique(addrs)
}

// unregisterAll withdraws our registrations so contacts see us leave at
// once. Best effort, bounded in time.
func (s *Service) unregisterAll() {
	if s.host == nil || s.rdvc == nil {
		return
	}
	var wg sync.WaitGroup
	for _, l := range s.rdvs {
		if !l.isConnected() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = s.rdvc.Unregister(ctx, l.info.ID, rdvproto.PeerNamespace(s.host.ID()))
		}()
	}
	wg.Wait()
}

// transportsTo lists the transports of our connections to p.
func (s *Service) transportsTo(p peer.ID) []string {
	var ts []string
	for _, c := range s.host.Network().ConnsToPeer(p) {
		t := core.Transport(c.RemoteMultiaddr())
		if !slices.Contains(ts, t) {
			ts = append(ts, t)
		}
	}
	slices.Sort(ts)
	return ts
}

// RendezvousStatus is the state of every rendezvous link, as status shows
// it.
func (s *Service) RendezvousStatus() []control.RendezvousStatus {
	out := make([]control.RendezvousStatus, 0, len(s.rdvs))
	for _, l := range s.rdvs {
		l.mu.Lock()
		st := control.RendezvousStatus{
			PeerID:             l.info.ID.String(),
			Connected:          l.connected && s.host.Network().Connectedness(l.info.ID) == network.Connected,
			Reservation:        "none",
			RegistrationExpiry: l.regExpires,
			Registered:         time.Now().Before(l.regExpires),
			RTTMillis:          millis(l.rtt),
			LastError:          l.lastErr,
		}
		if l.rsvp != nil && time.Now().Before(l.rsvp.Expiration) {
			st.Reservation, st.ReservationExpires = "active", l.rsvp.Expiration
		}
		l.mu.Unlock()
		st.Transports = s.transportsTo(l.info.ID)
		out = append(out, st)
	}
	return out
}

// ObservedAddrs are our public addresses as the rendezvous servers see
// them (identify), sorted.
func (s *Service) ObservedAddrs() []string {
	var out []string
	for _, l := range s.rdvs {
		l.mu.Lock()
		for _, a := range l.observed {
			if !slices.Contains(out, a.String()) {
				out = append(out, a.String())
			}
		}
		l.mu.Unlock()
	}
	slices.Sort(out)
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// reservationError makes a failed reservation say what happened. A relay
// that refuses (status RESERVATION_REFUSED, PERMISSION_DENIED...) gives
// client.ReservationError with no cause, which prints as
// "reason: reservation failed err: %!s(<nil>)"; we say the status instead.
func reservationError(err error) error {
	var re client.ReservationError
	if !errors.As(err, &re) {
		return err
	}
	reason := strings.TrimSuffix(re.Reason, ": %w") // go-libp2p has one such reason
	if cause := errors.Unwrap(re); cause != nil {
		return fmt.Errorf("%s (%s): %w", reason, re.Status, cause)
	}
	return fmt.Errorf("%s: the relay answered %s", reason, re.Status)
}
