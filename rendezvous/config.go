package rendezvous

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/natterim/natter/protocols/mailbox"
)

// Config is everything a rendezvous server can be told. Field tags are the
// config-file keys (configs/rendezvous.yaml documents each one); defaults
// live in DefaultConfig. Multiaddrs stay strings here, as the user wrote
// them, and are checked by Validate.
type Config struct {
	// DataDir holds identity.key, server.lock and admin.sock.
	DataDir string `mapstructure:"data_dir"`
	// Listen are the local listen addresses (TCP and QUIC).
	Listen []string `mapstructure:"listen"`
	// Announce, if set, replaces the advertised addresses: the public
	// addresses of a cloud VM behind a 1:1 NAT.
	Announce []string `mapstructure:"announce"`
	// Relay sizes the circuit relay v2 service.
	Relay RelayConfig `mapstructure:"relay"`
	// Registry bounds the TTLs of rendezvous registrations.
	Registry RegistryConfig `mapstructure:"registry"`
	// DHT configures the DHT the rendezvous servers form among themselves.
	DHT DHTConfig `mapstructure:"dht"`
	// Names configures the name directory.
	Names NamesConfig `mapstructure:"names"`
	// Connections are the connection manager's watermarks.
	Connections ConnectionsConfig `mapstructure:"connections"`
	// Mailbox bounds the offline mailboxes (protocols/mailbox).
	Mailbox MailboxConfig `mapstructure:"mailbox"`
	// Limits are the libp2p resource manager's limits.
	Limits LimitsConfig `mapstructure:"limits"`
	// RateLimits bound how fast one peer or one address may ask for
	// anything.
	RateLimits RateLimitsConfig `mapstructure:"rate_limits"`
	// MetricsListen is the ip:port of the Prometheus endpoint (/metrics,
	// /healthz); empty means off.
	MetricsListen string `mapstructure:"metrics_listen"`
	// LogLevel is debug, info, warn or error; LogFormat text or json.
	LogLevel  string `mapstructure:"log_level"`
	LogFormat string `mapstructure:"log_format"`
}

// RelayConfig sizes the circuit relay v2 service.
type RelayConfig struct {
	// MaxReservations is the number of peers that may hold a reservation.
	MaxReservations int `mapstructure:"max_reservations"`
	// MaxReservationsPerIP bounds reservations from one IP address.
	MaxReservationsPerIP int `mapstructure:"max_reservations_per_ip"`
	// MaxReservationsPerASN bounds reservations from one autonomous system.
	MaxReservationsPerASN int `mapstructure:"max_reservations_per_asn"`
	// MaxCircuits is the number of relayed connections one peer may have
	// open at once (as source or destination).
	MaxCircuits int `mapstructure:"max_circuits"`
	// ReservationTTL is how long a reservation lasts; nodes refresh it.
	ReservationTTL time.Duration `mapstructure:"reservation_ttl"`
	// BufferSize is the copy buffer of a relayed connection, per direction.
	BufferSize int `mapstructure:"buffer_size"`
	// CircuitDataLimit is the number of bytes relayed in each direction of
	// one relayed connection before the relay closes it. Relayed
	// connections have no time limit (chat over the relay runs for as long
	// as both ends stay), so this is the only budget.
	CircuitDataLimit int64 `mapstructure:"circuit_data_limit"`
}

// RegistryConfig bounds rendezvous registrations.
type RegistryConfig struct {
	MinTTL     time.Duration `mapstructure:"min_ttl"`
	MaxTTL     time.Duration `mapstructure:"max_ttl"`
	DefaultTTL time.Duration `mapstructure:"default_ttl"`
	// MaxRegistrations is the most registrations held in all.
	MaxRegistrations int `mapstructure:"max_registrations"`
	// MaxRegistrationsPerIP is the most registrations held for peers
	// connected from one IPv4 address or IPv6 /56 (carrier-grade NAT:
	// many homes share one address).
	MaxRegistrationsPerIP int `mapstructure:"max_registrations_per_ip"`
	// MaxRegistrationsPerPeer is the most namespaces one peer may be
	// registered in (a natter node uses one).
	MaxRegistrationsPerPeer int `mapstructure:"max_registrations_per_peer"`
	// MaxRecordSize is the largest signed peer record, in bytes; a
	// request is at most this plus 1.25 KiB.
	MaxRecordSize int `mapstructure:"max_record_size"`
	// MaxAddrs is the most addresses one record may carry.
	MaxAddrs int `mapstructure:"max_addrs"`
	// MaxDiscoverLimit caps the registrations in one discover answer.
	MaxDiscoverLimit int `mapstructure:"max_discover_limit"`
	// RequestTimeout bounds reading one request and writing its answer.
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
}

// DHTConfig configures the servers' DHT (protocol prefix /natter, server
// mode; never the public IPFS DHT).
type DHTConfig struct {
	Enabled bool `mapstructure:"enabled"`
	// Bootstrap are other rendezvous servers, multiaddrs ending in
	// /p2p/<id>.
	Bootstrap []string `mapstructure:"bootstrap"`
}

// NamesConfig configures the name directory (/natter/names/1.0.0; see
// protocols/names), kept in the server's database.
type NamesConfig struct {
	// Enabled serves the directory.
	Enabled bool `mapstructure:"enabled"`
	// InactiveRelease: a name its holder has not renewed for this long is
	// released (nodes renew daily and on every connection).
	InactiveRelease time.Duration `mapstructure:"inactive_release"`
	// MaxPerPeer is the most names one peer may hold.
	MaxPerPeer int `mapstructure:"max_per_peer"`
	// MaxClockSkew: a signed register or release must have been signed
	// within this much of the server's clock.
	MaxClockSkew time.Duration `mapstructure:"max_clock_skew"`
	// RequestBurst requests from one peer are answered at once, then one
	// per RequestInterval; the excess is refused as rate-limited.
	RequestBurst    int           `mapstructure:"request_burst"`
	RequestInterval time.Duration `mapstructure:"request_interval"`
}

// ConnectionsConfig are the connection manager's watermarks: above
// HighWater connections the least useful ones (no reservation, no open
// circuit) are closed down to LowWater.
type ConnectionsConfig struct {
	LowWater  int `mapstructure:"low_water"`
	HighWater int `mapstructure:"high_water"`
	// GracePeriod protects a new connection from trimming.
	GracePeriod time.Duration `mapstructure:"grace_period"`
}

// LimitsConfig are the libp2p resource manager's limits (the per-protocol
// limits derive from them; see newResourceManager). A request over a
// limit fails at once: the connection or stream is refused and counted in
// libp2p_rcmgr_blocked_resources.
type LimitsConfig struct {
	// Connections is the most open connections in all (a node holds two:
	// TCP and QUIC). TCP connections use a file descriptor each.
	Connections int `mapstructure:"connections"`
	// ConnectionsPerIP is the most connections from one IPv4 address or
	// one IPv6 /56 (eight times as many from one IPv6 /48).
	ConnectionsPerIP int `mapstructure:"connections_per_ip"`
	// ConnectionsPerPeer is the most connections of one peer.
	ConnectionsPerPeer int `mapstructure:"connections_per_peer"`
	// Streams is the most open streams in all.
	Streams int `mapstructure:"streams"`
	// StreamsPerPeer is the most streams one peer may have open in each
	// direction; it must leave room for relay.max_circuits relayed
	// connections.
	StreamsPerPeer int `mapstructure:"streams_per_peer"`
	// Memory is what libp2p may reserve in all, in bytes (stream receive
	// windows, 256 KiB each when opened, and relay buffers): an upper bound
	// on buffers, not the process size.
	Memory int64 `mapstructure:"memory"`
	// MemoryPerPeer is what one peer's connections and streams may reserve.
	MemoryPerPeer int64 `mapstructure:"memory_per_peer"`
}

// Rate is a token bucket: Burst requests at once, then one more every
// Interval.
type Rate struct {
	Burst    int           `mapstructure:"burst"`
	Interval time.Duration `mapstructure:"interval"`
}

// RateLimitsConfig bounds every kind of request. Per-IP buckets key on the
// IPv4 address or the IPv6 /56. What is refused is counted in
// natter_rendezvous_refused_total.
type RateLimitsConfig struct {
	// ConnectionsPerIP: new inbound connections from one address (refused
	// before the handshake).
	ConnectionsPerIP Rate `mapstructure:"connections_per_ip"`
	// RegistryPerPeer and RegistryPerIP: rendezvous requests (register,
	// discover/lookup, unregister), answered E_UNAVAILABLE "rate limited".
	RegistryPerPeer Rate `mapstructure:"registry_per_peer"`
	RegistryPerIP   Rate `mapstructure:"registry_per_ip"`
	// ReservationsPerPeer and ReservationsPerIP: relay reservation requests
	// (new and refreshed), answered PERMISSION_DENIED. A request on a new
	// connection that replaces the peer's reservation (the node restarted
	// or reconnected) is charged per IP only: see reservations.go.
	ReservationsPerPeer Rate `mapstructure:"reservations_per_peer"`
	ReservationsPerIP   Rate `mapstructure:"reservations_per_ip"`
	// CircuitsPerPeer: relayed connection requests from one peer.
	CircuitsPerPeer Rate `mapstructure:"circuits_per_peer"`
	// PingsPerPeer: pings (heartbeats) from one peer; over it the ping
	// stream is closed.
	PingsPerPeer Rate `mapstructure:"pings_per_peer"`
	// AutoNAT: dial-back requests served, in all and per peer, per
	// interval (go-libp2p's AutoNAT service throttle).
	AutoNAT AutoNATRate `mapstructure:"autonat"`
}

// AutoNATRate is go-libp2p's AutoNAT throttle: at most Global dial-backs
// per Interval, and PerPeer for one peer.
type AutoNATRate struct {
	Global   int           `mapstructure:"global"`
	PerPeer  int           `mapstructure:"per_peer"`
	Interval time.Duration `mapstructure:"interval"`
}

// MailboxConfig bounds the offline mailboxes: sealed boxes kept for
// offline nodes until they fetch them (see protocols/mailbox).
type MailboxConfig struct {
	// Enabled serves /natter/mailbox/1.0.0.
	Enabled bool `mapstructure:"enabled"`
	// MaxMessages and MaxBytes bound one recipient's mailbox.
	MaxMessages int   `mapstructure:"max_messages"`
	MaxBytes    int64 `mapstructure:"max_bytes"`
	// MaxTotalBytes bounds all mailboxes together.
	MaxTotalBytes int64 `mapstructure:"max_total_bytes"`
	// MaxMessageSize is the largest sealed box accepted, in bytes.
	MaxMessageSize int `mapstructure:"max_message_size"`
	// MaxAge is how long a box waits for its recipient before it is
	// dropped (its sender learns it expired).
	MaxAge time.Duration `mapstructure:"max_age"`
	// DepositBurst boxes may be deposited by one sender at once, then one
	// per DepositInterval.
	DepositBurst    int           `mapstructure:"deposit_burst"`
	DepositInterval time.Duration `mapstructure:"deposit_interval"`
	// FateTTL is how long senders can still learn what became of a box
	// that left its mailbox (and how long its id is refused as a replay).
	FateTTL time.Duration `mapstructure:"fate_ttl"`
	// OwnerTTL: an empty mailbox whose owner was not seen for this long is
	// forgotten (deposits for it are then refused as for an unknown
	// recipient).
	OwnerTTL time.Duration `mapstructure:"owner_ttl"`
}

// DefaultConfig returns the built-in defaults. DataDir is left empty: the
// command line chooses it.
func DefaultConfig() Config {
	return Config{
		Listen: []string{
			"/ip4/0.0.0.0/tcp/4001",
			"/ip4/0.0.0.0/udp/4001/quic-v1",
			"/ip6/::/tcp/4001",
			"/ip6/::/udp/4001/quic-v1",
		},
		Relay: RelayConfig{
			MaxReservations:       16384,
			MaxReservationsPerIP:  16,
			MaxReservationsPerASN: 256,
			MaxCircuits:           64,
			ReservationTTL:        time.Hour,
			BufferSize:            16 << 10,
			CircuitDataLimit:      64 << 20,
		},
		Registry: RegistryConfig{
			MinTTL:                  2 * time.Minute,
			MaxTTL:                  72 * time.Hour,
			DefaultTTL:              2 * time.Hour,
			MaxRegistrations:        200_000,
			MaxRegistrationsPerIP:   64,
			MaxRegistrationsPerPeer: 16,
			MaxRecordSize:           8 << 10,
			MaxAddrs:                32,
			MaxDiscoverLimit:        1000,
			RequestTimeout:          10 * time.Second,
		},
		Names: NamesConfig{
			Enabled:         true,
			InactiveRelease: 30 * 24 * time.Hour,
			MaxPerPeer:      5,
			MaxClockSkew:    10 * time.Minute,
			RequestBurst:    20,
			RequestInterval: 2 * time.Second,
		},
		DHT:         DHTConfig{Enabled: true},
		Connections: ConnectionsConfig{LowWater: 24576, HighWater: 28672, GracePeriod: time.Minute},
		Limits: LimitsConfig{
			Connections:        32768,
			ConnectionsPerIP:   40,
			ConnectionsPerPeer: 8,
			Streams:            65536,
			StreamsPerPeer:     128,
			Memory:             4 << 30,
			MemoryPerPeer:      64 << 20,
		},
		RateLimits: RateLimitsConfig{
			ConnectionsPerIP:    Rate{Burst: 64, Interval: 100 * time.Millisecond},
			RegistryPerPeer:     Rate{Burst: 64, Interval: 100 * time.Millisecond},
			RegistryPerIP:       Rate{Burst: 512, Interval: 5 * time.Millisecond},
			ReservationsPerPeer: Rate{Burst: 4, Interval: time.Minute},
			ReservationsPerIP:   Rate{Burst: 64, Interval: time.Second},
			CircuitsPerPeer:     Rate{Burst: 32, Interval: time.Second},
			PingsPerPeer:        Rate{Burst: 10, Interval: time.Second},
			AutoNAT:             AutoNATRate{Global: 1200, PerPeer: 3, Interval: time.Minute},
		},
		Mailbox: MailboxConfig{
			Enabled:         true,
			MaxMessages:     1000,
			MaxBytes:        16 << 20,
			MaxTotalBytes:   4 << 30,
			MaxMessageSize:  96 << 10,
			MaxAge:          7 * 24 * time.Hour,
			DepositBurst:    200,
			DepositInterval: time.Second,
			FateTTL:         14 * 24 * time.Hour,
			OwnerTTL:        90 * 24 * time.Hour,
		},
		LogLevel:  "info",
		LogFormat: "text",
	}
}

// Validate checks every field and says which key is wrong and why.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir: must be set"))
	}
	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("listen: at least one address"))
	}
	for _, s := range c.Listen {
		a, err := ma.NewMultiaddr(strings.TrimSpace(s))
		if err != nil {
			errs = append(errs, fmt.Errorf("listen: %q is not a multiaddr: %v", s, err))
			continue
		}
		if t := transportOf(a); t != "tcp" && t != "quic" {
			errs = append(errs, fmt.Errorf("listen: %q is neither /ip4|ip6/.../tcp/PORT nor /ip4|ip6/.../udp/PORT/quic-v1", s))
		} else if _, err := socketAddr(a); err != nil {
			errs = append(errs, fmt.Errorf("listen: %q: %v", s, err))
		}
	}
	for _, s := range c.Announce {
		a, err := ma.NewMultiaddr(strings.TrimSpace(s))
		if err != nil {
			errs = append(errs, fmt.Errorf("announce: %q is not a multiaddr: %v", s, err))
			continue
		}
		if id, err := peer.IDFromP2PAddr(a); err == nil && id != "" {
			errs = append(errs, fmt.Errorf("announce: %q must not contain /p2p/ (the server's id is added)", s))
		}
		if manet.IsIPUnspecified(a) {
			errs = append(errs, fmt.Errorf("announce: %q is an unspecified address; give the public one", s))
		}
	}
	r := c.Relay
	if r.MaxReservations < 1 || r.MaxReservations > 1<<20 {
		errs = append(errs, fmt.Errorf("relay.max_reservations: %d is outside 1..1048576", r.MaxReservations))
	}
	if r.MaxReservationsPerIP < 1 {
		errs = append(errs, fmt.Errorf("relay.max_reservations_per_ip: %d must be at least 1", r.MaxReservationsPerIP))
	}
	if r.MaxReservationsPerASN < 1 {
		errs = append(errs, fmt.Errorf("relay.max_reservations_per_asn: %d must be at least 1", r.MaxReservationsPerASN))
	}
	if r.MaxCircuits < 1 || r.MaxCircuits > 4096 {
		errs = append(errs, fmt.Errorf("relay.max_circuits: %d is outside 1..4096", r.MaxCircuits))
	}
	if r.ReservationTTL < time.Minute || r.ReservationTTL > 24*time.Hour {
		errs = append(errs, fmt.Errorf("relay.reservation_ttl: %s is outside 1m..24h", r.ReservationTTL))
	}
	if r.BufferSize < 1<<10 || r.BufferSize > 1<<20 {
		errs = append(errs, fmt.Errorf("relay.buffer_size: %d is outside 1024..1048576", r.BufferSize))
	}
	if r.CircuitDataLimit < 64<<10 {
		errs = append(errs, fmt.Errorf("relay.circuit_data_limit: %d is below 65536 bytes", r.CircuitDataLimit))
	}
	g := c.Registry
	if g.MinTTL < time.Second {
		errs = append(errs, fmt.Errorf("registry.min_ttl: %s is below 1s", g.MinTTL))
	}
	if g.MaxTTL < g.MinTTL {
		errs = append(errs, fmt.Errorf("registry.max_ttl: %s is below registry.min_ttl (%s)", g.MaxTTL, g.MinTTL))
	}
	if g.DefaultTTL < g.MinTTL || g.DefaultTTL > g.MaxTTL {
		errs = append(errs, fmt.Errorf("registry.default_ttl: %s is outside registry.min_ttl..registry.max_ttl (%s..%s)", g.DefaultTTL, g.MinTTL, g.MaxTTL))
	}
	if nm := c.Names; nm.Enabled {
		if nm.InactiveRelease < time.Minute {
			errs = append(errs, fmt.Errorf("names.inactive_release: %s is under 1m", nm.InactiveRelease))
		}
		if nm.MaxPerPeer < 1 || nm.MaxPerPeer > 1000 {
			errs = append(errs, fmt.Errorf("names.max_per_peer: %d is outside 1..1000", nm.MaxPerPeer))
		}
		if nm.MaxClockSkew < 10*time.Second || nm.MaxClockSkew > 24*time.Hour {
			errs = append(errs, fmt.Errorf("names.max_clock_skew: %s is outside 10s..24h", nm.MaxClockSkew))
		}
		if nm.RequestBurst < 1 || nm.RequestBurst > 10000 {
			errs = append(errs, fmt.Errorf("names.request_burst: %d is outside 1..10000", nm.RequestBurst))
		}
		if nm.RequestInterval <= 0 {
			errs = append(errs, fmt.Errorf("names.request_interval: %s must be positive", nm.RequestInterval))
		}
	}
	positive := func(key string, v int) {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s: %d must be at least 1", key, v))
		}
	}
	positive("registry.max_registrations", g.MaxRegistrations)
	positive("registry.max_registrations_per_ip", g.MaxRegistrationsPerIP)
	positive("registry.max_registrations_per_peer", g.MaxRegistrationsPerPeer)
	if g.MaxRecordSize < 1<<10 || g.MaxRecordSize > 64<<10 {
		errs = append(errs, fmt.Errorf("registry.max_record_size: %d is outside 1024..65536", g.MaxRecordSize))
	}
	positive("registry.max_addrs", g.MaxAddrs)
	positive("registry.max_discover_limit", g.MaxDiscoverLimit)
	if g.RequestTimeout < time.Second || g.RequestTimeout > 5*time.Minute {
		errs = append(errs, fmt.Errorf("registry.request_timeout: %s is outside 1s..5m", g.RequestTimeout))
	}
	if _, err := c.BootstrapInfos(); err != nil {
		errs = append(errs, err)
	}
	if c.Connections.LowWater < 1 || c.Connections.HighWater <= c.Connections.LowWater {
		errs = append(errs, fmt.Errorf("connections.high_water: %d must be above connections.low_water (%d), which must be at least 1", c.Connections.HighWater, c.Connections.LowWater))
	}
	errs = append(errs, c.Mailbox.validate()...)
	if c.Connections.GracePeriod < 0 || c.Connections.GracePeriod > time.Hour {
		errs = append(errs, fmt.Errorf("connections.grace_period: %s is outside 0..1h", c.Connections.GracePeriod))
	}
	errs = append(errs, c.Limits.validate(c)...)
	errs = append(errs, c.RateLimits.validate()...)
	if c.MetricsListen != "" {
		if _, err := netip.ParseAddrPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("metrics_listen: %q is not ip:port: %v", c.MetricsListen, err))
		}
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(c.LogLevel)) {
		errs = append(errs, fmt.Errorf("log_level: %q is not debug, info, warn or error", c.LogLevel))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log_format: %q is not text or json", c.LogFormat))
	}
	return errors.Join(errs...)
}

func (l LimitsConfig) validate(c Config) []error {
	var errs []error
	if l.Connections < 16 || l.Connections > 1<<22 {
		errs = append(errs, fmt.Errorf("limits.connections: %d is outside 16..4194304", l.Connections))
	}
	if c.Connections.HighWater >= l.Connections {
		errs = append(errs, fmt.Errorf("connections.high_water: %d must be below limits.connections (%d), or the resource manager refuses connections before the connection manager trims idle ones", c.Connections.HighWater, l.Connections))
	}
	if l.ConnectionsPerIP < 2 || l.ConnectionsPerIP > l.Connections {
		errs = append(errs, fmt.Errorf("limits.connections_per_ip: %d is outside 2..limits.connections (a node needs two: TCP and QUIC)", l.ConnectionsPerIP))
	}
	if l.ConnectionsPerPeer < 2 || l.ConnectionsPerPeer > 64 {
		errs = append(errs, fmt.Errorf("limits.connections_per_peer: %d is outside 2..64", l.ConnectionsPerPeer))
	}
	if least := c.Relay.MaxCircuits + 16; l.StreamsPerPeer < least || l.StreamsPerPeer > 1<<16 {
		errs = append(errs, fmt.Errorf("limits.streams_per_peer: %d is outside relay.max_circuits+16 (%d)..65536", l.StreamsPerPeer, least))
	}
	if l.Streams < l.StreamsPerPeer || l.Streams > 1<<24 {
		errs = append(errs, fmt.Errorf("limits.streams: %d is outside limits.streams_per_peer (%d)..16777216", l.Streams, l.StreamsPerPeer))
	}
	if l.MemoryPerPeer < 4<<20 {
		errs = append(errs, fmt.Errorf("limits.memory_per_peer: %d is below 4 MiB (4194304)", l.MemoryPerPeer))
	}
	if l.Memory < l.MemoryPerPeer {
		errs = append(errs, fmt.Errorf("limits.memory: %d is below limits.memory_per_peer (%d)", l.Memory, l.MemoryPerPeer))
	}
	return errs
}

func (r RateLimitsConfig) validate() []error {
	var errs []error
	for _, x := range []struct {
		key  string
		rate Rate
	}{
		{"connections_per_ip", r.ConnectionsPerIP},
		{"registry_per_peer", r.RegistryPerPeer},
		{"registry_per_ip", r.RegistryPerIP},
		{"reservations_per_peer", r.ReservationsPerPeer},
		{"reservations_per_ip", r.ReservationsPerIP},
		{"circuits_per_peer", r.CircuitsPerPeer},
		{"pings_per_peer", r.PingsPerPeer},
	} {
		if x.rate.Burst < 1 || x.rate.Burst > 1<<20 {
			errs = append(errs, fmt.Errorf("rate_limits.%s.burst: %d is outside 1..1048576", x.key, x.rate.Burst))
		}
		if x.rate.Interval <= 0 || x.rate.Interval > 24*time.Hour {
			errs = append(errs, fmt.Errorf("rate_limits.%s.interval: %s is outside (0, 24h]", x.key, x.rate.Interval))
		}
	}
	a := r.AutoNAT
	if a.Global < 1 || a.PerPeer < 1 || a.PerPeer > a.Global {
		errs = append(errs, fmt.Errorf("rate_limits.autonat.per_peer: need 1 <= per_peer (%d) <= global (%d)", a.PerPeer, a.Global))
	}
	if a.Interval < time.Second || a.Interval > 24*time.Hour {
		errs = append(errs, fmt.Errorf("rate_limits.autonat.interval: %s is outside 1s..24h", a.Interval))
	}
	return errs
}

// ListenAddrs returns the parsed listen addresses. Call Validate first.
func (c Config) ListenAddrs() []ma.Multiaddr { return parseAll(c.Listen) }

// AnnounceAddrs returns the parsed announce addresses. Call Validate first.
func (c Config) AnnounceAddrs() []ma.Multiaddr { return parseAll(c.Announce) }

// BootstrapInfos parses dht.bootstrap; every address must end in
// /p2p/<id> so that the other server's identity is pinned.
func (c Config) BootstrapInfos() ([]peer.AddrInfo, error) {
	addrs := make([]ma.Multiaddr, 0, len(c.DHT.Bootstrap))
	for _, s := range c.DHT.Bootstrap {
		a, err := ma.NewMultiaddr(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("dht.bootstrap: %q is not a multiaddr: %v", s, err)
		}
		if _, err := peer.IDFromP2PAddr(a); err != nil {
			return nil, fmt.Errorf("dht.bootstrap: %q must end in /p2p/<peer id> so the server's identity is pinned", s)
		}
		addrs = append(addrs, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return nil, fmt.Errorf("dht.bootstrap: %v", err)
	}
	return infos, nil
}

func parseAll(ss []string) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(ss))
	for _, s := range ss {
		if a, err := ma.NewMultiaddr(strings.TrimSpace(s)); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// transportOf names the transport of a listen address: "tcp", "quic" or
// "" for anything this server does not listen on.
func transportOf(a ma.Multiaddr) string {
	if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
		return "relay"
	}
	if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
		return "quic"
	}
	if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
		if _, err := a.ValueForProtocol(ma.P_WS); err == nil {
			return ""
		}
		return "tcp"
	}
	return ""
}

func (m MailboxConfig) validate() []error {
	var errs []error
	if m.MaxMessageSize < 1<<10 || m.MaxMessageSize > mailbox.MaxBoxSizeLimit {
		errs = append(errs, fmt.Errorf("mailbox.max_message_size: %d is outside 1024..%d", m.MaxMessageSize, mailbox.MaxBoxSizeLimit))
	}
	if m.MaxMessages < 1 {
		errs = append(errs, fmt.Errorf("mailbox.max_messages: %d must be at least 1", m.MaxMessages))
	}
	if m.MaxBytes < int64(m.MaxMessageSize) {
		errs = append(errs, fmt.Errorf("mailbox.max_bytes: %d is below mailbox.max_message_size (%d)", m.MaxBytes, m.MaxMessageSize))
	}
	if m.MaxTotalBytes < m.MaxBytes {
		errs = append(errs, fmt.Errorf("mailbox.max_total_bytes: %d is below mailbox.max_bytes (%d)", m.MaxTotalBytes, m.MaxBytes))
	}
	if m.MaxAge < time.Minute {
		errs = append(errs, fmt.Errorf("mailbox.max_age: %s is under 1m", m.MaxAge))
	}
	if m.DepositBurst < 1 {
		errs = append(errs, fmt.Errorf("mailbox.deposit_burst: %d must be at least 1", m.DepositBurst))
	}
	if m.DepositInterval <= 0 {
		errs = append(errs, fmt.Errorf("mailbox.deposit_interval: %s must be positive", m.DepositInterval))
	}
	if m.FateTTL < time.Minute {
		errs = append(errs, fmt.Errorf("mailbox.fate_ttl: %s is under 1m", m.FateTTL))
	}
	if m.OwnerTTL < time.Minute {
		errs = append(errs, fmt.Errorf("mailbox.owner_ttl: %s is under 1m", m.OwnerTTL))
	}
	return errs
}

// Limits turns the mailbox config into the service's limits.
func (m MailboxConfig) Limits() mailbox.Limits {
	l := mailbox.DefaultLimits()
	l.MaxBoxSize = m.MaxMessageSize
	l.MaxMessages, l.MaxBytes, l.MaxTotalBytes = m.MaxMessages, m.MaxBytes, m.MaxTotalBytes
	l.MaxAge = m.MaxAge
	l.DepositBurst, l.DepositInterval = m.DepositBurst, m.DepositInterval
	l.FateTTL, l.OwnerTTL = m.FateTTL, m.OwnerTTL
	return l
}
