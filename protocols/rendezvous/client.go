package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/protocols/rendezvous/pb"
	"github.com/natterim/natter/protocols/wire"
)

// lookupLimit is the discover limit Lookup asks for: a peer namespace
// holds one registration, but a foreign server may return more.
const lookupLimit = 8

// maxClientRequest bounds the requests a Client writes.
const maxClientRequest = 64 << 10

// Client talks to rendezvous servers from h. Every call opens its own
// stream, bounded by the context (use one with a timeout).
type Client struct {
	h host.Host
}

// NewClient returns a client that speaks from h.
func NewClient(h host.Host) *Client { return &Client{h: h} }

// Register publishes a signed peer record of h with addrs under ns on
// server, for ttl (0: the server's default). It returns the TTL the server
// granted, or a *StatusError if it refused.
func (c *Client) Register(ctx context.Context, server peer.ID, ns string, addrs []ma.Multiaddr, ttl time.Duration) (time.Duration, error) {
	if ttl < 0 {
		return 0, fmt.Errorf("register: negative ttl %v", ttl)
	}
	priv := c.h.Peerstore().PrivKey(c.h.ID())
	if priv == nil {
		return 0, errors.New("register: no private key for the host")
	}
	rec := &peer.PeerRecord{PeerID: c.h.ID(), Addrs: addrs, Seq: peer.TimestampSeq()}
	env, err := record.Seal(rec, priv)
	if err != nil {
		return 0, fmt.Errorf("register: seal peer record: %w", err)
	}
	data, err := env.Marshal()
	if err != nil {
		return 0, fmt.Errorf("register: marshal peer record: %w", err)
	}
	req := &pb.Message{
		Type: pb.Message_REGISTER.Enum(),
		Register: &pb.Message_Register{
			Ns:               proto.String(ns),
			SignedPeerRecord: data,
			Ttl:              proto.Uint64(ttlSeconds(ttl)),
		},
	}
	resp, err := c.roundTrip(ctx, server, req, pb.Message_REGISTER_RESPONSE)
	if err != nil {
		return 0, fmt.Errorf("register: %w", err)
	}
	rr := resp.GetRegisterResponse()
	if rr == nil {
		return 0, fmt.Errorf("register: response without body: %w", wire.ErrMalformed)
	}
	if rr.GetStatus() != pb.Message_OK {
		return 0, &StatusError{Status: rr.GetStatus(), Text: rr.GetStatusText()}
	}
	if rr.Ttl == nil {
		return ttl, nil
	}
	return secondsDuration(rr.GetTtl()), nil
}

// Unregister removes h's registration under ns on server. The protocol
// has no response; Unregister returns once the server has closed the
// stream, that is, after it handled the request.
func (c *Client) Unregister(ctx context.Context, server peer.ID, ns string) error {
	req := &pb.Message{
		Type:       pb.Message_UNREGISTER.Enum(),
		Unregister: &pb.Message_Unregister{Ns: proto.String(ns)},
	}
	if _, err := c.roundTrip(ctx, server, req, -1); err != nil {
		return fmt.Errorf("unregister: %w", err)
	}
	return nil
}

// Discover returns up to limit registrations under ns on server (ns "":
// every namespace; limit 0: the server's maximum), newer than cookie (nil:
// from the start), and the cookie to pass next time. Registrations whose
// signed record does not verify are left out.
func (c *Client) Discover(ctx context.Context, server peer.ID, ns string, limit int, cookie []byte) ([]Registration, []byte, error) {
	req := &pb.Message{
		Type: pb.Message_DISCOVER.Enum(),
		Discover: &pb.Message_Discover{
			Ns:     proto.String(ns),
			Limit:  proto.Uint64(uint64(max(limit, 0))),
			Cookie: cookie,
		},
	}
	resp, err := c.roundTrip(ctx, server, req, pb.Message_DISCOVER_RESPONSE)
	if err != nil {
		return nil, nil, fmt.Errorf("discover: %w", err)
	}
	dr := resp.GetDiscoverResponse()
	if dr == nil {
		return nil, nil, fmt.Errorf("discover: response without body: %w", wire.ErrMalformed)
	}
	if dr.GetStatus() != pb.Message_OK {
		return nil, nil, &StatusError{Status: dr.GetStatus(), Text: dr.GetStatusText()}
	}
	now := time.Now()
	out := make([]Registration, 0, len(dr.GetRegistrations()))
	for _, r := range dr.GetRegistrations() {
		rns := r.GetNs()
		if rns == "" {
			rns = ns
		}
		if ns != "" && rns != ns {
			continue
		}
		rec, err := openRecord(r.GetSignedPeerRecord())
		if err != nil {
			continue
		}
		if isPeerNamespace(rns) && rns != PeerNamespace(rec.PeerID) {
			continue
		}
		out = append(out, Registration{
			Namespace: rns,
			Peer:      peer.AddrInfo{ID: rec.PeerID, Addrs: rec.Addrs},
			Expires:   now.Add(secondsDuration(r.GetTtl())),
		})
	}
	return out, dr.GetCookie(), nil
}

// Lookup returns the addresses p registered under PeerNamespace(p) on
// server, from a record signed by p's key; ErrNotFound if there is none.
func (c *Client) Lookup(ctx context.Context, server peer.ID, p peer.ID) (peer.AddrInfo, error) {
	regs, _, err := c.Discover(ctx, server, PeerNamespace(p), lookupLimit, nil)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	for _, r := range regs {
		if r.Peer.ID == p {
			return r.Peer, nil
		}
	}
	return peer.AddrInfo{}, ErrNotFound
}

// roundTrip sends req on a new stream and reads a response of type want
// (want < 0: no response; wait for the server to close the stream).
func (c *Client) roundTrip(ctx context.Context, server peer.ID, req *pb.Message, want pb.Message_MessageType) (*pb.Message, error) {
	o := wire.CallOptions{Service: ServiceName, RequestMax: maxClientRequest, ResponseMax: maxResponseSize}
	if want < 0 {
		return nil, wire.Call(ctx, c.h, server, ID, o, req, nil)
	}
	var resp pb.Message
	if err := wire.Call(ctx, c.h, server, ID, o, req, &resp); err != nil {
		return nil, err
	}
	if resp.Type == nil || resp.GetType() != want {
		return nil, fmt.Errorf("got %s, want %s: %w", resp.GetType(), want, wire.ErrMalformed)
	}
	return &resp, nil
}

// secondsDuration converts seconds to a Duration, saturating.
func secondsDuration(secs uint64) time.Duration {
	if secs > uint64(math.MaxInt64/time.Second) {
		return math.MaxInt64
	}
	return time.Duration(secs) * time.Second
}
