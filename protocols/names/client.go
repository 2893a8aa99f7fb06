package names

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/protocols/names/pb"
	"github.com/natterim/natter/protocols/wire"
)

// Sentinels for the statuses a server answers; a *StatusError matches the
// one of its status with errors.Is. ErrNotFound (registry.go) stands for
// NOT_FOUND.
var (
	ErrTaken        = errors.New("name taken")
	ErrWrongPeer    = errors.New("record is for another peer")
	ErrExpired      = errors.New("record expired")
	ErrOutdated     = errors.New("record outdated")
	ErrTooManyNames = errors.New("too many names")
	ErrRateLimited  = errors.New("rate limited by the server")
	ErrUnavailable  = errors.New("name directory unavailable")
)

// StatusError is a refusal from the server.
type StatusError struct {
	Status pb.Status
	Reason string
}

func (e *StatusError) Error() string {
	s := strings.ReplaceAll(StatusName(e.Status), "_", " ")
	if e.Reason == "" {
		return s
	}
	return s + ": " + e.Reason
}

// Is matches the sentinel of the status.
func (e *StatusError) Is(target error) bool {
	switch e.Status {
	case pb.Status_NOT_FOUND:
		return target == ErrNotFound
	case pb.Status_TAKEN:
		return target == ErrTaken
	case pb.Status_INVALID_NAME:
		return target == ErrInvalidName
	case pb.Status_BAD_RECORD:
		return target == ErrBadRecord
	case pb.Status_WRONG_PEER:
		return target == ErrWrongPeer
	case pb.Status_EXPIRED:
		return target == ErrExpired
	case pb.Status_OUTDATED:
		return target == ErrOutdated
	case pb.Status_TOO_MANY_NAMES:
		return target == ErrTooManyNames
	case pb.Status_RATE_LIMITED:
		return target == ErrRateLimited
	case pb.Status_UNAVAILABLE:
		return target == ErrUnavailable
	}
	return false
}

// OpName is the metric label of op.
func OpName(op pb.Op) string {
	switch op {
	case pb.Op_REGISTER:
		return "register"
	case pb.Op_RELEASE:
		return "release"
	case pb.Op_LOOKUP:
		return "lookup"
	}
	return "unknown"
}

// StatusName is the metric label of st: its name in lower case.
func StatusName(st pb.Status) string {
	if name, ok := pb.Status_name[int32(st)]; ok && st != pb.Status_STATUS_UNSPECIFIED {
		return strings.ToLower(name)
	}
	return "unknown"
}

// DefaultTimeout bounds one client exchange when ctx has no earlier
// deadline.
const DefaultTimeout = 10 * time.Second

// NextSeq returns the seq for a new record: the current time in unix
// milliseconds, or last+1 if the clock has not moved past last (seqs must
// grow even if the clock steps back).
func NextSeq(last uint64, now time.Time) uint64 {
	return max(uint64(max(now.UnixMilli(), 0)), last+1)
}

// Register claims or renews name on server for sk's peer, with a record
// signed at seq (see NextSeq). It returns when the server will release the
// name unless it is renewed (the server's word). A refusal is a
// *StatusError.
func Register(ctx context.Context, h host.Host, server peer.ID, sk crypto.PrivKey, name string, seq uint64) (time.Time, error) {
	resp, err := signed(ctx, h, server, sk, OpRegister, name, seq)
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(int64(min(resp.GetReleaseAt(), 1<<62))), nil
}

// Release gives name up on server, with a record signed at seq.
func Release(ctx context.Context, h host.Host, server peer.ID, sk crypto.PrivKey, name string, seq uint64) error {
	_, err := signed(ctx, h, server, sk, OpRelease, name, seq)
	return err
}

func signed(ctx context.Context, h host.Host, server peer.ID, sk crypto.PrivKey, op Op, name string, seq uint64) (*pb.Response, error) {
	canon, err := Normalize(name)
	if err != nil {
		return nil, err
	}
	raw, err := Sign(sk, Record{Op: op, Name: canon, Peer: h.ID(), Seq: seq})
	if err != nil {
		return nil, err
	}
	return exchange(ctx, h, server, &pb.Request{Op: op, Record: raw})
}

// Lookup asks server who holds name and verifies the answer itself: the
// record must be a REGISTER of exactly that name signed by the key of the
// peer it names. A server that answers with anything else gets an error
// wrapping ErrBadRecord: natter never trusts the directory for more than
// it can check.
func Lookup(ctx context.Context, h host.Host, server peer.ID, name string) (Record, []byte, error) {
	canon, err := Normalize(name)
	if err != nil {
		return Record{}, nil, err
	}
	resp, err := exchange(ctx, h, server, &pb.Request{Op: pb.Op_LOOKUP, Name: canon})
	if err != nil {
		return Record{}, nil, err
	}
	rec, err := Open(resp.GetRecord())
	if err != nil {
		return Record{}, nil, fmt.Errorf("the server's record for %q does not verify: %w", canon, err)
	}
	if rec.Op != OpRegister || rec.Name != canon {
		return Record{}, nil, fmt.Errorf("the server answered %q with a %s record of %q: %w", canon, OpName(rec.Op), rec.Name, ErrBadRecord)
	}
	return rec, resp.GetRecord(), nil
}

// exchange sends one request and reads the response; a status other than
// OK is returned as a *StatusError.
func exchange(ctx context.Context, h host.Host, server peer.ID, req *pb.Request) (*pb.Response, error) {
	var resp pb.Response
	err := wire.Call(ctx, h, server, ID, wire.CallOptions{
		Service:     ServiceName,
		RequestMax:  MaxFrameSize,
		ResponseMax: MaxFrameSize,
		Timeout:     DefaultTimeout,
	}, req, &resp)
	if err != nil {
		return nil, fmt.Errorf("names request: %w", err)
	}
	if err := validateResponse(&resp); err != nil {
		return nil, err
	}
	if resp.GetStatus() != pb.Status_OK {
		return nil, &StatusError{Status: resp.GetStatus(), Reason: resp.GetReason()}
	}
	return &resp, nil
}

func validateResponse(m *pb.Response) error {
	if _, ok := pb.Status_name[int32(m.GetStatus())]; !ok || m.GetStatus() == pb.Status_STATUS_UNSPECIFIED {
		return fmt.Errorf("unknown status %d: %w", m.GetStatus(), wire.ErrInvalid)
	}
	if err := wire.ValidateText("reason", m.GetReason(), MaxReasonBytes); err != nil {
		return err
	}
	if len(m.GetRecord()) > MaxRecordSize {
		return fmt.Errorf("record of %d bytes: %w", len(m.GetRecord()), wire.ErrInvalid)
	}
	return nil
}
