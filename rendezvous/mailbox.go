package rendezvous

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/natterim/natter/protocols/mailbox"
	rdvproto "github.com/natterim/natter/protocols/rendezvous"
	"github.com/natterim/natter/protocols/wire"
	"github.com/natterim/natter/rendezvous/store"
)

// The offline mailboxes (protocols/mailbox), kept in the server's database
// (rendezvous/store): a node's mailbox exists once the node registered
// here or fetched from it. The operator sees counts and sizes
// (`natter-rendezvous mailboxes`, GET /v1/mailboxes, metrics), never
// contents: the boxes are sealed to their recipients.

// mailboxSeenEvery bounds how often a registration refreshes its owner's
// "seen" time in the database.
const mailboxSeenEvery = time.Hour

// mailboxState is the server's mailbox machinery.
type mailboxState struct {
	svc  *mailbox.Service
	seen chan peer.ID // registrations to record, drained by one goroutine
	last map[peer.ID]time.Time
	all  []prometheus.Collector
}

// startMailbox starts the mailbox service if it is enabled.
func (s *Server) startMailbox() error {
	if !s.cfg.Mailbox.Enabled {
		return nil
	}
	svc, err := mailbox.New(s.h, s.db,
		mailbox.WithLimits(s.cfg.Mailbox.Limits()),
		mailbox.WithLogger(s.log),
		mailbox.WithMetrics(wire.NewMetrics(s.reg)),
		mailbox.WithRegisterer(s.reg))
	if err != nil {
		return fmt.Errorf("start mailbox service: %w", err)
	}
	m := &mailboxState{svc: svc, seen: make(chan peer.ID, 1024), last: map[peer.ID]time.Time{}}
	gauge := func(name, help string, f func(store.MailboxTotals) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "natter", Subsystem: "mailbox", Name: name, Help: help}, func() float64 {
			ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
			defer cancel()
			t, err := s.db.Totals(ctx)
			if err != nil {
				return 0
			}
			return f(t)
		})
	}
	m.all = []prometheus.Collector{
		gauge("mailboxes", "Mailboxes (peers that registered or fetched here, not forgotten).", func(t store.MailboxTotals) float64 { return float64(t.Mailboxes) }),
		gauge("boxes", "Sealed boxes waiting in mailboxes.", func(t store.MailboxTotals) float64 { return float64(t.Boxes) }),
		gauge("bytes", "Bytes of sealed boxes waiting in mailboxes.", func(t store.MailboxTotals) float64 { return float64(t.Bytes) }),
	}
	for i, c := range m.all {
		if err := s.reg.Register(c); err != nil {
			for _, r := range m.all[:i] {
				s.reg.Unregister(r)
			}
			_ = svc.Close()
			return fmt.Errorf("register mailbox metrics: %w", err)
		}
	}
	s.mbox = m
	s.wg.Add(1)
	go s.recordSeen(m)
	return nil
}

// closeMailbox stops the service (before the database closes).
func (s *Server) closeMailbox() error {
	if s.mbox == nil {
		return nil
	}
	for _, c := range s.mbox.all {
		s.reg.Unregister(c)
	}
	if err := s.mbox.svc.Close(); err != nil {
		return fmt.Errorf("close mailbox service: %w", err)
	}
	return nil
}

// mailboxRegistered notes that p registered itself: it has (or keeps) a
// mailbox here. It never blocks the registry.
func (s *Server) mailboxRegistered(e rdvproto.Event) {
	if s.mbox == nil || e.Kind != rdvproto.Registered {
		return
	}
	p := e.Registration.Peer.ID
	if e.Registration.Namespace != rdvproto.PeerNamespace(p) {
		return
	}
	select {
	case s.mbox.seen <- p:
	default: // busy: its next fetch or registration records it
	}
}

func (s *Server) recordSeen(m *mailboxState) {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case p := <-m.seen:
			if time.Since(m.last[p]) < mailboxSeenEvery {
				continue
			}
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			err := s.db.TouchMailbox(ctx, p, time.Now())
			cancel()
			if err != nil {
				s.log.Warn("record mailbox owner", "peer", p, "err", err)
				continue
			}
			m.last[p] = time.Now()
			if len(m.last) > 100_000 {
				clear(m.last) // only an optimisation
			}
		}
	}
}

// MailboxReport is what GET /v1/mailboxes returns: counts and sizes,
// never contents or senders. Refused counts boxes by refusal reason and
// Requests requests by "op/result", since the server started.
type MailboxReport struct {
	Enabled   bool                `json:"enabled"`
	Totals    store.MailboxTotals `json:"totals"`
	Mailboxes []store.MailboxStat `json:"mailboxes"`
	Limits    MailboxLimits       `json:"limits"`
	Refused   map[string]float64  `json:"refused_boxes"`
	Requests  map[string]float64  `json:"requests"`
	Expired   float64             `json:"expired_boxes"`
}

// MailboxLimits are the configured limits, as the report shows them.
type MailboxLimits struct {
	MaxMessages     int    `json:"max_messages"`
	MaxBytes        int64  `json:"max_bytes"`
	MaxTotalBytes   int64  `json:"max_total_bytes"`
	MaxMessageSize  int    `json:"max_message_size"`
	MaxAge          string `json:"max_age"`
	DepositBurst    int    `json:"deposit_burst"`
	DepositInterval string `json:"deposit_interval"`
}

// Mailboxes reports the mailboxes for the admin API.
func (s *Server) Mailboxes(ctx context.Context) (MailboxReport, error) {
	m := s.cfg.Mailbox
	r := MailboxReport{Enabled: s.mbox != nil, Mailboxes: []store.MailboxStat{}, Limits: MailboxLimits{
		MaxMessages: m.MaxMessages, MaxBytes: m.MaxBytes, MaxTotalBytes: m.MaxTotalBytes, MaxMessageSize: m.MaxMessageSize,
		MaxAge: m.MaxAge.String(), DepositBurst: m.DepositBurst, DepositInterval: m.DepositInterval.String(),
	}}
	var err error
	if r.Totals, err = s.db.Totals(ctx); err != nil {
		return r, err
	}
	if r.Mailboxes, err = s.db.Mailboxes(ctx); err != nil {
		return r, err
	}
	if s.mbox != nil {
		r.Refused, r.Requests = map[string]float64{}, map[string]float64{}
		for _, c := range []mailbox.Code{mailbox.CodeDuplicate, mailbox.CodeBadToken, mailbox.CodeUnknownRecipient, mailbox.CodeOverQuota,
			mailbox.CodeTooLarge, mailbox.CodeMalformed, mailbox.CodeRateLimited, mailbox.CodeUnavailable} {
			if n := s.mbox.svc.CountBoxes(mailbox.CodeName(c)); n > 0 {
				r.Refused[mailbox.CodeName(c)] = n
			}
		}
		for _, op := range []string{"deposit", "fetch", "delete", "status"} {
			for _, c := range []mailbox.Code{mailbox.CodeOK, mailbox.CodeBadToken, mailbox.CodeUnknownRecipient, mailbox.CodeRateLimited,
				mailbox.CodeNotOwner, mailbox.CodeMalformed, mailbox.CodeUnavailable} {
				if n := s.mbox.svc.Count(op, mailbox.CodeName(c)); n > 0 {
					r.Requests[op+"/"+mailbox.CodeName(c)] = n
				}
			}
		}
		r.Expired = s.mbox.svc.CountExpired()
	}
	return r, nil
}

func (s *Server) mailboxRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/mailboxes", func(w http.ResponseWriter, r *http.Request) {
		rep, err := s.Mailboxes(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, rep)
	})
}

// Mailboxes returns the server's mailbox report.
func (c *AdminClient) Mailboxes(ctx context.Context) (MailboxReport, error) {
	var out MailboxReport
	return out, c.get(ctx, "/v1/mailboxes", &out)
}
