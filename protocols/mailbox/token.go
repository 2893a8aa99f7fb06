package mailbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/protocols/mailbox/pb"
)

// A deposit token is a recipient's signed permission for one sender to
// deposit boxes in the recipient's mailbox until it expires:
//
//	Token{recipient, sender, expires_unix, signature}
//	signature = Sign(recipient's key, TokenSigningBytes(recipient, sender, expires))
//
// The rendezvous checks it on every deposit with the recipient's public key,
// which it derives from the recipient's peer ID (Ed25519 keys are inlined
// in natter peer IDs), and checks that sender is the peer depositing. So
// the server never needs the recipient's contact list, and a token is
// useless to anyone but the sender it names. Nodes give a fresh token to
// each accepted contact whenever they connect; a removed or blocked contact
// gets no new one and its last one expires.

// tokenDomain separates token signatures from every other signature made
// with a node's key.
const tokenDomain = "natter/mailbox/token/v1\n"

// ErrBadToken wraps every reason a token is refused.
var ErrBadToken = errors.New("bad deposit token")

// Token is a decoded, verified deposit token.
type Token struct {
	Recipient peer.ID
	Sender    peer.ID
	Expires   time.Time
	// Raw is the encoding, as it travels.
	Raw []byte
}

// TokenSigningBytes are the bytes a token's signature covers.
func TokenSigningBytes(recipient, sender peer.ID, expiresUnix int64) []byte {
	b := make([]byte, 0, len(tokenDomain)+4+len(recipient)+len(sender)+8)
	b = append(b, tokenDomain...)
	b = appendLP(b, []byte(recipient))
	b = appendLP(b, []byte(sender))
	return binary.BigEndian.AppendUint64(b, uint64(expiresUnix))
}

// appendLP appends b prefixed with its length (2 bytes, big endian).
func appendLP(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// IssueToken signs a token letting sender deposit in key's mailbox until
// expires (rounded down to the second).
func IssueToken(key crypto.PrivKey, sender peer.ID, expires time.Time) ([]byte, error) {
	recipient, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("issue token: %w", err)
	}
	if err := sender.Validate(); err != nil {
		return nil, fmt.Errorf("issue token: sender: %w", err)
	}
	exp := expires.Unix()
	sig, err := key.Sign(TokenSigningBytes(recipient, sender, exp))
	if err != nil {
		return nil, fmt.Errorf("issue token: sign: %w", err)
	}
	b, err := proto.Marshal(&pb.Token{Recipient: []byte(recipient), Sender: []byte(sender), ExpiresUnix: exp, Signature: sig})
	if err != nil {
		return nil, fmt.Errorf("issue token: %w", err)
	}
	if len(b) > MaxTokenSize {
		return nil, fmt.Errorf("issue token: %d bytes, max %d", len(b), MaxTokenSize)
	}
	return b, nil
}

// ParseToken decodes a token and checks its signature, without checking
// who it names or whether it expired (see Check). Errors wrap ErrBadToken.
func ParseToken(b []byte) (Token, error) {
	if len(b) == 0 {
		return Token{}, fmt.Errorf("no token: %w", ErrBadToken)
	}
	if len(b) > MaxTokenSize {
		return Token{}, fmt.Errorf("token of %d bytes (max %d): %w", len(b), MaxTokenSize, ErrBadToken)
	}
	var m pb.Token
	if err := proto.Unmarshal(b, &m); err != nil {
		return Token{}, fmt.Errorf("token does not decode: %w", ErrBadToken)
	}
	recipient, err := peer.IDFromBytes(m.GetRecipient())
	if err != nil {
		return Token{}, fmt.Errorf("token recipient: %w", ErrBadToken)
	}
	sender, err := peer.IDFromBytes(m.GetSender())
	if err != nil {
		return Token{}, fmt.Errorf("token sender: %w", ErrBadToken)
	}
	pub, err := recipient.ExtractPublicKey()
	if err != nil {
		return Token{}, fmt.Errorf("token recipient has no inline public key: %w", ErrBadToken)
	}
	ok, err := pub.Verify(TokenSigningBytes(recipient, sender, m.GetExpiresUnix()), m.GetSignature())
	if err != nil || !ok {
		return Token{}, fmt.Errorf("token signature does not verify: %w", ErrBadToken)
	}
	return Token{Recipient: recipient, Sender: sender, Expires: time.Unix(m.GetExpiresUnix(), 0), Raw: b}, nil
}

// Check verifies that the token lets sender deposit for recipient at now.
func (t Token) Check(recipient, sender peer.ID, now time.Time) error {
	switch {
	case t.Recipient != recipient:
		return fmt.Errorf("token is for another recipient: %w", ErrBadToken)
	case t.Sender != sender:
		return fmt.Errorf("token names another sender: %w", ErrBadToken)
	case !now.Before(t.Expires):
		return fmt.Errorf("token expired at %s: %w", t.Expires.UTC().Format(time.RFC3339), ErrBadToken)
	}
	return nil
}

// VerifyToken is ParseToken then Check.
func VerifyToken(b []byte, recipient, sender peer.ID, now time.Time) (Token, error) {
	t, err := ParseToken(b)
	if err != nil {
		return Token{}, err
	}
	if err := t.Check(recipient, sender, now); err != nil {
		return Token{}, err
	}
	return t, nil
}
