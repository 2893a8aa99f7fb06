package rendezvous

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
)

// errBadRecord marks a signed peer record that does not verify.
var errBadRecord = errors.New("invalid signed peer record")

// openRecord verifies a signed envelope holding a peer record: the
// signature, the payload type, and that the signing key is the key of the
// record's peer ID. It does not check who sent it.
func openRecord(data []byte) (*peer.PeerRecord, error) {
	var rec peer.PeerRecord
	env, err := record.ConsumeTypedEnvelope(data, &rec)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadRecord, err)
	}
	if !bytes.Equal(env.PayloadType, peer.PeerRecordEnvelopePayloadType) {
		return nil, fmt.Errorf("%w: payload is not a peer record", errBadRecord)
	}
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: signer key: %v", errBadRecord, err)
	}
	if signer != rec.PeerID {
		return nil, fmt.Errorf("%w: signed by %s, not by the record's peer", errBadRecord, signer)
	}
	return &rec, nil
}
