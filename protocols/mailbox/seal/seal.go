// Package seal seals a message to a natter peer so that only that peer can
// open it, and so that it can tell who wrote it: the boxes of the offline
// mailbox (protocols/mailbox), which the rendezvous stores but cannot read.
//
// A natter identity is an Ed25519 key. Sealing uses the X25519 key derived
// from it, as libsodium's crypto_sign_ed25519_{pk,sk}_to_curve25519 do
// (RFC 7748 / RFC 8032): the public key is the recipient's Edwards point
// mapped to its Montgomery u-coordinate (the peer ID inlines the Ed25519
// public key, so a sender needs nothing but the peer ID); the private
// scalar is the first half of SHA-512 of the Ed25519 seed, clamped.
//
//	Envelope{sender_key, recipient, deposit_id, sealed_ms, payload, signature}
//	  signature = Ed25519-Sign(sender, SigningBytes(recipient, deposit_id, sealed_ms, payload))
//	box = crypto_box_seal(Envelope, X25519(recipient))   (NaCl: X25519 + XSalsa20-Poly1305)
//
// crypto_box_seal (golang.org/x/crypto/nacl/box SealAnonymous) uses a fresh
// ephemeral key per box, so the box says nothing about its sender to anyone
// but the recipient, and it is authenticated: any change to it makes Open
// fail. The sender's signature is inside, so only the recipient sees it,
// and it covers the recipient's peer ID and the deposit id: a box cannot be
// re-sealed to someone else, or moved to another deposit, without Open
// noticing. Replays of a whole box are caught by ids: the rendezvous
// refuses a deposit id it has seen, and the recipient stores each message
// id once (Open returns both, for the caller to check).
package seal

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"filippo.io/edwards25519"
	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/nacl/box"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/protocols/mailbox/pb"
)

// domain separates seal signatures from every other signature made with a
// node's key.
const domain = "natter/mailbox/seal/v1\n"

// Overhead is what sealing adds around the envelope (ephemeral public key
// and authenticator).
const Overhead = box.AnonymousOverhead

// IDLen is the length of a deposit id.
const IDLen = 16

// Errors of Open. Every error Open returns wraps exactly one of them.
var (
	// ErrBroken: the box does not open with our key (not sealed to us,
	// tampered with, truncated).
	ErrBroken = errors.New("box does not open")
	// ErrMalformed: the box opened but its content does not decode.
	ErrMalformed = errors.New("sealed content is malformed")
	// ErrNotForUs: the content names another recipient (re-sealed).
	ErrNotForUs = errors.New("box is addressed to another peer")
	// ErrBadSignature: the sender's signature does not verify.
	ErrBadSignature = errors.New("sender's signature does not verify")
	// ErrTooLarge: the box is larger than the caller accepts.
	ErrTooLarge = errors.New("box too large")
)

// Opened is a box's verified content.
type Opened struct {
	// Sender signed the content (derived from its public key).
	Sender    peer.ID
	DepositID [IDLen]byte
	// Sealed is the sender's clock when it sealed the box.
	Sealed  time.Time
	Payload []byte
}

// SigningBytes are the bytes the sender signs.
func SigningBytes(recipient peer.ID, depositID []byte, sealedMs int64, payload []byte) []byte {
	b := make([]byte, 0, len(domain)+2+len(recipient)+2+len(depositID)+8+4+len(payload))
	b = append(b, domain...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(recipient)))
	b = append(b, recipient...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(depositID)))
	b = append(b, depositID...)
	b = binary.BigEndian.AppendUint64(b, uint64(sealedMs))
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// Seal signs payload with sender's key and seals it to recipient for the
// deposit depositID.
func Seal(sender crypto.PrivKey, recipient peer.ID, depositID [IDLen]byte, payload []byte, now time.Time) ([]byte, error) {
	if sender.Type() != cryptopb.KeyType_Ed25519 {
		return nil, fmt.Errorf("seal: sender key is %s, not Ed25519", sender.Type())
	}
	pk, err := PublicX25519(recipient)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	senderKey, err := crypto.MarshalPublicKey(sender.GetPublic())
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	ms := now.UnixMilli()
	sig, err := sender.Sign(SigningBytes(recipient, depositID[:], ms, payload))
	if err != nil {
		return nil, fmt.Errorf("seal: sign: %w", err)
	}
	env, err := proto.Marshal(&pb.Envelope{
		SenderKey: senderKey, Recipient: []byte(recipient), DepositId: depositID[:],
		SealedMs: ms, Payload: payload, Signature: sig,
	})
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	out, err := box.SealAnonymous(nil, env, pk, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return out, nil
}

// Open opens a box sealed to key's peer, checks that the content names it
// as the recipient and that the sender's signature verifies. Boxes larger
// than maxSize are refused before any work.
func Open(key crypto.PrivKey, b []byte, maxSize int) (Opened, error) {
	if len(b) > maxSize {
		return Opened{}, fmt.Errorf("%d bytes (max %d): %w", len(b), maxSize, ErrTooLarge)
	}
	if len(b) <= Overhead {
		return Opened{}, fmt.Errorf("%d bytes, shorter than a sealed box: %w", len(b), ErrBroken)
	}
	self, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return Opened{}, fmt.Errorf("open: %w", err)
	}
	priv, err := PrivateX25519(key)
	if err != nil {
		return Opened{}, fmt.Errorf("open: %w", err)
	}
	pub, err := PublicX25519(self)
	if err != nil {
		return Opened{}, fmt.Errorf("open: %w", err)
	}
	plain, ok := box.OpenAnonymous(nil, b, pub, priv)
	clear(priv[:])
	if !ok {
		return Opened{}, ErrBroken
	}
	var env pb.Envelope
	if err := proto.Unmarshal(plain, &env); err != nil {
		return Opened{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	recipient, err := peer.IDFromBytes(env.GetRecipient())
	if err != nil {
		return Opened{}, fmt.Errorf("recipient: %w", ErrMalformed)
	}
	if recipient != self {
		return Opened{}, ErrNotForUs
	}
	if len(env.GetDepositId()) != IDLen {
		return Opened{}, fmt.Errorf("deposit id of %d bytes: %w", len(env.GetDepositId()), ErrMalformed)
	}
	spub, err := crypto.UnmarshalPublicKey(env.GetSenderKey())
	if err != nil {
		return Opened{}, fmt.Errorf("sender key: %w", ErrMalformed)
	}
	if spub.Type() != cryptopb.KeyType_Ed25519 {
		return Opened{}, fmt.Errorf("sender key is %s: %w", spub.Type(), ErrMalformed)
	}
	ok, err = spub.Verify(SigningBytes(recipient, env.GetDepositId(), env.GetSealedMs(), env.GetPayload()), env.GetSignature())
	if err != nil || !ok {
		return Opened{}, ErrBadSignature
	}
	sender, err := peer.IDFromPublicKey(spub)
	if err != nil {
		return Opened{}, fmt.Errorf("sender key: %w", ErrMalformed)
	}
	return Opened{
		Sender:    sender,
		DepositID: [IDLen]byte(env.GetDepositId()),
		Sealed:    time.UnixMilli(env.GetSealedMs()),
		Payload:   env.GetPayload(),
	}, nil
}

// PublicX25519 derives the X25519 public key of an Ed25519 peer ID (the
// Montgomery form of its Edwards point). It refuses a peer ID without an
// inline Ed25519 key, a point that is not on the curve, and a point of
// small order (anyone could compute the shared secret).
func PublicX25519(p peer.ID) (*[32]byte, error) {
	pub, err := p.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("peer %s has no inline public key: %w", p, err)
	}
	if pub.Type() != cryptopb.KeyType_Ed25519 {
		return nil, fmt.Errorf("peer %s has a %s key, not Ed25519", p, pub.Type())
	}
	raw, err := pub.Raw()
	if err != nil {
		return nil, err
	}
	pt, err := new(edwards25519.Point).SetBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("peer %s: public key is not a curve point", p)
	}
	if new(edwards25519.Point).MultByCofactor(pt).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return nil, fmt.Errorf("peer %s: public key is of small order", p)
	}
	var out [32]byte
	copy(out[:], pt.BytesMontgomery())
	return &out, nil
}

// PrivateX25519 derives the X25519 private key of an Ed25519 identity:
// SHA-512 of the seed, first half, clamped (RFC 8032 section 5.1.5).
func PrivateX25519(key crypto.PrivKey) (*[32]byte, error) {
	if key.Type() != cryptopb.KeyType_Ed25519 {
		return nil, fmt.Errorf("key is %s, not Ed25519", key.Type())
	}
	raw, err := key.Raw() // seed || public key
	if err != nil {
		return nil, err
	}
	if len(raw) != 64 {
		return nil, fmt.Errorf("Ed25519 private key of %d bytes", len(raw))
	}
	h := sha512.Sum512(raw[:32])
	clear(raw)
	var out [32]byte
	copy(out[:], h[:32])
	clear(h[:])
	out[0] &= 248
	out[31] &= 127
	out[31] |= 64
	return &out, nil
}
