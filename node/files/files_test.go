package files_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/files"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/file"
	filepb "github.com/natterim/natter/protocols/file/pb"
)

// offer has alice offer a file of size bytes to bob and delivers the
// offer; it returns the transfer id and the file's content.
func offer(t *testing.T, alice, bob *side, size int) (chat.MsgID, []byte) {
	t.Helper()
	src, data := writeFile(t, t.TempDir(), "report.pdf", size)
	out, err := alice.m.SendFile(context.Background(), "bob", control.SendFileRequest{Path: src, Note: "the numbers"})
	require.NoError(t, err)
	id, err := chat.ParseID(out.ID)
	require.NoError(t, err)
	deliver(t, alice, bob, "alice", lastQueued(t, alice))
	return id, data
}

// received checks that bob saved data for transfer id.
func received(t *testing.T, bob *side, id chat.MsgID, data []byte) store.Transfer {
	t.Helper()
	in := bob.st.transfer(t, id)
	require.Equal(t, store.TransferState(store.TransferDone), in.State)
	require.Equal(t, filepath.Join(bob.cfg.DataDir, "downloads"), filepath.Dir(in.Path))
	got, err := os.ReadFile(in.Path)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "the received file differs")
	entries, err := os.ReadDir(filepath.Join(bob.cfg.DataDir, "partial"))
	require.NoError(t, err)
	require.Empty(t, entries, "no partial file is left")
	return in
}

// TestOfferAcceptFetch: an offer over the auto-accept limit waits for the
// user; accepting it fetches the file over the link, saves it, tells the
// sender, and publishes each state on the way.
func TestOfferAcceptFetch(t *testing.T) {
	alice, bob := pair(t, nil)
	ctx := context.Background()
	src, data := writeFile(t, t.TempDir(), "report.pdf", 3<<20+17)

	out, err := alice.m.SendFile(ctx, "bob", control.SendFileRequest{Path: src, Note: "the numbers"})
	require.NoError(t, err)
	require.Equal(t, control.TransferOffered, out.State)
	require.Equal(t, "out", out.Direction)
	require.Equal(t, "bob", out.Contact)
	require.Equal(t, "application/pdf", out.MediaType)
	sum := sha256.Sum256(data)
	require.Equal(t, fmt.Sprintf("%x", sum), out.SHA256)
	msg := alice.events.wait(t, func(e control.Event) bool { return e.Type == control.EventMessage })
	require.Equal(t, store.KindFile, msg.Message.Kind)
	require.Equal(t, "the numbers", msg.Message.Text)
	alice.events.wait(t, func(e control.Event) bool { return e.Type == control.EventFile && e.Transfer.ID == out.ID })
	require.Equal(t, 1, alice.chat.woken(bob.h.ID()), "the offer's deliverer was woken")
	id, err := chat.ParseID(out.ID)
	require.NoError(t, err)
	v, err := alice.m.File(ctx, out.ID)
	require.NoError(t, err)
	require.Equal(t, "waiting for bob to accept", v.Reason)

	in := deliver(t, alice, bob, "alice", lastQueued(t, alice))
	require.Equal(t, store.KindFile, in.Kind)
	require.Equal(t, "the numbers", in.Text)
	require.Nil(t, in.Offer.Reply, "over the auto-accept limit: no answer yet")
	bob.events.wait(t, fileEvent(id, control.TransferOffered))
	v, err = bob.m.File(ctx, out.ID)
	require.NoError(t, err)
	require.Equal(t, "accept with: natter files accept "+out.ID, v.Reason)
	require.Equal(t, "in", v.Direction)

	v, err = bob.m.FileAction(ctx, out.ID, "accept")
	require.NoError(t, err)
	require.Contains(t, []string{control.TransferAccepted, control.TransferTransferring}, v.State, "its runner may be quick")
	require.Equal(t, pb.FileState_FILE_ACCEPTED, updateState(t, lastQueued(t, bob)))
	require.Equal(t, 1, bob.chat.woken(alice.h.ID()))
	deliver(t, bob, alice, "bob", lastQueued(t, bob))

	moving := bob.events.wait(t, fileEvent(id, control.TransferTransferring))
	require.Equal(t, control.PathDirect, moving.Transfer.Path)
	done := bob.events.wait(t, fileEvent(id, control.TransferDone))
	require.Equal(t, int64(len(data)), done.Transfer.BytesDone)
	require.Equal(t, filepath.Join(bob.cfg.DataDir, "downloads", "report.pdf"), done.Transfer.FinalPath)
	tr := received(t, bob, id, data)
	require.Equal(t, control.PathDirect, tr.Via)
	fi, err := os.Stat(tr.Path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	// The sender served it all and learns it is done, durably.
	require.Eventually(t, func() bool {
		return strings.HasPrefix(alice.st.transfer(t, id).Reason, "all sent; waiting for bob to confirm")
	}, 10*time.Second, 10*time.Millisecond)
	q := lastQueued(t, bob)
	require.Equal(t, pb.FileState_FILE_DONE, updateState(t, q))
	deliver(t, bob, alice, "bob", q)
	alice.events.wait(t, fileEvent(id, control.TransferDone))
	require.Equal(t, &control.FileRef{Name: "report.pdf", Size: int64(len(data)), MediaType: "application/pdf",
		SHA256: fmt.Sprintf("%x", sum), State: control.TransferDone}, alice.m.Ref(id))
	require.Nil(t, alice.m.Ref(chat.NewID()))
}

// TestAutoAcceptAndEmpty: an offer under the auto-accept limit from a
// contact is accepted and answered in the same batch; a second file of the
// same name gets a suffix; an empty file needs no data.
func TestAutoAcceptAndEmpty(t *testing.T) {
	alice, bob := pair(t, func(c *files.Config) { c.AutoAcceptMax = 1 << 20 })
	id, data := offer(t, alice, bob, 100<<10)
	tr := bob.st.transfer(t, id)
	require.Equal(t, store.TransferState(store.TransferAccepted), tr.State, "accepted in the batch")
	require.Equal(t, pb.FileState_FILE_ACCEPTED, updateState(t, lastQueued(t, bob)))
	bob.events.wait(t, fileEvent(id, control.TransferDone))
	received(t, bob, id, data)

	id2, _ := offer(t, alice, bob, 100<<10)
	bob.events.wait(t, fileEvent(id2, control.TransferDone))
	require.Equal(t, "report (1).pdf", filepath.Base(bob.st.transfer(t, id2).Path))

	id3, _ := offer(t, alice, bob, 0)
	bob.events.wait(t, fileEvent(id3, control.TransferDone))
	fi, err := os.Stat(bob.st.transfer(t, id3).Path)
	require.NoError(t, err)
	require.Zero(t, fi.Size())
}

// TestResumeFromCheckpoint stops the receiver in the middle of a download
// and starts it again: the transfer resumes from its checkpoint, not from
// zero, and the file arrives intact. A stray partial file goes at the
// start.
func TestResumeFromCheckpoint(t *testing.T) {
	alice, bob := pair(t, func(c *files.Config) {
		c.AutoAcceptMax = 1 << 30
		c.RelayMax = 1 << 30
		c.CheckpointBytes = 1 << 20
		c.CheckpointInterval = time.Hour
	})
	reached := make(chan struct{})
	var once sync.Once
	bob.m.SetAfterChunk(func(ctx context.Context, end int64) {
		if end >= 3<<20 {
			once.Do(func() { close(reached) })
			<-ctx.Done()
		}
	})
	id, data := offer(t, alice, bob, 6<<20)
	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the download never got past the first checkpoints")
	}
	require.NoError(t, bob.m.Close())
	tr := bob.st.transfer(t, id)
	require.Equal(t, store.TransferState(store.TransferTransferring), tr.State)
	require.GreaterOrEqual(t, tr.DoneBytes, int64(1<<20), "a checkpoint was written")
	require.Less(t, tr.DoneBytes, int64(len(data)))

	stray := filepath.Join(bob.cfg.DataDir, "partial", chat.NewID().String()+".part")
	require.NoError(t, os.WriteFile(stray, []byte("old"), 0o600))
	bob.events = newFakeEvents()
	bob.start(t)
	_, err := os.Stat(stray)
	require.ErrorIs(t, err, os.ErrNotExist, "a stray partial file survived the start")
	first := bob.events.wait(t, fileEvent(id, control.TransferTransferring))
	require.GreaterOrEqual(t, first.Transfer.BytesDone, tr.DoneBytes, "resumed, not restarted")
	bob.events.wait(t, fileEvent(id, control.TransferDone))
	received(t, bob, id, data)
}

// TestRefusesStrangers: only the contact a file was offered to, while it
// is a contact, may fetch it; a cancelled one is refused as such.
func TestRefusesStrangers(t *testing.T) {
	alice, bob := pair(t, nil)
	src, _ := writeFile(t, t.TempDir(), "secret.txt", 1000)
	out, err := alice.m.SendFile(context.Background(), "bob", control.SendFileRequest{Path: src})
	require.NoError(t, err)
	id, err := chat.ParseID(out.ID)
	require.NoError(t, err)
	ask := func(from peer.ID) error {
		_, err := alice.m.Source(context.Background(), from, file.TransferID(id), nil, file.KindHashes)
		return err
	}
	refused := func(err error) filepb.Status {
		var re *file.RefusedError
		require.ErrorAs(t, err, &re)
		return re.Status
	}
	stranger, err := peer.Decode("12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK")
	require.NoError(t, err)
	require.Equal(t, file.StatusNotFound, refused(ask(stranger)), "offered to another peer")
	require.Equal(t, file.StatusNotFound, refused(ask(alice.h.ID())))
	require.NoError(t, ask(bob.h.ID()))
	alice.policy.set(bob.h.ID(), false)
	require.Equal(t, file.StatusNotFound, refused(ask(bob.h.ID())), "no longer a contact")
	alice.policy.set(bob.h.ID(), true)
	_, err = alice.m.FileAction(context.Background(), out.ID, "cancel")
	require.NoError(t, err)
	require.Equal(t, file.StatusCancelled, refused(ask(bob.h.ID())))
}

// TestRelayWait: a file over the relay limit waits for a direct link
// rather than moving over the relay; the reason says so and changes with
// the link.
func TestRelayWait(t *testing.T) {
	alice, bob := pair(t, func(c *files.Config) { c.RelayMax = 1 << 20 })
	bob.links.setPath(alice.h.ID(), core.PathRelayed)
	alice.links.setPath(bob.h.ID(), core.PathRelayed)
	id, data := offer(t, alice, bob, 2<<20)
	_, err := bob.m.FileAction(context.Background(), id.String(), "accept")
	require.NoError(t, err)
	deliver(t, bob, alice, "bob", lastQueued(t, bob))
	const wait = "waiting for a direct link (relay limit 1 MiB)"
	ev := bob.events.wait(t, func(e control.Event) bool { return e.Type == control.EventFile && e.Transfer.Reason == wait })
	require.Equal(t, control.TransferAccepted, ev.Transfer.State)
	v, err := alice.m.File(context.Background(), id.String())
	require.NoError(t, err)
	require.Equal(t, wait, v.Reason, "the sender's view says why too")

	bob.links.setPath(alice.h.ID(), core.PathNone)
	bob.events.wait(t, func(e control.Event) bool {
		return e.Type == control.EventFile && e.Transfer.Reason == "alice is offline; the transfer resumes when it is back"
	})
	bob.links.clearPath(alice.h.ID()) // the real, direct, link again
	bob.events.wait(t, fileEvent(id, control.TransferDone))
	received(t, bob, id, data)
}

// TestDiskFull: a download that cannot write pauses with "disk full" and
// resumes by itself once there is room; an offer that cannot be recorded
// fails as disk full and changes nothing.
func TestDiskFull(t *testing.T) {
	alice, bob := pair(t, func(c *files.Config) { c.AutoAcceptMax = 1 << 30 })
	bob.m.SetDiskRetry(20 * time.Millisecond)
	bob.st.setSumsErr(fmt.Errorf("store chunk sums: %w", store.ErrDiskFull))
	id, data := offer(t, alice, bob, 200<<10)
	ev := bob.events.wait(t, fileEvent(id, control.TransferPaused))
	require.Equal(t, "disk full: free some space; retrying every 20ms", ev.Transfer.Reason)
	bob.st.setSumsErr(nil)
	bob.events.wait(t, fileEvent(id, control.TransferDone))
	received(t, bob, id, data)

	alice.st.mu.Lock()
	alice.st.offerErr = store.ErrDiskFull
	alice.st.mu.Unlock()
	before := len(alice.st.outbox())
	src, _ := writeFile(t, t.TempDir(), "more.bin", 10)
	_, err := alice.m.SendFile(context.Background(), "bob", control.SendFileRequest{Path: src})
	require.ErrorIs(t, err, core.ErrDiskFull)
	require.Equal(t, "disk full: the file was not offered (free some space and send it again)", err.Error())
	require.Len(t, alice.st.outbox(), before)
}

// TestSendFileChecks: what SendFile refuses, with the error kind the API
// maps to a status.
func TestSendFileChecks(t *testing.T) {
	alice, _ := pair(t, nil)
	dir := t.TempDir()
	src, _ := writeFile(t, dir, "a.txt", 10)
	alice.st.mu.Lock()
	alice.st.contacts = append(alice.st.contacts, store.Contact{PeerID: alice.h.ID(), Name: "carol", State: store.StatePendingOut})
	alice.st.mu.Unlock()
	for _, c := range []struct {
		ref  string
		req  control.SendFileRequest
		kind error
		msg  string
	}{
		{"dave", control.SendFileRequest{Path: src}, core.ErrNotFound, `no contact "dave"`},
		{"carol", control.SendFileRequest{Path: src}, core.ErrConflict, "carol has not accepted your friend request yet"},
		{"bob", control.SendFileRequest{Path: "a.txt"}, core.ErrInvalid, "is not absolute"},
		{"bob", control.SendFileRequest{Path: filepath.Join(dir, "none")}, core.ErrInvalid, "there is no file"},
		{"bob", control.SendFileRequest{Path: dir}, core.ErrInvalid, "is a directory"},
		{"bob", control.SendFileRequest{Path: src, Name: "../x"}, core.ErrInvalid, "--as"},
	} {
		_, err := alice.m.SendFile(context.Background(), c.ref, c.req)
		require.ErrorIs(t, err, c.kind, c.msg)
		require.Contains(t, err.Error(), c.msg)
	}
	require.Empty(t, alice.st.outbox())
}

// TestFileActions: reject and cancel tell the contact and publish; what
// the state forbids is a conflict.
func TestFileActions(t *testing.T) {
	alice, bob := pair(t, nil)
	ctx := context.Background()
	id, _ := offer(t, alice, bob, 10)
	_, err := alice.m.FileAction(ctx, id.String(), "accept")
	require.ErrorIs(t, err, core.ErrConflict, "the sender does not accept")
	_, err = alice.m.FileAction(ctx, id.String(), "reject")
	require.ErrorIs(t, err, core.ErrConflict)
	_, err = bob.m.FileAction(ctx, id.String(), "frobnicate")
	require.ErrorIs(t, err, core.ErrNotFound)
	_, err = bob.m.FileAction(ctx, chat.NewID().String(), "accept")
	require.ErrorIs(t, err, core.ErrNotFound)

	v, err := bob.m.FileAction(ctx, id.String(), "reject")
	require.NoError(t, err)
	require.Equal(t, control.TransferRejected, v.State)
	require.Equal(t, "you rejected it", v.Reason)
	bob.events.wait(t, fileEvent(id, control.TransferRejected))
	q := lastQueued(t, bob)
	require.Equal(t, pb.FileState_FILE_REJECTED, updateState(t, q))
	_, err = bob.m.FileAction(ctx, id.String(), "cancel")
	require.ErrorIs(t, err, core.ErrConflict, "already over")
	deliver(t, bob, alice, "bob", q)
	ev := alice.events.wait(t, fileEvent(id, control.TransferRejected))
	require.Equal(t, "rejected by bob", ev.Transfer.Reason)

	id2, _ := offer(t, alice, bob, 10)
	v, err = alice.m.FileAction(ctx, id2.String(), "cancel")
	require.NoError(t, err)
	require.Equal(t, control.TransferCancelled, v.State)
	require.Equal(t, pb.FileState_FILE_CANCELLED, updateState(t, lastQueued(t, alice)))
	deliver(t, alice, bob, "alice", lastQueued(t, alice))
	ev = bob.events.wait(t, fileEvent(id2, control.TransferCancelled))
	require.Equal(t, "cancelled by alice", ev.Transfer.Reason)

	ts, err := bob.m.Files(ctx)
	require.NoError(t, err)
	require.Len(t, ts, 2)
	require.Equal(t, id.String(), ts[0].ID)
}

// TestIncoming: what chat stores of each file message.
func TestIncoming(t *testing.T) {
	alice, bob := pair(t, func(c *files.Config) { c.AutoAcceptMax = 1000 })
	ctx := context.Background()
	from := alice.h.ID()
	offerMsg := func(size uint64, chunk uint32) *pb.Message {
		id := chat.NewID()
		return &pb.Message{Id: id[:], Kind: pb.Kind_FILE_OFFER, Seq: 7, SentAtMs: 1000, FileOffer: &pb.FileOffer{
			Name: "../evil\x00name.txt", Size: size, Sha256: make([]byte, 32), ChunkSize: chunk, ChunksRoot: make([]byte, 32), Note: "hi"}}
	}

	in, ok := bob.m.Incoming(ctx, from, "alice", offerMsg(10, file.DefaultChunkSize))
	require.True(t, ok)
	require.Equal(t, store.KindFile, in.Kind)
	require.Equal(t, "hi", in.Text)
	require.Equal(t, uint64(7), in.Seq)
	require.Equal(t, time.UnixMilli(1000), in.SentAt)
	require.Equal(t, store.TransferState(store.TransferAccepted), in.Offer.Transfer.State, "small, from a contact")
	require.Equal(t, from, in.Offer.Reply.Peer)
	require.NotContains(t, in.Offer.Transfer.Name, "/")

	bob.policy.set(from, false)
	in, _ = bob.m.Incoming(ctx, from, "alice", offerMsg(10, file.DefaultChunkSize))
	require.Equal(t, store.TransferState(store.TransferOffered), in.Offer.Transfer.State, "not a contact: ask")
	require.Nil(t, in.Offer.Reply)
	bob.policy.set(from, true)
	in, _ = bob.m.Incoming(ctx, from, "alice", offerMsg(5000, file.DefaultChunkSize))
	require.Equal(t, store.TransferState(store.TransferOffered), in.Offer.Transfer.State, "over the limit: ask")

	in, ok = bob.m.Incoming(ctx, from, "alice", offerMsg(10, 3))
	require.True(t, ok)
	require.Equal(t, store.TransferState(store.TransferFailed), in.Offer.Transfer.State)
	require.Contains(t, in.Offer.Transfer.Reason, "invalid offer: ")
	require.Equal(t, pb.FileState_FILE_FAILED, updateState(t, store.OutboxEntry{NewOutgoing: *in.Offer.Reply}))

	update := func(state pb.FileState, reason string) *pb.Message {
		id, tid := chat.NewID(), chat.NewID()
		return &pb.Message{Id: id[:], Kind: pb.Kind_FILE_UPDATE, FileUpdate: &pb.FileUpdate{Transfer: tid[:], State: state, Reason: reason}}
	}
	for _, c := range []struct {
		name   string
		state  pb.FileState
		reason string
		want   store.TransferState
		why    string
	}{
		{"alice", pb.FileState_FILE_ACCEPTED, "ignored", store.TransferAccepted, ""},
		{"alice", pb.FileState_FILE_REJECTED, "too big", store.TransferRejected, "rejected by alice: too big"},
		{"alice", pb.FileState_FILE_DONE, "", store.TransferDone, ""},
		{"alice", pb.FileState_FILE_CANCELLED, "", store.TransferCancelled, "cancelled by alice"},
		{"", pb.FileState_FILE_FAILED, "disk\nbroke\u202e", store.TransferFailed, "the contact gave up: disk broke"},
	} {
		in, ok := bob.m.Incoming(ctx, from, c.name, update(c.state, c.reason))
		require.True(t, ok)
		require.Equal(t, store.KindFileUpdate, in.Kind)
		require.Equal(t, c.want, in.Update.State)
		require.Equal(t, c.why, in.Update.Reason)
	}
	_, ok = bob.m.Incoming(ctx, from, "alice", update(pb.FileState(99), ""))
	require.False(t, ok, "a state this version does not know")
	tid := chat.NewID()
	_, ok = bob.m.Incoming(ctx, from, "alice", &pb.Message{Id: tid[:], Kind: pb.Kind_TEXT})
	require.False(t, ok, "not a file message")
}

// TestClose: Close is idempotent, and after it nothing starts.
func TestClose(t *testing.T) {
	alice, bob := pair(t, nil)
	id, _ := offer(t, alice, bob, 10)
	require.NoError(t, bob.m.Close())
	require.NoError(t, bob.m.Close())
	_, err := bob.m.FileAction(context.Background(), id.String(), "accept")
	require.NoError(t, err)
	require.Equal(t, store.TransferState(store.TransferAccepted), bob.st.transfer(t, id).State, "accepted, but no runner after Close")
}
