package chat

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/wire"
)

// ID is the protocol ID.
const ID = protocol.ID("/natter/chat/1.0.0")

// ServiceName is the resource-manager service of chat streams.
const ServiceName = "natter.chat"

const (
	// MaxTextBytes is the longest text of one message, in bytes.
	MaxTextBytes = 64 << 10
	// MaxRefs is the most message ids one receipt may name.
	MaxRefs = 1024
	// MaxBatch is the most messages in one frame.
	MaxBatch = 256
	// MaxFrameSize bounds one frame's encoding, in bytes.
	MaxFrameSize = 1 << 20
	// IDLen is the length of a message id.
	IDLen = 16
)

// Errors a sender can check for before sending anything.
var (
	ErrTextTooLong = fmt.Errorf("text is longer than %d bytes", MaxTextBytes)
	ErrNotUTF8     = errors.New("text is not valid UTF-8")
	ErrEmptyText   = errors.New("text is empty")
)

// MsgID is a message id: a UUIDv7, so ids sort by creation time.
type MsgID [IDLen]byte

// NewID returns a fresh id. Within one process ids are strictly increasing.
func NewID() MsgID {
	u, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only if the system's random source does, after
		// which nothing cryptographic works either.
		panic(fmt.Sprintf("chat: generate message id: %v", err))
	}
	return MsgID(u)
}

// ParseID parses the textual form (a UUID, 8-4-4-4-12 hex digits).
func ParseID(s string) (MsgID, error) {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return MsgID{}, fmt.Errorf("%q is not a message id", s)
	}
	return MsgID(u), nil
}

// IDFromBytes converts a wire id.
func IDFromBytes(b []byte) (MsgID, error) {
	if len(b) != IDLen {
		return MsgID{}, fmt.Errorf("message id of %d bytes, want %d: %w", len(b), IDLen, wire.ErrInvalid)
	}
	return MsgID(b), nil
}

// String is the UUID form.
func (id MsgID) String() string { return uuid.UUID(id).String() }

// Time is the creation time encoded in a UUIDv7 id.
func (id MsgID) Time() time.Time {
	ms := int64(id[0])<<40 | int64(id[1])<<32 | int64(id[2])<<24 | int64(id[3])<<16 | int64(id[4])<<8 | int64(id[5])
	return time.UnixMilli(ms)
}

// Durable reports whether messages of kind k are stored, acknowledged
// only once stored, and retried until acknowledged.
func Durable(k pb.Kind) bool {
	switch k {
	case pb.Kind_TEXT, pb.Kind_NUDGE, pb.Kind_DELIVERED, pb.Kind_READ, pb.Kind_FILE_OFFER, pb.Kind_FILE_UPDATE:
		return true
	}
	return false
}

// Known reports whether k is a kind this version understands.
func Known(k pb.Kind) bool {
	return Durable(k) || k == pb.Kind_TYPING_STARTED || k == pb.Kind_TYPING_STOPPED
}

// CheckText validates text a user wants to send.
func CheckText(s string) error {
	switch {
	case s == "":
		return ErrEmptyText
	case len(s) > MaxTextBytes:
		return ErrTextTooLong
	case !utf8.ValidString(s):
		return ErrNotUTF8
	}
	return nil
}

// Validate checks one received message. Errors wrap wire.ErrInvalid. A
// message of an unknown kind is valid if its id is (its other fields are
// not interpreted).
func Validate(m *pb.Message) error {
	if len(m.GetId()) != IDLen {
		return fmt.Errorf("message id of %d bytes: %w", len(m.GetId()), wire.ErrInvalid)
	}
	k := m.GetKind()
	if !Known(k) {
		return nil
	}
	if Durable(k) && m.GetSeq() == 0 {
		return fmt.Errorf("%s message without a sequence number: %w", k, wire.ErrInvalid)
	}
	switch k {
	case pb.Kind_TEXT:
		if err := CheckText(m.GetText()); err != nil {
			return fmt.Errorf("%w: %w", err, wire.ErrInvalid)
		}
	case pb.Kind_DELIVERED, pb.Kind_READ:
		refs := m.GetRefs()
		if len(refs) == 0 || len(refs) > MaxRefs {
			return fmt.Errorf("receipt with %d refs (1..%d): %w", len(refs), MaxRefs, wire.ErrInvalid)
		}
		for _, r := range refs {
			if len(r) != IDLen {
				return fmt.Errorf("receipt ref of %d bytes: %w", len(r), wire.ErrInvalid)
			}
		}
	case pb.Kind_FILE_OFFER:
		// Only the structure: the node checks the offer's fields and
		// records a bad one as a failed transfer, so that one bad offer
		// does not hold up the rest of the conversation.
		if m.GetFileOffer() == nil {
			return fmt.Errorf("file offer without its offer: %w", wire.ErrInvalid)
		}
	case pb.Kind_FILE_UPDATE:
		u := m.GetFileUpdate()
		if u == nil || len(u.GetTransfer()) != IDLen {
			return fmt.Errorf("file update without a %d-byte transfer id: %w", IDLen, wire.ErrInvalid)
		}
	}
	if k != pb.Kind_FILE_OFFER && m.GetFileOffer() != nil || k != pb.Kind_FILE_UPDATE && m.GetFileUpdate() != nil {
		return fmt.Errorf("%s message with a file payload: %w", k, wire.ErrInvalid)
	}
	if k != pb.Kind_DELIVERED && k != pb.Kind_READ && len(m.GetRefs()) > 0 {
		return fmt.Errorf("%s message with refs: %w", k, wire.ErrInvalid)
	}
	if k != pb.Kind_TEXT && m.GetText() != "" {
		return fmt.Errorf("%s message with text: %w", k, wire.ErrInvalid)
	}
	return nil
}

// validateBatch checks a frame received by the receiver: a batch of
// messages and nothing else.
func validateBatch(f *pb.Frame) error {
	if len(f.GetAcks()) > 0 {
		return fmt.Errorf("acks sent to the receiver: %w", wire.ErrInvalid)
	}
	n := len(f.GetMessages())
	if n == 0 || n > MaxBatch {
		return fmt.Errorf("batch of %d messages (1..%d): %w", n, MaxBatch, wire.ErrInvalid)
	}
	for _, m := range f.GetMessages() {
		if err := Validate(m); err != nil {
			return err
		}
	}
	return nil
}

// validateAck checks a frame received by the opener: acks only.
func validateAck(f *pb.Frame) error {
	if len(f.GetMessages()) > 0 {
		return fmt.Errorf("messages sent on the ack side: %w", wire.ErrInvalid)
	}
	n := len(f.GetAcks())
	if n == 0 || n > MaxBatch {
		return fmt.Errorf("ack of %d ids (1..%d): %w", n, MaxBatch, wire.ErrInvalid)
	}
	for _, a := range f.GetAcks() {
		if len(a) != IDLen {
			return fmt.Errorf("ack id of %d bytes: %w", len(a), wire.ErrInvalid)
		}
	}
	return nil
}
