package node

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/file"
	filepb "github.com/natterim/natter/protocols/file/pb"
	"github.com/natterim/natter/protocols/wire"
)

// File transfer (protocols/file moves the bytes; store/files.go keeps the
// rows):
//
//	sender                                     receiver
//	SendFile: hash the file (whole + chunks)
//	  transfer row + FILE_OFFER in the outbox ─chat─> offer row (+ ACCEPTED
//	  (one transaction)                                 queued if auto-accepted)
//	                                           natter files accept: accepted
//	                                           + ACCEPTED queued (one tx)
//	Source: is it offered to this peer,  <─pull── runner: wait for a usable
//	  file unchanged? stream it                 link, fetch the hash list,
//	                                            download from the durable
//	                                            prefix, checkpoint, save
//	  done <─chat─ FILE_DONE queued with the done row (one transaction)
//
// Durability: the receiver writes <data_dir>/partial/<id>.part and records
// a checkpoint (verified bytes + the SHA-256 state after them) only after
// fsyncing the file up to that point, every checkpointBytes or
// checkpointInterval. After a crash or a broken link it truncates the
// partial file to the checkpoint and asks for the data from there. The
// finished file is hard-linked (or, across file systems, copied and
// fsynced) into the downloads folder under a safe, unused name that is
// recorded before the link, so a crash in between never makes a second
// copy.
const (
	checkpointBytes    = 64 << 20
	checkpointInterval = 2 * time.Second
	progressInterval   = 500 * time.Millisecond
	maxActiveDownloads = 4
	// maxBadTries is how often a chunk may fail verification (or the
	// sender end the data early) without progress before the transfer
	// fails.
	maxBadTries = 3
	// diskMargin is left free on the disk beyond what a transfer needs.
	diskMargin = 16 << 20
)

var errFileChanged = errors.New("the file changed after it was offered")

// fileMgr is the node's file-transfer machinery.
type fileMgr struct {
	n           *Node
	svc         *file.Service
	partialDir  string
	downloadDir string
	slots       chan struct{}
	// diskRetry is how long (ns) a transfer paused for a full disk waits
	// before checking again; tests shorten it.
	diskRetry atomic.Int64
	// afterChunk, if set (tests), runs after each verified chunk.
	afterChunk atomic.Pointer[func(ctx context.Context, end int64)]

	mu     sync.Mutex
	runs   map[chat.MsgID]*fileRun
	lives  map[chat.MsgID]*liveXfer
	aborts map[chat.MsgID]*atomic.Bool
}

// fileRun is the runner of one incoming transfer.
type fileRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	kick   chan struct{}
}

// liveXfer is a transfer whose data is moving now.
type liveXfer struct {
	bytes atomic.Int64

	mu        sync.Mutex
	t         store.Transfer
	path      string
	rate      float64
	lastBytes int64 // at the last tick of progressLoop, which published it
	lastAt    time.Time
}

func newFileMgr(n *Node) (*fileMgr, error) {
	m := &fileMgr{
		n:           n,
		partialDir:  filepath.Join(n.cfg.DataDir, "partial"),
		downloadDir: n.cfg.Files.DownloadDir,
		slots:       make(chan struct{}, maxActiveDownloads),
		runs:        map[chat.MsgID]*fileRun{},
		lives:       map[chat.MsgID]*liveXfer{},
		aborts:      map[chat.MsgID]*atomic.Bool{},
	}
	m.diskRetry.Store(int64(30 * time.Second))
	if m.downloadDir == "" {
		m.downloadDir = filepath.Join(n.cfg.DataDir, "downloads")
	}
	for _, d := range []string{m.partialDir, m.downloadDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("files: %w", err)
		}
	}
	var err error
	if m.downloadDir, err = filepath.Abs(m.downloadDir); err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	m.svc = file.New(n.host, m, file.WithLogger(n.log), file.WithMetrics(n.metrics),
		file.WithRelayMax(n.cfg.Files.RelayMax), file.WithStallTimeout(n.cfg.Files.StallTimeout))
	return m, nil
}

// Close stops serving files (the node's services list calls it).
func (m *fileMgr) Close() { m.svc.Close() }

// start picks up where the last run stopped: transfers that were moving
// are paused, incoming ones get their runner back.
func (m *fileMgr) start(ctx context.Context) error {
	ts, err := m.n.store.ActiveTransfers(ctx)
	if err != nil {
		return err
	}
	m.removeLeftovers(ts)
	for _, t := range ts {
		if t.State == store.TransferTransferring {
			t, _, err = m.n.store.UpdateTransfer(ctx, t.ID, func(t *store.Transfer) (*store.NewOutgoing, error) {
				t.State, t.Reason = store.TransferPaused, "interrupted by a restart"
				return nil, nil
			})
			if err != nil {
				return err
			}
		}
		if !t.Outgoing && t.State != store.TransferOffered {
			m.startRun(t.ID)
		}
	}
	m.n.goRun(m.progressLoop)
	return nil
}

// removeLeftovers deletes partial files of transfers that are over (a
// crash or a shutdown came between the end and the deletion) and copies a
// crash left in the downloads folder.
func (m *fileMgr) removeLeftovers(active []store.Transfer) {
	keep := map[string]bool{}
	for _, t := range active {
		if !t.Outgoing {
			keep[filepath.Base(m.partialPath(t.ID))] = true
		}
	}
	if es, err := os.ReadDir(m.partialDir); err == nil {
		for _, e := range es {
			name := e.Name()
			id, ok := strings.CutSuffix(name, ".part")
			if _, err := chat.ParseID(id); ok && err == nil && !keep[name] && e.Type().IsRegular() {
				_ = os.Remove(filepath.Join(m.partialDir, name))
			}
		}
	}
	if es, err := os.ReadDir(m.downloadDir); err == nil {
		for _, e := range es {
			name := e.Name()
			if strings.HasPrefix(name, ".natter-") && strings.HasSuffix(name, ".tmp") && e.Type().IsRegular() {
				_ = os.Remove(filepath.Join(m.downloadDir, name))
			}
		}
	}
}

func (m *fileMgr) retryDisk() time.Duration { return time.Duration(m.diskRetry.Load()) }

func (m *fileMgr) partialPath(id chat.MsgID) string {
	return filepath.Join(m.partialDir, id.String()+".part")
}

// ---------------------------------------------------------------------
// Receiving

// incomingOffer decides how a received offer is recorded: as a failed
// transfer if it is invalid, accepted if it is small enough to accept
// without asking, else offered. The answer to the sender goes in the same
// transaction.
func (m *fileMgr) incomingOffer(ctx context.Context, from peer.ID, msg *pb.Message) *store.IncomingOffer {
	id := chat.MsgID(msg.GetId())
	wo := msg.GetFileOffer()
	o, meta, err := file.OfferFromWire(id, wo)
	t := store.Transfer{Name: file.SafeName(wo.GetName()), State: store.TransferOffered}
	if err != nil {
		t.State = store.TransferFailed
		t.Reason = "invalid offer: " + err.Error()
		t.Size, t.ChunkSize = 0, file.DefaultChunkSize
		m.n.log.Debug("invalid file offer", "peer", from.ShortString(), "err", err)
		return &store.IncomingOffer{Transfer: t, Reply: m.update(from, id, store.TransferFailed, t.Reason)}
	}
	t.Size, t.SHA256, t.ChunkSize, t.Root = o.Size, o.SHA256, o.ChunkSize, o.Root
	t.MediaType, t.Note = meta.MediaType, meta.Note
	if o.Size <= m.n.cfg.Files.AutoAcceptMax && m.n.isAccepted(ctx, from) {
		t.State = store.TransferAccepted
		return &store.IncomingOffer{Transfer: t, Reply: m.update(from, id, store.TransferAccepted, "")}
	}
	return &store.IncomingOffer{Transfer: t}
}

// incomingUpdate converts a received file update from the contact called
// who ("" if unnamed); nil for one this version does not understand.
func (m *fileMgr) incomingUpdate(who string, u *pb.FileUpdate) *store.IncomingUpdate {
	if who == "" {
		who = "the contact"
	}
	reason := cleanReason(u.GetReason())
	out := &store.IncomingUpdate{Transfer: chat.MsgID(u.GetTransfer())}
	switch u.GetState() {
	case pb.FileState_FILE_ACCEPTED:
		out.State = store.TransferAccepted
	case pb.FileState_FILE_REJECTED:
		out.State, out.Reason = store.TransferRejected, "rejected by "+who
	case pb.FileState_FILE_DONE:
		out.State = store.TransferDone
	case pb.FileState_FILE_CANCELLED:
		out.State, out.Reason = store.TransferCancelled, "cancelled by "+who
	case pb.FileState_FILE_FAILED:
		out.State, out.Reason = store.TransferFailed, who+" gave up"
	default:
		return nil
	}
	if reason != "" && out.State != store.TransferAccepted && out.State != store.TransferDone {
		out.Reason += ": " + reason
	}
	return out
}

// received acts on transfers a chat batch created or changed.
func (m *fileMgr) received(ts []store.Transfer) {
	for _, t := range ts {
		m.publish(t)
		switch {
		case !t.Outgoing && t.State == store.TransferAccepted:
			m.startRun(t.ID)
		case !t.Outgoing && store.FinalState(t.State):
			if m.n.ctx.Err() != nil {
				continue // shutting down; the partial file goes at the next start
			}
			id := t.ID
			m.n.goRun(func(context.Context) { m.stopRun(id, true) })
		case t.Outgoing && store.FinalState(t.State):
			m.abortServing(t.ID)
		}
	}
}

// update is a file update for the contact, to queue.
func (m *fileMgr) update(p peer.ID, id chat.MsgID, state store.TransferState, reason string) *store.NewOutgoing {
	u := &pb.FileUpdate{Transfer: id[:], Reason: clipReason(reason)}
	switch state {
	case store.TransferAccepted:
		u.State = pb.FileState_FILE_ACCEPTED
	case store.TransferRejected:
		u.State = pb.FileState_FILE_REJECTED
	case store.TransferDone:
		u.State = pb.FileState_FILE_DONE
	case store.TransferCancelled:
		u.State = pb.FileState_FILE_CANCELLED
	default:
		u.State = pb.FileState_FILE_FAILED
	}
	b, _ := proto.Marshal(u) // cannot fail for this message
	return &store.NewOutgoing{ID: chat.NewID(), Peer: p, Kind: store.KindFileUpdate, SentAt: time.Now(), Payload: b}
}

// startRun starts the runner of an incoming transfer, or kicks it if it
// runs.
func (m *fileMgr) startRun(id chat.MsgID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.runs[id]; ok {
		select {
		case r.kick <- struct{}{}:
		default:
		}
		return
	}
	if m.n.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(m.n.ctx)
	r := &fileRun{cancel: cancel, done: make(chan struct{}), kick: make(chan struct{}, 1)}
	m.runs[id] = r
	m.n.goRun(func(context.Context) {
		defer func() {
			m.mu.Lock()
			if m.runs[id] == r {
				delete(m.runs, id)
			}
			m.mu.Unlock()
			close(r.done)
		}()
		m.run(ctx, id, r.kick)
	})
}

// stopRun stops an incoming transfer's runner and waits for it; with
// removePartial it then deletes the partial file (the transfer is over).
func (m *fileMgr) stopRun(id chat.MsgID, removePartial bool) {
	m.mu.Lock()
	r := m.runs[id]
	m.mu.Unlock()
	if r != nil {
		r.cancel()
		<-r.done
	}
	if removePartial {
		_ = os.Remove(m.partialPath(id))
	}
}

// next is what a runner waits for before its next attempt.
type next struct {
	wait   time.Duration // 0: at once
	onLink bool          // also when the contact's connections change
	stop   bool
}

// run is the runner of one incoming transfer: it tries until the file is
// saved, the transfer fails, or it is stopped.
func (m *fileMgr) run(ctx context.Context, id chat.MsgID, kick <-chan struct{}) {
	bo := core.NewBackoff(time.Second, 30*time.Second)
	var bad badTries
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		t, err := m.n.store.GetTransfer(ctx, id)
		if err != nil || t.Outgoing || store.FinalState(t.State) || t.State == store.TransferOffered {
			return
		}
		changed := m.n.watch.changed(t.Peer)
		before := t.DoneBytes
		nx := m.attempt(ctx, &t, &bad, bo)
		if nx.stop || ctx.Err() != nil {
			return
		}
		if t.DoneBytes > before {
			bo.Reset()
		}
		wait := nx.wait
		if wait == 0 && !nx.onLink {
			continue
		}
		if wait == 0 {
			wait = time.Hour
		}
		var link <-chan struct{}
		if nx.onLink {
			link = changed
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-link:
		case <-timer.C:
		}
	}
}

// badTries counts failed chunk checks (and early ends of the data) at the
// same point of a transfer.
type badTries struct {
	n  int
	at int64
}

// attempt makes one try at an incoming transfer.
func (m *fileMgr) attempt(ctx context.Context, t *store.Transfer, bad *badTries, bo *core.Backoff) next {
	name := m.label(ctx, t.Peer)
	path, _ := m.n.pathTo(t.Peer)
	relayMax := m.n.cfg.Files.RelayMax
	switch {
	case t.DoneBytes == t.Size:
		// Everything is here (or the file is empty): no link needed.
	case path == control.PathNone:
		m.hold(ctx, t, name+" is offline; the transfer resumes when it is back")
		return next{onLink: true}
	case path == control.PathRelayed && t.Size > relayMax:
		m.hold(ctx, t, fmt.Sprintf("waiting for a direct link (relay limit %s)", file.FormatSize(relayMax)))
		return next{onLink: true}
	}
	if need := t.Size - t.DoneBytes; need > 0 {
		need += diskMargin
		if free, err := diskFree(m.partialDir); err == nil && free < uint64(need) {
			m.pause(ctx, t, fmt.Sprintf("disk full: needs %s, %s free; retrying every %s", file.FormatSize(need),
				file.FormatSize(int64(free)), m.retryDisk()))
			return next{wait: m.retryDisk()}
		}
	}
	select {
	case m.slots <- struct{}{}:
	default:
		m.hold(ctx, t, fmt.Sprintf("waiting: %d transfers are running", maxActiveDownloads))
		select {
		case m.slots <- struct{}{}:
		case <-ctx.Done():
			return next{stop: true}
		}
	}
	defer func() { <-m.slots }()

	err := m.download(ctx, t, path)
	if err == nil {
		return next{stop: true}
	}
	return m.handleErr(ctx, t, err, bad, bo)
}

// download fetches the hash list if need be, then the data from the
// durable prefix on, and saves the file.
func (m *fileMgr) download(ctx context.Context, t *store.Transfer, path string) error {
	offer := file.Offer{ID: file.TransferID(t.ID), Size: t.Size, SHA256: t.SHA256, ChunkSize: t.ChunkSize, Root: t.Root}
	opts := file.FetchOptions{AllowRelayed: path == control.PathRelayed, StallTimeout: m.n.cfg.Files.StallTimeout}
	sums, err := m.n.store.TransferSums(ctx, t.ID)
	if err != nil {
		return err
	}
	if sums == nil && offer.Chunks() == 0 {
		sums = []byte{} // an empty file: nothing to fetch
	}
	if sums == nil {
		if sums, err = file.FetchSums(ctx, m.n.host, t.Peer, offer, opts); err != nil {
			return err
		}
		if err := m.n.store.SetTransferSums(ctx, t.ID, sums); err != nil {
			return err
		}
	}

	f, err := os.OpenFile(m.partialPath(t.ID), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open partial file: %w", err)
	}
	defer f.Close()
	whole := sha256.New()
	if fi, err := f.Stat(); err != nil || fi.Size() < t.DoneBytes || t.DoneBytes%int64(t.ChunkSize) != 0 && t.DoneBytes != t.Size ||
		t.DoneBytes > 0 && whole.(encoding.BinaryUnmarshaler).UnmarshalBinary(t.HashState) != nil {
		// The partial file lost what the checkpoint says it holds (or the
		// checkpoint is unusable): start over rather than trust it.
		m.n.log.Warn("partial file does not match its checkpoint; starting the transfer over", "transfer", t.ID)
		whole.Reset()
		t.DoneBytes, t.HashState = 0, nil
		if err := m.n.store.Checkpoint(ctx, t.ID, 0, nil); err != nil {
			return err
		}
	}
	if err := f.Truncate(t.DoneBytes); err != nil {
		return fmt.Errorf("truncate partial file: %w", err)
	}
	if err := preallocate(f, t.DoneBytes, t.Size-t.DoneBytes); err != nil {
		return fmt.Errorf("reserve space for the file: %w", err)
	}

	live := m.startLive(*t, t.DoneBytes)
	defer m.stopLive(t.ID)
	cp := newCheckpointer(m.n.store, f, t.ID, t.DoneBytes)
	opts.Opened = func(c network.Conn) {
		via := core.PathOf(c).String()
		m.n.log.Debug("file stream open", "transfer", t.ID, "via", via, "transport", transportName(c.RemoteMultiaddr()))
		live.mu.Lock()
		live.path = via
		live.mu.Unlock()
		m.setTransferring(ctx, t, via)
	}
	opts.Written = func(_ int, end int64) error {
		live.bytes.Store(end)
		if f := m.afterChunk.Load(); f != nil {
			(*f)(ctx, end)
		}
		st, err := whole.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			return err
		}
		return cp.offer(end, st)
	}
	from := int(t.DoneBytes / int64(t.ChunkSize))
	if t.DoneBytes == t.Size {
		from = offer.Chunks() // all here: only the final check and the move remain
	}
	res, err := file.Download(ctx, m.n.host, t.Peer, offer, sums, from, f, whole, opts)
	durable, cpErr := cp.finish(context.WithoutCancel(ctx))
	t.DoneBytes = durable
	if err != nil {
		return err
	}
	if cpErr != nil {
		return cpErr
	}
	if durable != t.Size {
		return fmt.Errorf("download ended at %d of %d bytes", durable, t.Size)
	}
	if res.Trailing {
		m.n.metrics.StreamError("file", fmt.Errorf("bytes past the offered size: %w", wire.ErrInvalid))
	}
	return m.finish(ctx, t, res.Trailing)
}

// handleErr decides what a failed attempt means.
func (m *fileMgr) handleErr(ctx context.Context, t *store.Transfer, err error, bad *badTries, bo *core.Backoff) next {
	if ctx.Err() != nil {
		return next{stop: true}
	}
	name := m.label(ctx, t.Peer)
	var (
		re *file.RefusedError
		ce *file.ChunkError
		pe *fs.PathError
		le *os.LinkError
	)
	switch {
	case errors.As(err, &re):
		switch re.Status {
		case file.StatusNotFound:
			m.fail(ctx, t, name+" no longer offers this file", false)
			return next{stop: true}
		case file.StatusCancelled:
			m.end(ctx, t, store.TransferCancelled, "cancelled by "+name, false)
			return next{stop: true}
		case file.StatusFailed:
			m.fail(ctx, t, name+" cannot send the file: "+cleanReason(re.Reason), false)
			return next{stop: true}
		case file.StatusRelayLimit:
			m.hold(ctx, t, fmt.Sprintf("waiting for a direct link (%s sends at most %s over a relay)", name, file.FormatSize(re.RelayMax)))
			return next{onLink: true}
		}
		m.pause(ctx, t, name+" is busy with other transfers; retrying")
		return next{wait: bo.Next()}
	case errors.Is(err, file.ErrHashList), errors.Is(err, file.ErrFileHash), errors.Is(err, file.ErrLength):
		m.n.metrics.StreamError("file", err)
		m.fail(ctx, t, err.Error(), true)
		return next{stop: true}
	case errors.As(err, &ce), errors.Is(err, file.ErrShort):
		m.n.metrics.StreamError("file", err)
		if t.DoneBytes != bad.at {
			bad.n, bad.at = 0, t.DoneBytes // progress since the last one
		}
		bad.n++
		if bad.n >= maxBadTries {
			m.fail(ctx, t, fmt.Sprintf("%v (%d times; the sender's file changed or it is faulty)", err, bad.n), true)
			return next{stop: true}
		}
		m.pause(ctx, t, err.Error()+"; fetching it again")
		return next{wait: time.Second}
	case isDiskFull(err):
		_ = os.Truncate(m.partialPath(t.ID), t.DoneBytes) // give back the unverified tail
		m.pause(ctx, t, fmt.Sprintf("disk full: free some space; retrying every %s", m.retryDisk()))
		return next{wait: m.retryDisk()}
	case errors.Is(err, file.ErrNoConnection):
		return next{onLink: true, wait: time.Second}
	case errors.As(err, &pe), errors.As(err, &le), errors.Is(err, store.ErrDiskFull):
		m.pause(ctx, t, "cannot write the file: "+err.Error())
		return next{wait: time.Minute}
	}
	m.n.metrics.StreamError("file", err)
	reason := "interrupted: " + shortErr(err) + "; retrying"
	m.pause(ctx, t, reason)
	m.n.log.Debug("file transfer interrupted", "transfer", t.ID, "peer", t.Peer.ShortString(), "err", err)
	return next{wait: bo.Next(), onLink: true}
}

// finish saves a verified, durable file into the downloads folder and
// marks the transfer done.
func (m *fileMgr) finish(ctx context.Context, t *store.Transfer, trailing bool) error {
	partial := m.partialPath(t.ID)
	dest, err := m.place(ctx, t, partial)
	if err != nil {
		return err
	}
	reason := ""
	if trailing {
		reason = "the sender sent more bytes than offered; they were discarded"
	}
	nt, q, err := m.n.store.UpdateTransfer(ctx, t.ID, func(x *store.Transfer) (*store.NewOutgoing, error) {
		if store.FinalState(x.State) {
			return nil, fmt.Errorf("transfer is %s", x.State)
		}
		x.State, x.Path, x.Reason, x.DoneBytes, x.HashState = store.TransferDone, dest, reason, x.Size, nil
		return m.update(x.Peer, x.ID, store.TransferDone, ""), nil
	})
	if err != nil {
		return err
	}
	_ = os.Remove(partial)
	*t = nt
	m.n.log.Info("file received", "transfer", t.ID, "peer", t.Peer.ShortString(), "size", t.Size, "path", dest)
	m.publish(nt)
	m.queued(q)
	return nil
}

// place links (or copies) the partial file into the downloads folder under
// a safe name that is not taken, and returns its path. The chosen path is
// recorded before the link, so that after a crash the same file is found
// again rather than saved twice.
func (m *fileMgr) place(ctx context.Context, t *store.Transfer, partial string) (string, error) {
	if t.Path != "" && filepath.Dir(t.Path) == m.downloadDir {
		if fi, err := os.Lstat(t.Path); err == nil {
			if pi, err := os.Stat(partial); err == nil && os.SameFile(fi, pi) {
				return t.Path, syncDir(m.downloadDir)
			}
			if ok, _ := hasHash(t.Path, t.Size, t.SHA256); ok {
				return t.Path, nil // copied there before a crash
			}
		}
	}
	if err := os.MkdirAll(m.downloadDir, 0o700); err != nil {
		return "", err
	}
	for i := 0; i < 10000; i++ {
		name := t.Name
		if i > 0 {
			name = file.ClashName(t.Name, i)
		}
		dest := filepath.Join(m.downloadDir, name)
		if filepath.Dir(dest) != m.downloadDir || filepath.Base(dest) != name {
			return "", fmt.Errorf("unsafe file name %q", name) // SafeName prevents this
		}
		if _, err := os.Lstat(dest); err == nil {
			continue
		}
		if _, _, err := m.n.store.UpdateTransfer(ctx, t.ID, func(x *store.Transfer) (*store.NewOutgoing, error) {
			x.Path = dest
			return nil, nil
		}); err != nil {
			return "", err
		}
		err := linkOrCopy(partial, dest, filepath.Join(m.downloadDir, ".natter-"+t.ID.String()+".tmp"))
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		return dest, syncDir(m.downloadDir)
	}
	return "", fmt.Errorf("no free name for %q in %s", t.Name, m.downloadDir)
}

// linkOrCopy makes dest a name of src without ever replacing an existing
// dest: a hard link, or where that is impossible (another file system) a
// copy through tmp, fsynced before it gets its name.
func linkOrCopy(src, dest, tmp string) error {
	err := os.Link(src, dest)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	_ = os.Remove(tmp) // ours, left by a crash
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	_, err = io.CopyBuffer(out, in, make([]byte, 1<<20))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Link(tmp, dest)
}

// hasHash reports whether the file at path is a regular file of size bytes
// with SHA-256 sum.
func hasHash(path string, size int64, sum [32]byte) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != size {
		return false, err
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return false, err
	}
	return [32]byte(h.Sum(nil)) == sum, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// checkpointer makes progress durable in the background: fsync the partial
// file, then record the checkpoint, at most every checkpointBytes or
// checkpointInterval, so that no fsync sits in the data path.
type checkpointer struct {
	st  *store.Store
	f   *os.File
	id  chat.MsgID
	req chan checkpoint
	wg  sync.WaitGroup

	mu      sync.Mutex
	latest  checkpoint // the newest verified point
	sent    checkpoint // the newest point handed to the syncer
	sentAt  time.Time
	durable int64
	err     error
}

type checkpoint struct {
	end   int64
	state []byte
}

func newCheckpointer(st *store.Store, f *os.File, id chat.MsgID, durable int64) *checkpointer {
	c := &checkpointer{st: st, f: f, id: id, req: make(chan checkpoint, 1), durable: durable, sentAt: time.Now()}
	c.latest.end, c.sent.end = durable, durable
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for cp := range c.req {
			c.save(context.Background(), cp)
		}
	}()
	return c
}

// offer records a newly verified point; it returns the syncer's error, if
// any, so that the download stops on a disk that cannot keep up.
func (c *checkpointer) offer(end int64, state []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.latest = checkpoint{end, state}
	if end-c.sent.end < checkpointBytes && time.Since(c.sentAt) < checkpointInterval {
		return nil
	}
	select {
	case c.req <- c.latest:
		c.sent, c.sentAt = c.latest, time.Now()
	default: // the syncer is busy; the next offer will do
	}
	return nil
}

func (c *checkpointer) save(ctx context.Context, cp checkpoint) {
	err := c.f.Sync()
	if err == nil {
		err = c.st.Checkpoint(ctx, c.id, cp.end, cp.state)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if c.err == nil {
			c.err = fmt.Errorf("checkpoint: %w", err)
		}
		return
	}
	c.durable = max(c.durable, cp.end)
}

// finish stops the syncer and makes the newest verified point durable. It
// returns the durable prefix.
func (c *checkpointer) finish(ctx context.Context) (int64, error) {
	close(c.req)
	c.wg.Wait()
	c.mu.Lock()
	last, durable, err := c.latest, c.durable, c.err
	c.mu.Unlock()
	if err == nil && last.end > durable {
		c.save(ctx, last)
		c.mu.Lock()
		durable, err = c.durable, c.err
		c.mu.Unlock()
	}
	return durable, err
}

// ---------------------------------------------------------------------
// Sending

// Source implements file.Provider: it serves our outgoing transfers to the
// peers they were offered to.
func (m *fileMgr) Source(ctx context.Context, from peer.ID, id file.TransferID, conn network.Conn, kind filepb.Kind) (*file.Source, error) {
	t, err := m.n.store.GetTransfer(ctx, chat.MsgID(id))
	if err != nil || !t.Outgoing || t.Peer != from || !m.n.isAccepted(ctx, from) {
		// Only the contact it was offered to, while it is a contact.
		return nil, file.Refuse(file.StatusNotFound, "")
	}
	switch t.State {
	case store.TransferCancelled:
		return nil, file.Refuse(file.StatusCancelled, "")
	case store.TransferFailed:
		return nil, file.Refuse(file.StatusFailed, t.Reason)
	case store.TransferRejected:
		return nil, file.Refuse(file.StatusNotFound, "")
	}
	if kind == filepb.Kind_HASHES {
		sums, err := m.n.store.TransferSums(ctx, t.ID)
		if err != nil {
			return nil, err
		}
		return &file.Source{Size: t.Size, ChunkSize: t.ChunkSize, Sums: sums}, nil
	}
	fh, err := os.Open(t.Path)
	if err != nil {
		reason := "the file is no longer available"
		m.failOutgoing(ctx, &t, reason+" ("+t.Path+")")
		return nil, file.Refuse(file.StatusFailed, reason)
	}
	check := func() error {
		fi, err := fh.Stat()
		if err != nil {
			return err
		}
		if fi.Size() != t.Size || fi.ModTime().UnixNano() != t.SrcMtime {
			return errFileChanged
		}
		return nil
	}
	if err := check(); err != nil {
		fh.Close()
		m.failOutgoing(ctx, &t, errFileChanged.Error())
		return nil, file.Refuse(file.StatusFailed, errFileChanged.Error())
	}
	if limitedConn(conn) && t.Size > m.n.cfg.Files.RelayMax {
		// The service answers RELAY_LIMIT; nothing moves.
		return &file.Source{Size: t.Size, ChunkSize: t.ChunkSize, File: fh, Close: fh.Close,
			Done: func(error) { m.relayWait(t) }}, nil
	}
	abort := new(atomic.Bool)
	m.mu.Lock()
	m.aborts[t.ID] = abort
	m.mu.Unlock()
	via := core.PathOf(conn).String()
	live := m.startLive(t, 0)
	live.mu.Lock()
	live.path = via
	live.mu.Unlock()
	m.setTransferring(ctx, &t, via)
	return &file.Source{
		Size: t.Size, ChunkSize: t.ChunkSize,
		File:     abortReader{fh, abort},
		Close:    fh.Close,
		Check:    check,
		Progress: func(off int64) { live.bytes.Store(off) },
		Done: func(err error) {
			m.mu.Lock()
			if m.aborts[t.ID] == abort {
				delete(m.aborts, t.ID)
			}
			m.mu.Unlock()
			m.stopLive(t.ID)
			m.served(t, live.bytes.Load(), err)
		},
	}, nil
}

// abortReader fails once abort is set: cancelling a transfer stops the
// stream that serves it.
type abortReader struct {
	f     *os.File
	abort *atomic.Bool
}

func (r abortReader) ReadAt(p []byte, off int64) (int, error) {
	if r.abort.Load() {
		return 0, errors.New("transfer cancelled")
	}
	return r.f.ReadAt(p, off)
}

func (m *fileMgr) abortServing(id chat.MsgID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.aborts[id]; a != nil {
		a.Store(true)
	}
}

// served records how a stream serving an outgoing transfer ended.
func (m *fileMgr) served(t store.Transfer, sent int64, err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.n.ctx), 10*time.Second)
	defer cancel()
	if errors.Is(err, errFileChanged) {
		m.failOutgoing(ctx, &t, errFileChanged.Error())
		return
	}
	m.change(ctx, &t, func(x *store.Transfer) {
		x.DoneBytes = max(sent, 0)
		if err == nil {
			x.Reason = "all sent; waiting for " + m.label(ctx, x.Peer) + " to confirm"
			return
		}
		x.State, x.Reason = store.TransferPaused, "interrupted: "+shortErr(err)+"; "+m.label(ctx, x.Peer)+" will resume it"
	})
}

var errNoChange = errors.New("no change")

// relayWait notes that the receiver asked over a relay for a file too
// large for it.
func (m *fileMgr) relayWait(t store.Transfer) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.n.ctx), 10*time.Second)
	defer cancel()
	m.change(ctx, &t, func(x *store.Transfer) {
		x.Reason = fmt.Sprintf("waiting for a direct link (relay limit %s)", file.FormatSize(m.n.cfg.Files.RelayMax))
	})
}

// failOutgoing marks an outgoing transfer failed and tells the receiver.
func (m *fileMgr) failOutgoing(ctx context.Context, t *store.Transfer, reason string) {
	m.end(ctx, t, store.TransferFailed, reason, true)
}

// ---------------------------------------------------------------------
// State changes

// change applies edit to t's row, unless the transfer is over by now,
// and then updates t and publishes it.
func (m *fileMgr) change(ctx context.Context, t *store.Transfer, edit func(x *store.Transfer)) {
	nt, _, err := m.n.store.UpdateTransfer(ctx, t.ID, func(x *store.Transfer) (*store.NewOutgoing, error) {
		if store.FinalState(x.State) {
			return nil, errNoChange
		}
		edit(x)
		return nil, nil
	})
	if err == nil {
		*t = nt
		m.publish(nt)
	}
}

// setTransferring marks a transfer as moving over via.
func (m *fileMgr) setTransferring(ctx context.Context, t *store.Transfer, via string) {
	m.change(ctx, t, func(x *store.Transfer) { x.State, x.Reason, x.Via = store.TransferTransferring, "", via })
}

// hold records why a transfer is waiting, keeping its state (a
// transferring one becomes paused).
func (m *fileMgr) hold(ctx context.Context, t *store.Transfer, reason string) {
	state := t.State
	if state == store.TransferTransferring {
		state = store.TransferPaused
	}
	m.setState(ctx, t, state, reason)
}

// pause marks a transfer paused with a reason.
func (m *fileMgr) pause(ctx context.Context, t *store.Transfer, reason string) {
	m.setState(ctx, t, store.TransferPaused, reason)
}

func (m *fileMgr) setState(ctx context.Context, t *store.Transfer, state store.TransferState, reason string) {
	if t.State == state && t.Reason == reason {
		return
	}
	m.change(ctx, t, func(x *store.Transfer) { x.State, x.Reason = state, reason })
}

// fail ends a transfer as failed and, if tell, tells the contact why.
func (m *fileMgr) fail(ctx context.Context, t *store.Transfer, reason string, tell bool) {
	m.end(ctx, t, store.TransferFailed, reason, tell)
}

// end moves a transfer to a final state, queueing an update for the
// contact if tell. An incoming transfer's partial file is removed: nothing
// is left half-written.
func (m *fileMgr) end(ctx context.Context, t *store.Transfer, state store.TransferState, reason string, tell bool) {
	ctx = context.WithoutCancel(ctx)
	nt, q, err := m.n.store.UpdateTransfer(ctx, t.ID, func(x *store.Transfer) (*store.NewOutgoing, error) {
		if store.FinalState(x.State) {
			return nil, errNoChange
		}
		x.State, x.Reason, x.HashState = state, reason, nil
		if !tell {
			return nil, nil
		}
		return m.update(x.Peer, x.ID, state, reason), nil
	})
	if !t.Outgoing {
		_ = os.Remove(m.partialPath(t.ID))
	}
	if err != nil {
		return
	}
	*t = nt
	m.n.log.Info("file transfer ended", "transfer", t.ID, "peer", t.Peer.ShortString(), "state", state, "reason", reason)
	m.publish(nt)
	m.queued(q)
}

// queued wakes the chat deliverer for a queued update.
func (m *fileMgr) queued(q *store.OutboxEntry) {
	if q == nil {
		return
	}
	m.n.chat.Wake(q.Peer)
}

// ---------------------------------------------------------------------
// Progress and views

func (m *fileMgr) startLive(t store.Transfer, bytes int64) *liveXfer {
	l := &liveXfer{t: t, lastBytes: bytes, lastAt: time.Now()}
	l.bytes.Store(bytes)
	m.mu.Lock()
	m.lives[t.ID] = l
	m.mu.Unlock()
	return l
}

func (m *fileMgr) stopLive(id chat.MsgID) {
	m.mu.Lock()
	delete(m.lives, id)
	m.mu.Unlock()
}

func (m *fileMgr) live(id chat.MsgID) *liveXfer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lives[id]
}

// progressLoop updates rates and publishes progress events, at most one
// per transfer every progressInterval.
func (m *fileMgr) progressLoop(ctx context.Context) {
	tick := time.NewTicker(progressInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			m.mu.Lock()
			lives := make([]*liveXfer, 0, len(m.lives))
			for _, l := range m.lives {
				lives = append(lives, l)
			}
			m.mu.Unlock()
			for _, l := range lives {
				b := l.bytes.Load()
				l.mu.Lock()
				if dt := now.Sub(l.lastAt).Seconds(); dt > 0 {
					inst := float64(b-l.lastBytes) / dt
					if l.rate == 0 {
						l.rate = inst
					} else {
						l.rate = 0.5*l.rate + 0.5*inst
					}
				}
				changed := b != l.lastBytes
				l.lastBytes, l.lastAt = b, now
				t := l.t
				l.mu.Unlock()
				if changed {
					m.publish(t)
				}
			}
		}
	}
}

// publish sends a file event for t.
func (m *fileMgr) publish(t store.Transfer) { m.publishAs(t, "") }

// publishAs sends a file event for t, whose contact is called name (""
// looks it up), and returns what it sent.
func (m *fileMgr) publishAs(t store.Transfer, name string) control.Transfer {
	v := m.view(context.Background(), t, name)
	m.n.publish(control.Event{Type: control.EventFile, PeerID: v.PeerID, Name: v.Contact, Transfer: &v})
	return v
}

// view converts a transfer for clients, with live progress and, for one
// that waits, why.
func (m *fileMgr) view(ctx context.Context, t store.Transfer, name string) control.Transfer {
	if name == "" {
		name = m.label(ctx, t.Peer)
		if name == t.Peer.String() {
			name = ""
		}
	}
	v := control.Transfer{
		ID: t.ID.String(), PeerID: t.Peer.String(), Contact: name, Direction: "in", Name: t.Name, Size: t.Size,
		SHA256: fmt.Sprintf("%x", t.SHA256), MediaType: t.MediaType, Note: t.Note, State: string(t.State), BytesDone: t.DoneBytes,
		Path: t.Via, Reason: t.Reason, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
	}
	if t.Outgoing {
		v.Direction, v.Source = "out", t.Path
	} else if t.State == store.TransferDone {
		v.FinalPath = t.Path
	}
	if l := m.live(t.ID); l != nil && !store.FinalState(t.State) {
		l.mu.Lock()
		v.BytesDone, v.Rate, v.Path = l.bytes.Load(), l.rate, l.path
		l.mu.Unlock()
		if v.Path != "" {
			v.State = store.TransferTransferring
		}
		return v
	}
	if t.Outgoing && !store.FinalState(t.State) {
		who := cmp.Or(name, t.Peer.String())
		path, _ := m.n.pathTo(t.Peer)
		switch {
		case t.State == store.TransferOffered:
			if v.Reason == "" {
				v.Reason = "waiting for " + who + " to accept"
			}
		case path == control.PathNone:
			v.Reason = who + " is offline; the transfer resumes when it is back"
		case path == control.PathRelayed && t.Size > m.n.cfg.Files.RelayMax:
			v.Reason = fmt.Sprintf("waiting for a direct link (relay limit %s)", file.FormatSize(m.n.cfg.Files.RelayMax))
		}
	}
	if !t.Outgoing && t.State == store.TransferOffered && v.Reason == "" {
		v.Reason = "accept with: natter files accept " + t.ID.String()
	}
	return v
}

// ref describes the file of a history message of kind file.
func (m *fileMgr) ref(id chat.MsgID) *control.FileRef {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t, err := m.n.store.GetTransfer(ctx, id)
	if err != nil {
		return nil
	}
	return &control.FileRef{Name: t.Name, Size: t.Size, MediaType: t.MediaType, SHA256: fmt.Sprintf("%x", t.SHA256), State: string(t.State)}
}

func (m *fileMgr) label(ctx context.Context, p peer.ID) string {
	if n := m.n.chat.ContactName(ctx, p); n != "" {
		return n
	}
	return p.String()
}

// ---------------------------------------------------------------------
// Helpers

func limitedConn(c network.Conn) bool { return core.PathOf(c) == core.PathRelayed }

func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, store.ErrDiskFull)
}

func diskFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// cleanReason makes a reason from a peer safe to show: one line, no
// control characters, bounded.
func cleanReason(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	return clipReason(strings.TrimSpace(s))
}

func clipReason(s string) string {
	if len(s) > file.MaxReasonBytes {
		s = strings.ToValidUTF8(s[:file.MaxReasonBytes], "")
	}
	return s
}

// shortErr is the last part of a wrapped error, for a reason line.
func shortErr(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[len(s)-120:]
		s = strings.ToValidUTF8(s, "")
	}
	return s
}
