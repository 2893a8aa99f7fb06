// Package invite encodes and parses natter invites: the string a user
// hands a friend so the friend's node can find them.
//
// An invite names a peer and the rendezvous servers it uses:
//
//	natter:12D3KooW...?r=/dns4/rdv.example.org/tcp/4001/p2p/12D3KooW...&n=alice
//
// r (repeatable) is a rendezvous multiaddr ending in /p2p/<server id>, so
// that the server's identity is pinned; n is an optional suggested name.
// The format is plain text on purpose: it survives chat apps and e-mail and
// can be read by a human. Parse is strict and bounded: it is fed whatever
// users paste.
package invite

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Scheme is the invite URI scheme.
const Scheme = "natter"

// Limits on what Parse accepts.
const (
	MaxLen        = 4096
	MaxRendezvous = 8
	MaxNameLen    = 64
)

// ErrInvalid is wrapped by every Parse error.
var ErrInvalid = errors.New("invalid invite")

// Invite is a decoded invite.
type Invite struct {
	Peer       peer.ID
	Rendezvous []peer.AddrInfo
	Name       string
}

// String encodes the invite.
func (i Invite) String() string {
	q := make([]string, 0, len(i.Rendezvous)+1)
	for _, ai := range i.Rendezvous {
		addrs, err := peer.AddrInfoToP2pAddrs(&ai)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			q = append(q, "r="+a.String())
		}
	}
	if i.Name != "" {
		q = append(q, "n="+url.QueryEscape(i.Name))
	}
	s := Scheme + ":" + i.Peer.String()
	if len(q) > 0 {
		s += "?" + strings.Join(q, "&")
	}
	return s
}

// IsInvite reports whether s looks like an invite (rather than a peer ID
// or a name).
func IsInvite(s string) bool { return strings.HasPrefix(s, Scheme+":") }

// Parse decodes an invite.
func Parse(s string) (Invite, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxLen {
		return Invite{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxLen)
	}
	if !IsInvite(s) {
		return Invite{}, fmt.Errorf("%w: must start with %q", ErrInvalid, Scheme+":")
	}
	rest := strings.TrimPrefix(s, Scheme+":")
	idPart, query, _ := strings.Cut(rest, "?")
	id, err := peer.Decode(idPart)
	if err != nil {
		return Invite{}, fmt.Errorf("%w: peer id: %v", ErrInvalid, err)
	}
	if id.String() != idPart {
		// peer.Decode accepts some non-canonical spellings; an invite
		// must say exactly one thing.
		return Invite{}, fmt.Errorf("%w: peer id %q is not in canonical form", ErrInvalid, idPart)
	}
	inv := Invite{Peer: id}
	vals, err := url.ParseQuery(query)
	if err != nil {
		return Invite{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for k := range vals {
		if k != "r" && k != "n" {
			return Invite{}, fmt.Errorf("%w: unknown field %q", ErrInvalid, k)
		}
	}
	rs := vals["r"]
	if len(rs) > MaxRendezvous {
		return Invite{}, fmt.Errorf("%w: more than %d rendezvous addresses", ErrInvalid, MaxRendezvous)
	}
	addrs := make([]ma.Multiaddr, 0, len(rs))
	for _, r := range rs {
		a, err := ma.NewMultiaddr(r)
		if err != nil {
			return Invite{}, fmt.Errorf("%w: rendezvous %q: %v", ErrInvalid, r, err)
		}
		addrs = append(addrs, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil {
		return Invite{}, fmt.Errorf("%w: rendezvous address must end in /p2p/<id>: %v", ErrInvalid, err)
	}
	inv.Rendezvous = infos
	if n := vals.Get("n"); n != "" {
		if len(n) > MaxNameLen || !utf8.ValidString(n) || strings.ContainsFunc(n, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return Invite{}, fmt.Errorf("%w: bad name", ErrInvalid)
		}
		inv.Name = n
	}
	return inv, nil
}
