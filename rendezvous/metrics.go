package rendezvous

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	collectors          []prometheus.Collector
	connsOpened         *prometheus.CounterVec
	connsClosed         *prometheus.CounterVec
	reservationRequests prometheus.Counter
	circuitRequests     prometheus.Counter
	heartbeats          prometheus.Counter
	refused             *prometheus.CounterVec
}

func newMetrics(s *Server) (*metrics, error) {
	const ns, sub = "natter", "rendezvous"
	m := &metrics{
		connsOpened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "connections_opened_total",
			Help: "Connections opened, by transport (tcp, quic, other).",
		}, []string{"transport"}),
		connsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "connections_closed_total",
			Help: "Connections closed, by transport (tcp, quic, other).",
		}, []string{"transport"}),
		reservationRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "relay_reservation_requests_total",
			Help: "Relay reservation requests (new and refreshed) admitted to the relay service.",
		}),
		circuitRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "relay_circuit_requests_total",
			Help: "Relayed connection requests admitted to the relay service.",
		}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "heartbeats_total",
			Help: "Ping payloads received from peers (their heartbeats).",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "refused_total",
			Help: "Requests refused by the server's own limits, by request (connection, register, discover, unregister, reservation, circuit, ping) and reason (rate_limited, source_cap, peer_cap, full, not_authorized, invalid). The resource manager's refusals are libp2p_rcmgr_blocked_resources; the relay's own (reservation slots, per-IP caps) libp2p_relaysvc_*.",
		}, []string{"request", "reason"}),
	}
	m.collectors = []prometheus.Collector{
		m.connsOpened, m.connsClosed, m.reservationRequests, m.circuitRequests, m.heartbeats, m.refused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "online_peers",
			Help: "Peers with at least one open connection.",
		}, func() float64 { return float64(len(s.h.Network().Peers())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "reservations",
			Help: "Peers holding a relay reservation.",
		}, func() float64 { return float64(s.reservations()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "registrations",
			Help: "Live rendezvous registrations.",
		}, func() float64 {
			if s.rdv == nil {
				return 0
			}
			return float64(len(s.rdv.Registrations()))
		}),
	}
	var registered []prometheus.Collector
	for _, c := range m.collectors {
		if err := s.reg.Register(c); err != nil {
			for _, r := range registered {
				s.reg.Unregister(r)
			}
			return nil, fmt.Errorf("register metrics: %w", err)
		}
		registered = append(registered, c)
	}
	// Process and Go runtime metrics, unless the registry has them already.
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := s.reg.Register(c); err == nil {
			m.collectors = append(m.collectors, c)
		}
	}
	return m, nil
}

// unregister lets a registry outlive the server (and a new server reuse it).
func (m *metrics) unregister(reg *prometheus.Registry) {
	for _, c := range m.collectors {
		reg.Unregister(c)
	}
}

// serveMetrics serves /metrics and /healthz on cfg.MetricsListen.
func (s *Server) serveMetrics() error {
	ln, err := net.Listen("tcp", s.cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("metrics_listen %s: %w", s.cfg.MetricsListen, classify(err, nil))
	}
	s.metricsLn = ln
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if len(s.h.Network().ListenAddresses()) == 0 {
			http.Error(w, "not listening", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	s.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.metricsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	s.log.Info("metrics endpoint", "addr", ln.Addr().String())
	return nil
}

// MetricsAddr returns the address the metrics endpoint listens on, or ""
// when it is off.
func (s *Server) MetricsAddr() string {
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr().String()
}
