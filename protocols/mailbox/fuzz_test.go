package mailbox

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/protocols/mailbox/pb"
	"github.com/natterim/natter/protocols/wire"
)

func fuzzKey(f *testing.F, seed byte) (crypto.PrivKey, peer.ID) {
	k, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32)))
	if err != nil {
		f.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		f.Fatal(err)
	}
	return k, id
}

func seedFrame(f *testing.F, m proto.Message) {
	var b bytes.Buffer
	if err := wire.WriteMsg(&b, m, MaxFrameSize); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
}

// FuzzRequest feeds untrusted bytes through what the server does before
// it touches its store: read one frame, then check the request's shape.
// Nothing may panic, and what passes holds only well-formed ids and boxes
// within the limits.
func FuzzRequest(f *testing.F) {
	bobKey, bob := fuzzKey(f, 2)
	_, alice := fuzzKey(f, 1)
	tok, err := IssueToken(bobKey, alice, time.Unix(1_800_000_000, 0))
	if err != nil {
		f.Fatal(err)
	}
	id := bytes.Repeat([]byte{7}, IDLen)
	seedFrame(f, &pb.Request{Body: &pb.Request_Deposit{Deposit: &pb.Deposit{Recipient: []byte(bob), Token: tok,
		Items: []*pb.Item{{Id: id, Box: make([]byte, 80)}, {Id: id[:3], Box: []byte("x")}}}}})
	seedFrame(f, &pb.Request{Body: &pb.Request_Fetch{Fetch: &pb.Fetch{Owner: []byte(bob), After: 12, Limit: 3}}})
	seedFrame(f, &pb.Request{Body: &pb.Request_Delete{Delete: &pb.Delete{Owner: []byte(bob), Ids: [][]byte{id}, Rejected: [][]byte{{1}}}}})
	seedFrame(f, &pb.Request{Body: &pb.Request_Status{Status: &pb.StatusQuery{Ids: [][]byte{id, id}}}})
	seedFrame(f, &pb.Request{})
	f.Add([]byte{})
	f.Add(binary.AppendUvarint(nil, MaxFrameSize+1))
	f.Add([]byte{0x80, 0x00})

	const maxBox = 4 << 10
	f.Fuzz(func(t *testing.T, data []byte) {
		var req pb.Request
		if err := wire.ReadMsg(bytes.NewReader(data), &req, MaxFrameSize); err != nil {
			return
		}
		switch b := req.GetBody().(type) {
		case *pb.Request_Deposit:
			p, refusal := parseDeposit(b.Deposit, maxBox)
			if refusal != nil {
				if refusal.GetCode() != CodeMalformed {
					t.Fatalf("shape refusal with code %s", CodeName(refusal.GetCode()))
				}
				return
			}
			if len(p.results) != len(b.Deposit.GetItems()) || len(p.items) != len(p.idx) {
				t.Fatalf("%d results, %d items, %d indexes for %d boxes", len(p.results), len(p.items), len(p.idx), len(b.Deposit.GetItems()))
			}
			for j, it := range p.items {
				if n := len(it.Box); n < MinBoxSize || n > maxBox {
					t.Fatalf("accepted a box of %d bytes", n)
				}
				if p.results[p.idx[j]].GetCode() != 0 {
					t.Fatal("an item to store already has a result")
				}
			}
			if _, err := VerifyToken(b.Deposit.GetToken(), p.recipient, alice, time.Unix(1_700_000_000, 0)); err != nil && !errors.Is(err, ErrBadToken) {
				t.Fatalf("token error %v does not wrap ErrBadToken", err)
			}
		case *pb.Request_Delete:
			d, r, refusal := parseDelete(b.Delete)
			if refusal == nil && (len(d)+len(r) == 0 || len(d)+len(r) > MaxStatusIDs) {
				t.Fatalf("accepted a delete of %d ids", len(d)+len(r))
			}
		case *pb.Request_Status:
			ids, refusal := parseStatus(b.Status)
			if refusal == nil && len(ids) != len(b.Status.GetIds()) {
				t.Fatal("ids lost")
			}
		case *pb.Request_Fetch:
			_, _ = owner(b.Fetch.GetOwner(), bob)
		}
	})
}

// FuzzResponse feeds untrusted bytes through the client's decoding of
// every kind of response.
func FuzzResponse(f *testing.F) {
	id := bytes.Repeat([]byte{7}, IDLen)
	seedFrame(f, &pb.Response{Code: CodeOK, Results: []*pb.Result{{Id: id, Code: CodeDuplicate}}})
	seedFrame(f, &pb.Response{Code: CodeOK, More: true, Items: []*pb.Stored{{Id: id, Box: make([]byte, 60), Seq: 4, DepositedMs: 1}}})
	seedFrame(f, &pb.Response{Code: CodeOK, Fates: []*pb.Fate{{Id: id, State: StateExpired, AtMs: 5, Fetched: true}}})
	seedFrame(f, &pb.Response{Code: CodeBadToken, Reason: "token expired"})
	seedFrame(f, &pb.Response{Code: Code(77)})
	f.Add([]byte{})
	items := []Item{{ID: DepositID(id)}}
	ids := []DepositID{DepositID(id)}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r pb.Response
		if err := wire.ReadMsg(bytes.NewReader(data), &r, MaxFrameSize); err != nil {
			return
		}
		if err := checkResponse(&r); err != nil {
			var re *RefusedError
			if !errors.As(err, &re) && !errors.Is(err, wire.ErrInvalid) {
				t.Fatalf("checkResponse: %v", err)
			}
			return
		}
		if codes, err := depositResults(&r, items); err == nil && len(codes) != 1 {
			t.Fatal("wrong number of codes")
		}
		if boxes, err := fetchResults(&r, 3, 10); err == nil {
			last := uint64(3)
			for _, b := range boxes {
				if b.Seq <= last || len(b.Box) < MinBoxSize {
					t.Fatalf("accepted box at %d after %d, %d bytes", b.Seq, last, len(b.Box))
				}
				last = b.Seq
			}
		}
		if fates, err := statusResults(&r, ids); err == nil && (len(fates) != 1 || fates[0].State < StatePending || fates[0].State > StateUnknown) {
			t.Fatalf("accepted fates %+v", fates)
		}
	})
}

// FuzzToken feeds untrusted bytes to the token parsers: the rendezvous
// parses every deposit's token; nodes read pushed tokens (a TokenPush frame).
func FuzzToken(f *testing.F) {
	bobKey, _ := fuzzKey(f, 2)
	_, alice := fuzzKey(f, 1)
	tok, err := IssueToken(bobKey, alice, time.Unix(1_800_000_000, 0))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add(tok[:len(tok)-1])
	f.Add([]byte{})
	var push bytes.Buffer
	if err := wire.WriteMsg(&push, &pb.TokenPush{Token: tok}, tokenFrameSize); err != nil {
		f.Fatal(err)
	}
	f.Add(push.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		// What a node reads from a token stream: one TokenPush frame.
		var m pb.TokenPush
		if err := wire.ReadMsg(bytes.NewReader(data), &m, tokenFrameSize); err == nil {
			if _, err := VerifyToken(m.GetToken(), "", "", time.Unix(0, 0)); err == nil || !errors.Is(err, ErrBadToken) {
				t.Fatalf("a token pushed for no one was accepted or refused oddly: %v", err)
			}
		}
		tk, err := ParseToken(data)
		if err != nil {
			if !errors.Is(err, ErrBadToken) {
				t.Fatalf("error %v does not wrap ErrBadToken", err)
			}
			return
		}
		// A token that parses was signed by its recipient: re-checking
		// its own fields must succeed before it expires.
		if err := tk.Check(tk.Recipient, tk.Sender, tk.Expires.Add(-time.Second)); err != nil {
			t.Fatalf("parsed token fails its own check: %v", err)
		}
	})
}
