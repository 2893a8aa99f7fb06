package file

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"mime"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/protocol"

	chatpb "github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/file/pb"
	"github.com/natterim/natter/protocols/wire"
)

// ID is the protocol ID.
const ID = protocol.ID("/natter/file/1.0.0")

// ServiceName is the resource-manager service of file streams.
const ServiceName = "natter.file"

const (
	// IDLen is the length of a transfer id (the offer's chat message id).
	IDLen = 16
	// SumLen is the length of one chunk hash (SHA-256).
	SumLen = sha256.Size
	// MinChunkSize and MaxChunkSize bound an offer's chunk size, a power
	// of two.
	MinChunkSize = 64 << 10
	MaxChunkSize = 16 << 20
	// DefaultChunkSize is what senders use unless the file needs more
	// than MaxChunks chunks of it.
	DefaultChunkSize = 1 << 20
	// MaxChunks bounds the chunk hash list (2 MiB of sums).
	MaxChunks = 1 << 16
	// MaxFileSize is the largest file natter offers or accepts (1 TiB).
	MaxFileSize = int64(MaxChunkSize) * MaxChunks
	// MaxNoteBytes bounds an offer's note.
	MaxNoteBytes = 1024
	// MaxMediaTypeBytes bounds an offer's media type.
	MaxMediaTypeBytes = 127
	// MaxOfferNameBytes bounds the name an offer may carry on the wire;
	// the receiver trims what it keeps to MaxNameBytes (see SafeName).
	MaxOfferNameBytes = 4096
	// MaxReasonBytes bounds a human reason in a response or update.
	MaxReasonBytes = 200
	// SumsPerFrame is the most chunk sums in one Hashes frame.
	SumsPerFrame = 4096
	// MaxRequestSize, MaxResponseSize and MaxHashesSize bound the frames.
	MaxRequestSize  = 64
	MaxResponseSize = 512
	MaxHashesSize   = SumsPerFrame*SumLen + 16
)

// Kinds of request, re-exported so that callers need not import pb.
const (
	KindHashes = pb.Kind_HASHES
	KindData   = pb.Kind_DATA
)

// Statuses of a response.
const (
	StatusOK         = pb.Status_OK
	StatusNotFound   = pb.Status_NOT_FOUND
	StatusCancelled  = pb.Status_CANCELLED
	StatusFailed     = pb.Status_FAILED
	StatusRelayLimit = pb.Status_RELAY_LIMIT
	StatusBusy       = pb.Status_BUSY
)

// TransferID identifies a transfer: the id of the chat message that
// offered it.
type TransferID [IDLen]byte

// String is the UUID form.
func (id TransferID) String() string { return uuid.UUID(id).String() }

// Offer is what both sides agree on about one file: everything the data
// exchange needs. The receiver builds it from the chat offer with
// OfferFromWire, which checks every field.
type Offer struct {
	ID        TransferID
	Size      int64
	SHA256    [SumLen]byte
	ChunkSize int
	// Root is the SHA-256 of the concatenated chunk sums.
	Root [SumLen]byte
}

// Chunks is the number of chunks: the last one may be short; an empty
// file has none.
func (o Offer) Chunks() int {
	return ChunkCount(o.Size, o.ChunkSize)
}

// ChunkEnd is the offset just after chunk i.
func (o Offer) ChunkEnd(i int) int64 {
	return min(int64(i+1)*int64(o.ChunkSize), o.Size)
}

// ChunkCount is the number of chunks of chunkSize a file of size bytes
// has.
func ChunkCount(size int64, chunkSize int) int {
	if size <= 0 || chunkSize <= 0 {
		return 0
	}
	return int((size + int64(chunkSize) - 1) / int64(chunkSize))
}

// ChunkSizeFor is the chunk size a sender uses for a file of size bytes:
// DefaultChunkSize, doubled until the file has at most MaxChunks chunks.
func ChunkSizeFor(size int64) int {
	c := DefaultChunkSize
	for ChunkCount(size, c) > MaxChunks && c < MaxChunkSize {
		c *= 2
	}
	return c
}

// Check validates the offer's numbers. Errors wrap wire.ErrInvalid.
func (o Offer) Check() error {
	switch {
	case o.Size < 0 || o.Size > MaxFileSize:
		return fmt.Errorf("size %d is outside 0..%d: %w", o.Size, MaxFileSize, wire.ErrInvalid)
	case o.ChunkSize < MinChunkSize || o.ChunkSize > MaxChunkSize || bits.OnesCount(uint(o.ChunkSize)) != 1:
		return fmt.Errorf("chunk size %d is not a power of two in %d..%d: %w", o.ChunkSize, MinChunkSize, MaxChunkSize, wire.ErrInvalid)
	case o.Chunks() > MaxChunks:
		return fmt.Errorf("%d chunks (at most %d): %w", o.Chunks(), MaxChunks, wire.ErrInvalid)
	}
	return nil
}

// Meta is the descriptive part of an offer: shown to the user, never
// trusted.
type Meta struct {
	// Name as offered (the receiver keeps SafeName(Name)).
	Name      string
	MediaType string
	Note      string
}

// OfferFromWire checks a received chat offer and converts it. id is the
// offer message's id. Errors wrap wire.ErrInvalid and say which field is
// wrong: the receiver records such an offer as a failed transfer.
func OfferFromWire(id [IDLen]byte, m *chatpb.FileOffer) (Offer, Meta, error) {
	o := Offer{ID: id, ChunkSize: int(m.GetChunkSize())}
	if m.GetSize() > uint64(MaxFileSize) {
		return o, Meta{}, fmt.Errorf("size %d is over %d: %w", m.GetSize(), MaxFileSize, wire.ErrInvalid)
	}
	o.Size = int64(m.GetSize())
	if len(m.GetSha256()) != SumLen {
		return o, Meta{}, fmt.Errorf("sha256 of %d bytes: %w", len(m.GetSha256()), wire.ErrInvalid)
	}
	if len(m.GetChunksRoot()) != SumLen {
		return o, Meta{}, fmt.Errorf("chunks root of %d bytes: %w", len(m.GetChunksRoot()), wire.ErrInvalid)
	}
	copy(o.SHA256[:], m.GetSha256())
	copy(o.Root[:], m.GetChunksRoot())
	if err := o.Check(); err != nil {
		return o, Meta{}, err
	}
	if o.Size == 0 && (o.SHA256 != sha256.Sum256(nil) || o.Root != sha256.Sum256(nil)) {
		return o, Meta{}, fmt.Errorf("empty file whose hashes are not those of nothing: %w", wire.ErrInvalid)
	}
	if len(m.GetName()) > MaxOfferNameBytes {
		return o, Meta{}, fmt.Errorf("name of %d bytes (at most %d): %w", len(m.GetName()), MaxOfferNameBytes, wire.ErrInvalid)
	}
	meta := Meta{Name: m.GetName(), MediaType: CleanMediaType(m.GetMediaType())}
	if err := CheckNote(m.GetNote()); err != nil {
		return o, Meta{}, err
	}
	meta.Note = m.GetNote()
	return o, meta, nil
}

// ToWire is the chat offer for o and meta.
func ToWire(o Offer, meta Meta) *chatpb.FileOffer {
	return &chatpb.FileOffer{
		Name: meta.Name, Size: uint64(o.Size), Sha256: o.SHA256[:], MediaType: meta.MediaType, Note: meta.Note,
		ChunkSize: uint32(o.ChunkSize), ChunksRoot: o.Root[:],
	}
}

// CleanMediaType returns t if it is a well-formed media type (type/subtype
// with optional parameters, at most MaxMediaTypeBytes), else
// "application/octet-stream". The media type is informational only.
func CleanMediaType(t string) string {
	const fallback = "application/octet-stream"
	if t == "" || len(t) > MaxMediaTypeBytes {
		return fallback
	}
	mt, params, err := mime.ParseMediaType(t)
	if err != nil || !strings.Contains(mt, "/") {
		return fallback
	}
	return mime.FormatMediaType(mt, params)
}

// MediaTypeOf guesses the media type of a file to offer under name: from
// the name's extension, else from the first bytes of r. The result has
// been through CleanMediaType.
func MediaTypeOf(r io.ReaderAt, name string) (string, error) {
	if t := mime.TypeByExtension(filepath.Ext(name)); t != "" {
		return CleanMediaType(t), nil
	}
	buf := make([]byte, 512)
	n, err := r.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return CleanMediaType(http.DetectContentType(buf[:n])), nil
}

// CheckNote validates a note a user wants to send with a file.
func CheckNote(s string) error {
	return wire.ValidateText("note", strings.ReplaceAll(s, "\n", " "), MaxNoteBytes)
}

// RootOf is the chunks root of a hash list.
func RootOf(sums []byte) [SumLen]byte { return sha256.Sum256(sums) }

// CheckSums verifies a chunk hash list against an offer: the right number
// of sums, hashing to the offer's root.
func CheckSums(o Offer, sums []byte) error {
	if len(sums) != o.Chunks()*SumLen {
		return fmt.Errorf("%w: %d bytes of chunk sums for %d chunks", ErrHashList, len(sums), o.Chunks())
	}
	if RootOf(sums) != o.Root {
		return fmt.Errorf("%w: the chunk sums do not match the offer's chunks root", ErrHashList)
	}
	return nil
}

// Sum returns chunk i's sum from a hash list.
func Sum(sums []byte, i int) []byte { return sums[i*SumLen : (i+1)*SumLen] }

// Errors of a download. ErrHashList, ErrFileHash and ErrLength mean the
// sender is lying or broken: retrying will not help. A *ChunkError may be
// a one-off; the caller decides how often to fetch a chunk again.
var (
	// ErrHashList: the chunk hash list does not match the offer.
	ErrHashList = fmt.Errorf("the sender's chunk hash list does not match its offer: %w", wire.ErrInvalid)
	// ErrFileHash: every chunk matched its sum, but the whole file does
	// not have the offered SHA-256.
	ErrFileHash = fmt.Errorf("the file does not have the offered SHA-256: %w", wire.ErrInvalid)
	// ErrLength: the sender announced a length other than the offer's.
	ErrLength = fmt.Errorf("the sender announced a length that does not match its offer: %w", wire.ErrInvalid)
	// ErrShort: the sender ended the data before the offered size.
	ErrShort = errors.New("the sender ended the data before the offered size")
)

// ChunkError says chunk Chunk did not match its sum.
type ChunkError struct{ Chunk int }

func (e *ChunkError) Error() string {
	return fmt.Sprintf("chunk %d does not match its SHA-256 in the offered hash list", e.Chunk)
}

// Unwrap lets errors.Is(err, wire.ErrInvalid) hold (a metric label).
func (e *ChunkError) Unwrap() error { return wire.ErrInvalid }

// RefusedError is a sender's answer other than OK.
type RefusedError struct {
	Status pb.Status
	Reason string
	// RelayMax is the sender's limit, for StatusRelayLimit.
	RelayMax int64
}

func (e *RefusedError) Error() string {
	var what string
	switch e.Status {
	case StatusNotFound:
		what = "the sender does not know this transfer"
	case StatusCancelled:
		what = "the sender cancelled the transfer"
	case StatusFailed:
		what = "the sender cannot send the file"
	case StatusRelayLimit:
		what = fmt.Sprintf("the sender sends at most %s over a relayed link", FormatSize(e.RelayMax))
	case StatusBusy:
		what = "the sender is busy with other transfers"
	default:
		what = fmt.Sprintf("the sender answered %s", e.Status)
	}
	if e.Reason != "" {
		return what + ": " + e.Reason
	}
	return what
}

// Final reports whether asking again cannot help.
func (e *RefusedError) Final() bool {
	return e.Status == StatusNotFound || e.Status == StatusCancelled || e.Status == StatusFailed
}

// Refuse is what a Provider returns to answer a request with a status
// other than OK.
func Refuse(status pb.Status, reason string) error {
	return &RefusedError{Status: status, Reason: reason}
}

func validateRequest(m *pb.Request) error {
	if len(m.GetTransfer()) != IDLen {
		return fmt.Errorf("transfer id of %d bytes: %w", len(m.GetTransfer()), wire.ErrInvalid)
	}
	switch m.GetKind() {
	case pb.Kind_HASHES:
		if m.GetFromChunk() != 0 {
			return fmt.Errorf("hash list request with a start chunk: %w", wire.ErrInvalid)
		}
	case pb.Kind_DATA:
		if m.GetFromChunk() >= MaxChunks {
			return fmt.Errorf("start chunk %d out of range: %w", m.GetFromChunk(), wire.ErrInvalid)
		}
	default:
		return fmt.Errorf("unknown request kind %d: %w", m.GetKind(), wire.ErrInvalid)
	}
	return nil
}

func validateResponse(m *pb.Response) error {
	if m.GetStatus() < pb.Status_OK || m.GetStatus() > pb.Status_BUSY {
		return fmt.Errorf("unknown status %d: %w", m.GetStatus(), wire.ErrInvalid)
	}
	if err := wire.ValidateText("reason", m.GetReason(), MaxReasonBytes); err != nil {
		return err
	}
	if m.GetStatus() != pb.Status_OK && m.GetLength() != 0 {
		return fmt.Errorf("%s response with a length: %w", m.GetStatus(), wire.ErrInvalid)
	}
	if m.GetLength() > uint64(MaxFileSize) {
		return fmt.Errorf("length %d out of range: %w", m.GetLength(), wire.ErrInvalid)
	}
	return nil
}

func validateHashes(m *pb.Hashes) error {
	n := len(m.GetSums())
	if n == 0 || n%SumLen != 0 || n/SumLen > SumsPerFrame {
		return fmt.Errorf("hash frame of %d bytes (1..%d sums of %d bytes): %w", n, SumsPerFrame, SumLen, wire.ErrInvalid)
	}
	return nil
}

// FormatSize prints a byte count for people: "512 B", "8 MiB", "1.5 GiB".
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	s := fmt.Sprintf("%.1f", v)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + string("KMGTPE"[exp]) + "iB"
}

// equalSum compares a computed sum with one from a hash list.
func equalSum(a [SumLen]byte, b []byte) bool { return bytes.Equal(a[:], b) }
