package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/files"
	"github.com/natterim/natter/node/identity"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/file"
)

// writeFile writes size random bytes to a new file in dir.
func writeFile(t *testing.T, dir, name string, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p, data
}

// waitTransfer waits until n shows transfer id in state and returns it.
func waitTransfer(t *testing.T, n *Node, id, state string, within time.Duration) control.Transfer {
	t.Helper()
	var last control.Transfer
	require.Eventually(t, func() bool {
		tr, err := apiClient(n).File(context.Background(), id)
		if err != nil {
			return false
		}
		last = tr
		return tr.State == state
	}, within, 20*time.Millisecond, "transfer never %s (last: %+v)", state, &last)
	return last
}

func filesPair(t *testing.T, edit func(*Config)) (a, b *Node) {
	t.Helper()
	ca, cb := testConfig(t), testConfig(t)
	if edit != nil {
		edit(&ca)
		edit(&cb)
	}
	a = newTestNode(t, ca, "alice")
	b = newTestNode(t, cb, "bob")
	befriend(t, a, "alice", b, "bob")
	return a, b
}

func TestFileTransferLoopback(t *testing.T) {
	a, b := filesPair(t, nil)
	ctx := context.Background()
	evB := subscribe(t, b)
	src, data := writeFile(t, t.TempDir(), "holiday photos.tar", 5<<20+333)

	out, err := apiClient(a).SendFile(ctx, "bob", control.SendFileRequest{Path: src, Note: "from the trip"})
	require.NoError(t, err)
	require.Equal(t, "out", out.Direction)
	require.Equal(t, control.TransferOffered, out.State)
	require.Equal(t, "holiday photos.tar", out.Name)
	require.Equal(t, src, out.Source)
	sum := sha256.Sum256(data)
	require.Equal(t, hexOf(sum[:]), out.SHA256)

	// The offer shows in bob's history and events; it is under the
	// auto-accept limit, so it arrives by itself.
	e := waitEvent(t, evB, func(e control.Event) bool { return e.Type == control.EventMessage })
	require.Equal(t, control.KindFile, e.Message.Kind)
	require.Equal(t, "from the trip", e.Message.Text)
	require.NotNil(t, e.Message.File)
	require.Equal(t, int64(len(data)), e.Message.File.Size)
	in := waitTransfer(t, b, out.ID, control.TransferDone, 30*time.Second)
	require.Equal(t, "in", in.Direction)
	require.Equal(t, int64(len(data)), in.BytesDone)
	require.Equal(t, control.PathDirect, in.Path)
	require.Equal(t, filepath.Join(b.cfg.DataDir, "downloads", "holiday photos.tar"), in.FinalPath)
	got, err := os.ReadFile(in.FinalPath)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "the received file differs")
	fi, err := os.Stat(in.FinalPath)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	entries, err := os.ReadDir(filepath.Join(b.cfg.DataDir, "partial"))
	require.NoError(t, err)
	require.Empty(t, entries, "no partial file is left")

	// The sender learns it is done, durably.
	waitTransfer(t, a, out.ID, control.TransferDone, 30*time.Second)
	h, err := apiClient(a).History(ctx, "bob", "", 10)
	require.NoError(t, err)
	require.Len(t, h, 1)
	require.Equal(t, control.KindFile, h[0].Kind)
	require.Equal(t, control.TransferDone, h[0].File.State)

	// The same name again gets a suffix, never overwrites.
	out2, err := apiClient(a).SendFile(ctx, "bob", control.SendFileRequest{Path: src})
	require.NoError(t, err)
	in2 := waitTransfer(t, b, out2.ID, control.TransferDone, 30*time.Second)
	require.Equal(t, filepath.Join(b.cfg.DataDir, "downloads", "holiday photos (1).tar"), in2.FinalPath)

	// An empty file.
	empty, _ := writeFile(t, t.TempDir(), "empty.txt", 0)
	out3, err := apiClient(a).SendFile(ctx, "bob", control.SendFileRequest{Path: empty, Name: "nothing.txt"})
	require.NoError(t, err)
	in3 := waitTransfer(t, b, out3.ID, control.TransferDone, 30*time.Second)
	fi, err = os.Stat(in3.FinalPath)
	require.NoError(t, err)
	require.Zero(t, fi.Size())
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestFileAcceptRejectCancel(t *testing.T) {
	a, b := filesPair(t, func(c *Config) { c.Files.AutoAcceptMax = 1 << 20 })
	ctx := context.Background()
	ca, cb := apiClient(a), apiClient(b)
	src, data := writeFile(t, t.TempDir(), "big.bin", 3<<20)

	// Over the auto-accept limit: it waits for bob.
	out, err := ca.SendFile(ctx, "bob", control.SendFileRequest{Path: src})
	require.NoError(t, err)
	in := waitTransfer(t, b, out.ID, control.TransferOffered, 20*time.Second)
	require.Contains(t, in.Reason, "natter files accept")
	_, err = cb.FileAction(ctx, out.ID, "reject")
	require.NoError(t, err)
	rej := waitTransfer(t, a, out.ID, control.TransferRejected, 20*time.Second)
	require.Contains(t, rej.Reason, "rejected by bob")
	_, err = cb.FileAction(ctx, out.ID, "accept")
	requireAPIError(t, err, 409)

	// Accepted by hand, by a unique prefix of its id.
	out, err = ca.SendFile(ctx, "bob", control.SendFileRequest{Path: src})
	require.NoError(t, err)
	waitTransfer(t, b, out.ID, control.TransferOffered, 20*time.Second)
	_, err = cb.FileAction(ctx, out.ID[:13], "accept")
	require.NoError(t, err)
	in = waitTransfer(t, b, out.ID, control.TransferDone, 30*time.Second)
	got, err := os.ReadFile(in.FinalPath)
	require.NoError(t, err)
	require.Equal(t, data, got)

	// The sender cancels an offer: the receiver learns it.
	out, err = ca.SendFile(ctx, "bob", control.SendFileRequest{Path: src})
	require.NoError(t, err)
	waitTransfer(t, b, out.ID, control.TransferOffered, 20*time.Second)
	c, err := ca.FileAction(ctx, out.ID, "cancel")
	require.NoError(t, err)
	require.Equal(t, control.TransferCancelled, c.State)
	in = waitTransfer(t, b, out.ID, control.TransferCancelled, 20*time.Second)
	require.Contains(t, in.Reason, "cancelled by alice")
	_, err = ca.FileAction(ctx, out.ID, "cancel")
	requireAPIError(t, err, 409)

	// Bad requests.
	_, err = cb.FileAction(ctx, "nonsense", "accept")
	requireAPIError(t, err, 404)
	_, err = cb.FileAction(ctx, out.ID, "explode")
	requireAPIError(t, err, 404)
	for _, req := range []control.SendFileRequest{
		{Path: "relative/path"},
		{Path: filepath.Join(t.TempDir(), "missing")},
		{Path: t.TempDir()},
		{Path: src, Name: "../../x"},
		{Path: src, Name: "a\nb"},
		{Path: src, Note: "bell\a"},
	} {
		_, err := ca.SendFile(ctx, "bob", req)
		requireAPIError(t, err, 400)
	}
	_, err = ca.SendFile(ctx, "nobody", control.SendFileRequest{Path: src})
	requireAPIError(t, err, 404)
}

func requireAPIError(t *testing.T, err error, code int) {
	t.Helper()
	var ae *control.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, code, ae.Code, ae.Message)
}

// TestFileChangedAfterOffer: the sender's file changes before the receiver
// fetches it; both sides end failed with the reason, nothing is saved.
func TestFileChangedAfterOffer(t *testing.T) {
	a, b := filesPair(t, func(c *Config) { c.Files.AutoAcceptMax = 0 })
	ctx := context.Background()
	src, _ := writeFile(t, t.TempDir(), "draft.txt", 2<<20)
	out, err := apiClient(a).SendFile(ctx, "bob", control.SendFileRequest{Path: src})
	require.NoError(t, err)
	waitTransfer(t, b, out.ID, control.TransferOffered, 20*time.Second)
	require.NoError(t, os.WriteFile(src, []byte("rewritten"), 0o600))
	_, err = apiClient(b).FileAction(ctx, out.ID, "accept")
	require.NoError(t, err)
	in := waitTransfer(t, b, out.ID, control.TransferFailed, 30*time.Second)
	require.Contains(t, in.Reason, "changed after it was offered")
	o := waitTransfer(t, a, out.ID, control.TransferFailed, 30*time.Second)
	require.Contains(t, o.Reason, "changed after it was offered")
	entries, err := os.ReadDir(filepath.Join(b.cfg.DataDir, "downloads"))
	require.NoError(t, err)
	require.Empty(t, entries)
}

// TestFileChangedKeepingMtime: the sender's file is rewritten after the
// offer with the same size and modification time, so only the chunk check
// can tell: the bad chunk is fetched again (three times), then the
// transfer fails on both sides and nothing is saved.
func TestFileChangedKeepingMtime(t *testing.T) {
	a, b := filesPair(t, func(c *Config) { c.Files.AutoAcceptMax = 0 })
	ctx := context.Background()
	src, data := writeFile(t, t.TempDir(), "sneaky.bin", 3<<20)
	fi, err := os.Stat(src)
	require.NoError(t, err)
	out, err := apiClient(a).SendFile(ctx, "bob", control.SendFileRequest{Path: src})
	require.NoError(t, err)
	waitTransfer(t, b, out.ID, control.TransferOffered, 20*time.Second)
	data[2<<20+5] ^= 0xff // in the third chunk
	require.NoError(t, os.WriteFile(src, data, 0o600))
	require.NoError(t, os.Chtimes(src, fi.ModTime(), fi.ModTime()))
	_, err = apiClient(b).FileAction(ctx, out.ID, "accept")
	require.NoError(t, err)
	in := waitTransfer(t, b, out.ID, control.TransferFailed, 30*time.Second)
	require.Contains(t, in.Reason, "chunk 2 does not match")
	require.Contains(t, in.Reason, "3 times")
	o := waitTransfer(t, a, out.ID, control.TransferFailed, 30*time.Second)
	require.Contains(t, o.Reason, "chunk 2")
	entries, err := os.ReadDir(filepath.Join(b.cfg.DataDir, "downloads"))
	require.NoError(t, err)
	require.Empty(t, entries)
	entries, err = os.ReadDir(filepath.Join(b.cfg.DataDir, "partial"))
	require.NoError(t, err)
	require.Empty(t, entries)
	require.Equal(t, 3.0, b.metrics.Count("file", "invalid"), "each bad chunk is counted")
}

// TestFileHostileOffers injects offers a lying sender would make straight
// into alice's outbox: hostile names are saved under safe names inside the
// downloads folder; invalid offers end failed with the reason, on both
// sides.
func TestFileHostileOffers(t *testing.T) {
	a, b := filesPair(t, nil)
	ctx := context.Background()
	data := []byte("pwned\n")
	hashes, err := file.HashFile(ctx, bytes.NewReader(data), int64(len(data)), file.DefaultChunkSize)
	require.NoError(t, err)
	src, _ := writeFile(t, t.TempDir(), "x", 0)
	require.NoError(t, os.WriteFile(src, data, 0o600))
	fi, err := os.Stat(src)
	require.NoError(t, err)

	offer := func(name string, edit func(o *pb.FileOffer)) string {
		t.Helper()
		id := chat.NewID()
		o := file.Offer{ID: file.TransferID(id), Size: int64(len(data)), SHA256: hashes.SHA256, ChunkSize: file.DefaultChunkSize, Root: hashes.Root}
		wo := file.ToWire(o, file.Meta{Name: name})
		if edit != nil {
			edit(wo)
		}
		payload, err := proto.Marshal(wo)
		require.NoError(t, err)
		tr := store.Transfer{ID: id, Peer: b.ID(), Outgoing: true, State: store.TransferOffered, Name: name, Size: o.Size,
			SHA256: o.SHA256, ChunkSize: o.ChunkSize, Root: o.Root, Path: src, SrcMtime: fi.ModTime().UnixNano()}
		_, err = a.store.OfferFile(ctx, tr, hashes.Sums, store.NewOutgoing{ID: id, Peer: b.ID(), Kind: store.KindFile, SentAt: time.Now(), Payload: payload})
		require.NoError(t, err)
		a.chat.Wake(b.ID())
		return id.String()
	}
	downloads := filepath.Join(b.cfg.DataDir, "downloads")
	for _, tc := range []struct{ name, want string }{
		{"../../x", "x"},
		{"/etc/passwd", "passwd"},
		{"CON", "_CON"},
		{strings.Repeat("n", 4000), strings.Repeat("n", file.MaxNameBytes)},
		{"..", "file"},
		{"evil\u202Etxt.exe", "evil_txt.exe"},
	} {
		id := offer(tc.name, nil)
		in := waitTransfer(t, b, id, control.TransferDone, 30*time.Second)
		require.Equal(t, filepath.Join(downloads, tc.want), in.FinalPath, "offered as %q", tc.name)
		got, err := os.ReadFile(in.FinalPath)
		require.NoError(t, err)
		require.Equal(t, data, got)
	}
	entries, err := os.ReadDir(downloads)
	require.NoError(t, err)
	require.Len(t, entries, 6, "nothing written anywhere else")
	_, err = os.Stat(filepath.Join(filepath.Dir(b.cfg.DataDir), "x"))
	require.True(t, errors.Is(err, os.ErrNotExist))

	// Invalid offers: failed on both sides with the reason.
	for _, edit := range []func(o *pb.FileOffer){
		func(o *pb.FileOffer) { o.Sha256 = o.Sha256[:31] },
		func(o *pb.FileOffer) { o.ChunkSize = 1000 },
		func(o *pb.FileOffer) { o.Size = 1 << 62 },
		func(o *pb.FileOffer) { o.Name = strings.Repeat("x", file.MaxOfferNameBytes+1) },
	} {
		id := offer("bad", edit)
		in := waitTransfer(t, b, id, control.TransferFailed, 30*time.Second)
		require.Contains(t, in.Reason, "invalid offer")
		o := waitTransfer(t, a, id, control.TransferFailed, 30*time.Second)
		require.Contains(t, o.Reason, "invalid offer")
	}

	// A lying offer: the size is right, the SHA-256 is not. Every chunk
	// matches the hash list, the whole file does not: failed, nothing
	// saved, the sender told.
	id := offer("lie.txt", func(o *pb.FileOffer) { o.Sha256 = make([]byte, 32) })
	in := waitTransfer(t, b, id, control.TransferFailed, 30*time.Second)
	require.Contains(t, in.Reason, "SHA-256")
	waitTransfer(t, a, id, control.TransferFailed, 30*time.Second)
	_, err = os.Stat(filepath.Join(downloads, "lie.txt"))
	require.True(t, errors.Is(err, os.ErrNotExist))
}

// TestFileResumeAfterRestart stops the receiver in the middle of a
// transfer and starts it again: the transfer resumes from its checkpoint,
// not from zero, and the file arrives intact.
func TestFileResumeAfterRestart(t *testing.T) {
	ca, cb := testConfig(t), testConfig(t)
	ca.Files.AutoAcceptMax, cb.Files.AutoAcceptMax = 1<<30, 1<<30
	a := newTestNode(t, ca, "alice")
	skB := mustKey(t)
	b := startTestNode(t, cb, skB, "bob")
	befriend(t, a, "alice", b, "bob")
	// Hold bob's download once it is past the first checkpoint, then stop
	// bob as if the user quit.
	reached := make(chan struct{})
	var once sync.Once
	hold := func(ctx context.Context, end int64) {
		if end >= files.DefaultCheckpointBytes+(4<<20) {
			once.Do(func() { close(reached) })
			<-ctx.Done()
		}
	}
	b.files.SetAfterChunk(hold)
	src, data := writeFile(t, t.TempDir(), "movie.mkv", 96<<20)
	out, err := apiClient(a).SendFile(context.Background(), "bob", control.SendFileRequest{Path: src})
	require.NoError(t, err)
	select {
	case <-reached:
	case <-time.After(60 * time.Second):
		t.Fatal("the download never got past the first checkpoint")
	}
	require.NoError(t, b.Close())
	st, err := store.Open(context.Background(), filepath.Join(cb.DataDir, store.FileName))
	require.NoError(t, err)
	id, err := chat.ParseID(out.ID)
	require.NoError(t, err)
	tr, err := st.GetTransfer(context.Background(), id)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	require.GreaterOrEqual(t, tr.DoneBytes, int64(files.DefaultCheckpointBytes), "a checkpoint was written")
	require.Less(t, tr.DoneBytes, int64(len(data)))
	require.Equal(t, store.TransferTransferring, tr.State)

	// A partial file of a transfer that is over (left by a crash) goes at
	// the start; the live one stays.
	stray := filepath.Join(cb.DataDir, "partial", chat.NewID().String()+".part")
	require.NoError(t, os.WriteFile(stray, []byte("old"), 0o600))
	b2 := startTestNode(t, cb, skB, "bob")
	_, err = os.Stat(stray)
	require.True(t, errors.Is(err, os.ErrNotExist), "a stray partial file survived the start")
	a.Host().Peerstore().AddAddrs(b2.ID(), b2.Host().Addrs(), time.Hour)
	b2.Host().Peerstore().AddAddrs(a.ID(), a.Host().Addrs(), time.Hour)
	ev := subscribe(t, b2)
	first := waitEvent(t, ev, func(e control.Event) bool {
		return e.Type == control.EventFile && e.Transfer.State == control.TransferTransferring
	})
	require.GreaterOrEqual(t, first.Transfer.BytesDone, tr.DoneBytes, "resumed, not restarted")
	in := waitTransfer(t, b2, out.ID, control.TransferDone, 60*time.Second)
	got, err := os.ReadFile(in.FinalPath)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "resumed file differs")
	waitTransfer(t, a, out.ID, control.TransferDone, 30*time.Second)
}

// TestFileDiskFull puts the receiver's partial folder on a small tmpfs: a
// file that cannot fit pauses with "disk full", keeps nothing in
// downloads, and resumes once there is room.
func TestFileDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	ca, cb := testConfig(t), testConfig(t)
	partial := filepath.Join(cb.DataDir, "partial")
	require.NoError(t, os.MkdirAll(partial, 0o700))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", partial).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", partial).Run() })
	a := newTestNode(t, ca, "alice")
	b := newTestNode(t, cb, "bob")
	b.files.SetDiskRetry(200 * time.Millisecond)
	befriend(t, a, "alice", b, "bob")

	// Fill the tmpfs so that the file does not fit.
	filler := filepath.Join(partial, "filler")
	require.NoError(t, os.WriteFile(filler, make([]byte, 20<<20), 0o600))
	src, data := writeFile(t, t.TempDir(), "big.iso", 6<<20)
	out, err := apiClient(a).SendFile(context.Background(), "bob", control.SendFileRequest{Path: src})
	require.NoError(t, err)
	in := waitTransfer(t, b, out.ID, control.TransferPaused, 20*time.Second)
	require.Contains(t, in.Reason, "disk full")
	entries, err := os.ReadDir(filepath.Join(cb.DataDir, "downloads"))
	require.NoError(t, err)
	require.Empty(t, entries)

	// Room again: it resumes by itself and is saved (across file systems:
	// copied, not linked).
	require.NoError(t, os.Remove(filler))
	in = waitTransfer(t, b, out.ID, control.TransferDone, 30*time.Second)
	got, err := os.ReadFile(in.FinalPath)
	require.NoError(t, err)
	require.Equal(t, data, got)

	// Something else fills the disk in the middle of a transfer: the
	// transfer reserved its space before it started (fallocate), so it
	// completes; the other writer is the one that runs out.
	var once sync.Once
	filled := make(chan int64, 1)
	fill := func(context.Context, int64) {
		once.Do(func() {
			f, err := os.Create(filler)
			var n int
			if err == nil {
				n, _ = f.Write(make([]byte, 24<<20)) // until ENOSPC
				f.Close()
			}
			filled <- int64(n)
		})
	}
	b.files.SetAfterChunk(fill)
	src2, data2 := writeFile(t, t.TempDir(), "second.iso", 6<<20)
	out, err = apiClient(a).SendFile(context.Background(), "bob", control.SendFileRequest{Path: src2})
	require.NoError(t, err)
	in = waitTransfer(t, b, out.ID, control.TransferDone, 30*time.Second)
	require.Less(t, <-filled, int64(24<<20), "the filler ran out of space")
	got, err = os.ReadFile(in.FinalPath)
	require.NoError(t, err)
	require.Equal(t, data2, got)
}

func mustKey(t *testing.T) crypto.PrivKey {
	t.Helper()
	sk, err := identity.Generate()
	require.NoError(t, err)
	return sk
}

func TestFilesConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Files.DownloadDir = "relative/dir" }, "files.download_dir"},
		{func(c *Config) { c.Files.AutoAcceptMax = -1 }, "files.auto_accept_max"},
		{func(c *Config) { c.Files.RelayMax = file.MaxFileSize + 1 }, "files.relay_max"},
		{func(c *Config) { c.Files.StallTimeout = time.Second }, "files.stall_timeout"},
	} {
		c := DefaultConfig()
		c.DataDir = "/x"
		tc.edit(&c)
		require.ErrorContains(t, c.Validate(), tc.want)
	}
	c := DefaultConfig()
	c.DataDir, c.Files.DownloadDir, c.Files.AutoAcceptMax, c.Files.RelayMax = "/x", "/home/a/Downloads", 0, 0
	require.NoError(t, c.Validate())
}
