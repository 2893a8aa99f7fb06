package rendezvous

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/natterim/natter/protocols/rendezvous/pb"
)

// ID is the protocol ID of libp2p rendezvous.
const ID = protocol.ID("/rendezvous/1.0.0")

// ServiceName is the resource-manager service of the registry's streams.
const ServiceName = "natter.rendezvous"

// PeerNamespacePrefix starts every per-peer namespace (see PeerNamespace).
const PeerNamespacePrefix = "natter/peer/"

// maxResponseSize bounds every response, on the server when writing and on
// the client when reading.
const maxResponseSize = 1 << 20

// PeerNamespace is the namespace under which peer p registers itself; the
// server accepts registrations there only from p.
func PeerNamespace(p peer.ID) string { return PeerNamespacePrefix + p.String() }

// ErrNotFound is returned by Client.Lookup when the server holds no valid
// registration of the peer.
var ErrNotFound = errors.New("rendezvous: peer not registered")

// StatusError is a non-OK status returned by a rendezvous server.
type StatusError struct {
	Status pb.Message_ResponseStatus
	Text   string
}

// Error implements error.
func (e *StatusError) Error() string {
	if e.Text == "" {
		return fmt.Sprintf("rendezvous: %s", e.Status)
	}
	return fmt.Sprintf("rendezvous: %s: %s", e.Status, e.Text)
}

// Registration is one peer's signed addresses under one namespace.
type Registration struct {
	Namespace string
	// Peer holds the ID and addresses of the verified signed peer record.
	Peer peer.AddrInfo
	// Expires is when the registration lapses (on a client: now + the TTL
	// left as reported by the server).
	Expires time.Time
	// Registered is when the server accepted it (zero on a client: the
	// protocol does not carry it).
	Registered time.Time
}

// validNamespace reports why ns is not an acceptable namespace, or "".
// Empty is rejected here; Discover and Unregister allow it separately.
func validNamespace(ns string, maxLen int) string {
	switch {
	case ns == "":
		return "empty namespace"
	case len(ns) > maxLen:
		return "namespace too long"
	case !utf8.ValidString(ns):
		return "namespace not UTF-8"
	}
	for _, r := range ns {
		if !unicode.IsPrint(r) {
			return "namespace not printable"
		}
	}
	return ""
}

// isPeerNamespace reports whether ns is reserved for one peer.
func isPeerNamespace(ns string) bool { return strings.HasPrefix(ns, PeerNamespacePrefix) }

// Cookie layout: version byte, registration counter (big endian), FNV-64a
// hash of the namespace (so a cookie is not reused for another namespace).
const (
	cookieVersion = 1
	cookieLen     = 1 + 8 + 8
)

func nsHash(ns string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(ns))
	return h.Sum64()
}

func encodeCookie(ns string, seq uint64) []byte {
	b := make([]byte, 0, cookieLen)
	b = append(b, cookieVersion)
	b = binary.BigEndian.AppendUint64(b, seq)
	return binary.BigEndian.AppendUint64(b, nsHash(ns))
}

// decodeCookie returns the position in c; an empty cookie is position 0.
func decodeCookie(ns string, c []byte) (uint64, bool) {
	if len(c) == 0 {
		return 0, true
	}
	if len(c) != cookieLen || c[0] != cookieVersion || binary.BigEndian.Uint64(c[9:]) != nsHash(ns) {
		return 0, false
	}
	return binary.BigEndian.Uint64(c[1:9]), true
}

// ttlSeconds converts d to whole seconds, rounding up.
func ttlSeconds(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64((d + time.Second - 1) / time.Second)
}
