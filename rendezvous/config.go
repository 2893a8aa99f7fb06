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
			MaxReservations:       4096,
			MaxReservationsPerIP:  16,
			MaxReservationsPerASN: 256,
			MaxCircuits:           64,
			ReservationTTL:        time.Hour,
			BufferSize:            16 << 10,
			CircuitDataLimit:      64 << 20,
		},
		Registry: RegistryConfig{
			MinTTL:     2 * time.Minute,
			MaxTTL:     72 * time.Hour,
			DefaultTTL: 2 * time.Hour,
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
		Connections: ConnectionsConfig{LowWater: 8192, HighWater: 10240},
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
	if _, err := c.BootstrapInfos(); err != nil {
		errs = append(errs, err)
	}
	if c.Connections.LowWater < 1 || c.Connections.HighWater <= c.Connections.LowWater {
		errs = append(errs, fmt.Errorf("connections.high_water: %d must be above connections.low_water (%d), which must be at least 1", c.Connections.HighWater, c.Connections.LowWater))
	}
	errs = append(errs, c.Mailbox.validate()...)
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
