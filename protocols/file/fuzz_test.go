package file

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	chatpb "github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/file/pb"
	"github.com/natterim/natter/protocols/wire"
)

func seed(f *testing.F, m proto.Message, max int) {
	var buf bytes.Buffer
	if err := wire.WriteMsg(&buf, m, max); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
}

// FuzzDecode feeds untrusted bytes through what both sides of a file
// stream do with them: one length-prefixed frame decoded as a request (the
// sender), a response and a hash frame (the receiver), then validated.
// Nothing may panic, every refusal must wrap a sentinel, and whatever is
// accepted must survive a round trip.
func FuzzDecode(f *testing.F) {
	id := make([]byte, IDLen)
	seed(f, &pb.Request{Transfer: id, Kind: pb.Kind_HASHES}, MaxRequestSize)
	seed(f, &pb.Request{Transfer: id, Kind: pb.Kind_DATA, FromChunk: 7}, MaxRequestSize)
	seed(f, &pb.Request{Transfer: id[:3], Kind: 9}, MaxRequestSize)
	seed(f, &pb.Response{Status: pb.Status_OK, Length: 1 << 20}, MaxResponseSize)
	seed(f, &pb.Response{Status: pb.Status_RELAY_LIMIT, RelayMax: 8 << 20, Reason: "ask again over a direct link"}, MaxResponseSize)
	seed(f, &pb.Response{Status: pb.Status_BUSY, Reason: "bell\a"}, MaxResponseSize)
	seed(f, &pb.Hashes{Sums: make([]byte, 3*SumLen)}, MaxHashesSize)
	seed(f, &pb.Hashes{Sums: make([]byte, 31)}, MaxHashesSize)
	f.Add([]byte{})
	f.Add([]byte{0x80, 0x00})
	f.Add(binary.AppendUvarint(nil, MaxHashesSize+1))

	f.Fuzz(func(t *testing.T, data []byte) {
		var req pb.Request
		if wire.ReadMsg(bytes.NewReader(data), &req, MaxRequestSize) == nil {
			if err := validateRequest(&req); err != nil {
				if !errors.Is(err, wire.ErrInvalid) {
					t.Fatalf("validateRequest: %v does not wrap ErrInvalid", err)
				}
			} else {
				roundTrip(t, &req, MaxRequestSize, func(m *pb.Request) error { return validateRequest(m) })
			}
		}
		var resp pb.Response
		if wire.ReadMsg(bytes.NewReader(data), &resp, MaxResponseSize) == nil {
			if err := validateResponse(&resp); err != nil {
				if !errors.Is(err, wire.ErrInvalid) {
					t.Fatalf("validateResponse: %v does not wrap ErrInvalid", err)
				}
			} else {
				roundTrip(t, &resp, MaxResponseSize, func(m *pb.Response) error { return validateResponse(m) })
			}
		}
		var h pb.Hashes
		if wire.ReadMsg(bytes.NewReader(data), &h, MaxHashesSize) == nil {
			if err := validateHashes(&h); err != nil {
				if !errors.Is(err, wire.ErrInvalid) {
					t.Fatalf("validateHashes: %v does not wrap ErrInvalid", err)
				}
			} else if len(h.GetSums())%SumLen != 0 {
				t.Fatalf("accepted %d bytes of sums", len(h.GetSums()))
			}
		}
	})
}

func roundTrip[M any, P interface {
	*M
	proto.Message
}](t *testing.T, m P, max int, validate func(P) error) {
	t.Helper()
	var buf bytes.Buffer
	if err := wire.WriteMsg(&buf, m, max); err != nil {
		t.Fatalf("re-encode accepted %T: %v", m, err)
	}
	back := P(new(M))
	if err := wire.ReadMsg(&buf, back, max); err != nil {
		t.Fatalf("re-read accepted %T: %v", m, err)
	}
	if err := validate(back); err != nil {
		t.Fatalf("accepted %T rejected after a round trip: %v", m, err)
	}
}

// FuzzOffer feeds untrusted bytes, decoded as the chat message's file
// offer, through OfferFromWire: nothing may panic, a refusal wraps
// ErrInvalid, and an accepted offer is self-consistent.
func FuzzOffer(f *testing.F) {
	empty := sha256.Sum256(nil)
	sum := sha256.Sum256([]byte("x"))
	for _, o := range []*chatpb.FileOffer{
		{Name: "report.pdf", Size: 5 << 20, Sha256: sum[:], MediaType: "application/pdf", Note: "the report", ChunkSize: 1 << 20, ChunksRoot: sum[:]},
		{Name: "empty", Sha256: empty[:], ChunkSize: 1 << 20, ChunksRoot: empty[:]},
		{Name: "../../etc/passwd", Size: 1, Sha256: sum[:31], ChunkSize: 3, ChunksRoot: sum[:]},
		{Name: "big", Size: 1 << 62, Sha256: sum[:], ChunkSize: 1 << 24, ChunksRoot: sum[:]},
	} {
		b, err := proto.Marshal(o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m chatpb.FileOffer
		if proto.Unmarshal(data, &m) != nil {
			return
		}
		o, meta, err := OfferFromWire([IDLen]byte{1}, &m)
		if err != nil {
			if !errors.Is(err, wire.ErrInvalid) {
				t.Fatalf("OfferFromWire: %v does not wrap ErrInvalid", err)
			}
			return
		}
		if err := o.Check(); err != nil {
			t.Fatalf("accepted offer fails Check: %v", err)
		}
		if o.Chunks() > MaxChunks || o.Size < 0 || o.Size > MaxFileSize {
			t.Fatalf("accepted offer out of bounds: %+v", o)
		}
		if err := CheckNote(meta.Note); err != nil {
			t.Fatalf("accepted note fails CheckNote: %v", err)
		}
		if CleanMediaType(meta.MediaType) != meta.MediaType {
			t.Fatalf("media type %q is not clean", meta.MediaType)
		}
		o2, _, err := OfferFromWire([IDLen]byte{1}, ToWire(o, meta))
		if err != nil || o2 != o {
			t.Fatalf("accepted offer does not round-trip: %v", err)
		}
	})
}
