package rendezvous_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/rendezvous"
)

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := rendezvous.DefaultConfig()
	cfg.DataDir = "/var/lib/natter-rendezvous"
	require.NoError(t, cfg.Validate())
	require.Len(t, cfg.ListenAddrs(), 4)
}

func TestValidateNamesTheKey(t *testing.T) {
	for _, tc := range []struct {
		key    string
		mutate func(*rendezvous.Config)
	}{
		{"data_dir", func(c *rendezvous.Config) { c.DataDir = "" }},
		{"listen", func(c *rendezvous.Config) { c.Listen = []string{"/ip4/1.2.3.4"} }},
		{"listen", func(c *rendezvous.Config) { c.Listen = []string{"/dns4/example.com/tcp/1"} }},
		{"listen", func(c *rendezvous.Config) { c.Listen = nil }},
		{"announce", func(c *rendezvous.Config) { c.Announce = []string{"nope"} }},
		{"announce", func(c *rendezvous.Config) { c.Announce = []string{"/ip4/0.0.0.0/tcp/4001"} }},
		{"relay.max_reservations", func(c *rendezvous.Config) { c.Relay.MaxReservations = 0 }},
		{"relay.max_reservations_per_ip", func(c *rendezvous.Config) { c.Relay.MaxReservationsPerIP = 0 }},
		{"relay.max_circuits", func(c *rendezvous.Config) { c.Relay.MaxCircuits = 0 }},
		{"relay.reservation_ttl", func(c *rendezvous.Config) { c.Relay.ReservationTTL = time.Second }},
		{"relay.buffer_size", func(c *rendezvous.Config) { c.Relay.BufferSize = 10 }},
		{"relay.circuit_data_limit", func(c *rendezvous.Config) { c.Relay.CircuitDataLimit = 0 }},
		{"registry.max_ttl", func(c *rendezvous.Config) { c.Registry.MaxTTL = time.Second }},
		{"registry.default_ttl", func(c *rendezvous.Config) { c.Registry.DefaultTTL = 100 * time.Hour }},
		{"dht.bootstrap", func(c *rendezvous.Config) { c.DHT.Bootstrap = []string{"/ip4/1.2.3.4/tcp/4001"} }},
		{"names.inactive_release", func(c *rendezvous.Config) { c.Names.InactiveRelease = time.Second }},
		{"names.max_per_peer", func(c *rendezvous.Config) { c.Names.MaxPerPeer = 0 }},
		{"names.max_clock_skew", func(c *rendezvous.Config) { c.Names.MaxClockSkew = 0 }},
		{"names.request_burst", func(c *rendezvous.Config) { c.Names.RequestBurst = 0 }},
		{"names.request_interval", func(c *rendezvous.Config) { c.Names.RequestInterval = 0 }},
		{"connections.high_water", func(c *rendezvous.Config) { c.Connections.HighWater = 1 }},
		{"connections.high_water", func(c *rendezvous.Config) { c.Connections.HighWater = c.Limits.Connections }},
		{"connections.grace_period", func(c *rendezvous.Config) { c.Connections.GracePeriod = -time.Second }},
		{"registry.max_registrations", func(c *rendezvous.Config) { c.Registry.MaxRegistrations = 0 }},
		{"registry.max_registrations_per_ip", func(c *rendezvous.Config) { c.Registry.MaxRegistrationsPerIP = 0 }},
		{"registry.max_registrations_per_peer", func(c *rendezvous.Config) { c.Registry.MaxRegistrationsPerPeer = 0 }},
		{"registry.max_record_size", func(c *rendezvous.Config) { c.Registry.MaxRecordSize = 1 << 20 }},
		{"registry.max_addrs", func(c *rendezvous.Config) { c.Registry.MaxAddrs = 0 }},
		{"registry.max_discover_limit", func(c *rendezvous.Config) { c.Registry.MaxDiscoverLimit = -1 }},
		{"registry.request_timeout", func(c *rendezvous.Config) { c.Registry.RequestTimeout = 0 }},
		{"limits.connections", func(c *rendezvous.Config) { c.Limits.Connections = 1 }},
		{"limits.connections_per_ip", func(c *rendezvous.Config) { c.Limits.ConnectionsPerIP = 1 }},
		{"limits.connections_per_peer", func(c *rendezvous.Config) { c.Limits.ConnectionsPerPeer = 0 }},
		{"limits.streams_per_peer", func(c *rendezvous.Config) { c.Limits.StreamsPerPeer = c.Relay.MaxCircuits }},
		{"limits.streams", func(c *rendezvous.Config) { c.Limits.Streams = 10 }},
		{"limits.memory_per_peer", func(c *rendezvous.Config) { c.Limits.MemoryPerPeer = 1 }},
		{"limits.memory", func(c *rendezvous.Config) { c.Limits.Memory = 1 << 20 }},
		{"rate_limits.connections_per_ip.burst", func(c *rendezvous.Config) { c.RateLimits.ConnectionsPerIP.Burst = 0 }},
		{"rate_limits.registry_per_peer.interval", func(c *rendezvous.Config) { c.RateLimits.RegistryPerPeer.Interval = 0 }},
		{"rate_limits.registry_per_ip.burst", func(c *rendezvous.Config) { c.RateLimits.RegistryPerIP.Burst = -1 }},
		{"rate_limits.reservations_per_peer.interval", func(c *rendezvous.Config) { c.RateLimits.ReservationsPerPeer.Interval = 48 * time.Hour }},
		{"rate_limits.reservations_per_ip.burst", func(c *rendezvous.Config) { c.RateLimits.ReservationsPerIP.Burst = 0 }},
		{"rate_limits.circuits_per_peer.burst", func(c *rendezvous.Config) { c.RateLimits.CircuitsPerPeer.Burst = 0 }},
		{"rate_limits.pings_per_peer.interval", func(c *rendezvous.Config) { c.RateLimits.PingsPerPeer.Interval = -1 }},
		{"rate_limits.autonat.per_peer", func(c *rendezvous.Config) { c.RateLimits.AutoNAT.PerPeer = c.RateLimits.AutoNAT.Global + 1 }},
		{"rate_limits.autonat.interval", func(c *rendezvous.Config) { c.RateLimits.AutoNAT.Interval = 0 }},
		{"metrics_listen", func(c *rendezvous.Config) { c.MetricsListen = ":9090x" }},
		{"mailbox.max_message_size", func(c *rendezvous.Config) { c.Mailbox.MaxMessageSize = 10 << 20 }},
		{"mailbox.max_messages", func(c *rendezvous.Config) { c.Mailbox.MaxMessages = 0 }},
		{"mailbox.max_bytes", func(c *rendezvous.Config) { c.Mailbox.MaxBytes = 10 }},
		{"mailbox.max_total_bytes", func(c *rendezvous.Config) { c.Mailbox.MaxTotalBytes = 1 << 20 }},
		{"mailbox.max_age", func(c *rendezvous.Config) { c.Mailbox.MaxAge = time.Second }},
		{"mailbox.deposit_burst", func(c *rendezvous.Config) { c.Mailbox.DepositBurst = 0 }},
		{"mailbox.deposit_interval", func(c *rendezvous.Config) { c.Mailbox.DepositInterval = 0 }},
		{"mailbox.fate_ttl", func(c *rendezvous.Config) { c.Mailbox.FateTTL = 0 }},
		{"mailbox.owner_ttl", func(c *rendezvous.Config) { c.Mailbox.OwnerTTL = 0 }},
		{"log_level", func(c *rendezvous.Config) { c.LogLevel = "loud" }},
		{"log_format", func(c *rendezvous.Config) { c.LogFormat = "xml" }},
	} {
		t.Run(tc.key, func(t *testing.T) {
			cfg := rendezvous.DefaultConfig()
			cfg.DataDir = "/d"
			tc.mutate(&cfg)
			err := cfg.Validate()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.key+":")
		})
	}
}

func TestValidateJoinsErrors(t *testing.T) {
	cfg := rendezvous.DefaultConfig()
	cfg.LogLevel, cfg.LogFormat = "x", "y"
	err := cfg.Validate()
	require.ErrorContains(t, err, "data_dir:")
	require.ErrorContains(t, err, "log_level:")
	require.ErrorContains(t, err, "log_format:")
}
