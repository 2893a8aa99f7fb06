package cfgload_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/cmd/internal/cfgload"
)

type relay struct {
	MaxReservations int           `mapstructure:"max_reservations"`
	TTL             time.Duration `mapstructure:"reservation_ttl"`
}

type config struct {
	DataDir string        `mapstructure:"data_dir"`
	Listen  []string      `mapstructure:"listen"`
	Debug   bool          `mapstructure:"debug"`
	Timeout time.Duration `mapstructure:"timeout"`
	Relay   relay         `mapstructure:"relay"`
}

func defaults() config {
	return config{
		DataDir: "/default",
		Listen:  []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"},
		Timeout: 10 * time.Second,
		Relay:   relay{MaxReservations: 4096, TTL: time.Hour},
	}
}

var flagKeys = map[string]string{
	"data-dir":         "data_dir",
	"listen":           "listen",
	"debug":            "debug",
	"max-reservations": "relay.max_reservations",
}

func flagSet(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	d := defaults()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.String("data-dir", d.DataDir, "")
	fs.StringArray("listen", d.Listen, "")
	fs.Bool("debug", false, "")
	fs.Int("max-reservations", d.Relay.MaxReservations, "")
	require.NoError(t, fs.Parse(args))
	return fs
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func load(t *testing.T, path string, fs *pflag.FlagSet) (config, error) {
	t.Helper()
	var c config
	err := cfgload.Load(path, defaults(), &c, fs, flagKeys)
	return c, err
}

func TestDefaults(t *testing.T) {
	c, err := load(t, "", flagSet(t))
	require.NoError(t, err)
	require.Equal(t, defaults(), c)
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, `
data_dir: /from-file
listen: [/ip4/1.2.3.4/tcp/1]
timeout: 90s
relay:
  max_reservations: 10
  reservation_ttl: 2h
`)
	// File over defaults; a shorter list replaces, not merges.
	c, err := load(t, file, flagSet(t))
	require.NoError(t, err)
	require.Equal(t, "/from-file", c.DataDir)
	require.Equal(t, []string{"/ip4/1.2.3.4/tcp/1"}, c.Listen)
	require.Equal(t, 90*time.Second, c.Timeout)
	require.Equal(t, 10, c.Relay.MaxReservations)
	require.Equal(t, 2*time.Hour, c.Relay.TTL)

	// Env over file.
	t.Setenv("NATTER_DATA_DIR", "/from-env")
	t.Setenv("NATTER_RELAY_MAX_RESERVATIONS", "20")
	t.Setenv("NATTER_LISTEN", "/ip4/5.6.7.8/tcp/2,/ip4/5.6.7.8/udp/2/quic-v1")
	t.Setenv("NATTER_DEBUG", "true")
	t.Setenv("NATTER_RELAY_RESERVATION_TTL", "3m")
	c, err = load(t, file, flagSet(t))
	require.NoError(t, err)
	require.Equal(t, "/from-env", c.DataDir)
	require.Equal(t, 20, c.Relay.MaxReservations)
	require.Equal(t, []string{"/ip4/5.6.7.8/tcp/2", "/ip4/5.6.7.8/udp/2/quic-v1"}, c.Listen)
	require.True(t, c.Debug)
	require.Equal(t, 3*time.Minute, c.Relay.TTL)

	// Explicit flags over env; flags left at their defaults do not count.
	c, err = load(t, file, flagSet(t, "--data-dir", "/from-flag", "--listen", "/ip4/9.9.9.9/tcp/3", "--listen", "/ip6/::1/tcp/3", "--max-reservations", "30"))
	require.NoError(t, err)
	require.Equal(t, "/from-flag", c.DataDir)
	require.Equal(t, []string{"/ip4/9.9.9.9/tcp/3", "/ip6/::1/tcp/3"}, c.Listen)
	require.Equal(t, 30, c.Relay.MaxReservations)
	require.Equal(t, 3*time.Minute, c.Relay.TTL, "env still wins over file for keys without a flag")
}

func TestFlagDefaultsDoNotOverrideFile(t *testing.T) {
	file := writeFile(t, "relay:\n  max_reservations: 7\n")
	c, err := load(t, file, flagSet(t))
	require.NoError(t, err)
	require.Equal(t, 7, c.Relay.MaxReservations)
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"unknown top-level key", "data_dri: /x\n", `unknown key "data_dri"`},
		{"unknown nested key", "relay:\n  max_reservation: 1\n", `unknown key "relay.max_reservation"`},
		{"bad yaml", "listen: [\n", "config "},
		{"bad duration", "timeout: soon\n", "timeout"},
		{"bad int", "relay:\n  max_reservations: lots\n", "max_reservations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, tc.body)
			_, err := load(t, p, flagSet(t))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestBadYAMLNamesFile(t *testing.T) {
	p := writeFile(t, "a: b: c\n")
	_, err := load(t, p, flagSet(t))
	require.ErrorContains(t, err, "config "+p+": ")
}

func TestMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := load(t, p, flagSet(t))
	require.EqualError(t, err, "config "+p+": no such file or directory")
}

func TestEnvBadDuration(t *testing.T) {
	t.Setenv("NATTER_TIMEOUT", "forever")
	_, err := load(t, "", flagSet(t))
	require.ErrorContains(t, err, "timeout")
}

func TestBadArguments(t *testing.T) {
	var c config
	require.Error(t, cfgload.Load("", defaults(), c, nil, nil))
	require.Error(t, cfgload.Load("", 5, &c, nil, nil))
	require.Error(t, cfgload.Load("", defaults(), &c, nil, map[string]string{"x": "nope"}))
	require.NoError(t, cfgload.Load("", defaults(), &c, nil, flagKeys))
}
