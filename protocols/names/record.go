package names

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/protocols/names/pb"
	"github.com/natterim/natter/protocols/wire"
)

// Domain and PayloadType of the signed envelope holding a claim. The
// domain is part of what is signed, so a claim's signature cannot be
// passed off as any other libp2p record's.
const (
	Domain      = "natter-names"
	PayloadType = "/natter/names/claim"
)

// MaxRecordSize bounds a signed record (an envelope): an Ed25519 record is
// about 200 bytes; this leaves room for an RSA key.
const MaxRecordSize = 2 << 10

// ErrBadRecord is wrapped by every error Open returns for a record that is
// malformed or does not verify. It matches wire.ErrInvalid too.
var ErrBadRecord error = badRecord{}

type badRecord struct{}

func (badRecord) Error() string        { return "bad name record" }
func (badRecord) Is(target error) bool { return target == wire.ErrInvalid }

// Op is what a record claims.
type Op = pb.Op

// Ops of a record.
const (
	OpRegister = pb.Op_REGISTER
	OpRelease  = pb.Op_RELEASE
)

// Record is a verified claim: Peer's key signed "Op Name at Seq".
type Record struct {
	Op   Op
	Name string
	Peer peer.ID
	// Seq is the signer's clock when it signed, in unix milliseconds;
	// strictly increasing for one name.
	Seq uint64
}

// claim adapts Record to libp2p's record.Record.
type claim struct{ r Record }

func (*claim) Domain() string { return Domain }
func (*claim) Codec() []byte  { return []byte(PayloadType) }

func (c *claim) MarshalRecord() ([]byte, error) {
	return proto.Marshal(&pb.Claim{Op: c.r.Op, Name: c.r.Name, PeerId: []byte(c.r.Peer), Seq: c.r.Seq})
}

func (c *claim) UnmarshalRecord(b []byte) error {
	var m pb.Claim
	if err := proto.Unmarshal(b, &m); err != nil {
		return err
	}
	id, err := peer.IDFromBytes(m.GetPeerId())
	if err != nil {
		return fmt.Errorf("peer id: %w", err)
	}
	c.r = Record{Op: m.GetOp(), Name: m.GetName(), Peer: id, Seq: m.GetSeq()}
	return nil
}

// Sign seals r with sk, which must be the key of r.Peer, and returns the
// marshalled envelope: what REGISTER and RELEASE carry.
func Sign(sk crypto.PrivKey, r Record) ([]byte, error) {
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return nil, fmt.Errorf("sign name record: %w", err)
	}
	if id != r.Peer {
		return nil, errors.New("sign name record: the key is not the record's peer")
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	env, err := record.Seal(&claim{r}, sk)
	if err != nil {
		return nil, fmt.Errorf("sign name record: %w", err)
	}
	b, err := env.Marshal()
	if err != nil {
		return nil, fmt.Errorf("sign name record: %w", err)
	}
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("sign name record: %d bytes (max %d): %w", len(b), MaxRecordSize, wire.ErrTooLarge)
	}
	return b, nil
}

// Open verifies a signed record and returns its claim: the envelope's
// signature is valid for its key, that key is the key of the peer the
// claim names (so nobody can sign for another peer ID), the payload is a
// claim, its op is REGISTER or RELEASE, its name is canonical and follows
// the rule, and its seq is set. Errors wrap ErrBadRecord. Open trusts
// nothing: it is what the server runs on every REGISTER and RELEASE, and
// what a node runs on every LOOKUP answer.
func Open(raw []byte) (Record, error) {
	if len(raw) == 0 {
		return Record{}, fmt.Errorf("%w: empty", ErrBadRecord)
	}
	if len(raw) > MaxRecordSize {
		return Record{}, fmt.Errorf("%w: %d bytes (max %d)", ErrBadRecord, len(raw), MaxRecordSize)
	}
	var c claim
	env, err := record.ConsumeTypedEnvelope(raw, &c)
	if err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrBadRecord, err)
	}
	if !bytes.Equal(env.PayloadType, c.Codec()) {
		return Record{}, fmt.Errorf("%w: payload type %q is not a name claim", ErrBadRecord, truncate(string(env.PayloadType)))
	}
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil {
		return Record{}, fmt.Errorf("%w: signer key: %v", ErrBadRecord, err)
	}
	if signer != c.r.Peer {
		return Record{}, fmt.Errorf("%w: signed by %s, not by the peer it names (%s)", ErrBadRecord, signer.ShortString(), c.r.Peer.ShortString())
	}
	if err := c.r.check(); err != nil {
		return Record{}, err
	}
	return c.r, nil
}

func (r Record) check() error {
	if r.Op != OpRegister && r.Op != OpRelease {
		return fmt.Errorf("%w: op %d is neither REGISTER nor RELEASE", ErrBadRecord, r.Op)
	}
	canon, err := Normalize(r.Name)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if canon != r.Name {
		return fmt.Errorf("%w: %w: %q is not in canonical (lower-case) form", ErrBadRecord, ErrInvalidName, r.Name)
	}
	if r.Seq == 0 || r.Seq > 1<<62 {
		return fmt.Errorf("%w: seq %d out of range", ErrBadRecord, r.Seq)
	}
	return nil
}
