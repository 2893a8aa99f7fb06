package cfgload_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/natterim/natter/cmd/internal/cfgload"
	"github.com/natterim/natter/node"
	"github.com/natterim/natter/rendezvous"
)

// Which loader FuzzLoad feeds: the first byte of the input, modulo 2.
const (
	fuzzRendezvous = 0
	fuzzNode       = 1
)

// FuzzLoad feeds arbitrary bytes as a config file to one of the two
// programs' loaders and its validator, as `natter-rendezvous run --config`
// or `natter daemon --config` would: they must return an error or a
// config, never panic or hang. The first byte chooses the program, the rest
// is the file. Seeds: both example configs without their comments (what
// the fuzzer should mutate), and the committed corpus
// (testdata/fuzz/FuzzLoad) of broken variants.
func FuzzLoad(f *testing.F) {
	for _, s := range []struct {
		which byte
		path  string
	}{{fuzzRendezvous, "../../../configs/rendezvous.yaml"}, {fuzzNode, "../../../configs/node.yaml"}} {
		b, err := os.ReadFile(s.path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{s.which}, stripComments(b)...))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > 64<<10 {
			return // config files are small; huge inputs only slow the search
		}
		path := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(path, data[1:], 0o600); err != nil {
			t.Fatal(err)
		}
		if data[0]%2 == fuzzRendezvous {
			c := rendezvous.DefaultConfig()
			if err := cfgload.Load(path, rendezvous.DefaultConfig(), &c, nil, nil); err != nil {
				return
			}
			if c.DataDir == "" {
				c.DataDir = "/d"
			}
			if c.Validate() != nil {
				return
			}
			// What the server does with a valid config.
			_ = c.ListenAddrs()
			_ = c.AnnounceAddrs()
			if _, err := c.BootstrapInfos(); err != nil {
				t.Fatalf("valid config whose dht.bootstrap does not parse: %v", err)
			}
			return
		}
		c := node.DefaultConfig()
		if err := cfgload.Load(path, node.DefaultConfig(), &c, nil, nil); err != nil {
			return
		}
		if c.DataDir == "" {
			c.DataDir = "/d"
		}
		_ = c.Validate()
	})
}

// stripComments drops YAML comment lines and blank lines.
func stripComments(b []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		t := bytes.TrimSpace(l)
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		out = append(append(out, l...), '\n')
	}
	return out
}
