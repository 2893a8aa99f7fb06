package mailbox

import (
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/natterim/natter/protocols/mailbox/pb"
	"github.com/natterim/natter/protocols/wire"
)

// ID is the mailbox protocol (node <-> rendezvous).
const ID = protocol.ID("/natter/mailbox/1.0.0")

// TokenID is the deposit-token protocol (node <-> node).
const TokenID = protocol.ID("/natter/mailbox-token/1.0.0")

// ServiceName and TokenServiceName are the resource-manager services of
// the two protocols' streams.
const (
	ServiceName      = "natter.mailbox"
	TokenServiceName = "natter.mailbox-token"
)

const (
	// IDLen is the length of a deposit id.
	IDLen = 16
	// MaxFrameSize bounds one request or response frame, in bytes.
	MaxFrameSize = 1 << 20
	// MaxBoxSizeLimit is the largest Limits.MaxBoxSize a server may
	// configure: a deposit of one such box, and a fetch response holding
	// one, must fit in a frame.
	MaxBoxSizeLimit = 512 << 10
	// MaxItems is the most boxes in one deposit, and in one fetch
	// response.
	MaxItems = 256
	// MaxStatusIDs is the most deposit ids one status query may name, and
	// the most a delete may name.
	MaxStatusIDs = 1024
	// MaxTokenSize bounds an encoded token.
	MaxTokenSize = 512
	// MaxReasonBytes bounds a response's reason.
	MaxReasonBytes = 200
	// MinBoxSize is the shortest box that can be a sealed box: the
	// ephemeral key and the authenticator (48 bytes) around a non-empty
	// envelope.
	MinBoxSize = 48 + 1
)

// Codes, re-exported so that callers need not import pb.
const (
	CodeOK               = pb.Code_OK
	CodeDuplicate        = pb.Code_DUPLICATE
	CodeBadToken         = pb.Code_BAD_TOKEN
	CodeUnknownRecipient = pb.Code_UNKNOWN_RECIPIENT
	CodeOverQuota        = pb.Code_OVER_QUOTA
	CodeTooLarge         = pb.Code_TOO_LARGE
	CodeMalformed        = pb.Code_MALFORMED
	CodeRateLimited      = pb.Code_RATE_LIMITED
	CodeNotOwner         = pb.Code_NOT_OWNER
	CodeUnavailable      = pb.Code_UNAVAILABLE
)

// Code is a request or item result.
type Code = pb.Code

// CodeName is a code's metric label and log name: "ok", "bad_token", ...
func CodeName(c Code) string {
	switch c {
	case CodeOK:
		return "ok"
	case CodeDuplicate:
		return "duplicate"
	case CodeBadToken:
		return "bad_token"
	case CodeUnknownRecipient:
		return "unknown_recipient"
	case CodeOverQuota:
		return "over_quota"
	case CodeTooLarge:
		return "too_large"
	case CodeMalformed:
		return "malformed"
	case CodeRateLimited:
		return "rate_limited"
	case CodeNotOwner:
		return "not_owner"
	case CodeUnavailable:
		return "unavailable"
	}
	return "unknown"
}

// State is the fate of a deposit as the server knows it.
type State = pb.State

// States, re-exported.
const (
	StatePending   = pb.State_PENDING
	StateFetched   = pb.State_FETCHED
	StateDelivered = pb.State_DELIVERED
	StateExpired   = pb.State_EXPIRED
	StateRejected  = pb.State_REJECTED
	StateUnknown   = pb.State_UNKNOWN
)

// DepositID names one deposit: 16 random bytes chosen by the depositor.
type DepositID [IDLen]byte

// Bytes is the id as a slice (a copy).
func (d DepositID) Bytes() []byte { return d[:] }

// String is the id in hex.
func (d DepositID) String() string { return hex.EncodeToString(d[:]) }

// depositID converts a wire id.
func depositID(b []byte) (DepositID, error) {
	if len(b) != IDLen {
		return DepositID{}, fmt.Errorf("deposit id of %d bytes, want %d: %w", len(b), IDLen, wire.ErrInvalid)
	}
	return DepositID(b), nil
}

// Limits bound what a Service accepts and keeps. Zero values are not
// defaults: start from DefaultLimits and change fields.
type Limits struct {
	// MaxBoxSize is the largest sealed box accepted, in bytes.
	MaxBoxSize int
	// MaxMessages and MaxBytes bound one recipient's mailbox (count of
	// boxes, sum of their sizes).
	MaxMessages int
	MaxBytes    int64
	// MaxTotalBytes bounds all mailboxes together (the server's disk).
	MaxTotalBytes int64
	// MaxAge is how long a box waits for its owner; older ones are
	// dropped and their fate becomes EXPIRED.
	MaxAge time.Duration
	// DepositBurst boxes may be deposited by one sender at once, then one
	// every DepositInterval (a token bucket per sender, over all the
	// recipients).
	DepositBurst    int
	DepositInterval time.Duration
	// FateTTL is how long the fate of a deposit that left the mailbox
	// (delivered, expired, rejected) stays known for STATUS; it is also
	// how long its id is remembered against replays.
	FateTTL time.Duration
	// OwnerTTL is how long a mailbox whose owner is not seen (no
	// registration, no fetch) is kept once it is empty; after that its
	// owner is an unknown recipient again.
	OwnerTTL time.Duration
	// RequestTimeout bounds one exchange (read request, act, write
	// response).
	RequestTimeout time.Duration
	// GCInterval is how often expired boxes and old fates are dropped.
	GCInterval time.Duration
}

// DefaultLimits returns the limits a Service starts with.
func DefaultLimits() Limits {
	return Limits{
		MaxBoxSize:      96 << 10,
		MaxMessages:     1000,
		MaxBytes:        16 << 20,
		MaxTotalBytes:   4 << 30,
		MaxAge:          7 * 24 * time.Hour,
		DepositBurst:    200,
		DepositInterval: time.Second,
		FateTTL:         14 * 24 * time.Hour,
		OwnerTTL:        90 * 24 * time.Hour,
		RequestTimeout:  30 * time.Second,
		GCInterval:      time.Minute,
	}
}

// Validate checks that the limits make sense together.
func (l Limits) Validate() error {
	var errs []error
	if l.MaxBoxSize < 1<<10 || l.MaxBoxSize > MaxBoxSizeLimit {
		errs = append(errs, fmt.Errorf("max box size %d is outside 1024..%d", l.MaxBoxSize, MaxBoxSizeLimit))
	}
	if l.MaxMessages < 1 {
		errs = append(errs, fmt.Errorf("max messages %d must be at least 1", l.MaxMessages))
	}
	if l.MaxBytes < int64(l.MaxBoxSize) {
		errs = append(errs, fmt.Errorf("max bytes %d is below the max box size %d", l.MaxBytes, l.MaxBoxSize))
	}
	if l.MaxTotalBytes < l.MaxBytes {
		errs = append(errs, fmt.Errorf("max total bytes %d is below the max bytes of one mailbox %d", l.MaxTotalBytes, l.MaxBytes))
	}
	if l.MaxAge < time.Minute {
		errs = append(errs, fmt.Errorf("max age %s is under 1m", l.MaxAge))
	}
	if l.DepositBurst < 1 || l.DepositInterval <= 0 {
		errs = append(errs, errors.New("deposit burst must be at least 1 and the deposit interval positive"))
	}
	if l.FateTTL < time.Minute || l.OwnerTTL < time.Minute {
		errs = append(errs, errors.New("fate and owner TTLs must be at least 1m"))
	}
	if l.RequestTimeout <= 0 || l.GCInterval <= 0 {
		errs = append(errs, errors.New("request timeout and GC interval must be positive"))
	}
	return errors.Join(errs...)
}
