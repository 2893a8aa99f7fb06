package wire

import (
	"net/netip"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// IPv6SourcePrefix is the prefix length SourceKey groups IPv6 addresses
// by: one home (or one attacker) usually gets a /56 or a /48, so a per-/128
// limit would mean nothing.
const IPv6SourcePrefix = 56

// SourceKey names the source of a connection for per-IP limits: the IPv4
// address, or the /56 of an IPv6 address (IPv4-mapped IPv6 counts as
// IPv4). ok is false for a multiaddr without an IP (a relayed connection,
// mocknet).
func SourceKey(a ma.Multiaddr) (netip.Prefix, bool) {
	if a == nil {
		return netip.Prefix{}, false
	}
	if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
		return netip.Prefix{}, false // the IP is the relay's
	}
	ip, err := manet.ToIP(a)
	if err != nil {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Prefix{}, false
	}
	addr = addr.Unmap()
	if addr.Is4() {
		return netip.PrefixFrom(addr, 32), true
	}
	p, err := addr.Prefix(IPv6SourcePrefix)
	if err != nil {
		return netip.Prefix{}, false
	}
	return p, true
}
