package seal

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/protocols/mailbox/pb"
)

type ident struct {
	key crypto.PrivKey
	id  peer.ID
}

func newIdent(t testing.TB) ident {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	require.NoError(t, err)
	id, err := peer.IDFromPrivateKey(k)
	require.NoError(t, err)
	return ident{k, id}
}

func depID(b byte) [IDLen]byte {
	var d [IDLen]byte
	for i := range d {
		d[i] = b + byte(i)
	}
	return d
}

var now = time.UnixMilli(1_700_000_000_123)

func TestRoundTrip(t *testing.T) {
	alice, bob := newIdent(t), newIdent(t)
	payload := []byte("see you at eight")
	b, err := Seal(alice.key, bob.id, depID(1), payload, now)
	require.NoError(t, err)
	require.False(t, bytes.Contains(b, payload), "the box must not contain the plaintext")
	require.False(t, bytes.Contains(b, []byte(alice.id)), "the box must not name its sender in the clear")

	o, err := Open(bob.key, b, 1<<20)
	require.NoError(t, err)
	require.Equal(t, alice.id, o.Sender)
	require.Equal(t, depID(1), o.DepositID)
	require.Equal(t, payload, o.Payload)
	require.True(t, o.Sealed.Equal(now))

	// Two seals of the same message differ (fresh ephemeral key per box)
	// but open to the same ids.
	b2, err := Seal(alice.key, bob.id, depID(1), payload, now)
	require.NoError(t, err)
	require.NotEqual(t, b, b2)
	o2, err := Open(bob.key, b2, 1<<20)
	require.NoError(t, err)
	require.Equal(t, o, o2)
}

// TestReplay: a box is a value; opening it again yields the same sender
// and deposit id, which is what callers de-duplicate on (the rendezvous by
// deposit id, the recipient by the message id inside the payload).
func TestReplay(t *testing.T) {
	alice, bob := newIdent(t), newIdent(t)
	b, err := Seal(alice.key, bob.id, depID(7), []byte("once"), now)
	require.NoError(t, err)
	seen := map[[IDLen]byte]int{}
	for range 3 {
		o, err := Open(bob.key, b, 1<<20)
		require.NoError(t, err)
		seen[o.DepositID]++
	}
	require.Equal(t, map[[IDLen]byte]int{depID(7): 3}, seen)
}

func TestWrongKey(t *testing.T) {
	alice, bob, eve := newIdent(t), newIdent(t), newIdent(t)
	b, err := Seal(alice.key, bob.id, depID(1), []byte("for bob"), now)
	require.NoError(t, err)
	_, err = Open(eve.key, b, 1<<20)
	require.ErrorIs(t, err, ErrBroken)
	_, err = Open(alice.key, b, 1<<20)
	require.ErrorIs(t, err, ErrBroken, "not even the sender can open it")
}

func TestTampered(t *testing.T) {
	alice, bob := newIdent(t), newIdent(t)
	b, err := Seal(alice.key, bob.id, depID(1), []byte("do not touch"), now)
	require.NoError(t, err)
	for _, i := range []int{0, 31, 32, 47, 48, len(b) / 2, len(b) - 1} {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		_, err := Open(bob.key, c, 1<<20)
		require.ErrorIs(t, err, ErrBroken, "flipped byte %d", i)
	}
	// Extended.
	_, err = Open(bob.key, append(bytes.Clone(b), 0), 1<<20)
	require.ErrorIs(t, err, ErrBroken)
}

func TestTruncated(t *testing.T) {
	alice, bob := newIdent(t), newIdent(t)
	b, err := Seal(alice.key, bob.id, depID(1), []byte("cut short"), now)
	require.NoError(t, err)
	for _, n := range []int{0, 1, 31, 32, Overhead - 1, Overhead, Overhead + 1, len(b) - 1} {
		_, err := Open(bob.key, b[:n], 1<<20)
		require.ErrorIs(t, err, ErrBroken, "truncated to %d", n)
	}
}

func TestTooLarge(t *testing.T) {
	alice, bob := newIdent(t), newIdent(t)
	b, err := Seal(alice.key, bob.id, depID(1), make([]byte, 1000), now)
	require.NoError(t, err)
	_, err = Open(bob.key, b, 999)
	require.ErrorIs(t, err, ErrTooLarge)
}

// sealRaw seals an arbitrary envelope to to, as a malicious sender (or a
// recipient re-sealing a box it opened) could.
func sealRaw(t *testing.T, to peer.ID, env *pb.Envelope) []byte {
	t.Helper()
	pk, err := PublicX25519(to)
	require.NoError(t, err)
	plain, err := proto.Marshal(env)
	require.NoError(t, err)
	b, err := box.SealAnonymous(nil, plain, pk, rand.Reader)
	require.NoError(t, err)
	return b
}

// envelopeOf opens b with key without verifying anything.
func envelopeOf(t *testing.T, key crypto.PrivKey, b []byte) *pb.Envelope {
	t.Helper()
	id, err := peer.IDFromPrivateKey(key)
	require.NoError(t, err)
	priv, err := PrivateX25519(key)
	require.NoError(t, err)
	pub, err := PublicX25519(id)
	require.NoError(t, err)
	plain, ok := box.OpenAnonymous(nil, b, pub, priv)
	require.True(t, ok)
	var env pb.Envelope
	require.NoError(t, proto.Unmarshal(plain, &env))
	return &env
}

// TestWrongRecipient: Mallory receives a box from Alice, opens it and
// seals the very same signed envelope to Bob, hoping Bob takes it as a
// message from Alice to him. The signature covers the recipient.
func TestWrongRecipient(t *testing.T) {
	alice, bob, mallory := newIdent(t), newIdent(t), newIdent(t)
	b, err := Seal(alice.key, mallory.id, depID(1), []byte("for mallory only"), now)
	require.NoError(t, err)
	env := envelopeOf(t, mallory.key, b)

	_, err = Open(bob.key, sealRaw(t, bob.id, env), 1<<20)
	require.ErrorIs(t, err, ErrNotForUs)

	// Changing the recipient field to Bob breaks the signature.
	env.Recipient = []byte(bob.id)
	_, err = Open(bob.key, sealRaw(t, bob.id, env), 1<<20)
	require.ErrorIs(t, err, ErrBadSignature)
}

// TestSignedBySomeoneElse: Mallory seals a box claiming to be Alice (her
// public key) but can only sign with her own key; or moves Alice's signed
// content to another deposit id or time.
func TestSignedBySomeoneElse(t *testing.T) {
	alice, bob, mallory := newIdent(t), newIdent(t), newIdent(t)
	aliceKey, err := crypto.MarshalPublicKey(alice.key.GetPublic())
	require.NoError(t, err)
	payload := []byte("it's me, alice")
	d := depID(3)
	sig, err := mallory.key.Sign(SigningBytes(bob.id, d[:], now.UnixMilli(), payload))
	require.NoError(t, err)
	forged := &pb.Envelope{SenderKey: aliceKey, Recipient: []byte(bob.id), DepositId: d[:], SealedMs: now.UnixMilli(), Payload: payload, Signature: sig}
	_, err = Open(bob.key, sealRaw(t, bob.id, forged), 1<<20)
	require.ErrorIs(t, err, ErrBadSignature)

	// A genuine envelope from Alice, edited after signing.
	b, err := Seal(alice.key, bob.id, depID(4), []byte("genuine"), now)
	require.NoError(t, err)
	for name, edit := range map[string]func(*pb.Envelope){
		"deposit id": func(e *pb.Envelope) { e.DepositId = bytes.Repeat([]byte{9}, IDLen) },
		"time":       func(e *pb.Envelope) { e.SealedMs++ },
		"payload":    func(e *pb.Envelope) { e.Payload = []byte("genuinf") },
		"no sig":     func(e *pb.Envelope) { e.Signature = nil },
	} {
		env := envelopeOf(t, bob.key, b)
		edit(env)
		_, err := Open(bob.key, sealRaw(t, bob.id, env), 1<<20)
		require.ErrorIs(t, err, ErrBadSignature, name)
	}
}

func TestMalformedContent(t *testing.T) {
	bob := newIdent(t)
	pk, err := PublicX25519(bob.id)
	require.NoError(t, err)
	garbage, err := box.SealAnonymous(nil, []byte{0xff, 0xff, 0xff}, pk, rand.Reader)
	require.NoError(t, err)
	_, err = Open(bob.key, garbage, 1<<20)
	require.ErrorIs(t, err, ErrMalformed)

	for name, env := range map[string]*pb.Envelope{
		"no recipient":     {SenderKey: []byte{1}},
		"short deposit id": {Recipient: []byte(bob.id), DepositId: []byte{1, 2}},
		"bad sender key":   {Recipient: []byte(bob.id), DepositId: make([]byte, IDLen), SenderKey: []byte{1, 2, 3}},
	} {
		_, err := Open(bob.key, sealRaw(t, bob.id, env), 1<<20)
		require.ErrorIs(t, err, ErrMalformed, name)
	}
}

func TestRecipientKeys(t *testing.T) {
	alice := newIdent(t)
	// Not Ed25519: no X25519 key to seal to.
	sk, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	require.NoError(t, err)
	secpID, err := peer.IDFromPrivateKey(sk)
	require.NoError(t, err)
	_, err = Seal(alice.key, secpID, depID(1), []byte("x"), now)
	require.Error(t, err)
	_, err = Seal(sk, alice.id, depID(1), []byte("x"), now)
	require.Error(t, err, "only Ed25519 senders")

	// A small-order point (here the identity, encoded 01 00 .. 00) would
	// make the shared secret public.
	small := make([]byte, 32)
	small[0] = 1
	pub, err := crypto.UnmarshalEd25519PublicKey(small)
	require.NoError(t, err)
	smallID, err := peer.IDFromPublicKey(pub)
	require.NoError(t, err)
	_, err = PublicX25519(smallID)
	require.ErrorContains(t, err, "small order")
	_, err = Seal(alice.key, smallID, depID(1), []byte("x"), now)
	require.Error(t, err)
}

// TestKeyConversion: the derived X25519 private key's public key is the
// Montgomery form of the Ed25519 public key (the two conversions agree),
// and both match libsodium's crypto_sign_ed25519_{pk,sk}_to_curve25519
// on libsodium's own test vector (test/default/ed25519_convert).
func TestKeyConversion(t *testing.T) {
	for range 20 {
		id := newIdent(t)
		priv, err := PrivateX25519(id.key)
		require.NoError(t, err)
		pub, err := PublicX25519(id.id)
		require.NoError(t, err)
		derived, err := curve25519.X25519(priv[:], curve25519.Basepoint)
		require.NoError(t, err)
		require.Equal(t, pub[:], derived)
	}

	seed, _ := hex.DecodeString("421151a459faeade3d247115f94aedae42318124095afabe4d1451a559faedee")
	edPriv := ed25519.NewKeyFromSeed(seed)
	key, err := crypto.UnmarshalEd25519PrivateKey(edPriv)
	require.NoError(t, err)
	id, err := peer.IDFromPrivateKey(key)
	require.NoError(t, err)
	require.Equal(t, "b5076a8474a832daee4dd5b4040983b6623b5f344aca57d4d6ee4baf3f259e6e", hex.EncodeToString(edPriv.Public().(ed25519.PublicKey)))
	pub, err := PublicX25519(id)
	require.NoError(t, err)
	require.Equal(t, "f1814f0e8ff1043d8a44d25babff3cedcae6c22c3edaa48f857ae70de2baae50", hex.EncodeToString(pub[:]))
	priv, err := PrivateX25519(key)
	require.NoError(t, err)
	require.Equal(t, "8052030376d47112be7f73ed7a019293dd12ad910b654455798b4667d73de166", hex.EncodeToString(priv[:]))
}

// FuzzOpen feeds untrusted bytes to the opener (what the rendezvous hands
// a node): nothing panics, every refusal wraps one sentinel, and what opens
// carries a sender and a payload that re-seal and open again.
func FuzzOpen(f *testing.F) {
	seedKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	bobKey, err := crypto.UnmarshalEd25519PrivateKey(seedKey)
	if err != nil {
		f.Fatal(err)
	}
	bobID, err := peer.IDFromPrivateKey(bobKey)
	if err != nil {
		f.Fatal(err)
	}
	aliceKey, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)))
	if err != nil {
		f.Fatal(err)
	}
	good, err := Seal(aliceKey, bobID, depID(1), []byte("hello bob"), now)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(make([]byte, Overhead+1))
	f.Add([]byte{})
	sentinels := []error{ErrBroken, ErrMalformed, ErrNotForUs, ErrBadSignature, ErrTooLarge}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := Open(bobKey, data, 64<<10)
		if err != nil {
			n := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error %v wraps %d sentinels, want 1", err, n)
			}
			return
		}
		if o.Sender == "" {
			t.Fatal("opened without a sender")
		}
	})
}
