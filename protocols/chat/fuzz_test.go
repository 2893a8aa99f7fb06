package chat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/wire"
)

func seedFrame(f *testing.F, fr *pb.Frame) {
	var buf bytes.Buffer
	if err := wire.WriteMsg(&buf, fr, MaxFrameSize); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
}

// FuzzDecode feeds untrusted bytes through what the receiver and the
// opener do with them: one length-prefixed frame, then validation.
func FuzzDecode(f *testing.F) {
	id, ref := NewID(), NewID()
	seedFrame(f, &pb.Frame{Messages: []*pb.Message{
		{Id: id[:], Kind: pb.Kind_TEXT, Seq: 1, Text: "hello", SentAtMs: 1700000000000},
		{Id: ref[:], Kind: pb.Kind_READ, Seq: 2, Refs: [][]byte{id[:]}},
		{Id: id[:], Kind: pb.Kind_TYPING_STARTED},
		{Id: id[:], Kind: pb.Kind(99), Text: "future"},
	}})
	seedFrame(f, &pb.Frame{Messages: []*pb.Message{
		{Id: id[:], Kind: pb.Kind_FILE_OFFER, Seq: 3, FileOffer: &pb.FileOffer{Name: "../../x", Size: 10, Sha256: make([]byte, 32), ChunkSize: 1 << 20, ChunksRoot: make([]byte, 32)}},
		{Id: ref[:], Kind: pb.Kind_FILE_UPDATE, Seq: 4, FileUpdate: &pb.FileUpdate{Transfer: id[:], State: pb.FileState_FILE_DONE}},
		{Id: ref[:], Kind: pb.Kind_FILE_UPDATE, Seq: 5, FileUpdate: &pb.FileUpdate{Transfer: id[:3]}},
		{Id: ref[:], Kind: pb.Kind_TEXT, Seq: 6, Text: "x", FileUpdate: &pb.FileUpdate{Transfer: id[:]}},
	}})
	seedFrame(f, &pb.Frame{Acks: [][]byte{id[:], ref[:]}})
	seedFrame(f, &pb.Frame{Messages: []*pb.Message{{Id: id[:5], Kind: pb.Kind_NUDGE, Seq: 1}}})
	seedFrame(f, &pb.Frame{})
	f.Add([]byte{})
	f.Add([]byte{4, 0xff, 0xff, 0xff, 0xff})
	f.Add(binary.AppendUvarint(nil, MaxFrameSize+1))
	f.Add([]byte{0x80, 0x00})

	f.Fuzz(func(t *testing.T, data []byte) {
		var fr pb.Frame
		if err := decodeFrame(data, &fr); err != nil {
			return
		}
		if err := validateAck(&fr); err != nil {
			if !errors.Is(err, wire.ErrInvalid) {
				t.Fatalf("validateAck: error does not wrap ErrInvalid: %v", err)
			}
		} else {
			for _, a := range fr.GetAcks() {
				if len(a) != IDLen {
					t.Fatalf("accepted ack id of %d bytes", len(a))
				}
			}
		}
		err := validateBatch(&fr)
		if err != nil {
			if !errors.Is(err, wire.ErrInvalid) {
				t.Fatalf("validateBatch: error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		for i, m := range fr.GetMessages() {
			if len(m.GetId()) != IDLen {
				t.Fatalf("message %d: accepted id of %d bytes", i, len(m.GetId()))
			}
			b, err := proto.Marshal(m)
			if err != nil {
				t.Fatalf("message %d: re-marshal: %v", i, err)
			}
			var m2 pb.Message
			if err := proto.Unmarshal(b, &m2); err != nil {
				t.Fatalf("message %d: decode re-marshalled: %v", i, err)
			}
			if err := Validate(&m2); err != nil {
				t.Fatalf("message %d: accepted, but not after a round trip: %v", i, err)
			}
		}
		// The whole frame survives a round trip too.
		var buf bytes.Buffer
		if err := wire.WriteMsg(&buf, &fr, MaxFrameSize); err != nil {
			t.Fatalf("re-encode accepted frame: %v", err)
		}
		var fr2 pb.Frame
		if err := wire.ReadMsg(&buf, &fr2, MaxFrameSize); err != nil {
			t.Fatalf("re-read accepted frame: %v", err)
		}
		if err := validateBatch(&fr2); err != nil {
			t.Fatalf("accepted frame rejected after a round trip: %v", err)
		}
	})
}

// decodeFrame is the receiver's decoding step on a byte slice.
func decodeFrame(data []byte, fr *pb.Frame) error {
	return wire.ReadMsg(bytes.NewReader(data), fr, MaxFrameSize)
}
