package names

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/protocols/names/pb"
	"github.com/natterim/natter/protocols/wire"
)

// seedRecord is a valid signed record for the seed corpora.
func seedRecord(f *testing.F) []byte {
	sk, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		f.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		f.Fatal(err)
	}
	raw, err := Sign(sk, Record{Op: OpRegister, Name: "bob-smith", Peer: id, Seq: 1_700_000_000_000})
	if err != nil {
		f.Fatal(err)
	}
	return raw
}

// FuzzDecode feeds untrusted bytes through what the server and the client
// do with a frame: decode it as a request and check it as the handler does
// (op, then the record or the name), and decode it as a response and
// validate it. Nothing may panic, and every refusal must wrap a sentinel.
func FuzzDecode(f *testing.F) {
	rec := seedRecord(f)
	for _, m := range []*pb.Request{
		{Op: pb.Op_REGISTER, Record: rec},
		{Op: pb.Op_RELEASE, Record: rec[:len(rec)/2]},
		{Op: pb.Op_LOOKUP, Name: "bob-smith"},
		{Op: pb.Op_LOOKUP, Name: "b\u043eb"},
		{Op: pb.Op(9)},
	} {
		var buf bytes.Buffer
		if err := wire.WriteMsg(&buf, m, MaxFrameSize); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	for _, m := range []*pb.Response{
		{Status: pb.Status_OK, Record: rec, ReleaseAt: 1_702_592_000_000},
		{Status: pb.Status_TAKEN, Reason: "\"bob\" is held by another key"},
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
			var err error
			switch req.GetOp() {
			case pb.Op_REGISTER, pb.Op_RELEASE:
				_, err = Open(req.GetRecord())
				if err != nil && !errors.Is(err, ErrBadRecord) {
					t.Fatalf("Open: %v does not wrap ErrBadRecord", err)
				}
			case pb.Op_LOOKUP:
				_, err = Normalize(req.GetName())
				if err != nil && !errors.Is(err, ErrInvalidName) {
					t.Fatalf("Normalize: %v does not wrap ErrInvalidName", err)
				}
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

// FuzzOpen: a signed record from the network. What Open accepts must be
// a canonical, rule-abiding REGISTER or RELEASE signed by the key of the
// peer it names.
func FuzzOpen(f *testing.F) {
	rec := seedRecord(f)
	f.Add(rec)
	f.Add(rec[:len(rec)-1])
	f.Add([]byte("not an envelope"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Open(data)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("Open: %v does not wrap ErrBadRecord", err)
			}
			return
		}
		if canon, err := Normalize(r.Name); err != nil || canon != r.Name {
			t.Fatalf("accepted name %q: %v", r.Name, err)
		}
		if r.Op != OpRegister && r.Op != OpRelease || r.Seq == 0 {
			t.Fatalf("accepted %+v", r)
		}
	})
}

// FuzzNormalize: the name rule. An accepted name is canonical, stable,
// ASCII, within bounds, and has a skeleton no longer than itself.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"bob", "Bob-Smith", "b\u043eb", "a--b", "-x", strings.Repeat("z", 40), "rnvv0.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Normalize(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("%v does not wrap ErrInvalidName", err)
			}
			return
		}
		if len(n) < MinLen || len(n) > MaxLen || !strings.EqualFold(n, s) || n != strings.ToLower(n) {
			t.Fatalf("Normalize(%q) = %q", s, n)
		}
		for i := range len(n) {
			if n[i] >= 0x80 {
				t.Fatalf("non-ASCII %q", n)
			}
		}
		if again, err := Normalize(n); err != nil || again != n {
			t.Fatalf("not stable: %q -> %q, %v", n, again, err)
		}
		if sk := Skeleton(n); len(sk) > len(n) || sk == "" {
			t.Fatalf("Skeleton(%q) = %q", n, sk)
		}
	})
}
