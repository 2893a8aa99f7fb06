package contact

import (
	"bytes"
	"errors"
	"testing"

	"github.com/natterim/natter/protocols/contact/pb"
	"github.com/natterim/natter/protocols/wire"
	"google.golang.org/protobuf/proto"
)

// FuzzDecode feeds untrusted bytes through what both sides do with them:
// one length-prefixed frame, decoded as a request and as a response, then
// validated. Nothing may panic, and every refusal must wrap a sentinel.
func FuzzDecode(f *testing.F) {
	for _, m := range []proto.Message{
		&pb.Request{Kind: pb.Kind_REQUEST, Note: "hi, it's Bob", Name: "Bob"},
		&pb.Request{Kind: pb.Kind_ACCEPT},
		&pb.Request{Kind: pb.Kind_WITHDRAW},
		&pb.Response{Status: pb.Status_PENDING},
		&pb.Response{Status: pb.Status_RATE_LIMITED, Reason: "too many requests"},
		&pb.Request{Kind: pb.Kind(9), Note: "bell\a"},
	} {
		var buf bytes.Buffer
		if err := wire.WriteMsg(&buf, m, MaxFrameSize); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		var req pb.Request
		if err := wire.ReadMsg(bytes.NewReader(data), &req, MaxFrameSize); err == nil {
			if err := validateRequest(&req); err != nil && !errors.Is(err, wire.ErrInvalid) {
				t.Fatalf("validateRequest: %v does not wrap ErrInvalid", err)
			}
		}
		var resp pb.Response
		if err := wire.ReadMsg(bytes.NewReader(data), &resp, MaxFrameSize); err == nil {
			if err := validateResponse(&resp); err != nil && !errors.Is(err, wire.ErrInvalid) {
				t.Fatalf("validateResponse: %v does not wrap ErrInvalid", err)
			}
		}
	})
}
