package rendezvous

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// ErrAddrInUse means a listen address is taken by another process.
var ErrAddrInUse = errors.New("address already in use")

// socketAddr returns the IP socket part (/ip4|ip6/X/tcp|udp/N) of a
// listen address as a net.Addr.
func socketAddr(a ma.Multiaddr) (net.Addr, error) {
	if len(a) < 2 {
		return nil, errors.New("expected an ip address and a port")
	}
	na, err := manet.ToNetAddr(ma.Multiaddr{a[0], a[1]})
	if err != nil {
		return nil, errors.New("expected /ip4 or /ip6 followed by /tcp or /udp")
	}
	return na, nil
}

// probeListen binds the socket of a listen address and closes it again,
// so that a taken port is reported with its address before libp2p (which
// only fails when every address fails) quietly skips it. It returns
// errUnavailable for an IPv6 wildcard address on a machine without IPv6.
func probeListen(a ma.Multiaddr) error {
	na, err := socketAddr(a)
	if err != nil {
		return err
	}
	switch na := na.(type) {
	case *net.TCPAddr:
		network := "tcp4"
		if na.IP.To4() == nil {
			network = "tcp6"
		}
		l, err := net.ListenTCP(network, na)
		if err != nil {
			return classify(err, na.IP)
		}
		return l.Close()
	case *net.UDPAddr:
		network := "udp4"
		if na.IP.To4() == nil {
			network = "udp6"
		}
		c, err := net.ListenUDP(network, na)
		if err != nil {
			return classify(err, na.IP)
		}
		return c.Close()
	}
	return fmt.Errorf("unsupported address %s", na)
}

var errUnavailable = errors.New("IPv6 is not available on this machine")

func classify(err error, ip net.IP) error {
	noFamily := errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EPROTONOSUPPORT)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return ErrAddrInUse
	case ip != nil && ip.To4() == nil && ip.IsUnspecified() && (noFamily || errors.Is(err, syscall.EADDRNOTAVAIL)):
		return fmt.Errorf("%w: %v", errUnavailable, err)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return errors.New("not an address of this machine (behind a 1:1 NAT, listen on 0.0.0.0 and set announce)")
	case errors.Is(err, syscall.EACCES):
		return errors.New("permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)")
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}

// withP2P appends /p2p/<id> to each address.
func withP2P(addrs []ma.Multiaddr, id peer.ID) []ma.Multiaddr {
	p2p, err := ma.NewComponent("p2p", id.String())
	if err != nil {
		return nil
	}
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		if _, err := a.ValueForProtocol(ma.P_P2P); err == nil {
			out = append(out, a)
			continue
		}
		out = append(out, a.Encapsulate(p2p))
	}
	return out
}

// DialableAddrs computes, without starting the network, the addresses a
// server with id and cfg can be dialled on, each ending in /p2p/<id>: the
// announce addresses if any, else the listen addresses with 0.0.0.0 and ::
// expanded to this machine's interface addresses (link-local ones left
// out). A listen port of 0 is only known once the server runs.
func DialableAddrs(cfg Config, id peer.ID) ([]ma.Multiaddr, error) {
	if ann := cfg.AnnounceAddrs(); len(ann) > 0 {
		return withP2P(ann, id), nil
	}
	ifaces, err := manet.InterfaceMultiaddrs()
	if err != nil {
		return nil, fmt.Errorf("interface addresses: %w", err)
	}
	var out []ma.Multiaddr
	for _, a := range cfg.ListenAddrs() {
		if !manet.IsIPUnspecified(a) {
			out = append(out, a)
			continue
		}
		res, err := manet.ResolveUnspecifiedAddresses([]ma.Multiaddr{a}, ifaces)
		if err != nil {
			continue // e.g. no IPv6 on this machine
		}
		for _, r := range res {
			if !manet.IsIP6LinkLocal(r) {
				out = append(out, r)
			}
		}
	}
	return withP2P(out, id), nil
}
