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
