package presence

import (
	"bytes"
	"errors"
	"testing"

	"github.com/natterim/natter/protocols/presence/pb"
	"github.com/natterim/natter/protocols/wire"
)

// FuzzDecode feeds untrusted bytes through the receiver's path: one
// length-prefixed frame, then validation. Nothing may panic; refusals wrap
// ErrInvalid; what is accepted survives a round trip.
func FuzzDecode(f *testing.F) {
	for _, m := range []*pb.Presence{
		{State: pb.State_AWAY, Message: "at lunch", ProfileVersion: 3, Seq: 1700000000000},
		{State: pb.State_OFFLINE},
		{State: pb.State(12), Message: "x"},
	} {
		var buf bytes.Buffer
		if err := wire.WriteMsg(&buf, m, MaxFrameSize); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0x03, 0x08, 0x02, 0x12})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m pb.Presence
		if err := wire.ReadMsg(bytes.NewReader(data), &m, MaxFrameSize); err != nil {
			return
		}
		p, err := decode(&m)
		if err != nil {
			if !errors.Is(err, wire.ErrInvalid) {
				t.Fatalf("decode: %v does not wrap ErrInvalid", err)
			}
			return
		}
		back, err := decode(toWire(p))
		if err != nil || back != p {
			t.Fatalf("round trip: %+v -> %+v, %v", p, back, err)
		}
	})
}
