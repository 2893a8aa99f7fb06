package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/protocols/names"
	"github.com/natterim/natter/rendezvous/store"
)

func TestNamesTable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	sk, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(sk)
	t0 := time.UnixMilli(1_700_000_000_000)
	r := s.Names()
	if _, err := r.Get(ctx, "bob"); err != names.ErrNotFound {
		t.Fatalf("get missing: %v", err)
	}
	for i, n := range []string{"bob", "carol"} {
		e := names.Entry{Name: n, Skeleton: names.Skeleton(n), Peer: id, Seq: uint64(i + 1), Record: []byte("rec-" + n),
			Registered: t0, Renewed: t0.Add(time.Duration(i) * time.Hour)}
		if err := r.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// Replace by skeleton.
	if err := r.Put(ctx, names.Entry{Name: "b0b", Skeleton: names.Skeleton("b0b"), Peer: id, Seq: 9, Record: []byte("x"), Registered: t0, Renewed: t0}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = store.Open(ctx, dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r = s.Names()
	e, err := r.Get(ctx, names.Skeleton("bob"))
	if err != nil || e.Name != "b0b" || e.Seq != 9 || e.Peer != id || string(e.Record) != "x" || !e.Renewed.Equal(t0) {
		t.Fatalf("get after reopen: %+v, %v", e, err)
	}
	ns, err := r.NamesOf(ctx, id, t0.Add(30*time.Minute))
	if err != nil || len(ns) != 1 || ns[0] != "carol" {
		t.Fatalf("active names: %v, %v", ns, err)
	}
	n, err := r.DeleteInactive(ctx, t0.Add(30*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("delete inactive: %d, %v", n, err)
	}
	if err := r.Delete(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if ns, _ := r.NamesOf(ctx, id, time.Time{}); len(ns) != 0 {
		t.Fatalf("left: %v", ns)
	}
}
