package wire_test

import (
	"testing"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/protocols/wire"
)

func TestSourceKey(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"/ip4/203.0.113.5/tcp/4001", "203.0.113.5/32"},
		{"/ip4/203.0.113.5/udp/4001/quic-v1", "203.0.113.5/32"},
		{"/ip6/2001:db8:1:2ff:1::1/tcp/1", "2001:db8:1:200::/56"},
		{"/ip6/::ffff:198.51.100.1/tcp/1", "198.51.100.1/32"},
		{"/ip4/203.0.113.5/tcp/4001/p2p/12D3KooWLfz1qrVbh7kBqSJEK4iijx4vqaSzB1bgAHzYU6tXn7D1/p2p-circuit", ""},
		{"/dns4/example.com/tcp/1", ""},
	} {
		got, ok := wire.SourceKey(ma.StringCast(tc.addr))
		if tc.want == "" {
			require.False(t, ok, tc.addr)
			continue
		}
		require.True(t, ok, tc.addr)
		require.Equal(t, tc.want, got.String(), tc.addr)
	}
	_, ok := wire.SourceKey(nil)
	require.False(t, ok)
}
