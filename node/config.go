package node

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/natterim/natter/protocols/file"
)

// Config is everything a node can be told. Field tags are the config-file
// keys (configs/node.yaml documents each one); defaults live in
// DefaultConfig. Multiaddrs and peer IDs stay strings here, as the user
// wrote them, and are checked by Validate.
type Config struct {
	// DataDir holds the identity, the database and the control socket.
	DataDir string `mapstructure:"data_dir"`
	// Listen are the local listen addresses.
	Listen []string `mapstructure:"listen"`
	// Transports enabled: "tcp", "quic" or both.
	Transports []string `mapstructure:"transports"`
	// Rendezvous are the rendezvous servers, full multiaddrs ending in
	// /p2p/<id>. Several addresses of one server (TCP, QUIC, IPv6) are
	// grouped by peer ID.
	Rendezvous []string `mapstructure:"rendezvous"`
	// NATPortMap asks the home router for a port mapping (UPnP/NAT-PMP).
	NATPortMap bool `mapstructure:"nat_port_map"`
	// HolePunching enables DCUtR hole punching.
	HolePunching bool `mapstructure:"hole_punching"`
	// RegistrationTTL is how long a registration on the rendezvous lasts;
	// the node refreshes it at half that.
	RegistrationTTL time.Duration `mapstructure:"registration_ttl"`
	// Heartbeat is the interval of the pings on every rendezvous and
	// contact link; a link that misses HeartbeatMisses in a row is dead.
	Heartbeat       time.Duration `mapstructure:"heartbeat"`
	HeartbeatMisses int           `mapstructure:"heartbeat_misses"`
	// DirectRetry is the first delay before retrying a hole punch while a
	// contact's link stays relayed; it doubles up to DirectRetryMax.
	DirectRetry    time.Duration `mapstructure:"direct_retry"`
	DirectRetryMax time.Duration `mapstructure:"direct_retry_max"`
	// DHT enables peer routing over the rendezvous servers' DHT, used when
	// a contact is not registered on our own rendezvous servers.
	DHT bool `mapstructure:"dht"`
	// Chat configures messaging.
	Chat ChatConfig `mapstructure:"chat"`
	// Contacts configures friend requests.
	Contacts ContactsConfig `mapstructure:"contacts"`
	// Presence configures what contacts see of us.
	Presence PresenceConfig `mapstructure:"presence"`
	// Names configures the name directory on the rendezvous servers.
	Names NamesConfig `mapstructure:"names"`
	// Mailbox configures offline delivery through the rendezvous.
	Mailbox MailboxConfig `mapstructure:"mailbox"`
	// Files configures file transfer.
	Files FilesConfig `mapstructure:"files"`
	// Control configures the control API.
	Control ControlConfig `mapstructure:"control"`
	// LogLevel is debug, info, warn or error; LogFormat text or json.
	LogLevel  string `mapstructure:"log_level"`
	LogFormat string `mapstructure:"log_format"`
}

// ChatConfig configures messaging.
type ChatConfig struct {
	// ReadReceipts tells contacts when their messages were read (natter
	// read); `natter contacts receipts <contact> on|off` overrides it per
	// contact.
	ReadReceipts bool `mapstructure:"read_receipts"`
}

// ContactsConfig configures friend requests.
type ContactsConfig struct {
	// MaxPending caps the requests waiting for an answer (pending_in);
	// further requests are refused until some are answered.
	MaxPending int `mapstructure:"max_pending"`
	// RequestBurst requests from one peer are answered at once, then one
	// per RequestInterval; the excess is refused as rate-limited.
	RequestBurst    int           `mapstructure:"request_burst"`
	RequestInterval time.Duration `mapstructure:"request_interval"`
	// RejectCooldown is how long a rejected requester's new requests are
	// answered "rejected" without asking the user again.
	RejectCooldown time.Duration `mapstructure:"reject_cooldown"`
}

// PresenceConfig configures presence.
type PresenceConfig struct {
	// IdleAway shows us "away" after this long without activity on the
	// control API (sending, typing, reading); 0 turns it off.
	IdleAway time.Duration `mapstructure:"idle_away"`
}

// NamesConfig configures our use of the name directory.
type NamesConfig struct {
	// RenewInterval: our names are renewed on every rendezvous this often,
	// and whenever a rendezvous connection (re)opens. Servers release a
	// name after their names.inactive_release (30 days by default).
	RenewInterval time.Duration `mapstructure:"renew_interval"`
	// RecheckInterval: contacts added by name are looked up again this
	// often (and whenever a rendezvous connection opens); a name that now
	// points to another key raises a warning.
	RecheckInterval time.Duration `mapstructure:"recheck_interval"`
	// MaxRecordAge: a looked-up record its holder signed longer ago than
	// this is refused, whatever a server says (holders renew daily).
	MaxRecordAge time.Duration `mapstructure:"max_record_age"`
}

// MailboxConfig configures offline delivery: messages for a contact that
// is offline are sealed into its mailbox on the rendezvous, and our own
// mailbox is drained whenever we are connected to one.
type MailboxConfig struct {
	// Enabled turns offline delivery on (both depositing and draining).
	Enabled bool `mapstructure:"enabled"`
	// After is how long a message for a contact we have no link with
	// waits in the outbox before it is sealed into the contact's mailbox.
	After time.Duration `mapstructure:"after"`
	// Poll is how often our mailboxes are drained while we are connected
	// to their rendezvous (also at once on every connection).
	Poll time.Duration `mapstructure:"poll"`
	// StatusInterval is how often we ask the rendezvous what became of
	// messages we deposited (fetched, expired).
	StatusInterval time.Duration `mapstructure:"status_interval"`
	// TokenTTL is the lifetime of the deposit tokens we give our contacts
	// (renewed whenever we connect to them).
	TokenTTL time.Duration `mapstructure:"token_ttl"`
	// FlushOnStop bounds, on a clean stop, sealing what is still queued
	// for contacts we have no link with into their mailboxes at once
	// (without waiting After), before the links go down; 0 does not.
	FlushOnStop time.Duration `mapstructure:"flush_on_stop"`
}

// FilesConfig configures file transfer.
type FilesConfig struct {
	// DownloadDir is where received files are saved ("" =
	// <data_dir>/downloads). Partial files stay in <data_dir>/partial.
	DownloadDir string `mapstructure:"download_dir"`
	// AutoAcceptMax: files from accepted contacts up to this many bytes
	// are accepted without asking; larger ones wait for natter files
	// accept. 0 always asks.
	AutoAcceptMax int64 `mapstructure:"auto_accept_max"`
	// RelayMax is the largest file, in bytes, sent or fetched over a
	// relayed connection; larger ones wait for a direct link. Keep it well
	// under the rendezvous's relay.circuit_data_limit. 0: never over a
	// relay.
	RelayMax int64 `mapstructure:"relay_max"`
	// StallTimeout pauses (and retries) a transfer that moved no data for
	// this long.
	StallTimeout time.Duration `mapstructure:"stall_timeout"`
}

// ControlConfig configures the control API.
type ControlConfig struct {
	// Socket is the unix socket path ("" = <data_dir>/control.sock).
	Socket string `mapstructure:"socket"`
	// TCPListen, if set, also serves the API on this loopback address
	// (e.g. 127.0.0.1:7420), guarded by the token in <data_dir>/control.token.
	TCPListen string `mapstructure:"tcp_listen"`
}

// DefaultConfig returns the built-in defaults.
func DefaultConfig() Config {
	return Config{
		Listen: []string{
			"/ip4/0.0.0.0/tcp/0",
			"/ip4/0.0.0.0/udp/0/quic-v1",
			"/ip6/::/tcp/0",
			"/ip6/::/udp/0/quic-v1",
		},
		Transports:      []string{"tcp", "quic"},
		NATPortMap:      true,
		HolePunching:    true,
		RegistrationTTL: time.Hour,
		Heartbeat:       10 * time.Second,
		HeartbeatMisses: 2,
		DirectRetry:     30 * time.Second,
		DirectRetryMax:  10 * time.Minute,
		DHT:             true,
		Chat:            ChatConfig{ReadReceipts: true},
		Contacts: ContactsConfig{
			MaxPending:      100,
			RequestBurst:    5,
			RequestInterval: time.Minute,
			RejectCooldown:  24 * time.Hour,
		},
		Names: NamesConfig{
			RenewInterval:   24 * time.Hour,
			RecheckInterval: 6 * time.Hour,
			MaxRecordAge:    45 * 24 * time.Hour,
		},
		Presence: PresenceConfig{IdleAway: 10 * time.Minute},
		Mailbox: MailboxConfig{
			Enabled:        true,
			After:          10 * time.Second,
			Poll:           time.Minute,
			StatusInterval: 5 * time.Minute,
			TokenTTL:       30 * 24 * time.Hour,
			FlushOnStop:    5 * time.Second,
		},
		Files: FilesConfig{
			AutoAcceptMax: 16 << 20,
			RelayMax:      8 << 20,
			StallTimeout:  30 * time.Second,
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
	if len(c.Transports) == 0 {
		errs = append(errs, errors.New("transports: at least one of tcp, quic"))
	}
	for _, t := range c.Transports {
		if t != "tcp" && t != "quic" {
			errs = append(errs, fmt.Errorf("transports: %q is not tcp or quic", t))
		}
	}
	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("listen: at least one address"))
	}
	for _, s := range c.Listen {
		if _, err := ma.NewMultiaddr(s); err != nil {
			errs = append(errs, fmt.Errorf("listen: %q is not a multiaddr: %v", s, err))
		}
	}
	if _, err := c.RendezvousInfos(); err != nil {
		errs = append(errs, err)
	}
	if c.RegistrationTTL < 2*time.Minute || c.RegistrationTTL > 72*time.Hour {
		errs = append(errs, fmt.Errorf("registration_ttl: %s is outside 2m..72h", c.RegistrationTTL))
	}
	if c.Heartbeat < time.Second || c.Heartbeat > 5*time.Minute {
		errs = append(errs, fmt.Errorf("heartbeat: %s is outside 1s..5m", c.Heartbeat))
	}
	if c.HeartbeatMisses < 1 || c.HeartbeatMisses > 100 {
		errs = append(errs, fmt.Errorf("heartbeat_misses: %d is outside 1..100", c.HeartbeatMisses))
	}
	if c.DirectRetry < time.Second || c.DirectRetryMax < c.DirectRetry {
		errs = append(errs, fmt.Errorf("direct_retry: %s must be >= 1s and <= direct_retry_max (%s)", c.DirectRetry, c.DirectRetryMax))
	}
	if c.Contacts.MaxPending < 1 || c.Contacts.MaxPending > 100000 {
		errs = append(errs, fmt.Errorf("contacts.max_pending: %d is outside 1..100000", c.Contacts.MaxPending))
	}
	if c.Contacts.RequestBurst < 1 || c.Contacts.RequestBurst > 1000 {
		errs = append(errs, fmt.Errorf("contacts.request_burst: %d is outside 1..1000", c.Contacts.RequestBurst))
	}
	if c.Contacts.RequestInterval < time.Second {
		errs = append(errs, fmt.Errorf("contacts.request_interval: %s is under 1s", c.Contacts.RequestInterval))
	}
	if c.Contacts.RejectCooldown < 0 {
		errs = append(errs, fmt.Errorf("contacts.reject_cooldown: %s is negative", c.Contacts.RejectCooldown))
	}
	if c.Presence.IdleAway != 0 && c.Presence.IdleAway < time.Minute {
		errs = append(errs, fmt.Errorf("presence.idle_away: %s is under 1m (0 turns it off)", c.Presence.IdleAway))
	}
	if c.Names.RenewInterval < time.Minute || c.Names.RenewInterval > 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("names.renew_interval: %s is outside 1m..168h", c.Names.RenewInterval))
	}
	if c.Names.RecheckInterval < time.Minute {
		errs = append(errs, fmt.Errorf("names.recheck_interval: %s is under 1m", c.Names.RecheckInterval))
	}
	if c.Names.MaxRecordAge < 2*c.Names.RenewInterval {
		errs = append(errs, fmt.Errorf("names.max_record_age: %s is under twice names.renew_interval (%s)", c.Names.MaxRecordAge, c.Names.RenewInterval))
	}
	errs = append(errs, c.Mailbox.validate()...)
	if c.Files.DownloadDir != "" && !filepath.IsAbs(c.Files.DownloadDir) {
		errs = append(errs, fmt.Errorf("files.download_dir: %q is not an absolute path", c.Files.DownloadDir))
	}
	if c.Files.AutoAcceptMax < 0 || c.Files.AutoAcceptMax > file.MaxFileSize {
		errs = append(errs, fmt.Errorf("files.auto_accept_max: %d is outside 0..%d", c.Files.AutoAcceptMax, file.MaxFileSize))
	}
	if c.Files.RelayMax < 0 || c.Files.RelayMax > file.MaxFileSize {
		errs = append(errs, fmt.Errorf("files.relay_max: %d is outside 0..%d", c.Files.RelayMax, file.MaxFileSize))
	}
	if c.Files.StallTimeout < 2*time.Second || c.Files.StallTimeout > 10*time.Minute {
		errs = append(errs, fmt.Errorf("files.stall_timeout: %s is outside 2s..10m", c.Files.StallTimeout))
	}
	if c.Control.TCPListen != "" {
		ap, err := netip.ParseAddrPort(c.Control.TCPListen)
		if err != nil {
			errs = append(errs, fmt.Errorf("control.tcp_listen: %q is not ip:port: %v", c.Control.TCPListen, err))
		} else if !ap.Addr().IsLoopback() {
			errs = append(errs, fmt.Errorf("control.tcp_listen: %s is not a loopback address; the control API never listens on the network", ap.Addr()))
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

// RendezvousInfos parses Rendezvous, grouping addresses by server.
func (c Config) RendezvousInfos() ([]peer.AddrInfo, error) {
	return ParseServerAddrs("rendezvous", c.Rendezvous)
}

// ParseServerAddrs parses multiaddrs that must each end in /p2p/<id> (so
// that the server's identity is pinned) and groups them by peer ID. key
// names the config key in errors.
func ParseServerAddrs(key string, ss []string) ([]peer.AddrInfo, error) {
	addrs := make([]ma.Multiaddr, 0, len(ss))
	for _, s := range ss {
		a, err := ma.NewMultiaddr(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a multiaddr: %v", key, s, err)
		}
		if _, err := peer.IDFromP2PAddr(a); err != nil {
			return nil, fmt.Errorf("%s: %q must end in /p2p/<peer id> so the server's identity is pinned", key, s)
		}
		addrs = append(addrs, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", key, err)
	}
	return infos, nil
}

func (c Config) listenAddrs() []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, s := range c.Listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			continue // Validate reported it
		}
		if isQUIC(a) && !slices.Contains(c.Transports, "quic") || isTCP(a) && !slices.Contains(c.Transports, "tcp") {
			continue
		}
		out = append(out, a)
	}
	return out
}

func isQUIC(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_QUIC_V1)
	return err == nil
}

func isTCP(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_TCP)
	return err == nil
}

func (m MailboxConfig) validate() []error {
	var errs []error
	if m.After < time.Second || m.After > time.Hour {
		errs = append(errs, fmt.Errorf("mailbox.after: %s is outside 1s..1h", m.After))
	}
	if m.Poll < time.Second || m.Poll > time.Hour {
		errs = append(errs, fmt.Errorf("mailbox.poll: %s is outside 1s..1h", m.Poll))
	}
	if m.StatusInterval < time.Second || m.StatusInterval > 24*time.Hour {
		errs = append(errs, fmt.Errorf("mailbox.status_interval: %s is outside 1s..24h", m.StatusInterval))
	}
	if m.TokenTTL < time.Hour || m.TokenTTL > 365*24*time.Hour {
		errs = append(errs, fmt.Errorf("mailbox.token_ttl: %s is outside 1h..8760h", m.TokenTTL))
	}
	if m.FlushOnStop < 0 || m.FlushOnStop > time.Minute {
		errs = append(errs, fmt.Errorf("mailbox.flush_on_stop: %s is outside 0..1m", m.FlushOnStop))
	}
	return errs
}
