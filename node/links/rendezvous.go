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
	)
	defer hb.Stop()
	defer timer.Stop()
	for {
		changed := s.watch.changed(id)
		if s.host.Network().Connectedness(id) != network.Connected {
			return errRendezvousLost
		}
		now := time.Now()
		if !now.Before(reserveAt) {
			reserveAt = s.reserve(ctx, l)
			registerAt = now // our relay address changed
		}
		if !now.Before(registerAt) {
			registerAt = s.register(ctx, l)
		}
		timer.Reset(time.Until(minTime(reserveAt, registerAt)))
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
// rdvConnectAttempts times. A Connect that failed means that transport
// does not get through (UDP filtered...): no point in trying again.
func (s *Service) connectRendezvous(ctx context.Context, l *rdvLink) error {
	var ts []string
	for _, a := range l.info.Addrs {
		t := core.Transport(a)
		if slices.Contains(s.cfg.Transports, t) && !slices.Contains(ts, t) {
			ts = append(ts, t)
		}
	}
	if len(ts) == 0 {
		return fmt.Errorf("no address of the server uses our transports %v", s.cfg.Transports)
	}
	id := l.info.ID
	missing, err := connectEachTransport(ctx, ts, rdvConnectAttempts,
		func(ctx context.Context) []error { return s.dialEachTransport(ctx, l.info, ts) },
		func() []string { return s.transportsTo(id) },
		func() {
			s.log.Debug("rendezvous reached over fewer transports than asked, dialling again", "server", id.String(), "have", s.transportsTo(id))
			_ = s.host.Network().ClosePeer(id)
		})
	if err == nil && len(missing) > 0 {
		s.log.Warn("rendezvous reached without some transports: hole punching over them will fail", "server", id.String(), "missing", missing)
	}
	return err
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

// dialEachTransport issues one Connect to the server per transport, at
// once, after queueing the transports in the dial plan, and returns their
// results.
func (s *Service) dialEachTransport(ctx context.Context, info peer.AddrInfo, ts []string) []error {
	cctx, cancel := context.WithTimeout(ctx, rdvConnectTimeout)
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
