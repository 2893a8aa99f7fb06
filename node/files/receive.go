package files

import (
	"context"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/file"
	"github.com/natterim/natter/protocols/wire"
)

// Incoming converts a file message chat received from the contact called
// fromName ("" if unnamed) into what chat stores: an offer (FILE_OFFER)
// recorded as failed if it is invalid, accepted if it is small enough to
// accept without asking, else offered; or a change to one of our transfers
// (FILE_UPDATE). It is false for a message chat should skip: another kind,
// or an update in a state this version does not know.
func (m *Manager) Incoming(ctx context.Context, from peer.ID, fromName string, msg *pb.Message) (store.Incoming, bool) {
	if len(msg.GetId()) != chat.IDLen {
		return store.Incoming{}, false // chat's checks keep these out
	}
	in := store.Incoming{ID: chat.MsgID(msg.GetId()), Text: msg.GetText(), Seq: msg.GetSeq(), SentAt: time.UnixMilli(msg.GetSentAtMs())}
	switch msg.GetKind() {
	case pb.Kind_FILE_OFFER:
		in.Kind, in.Offer = store.KindFile, m.incomingOffer(ctx, from, msg)
		in.Text = in.Offer.Transfer.Note
	case pb.Kind_FILE_UPDATE:
		in.Kind, in.Update = store.KindFileUpdate, m.incomingUpdate(fromName, msg.GetFileUpdate())
		if in.Update == nil {
			return store.Incoming{}, false
		}
	default:
		return store.Incoming{}, false
	}
	return in, true
}

// incomingOffer decides how a received offer is recorded: as a failed
// transfer if it is invalid, accepted if it is small enough to accept
// without asking, else offered. The answer to the sender goes in the same
// transaction.
func (m *Manager) incomingOffer(ctx context.Context, from peer.ID, msg *pb.Message) *store.IncomingOffer {
	id := chat.MsgID(msg.GetId())
	wo := msg.GetFileOffer()
	o, meta, err := file.OfferFromWire(id, wo)
	t := store.Transfer{Name: file.SafeName(wo.GetName()), State: store.TransferOffered}
	if err != nil {
		t.State = store.TransferFailed
		t.Reason = "invalid offer: " + err.Error()
		t.Size, t.ChunkSize = 0, file.DefaultChunkSize
		m.log.Debug("invalid file offer", "peer", from.ShortString(), "err", err)
		return &store.IncomingOffer{Transfer: t, Reply: m.update(from, id, store.TransferFailed, t.Reason)}
	}
	t.Size, t.SHA256, t.ChunkSize, t.Root = o.Size, o.SHA256, o.ChunkSize, o.Root
	t.MediaType, t.Note = meta.MediaType, meta.Note
	if o.Size <= m.cfg.AutoAcceptMax && m.policy.Allow(ctx, from) {
		t.State = store.TransferAccepted
		return &store.IncomingOffer{Transfer: t, Reply: m.update(from, id, store.TransferAccepted, "")}
	}
	return &store.IncomingOffer{Transfer: t}
}

// incomingUpdate converts a received file update from the contact called
// who ("" if unnamed); nil for one this version does not understand.
func (m *Manager) incomingUpdate(who string, u *pb.FileUpdate) *store.IncomingUpdate {
	if len(u.GetTransfer()) != chat.IDLen {
		return nil // chat's checks keep these out
	}
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

// Received acts on the transfers a chat batch created or changed: it
// publishes them, starts the runner of an accepted incoming one, and stops
// whatever moves for one that is over.
func (m *Manager) Received(ts []store.Transfer) {
	for _, t := range ts {
		m.publish(t)
		switch {
		case !t.Outgoing && t.State == store.TransferAccepted:
			m.startRun(t.ID)
		case !t.Outgoing && store.FinalState(t.State):
			if m.life.Context().Err() != nil {
				continue // shutting down; the partial file goes at the next start
			}
			id := t.ID
			m.spawn(func(context.Context) { m.stopRun(id, true) })
		case t.Outgoing && store.FinalState(t.State):
			m.abortServing(t.ID)
		}
	}
}

// update is a file update for the contact, to queue.
func (m *Manager) update(p peer.ID, id chat.MsgID, state store.TransferState, reason string) *store.NewOutgoing {
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
func (m *Manager) startRun(id chat.MsgID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.runs[id]; ok {
		select {
		case r.kick <- struct{}{}:
		default:
		}
		return
	}
	if m.closed || m.life.Context().Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(m.life.Context())
	r := &fileRun{cancel: cancel, done: make(chan struct{}), kick: make(chan struct{}, 1)}
	m.runs[id] = r
	m.spawnLocked(func(context.Context) {
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
func (m *Manager) stopRun(id chat.MsgID, removePartial bool) {
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
func (m *Manager) run(ctx context.Context, id chat.MsgID, kick <-chan struct{}) {
	bo := core.NewBackoff(time.Second, 30*time.Second)
	var bad badTries
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		t, err := m.store.GetTransfer(ctx, id)
		if err != nil || t.Outgoing || store.FinalState(t.State) || t.State == store.TransferOffered {
			return
		}
		changed := m.links.Changed(t.Peer)
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
func (m *Manager) attempt(ctx context.Context, t *store.Transfer, bad *badTries, bo *core.Backoff) next {
	name := m.label(ctx, t.Peer)
	path, _ := m.links.Path(t.Peer)
	relayMax := m.cfg.RelayMax
	switch {
	case t.DoneBytes == t.Size:
		// Everything is here (or the file is empty): no link needed.
	case path == core.PathNone:
		m.hold(ctx, t, name+" is offline; the transfer resumes when it is back")
		return next{onLink: true}
	case path == core.PathRelayed && t.Size > relayMax:
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
func (m *Manager) download(ctx context.Context, t *store.Transfer, path core.Path) error {
	offer := file.Offer{ID: file.TransferID(t.ID), Size: t.Size, SHA256: t.SHA256, ChunkSize: t.ChunkSize, Root: t.Root}
	opts := file.FetchOptions{AllowRelayed: path == core.PathRelayed, StallTimeout: m.cfg.StallTimeout}
	sums, err := m.store.TransferSums(ctx, t.ID)
	if err != nil {
		return err
	}
	if sums == nil && offer.Chunks() == 0 {
		sums = []byte{} // an empty file: nothing to fetch
	}
	if sums == nil {
		if sums, err = file.FetchSums(ctx, m.h, t.Peer, offer, opts); err != nil {
			return err
		}
		if err := m.store.SetTransferSums(ctx, t.ID, sums); err != nil {
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
		m.log.Warn("partial file does not match its checkpoint; starting the transfer over", "transfer", t.ID)
		whole.Reset()
		t.DoneBytes, t.HashState = 0, nil
		if err := m.store.Checkpoint(ctx, t.ID, 0, nil); err != nil {
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
	cp := newCheckpointer(m.store, f, t.ID, t.DoneBytes, m.cfg.CheckpointBytes, m.cfg.CheckpointInterval)
	opts.Opened = func(c network.Conn) {
		via := core.PathOf(c)
		m.log.Debug("file stream open", "transfer", t.ID, "via", via.String(), "transport", core.Transport(c.RemoteMultiaddr()))
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
	res, err := file.Download(ctx, m.h, t.Peer, offer, sums, from, f, whole, opts)
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
		m.metrics.StreamError("file", fmt.Errorf("bytes past the offered size: %w", wire.ErrInvalid))
	}
	return m.finish(ctx, t, res.Trailing)
}

// handleErr decides what a failed attempt means.
func (m *Manager) handleErr(ctx context.Context, t *store.Transfer, err error, bad *badTries, bo *core.Backoff) next {
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
		m.metrics.StreamError("file", err)
		m.fail(ctx, t, err.Error(), true)
		return next{stop: true}
	case errors.As(err, &ce), errors.Is(err, file.ErrShort):
		m.metrics.StreamError("file", err)
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
	m.metrics.StreamError("file", err)
	reason := "interrupted: " + shortErr(err) + "; retrying"
	m.pause(ctx, t, reason)
	m.log.Debug("file transfer interrupted", "transfer", t.ID, "peer", t.Peer.ShortString(), "err", err)
	return next{wait: bo.Next(), onLink: true}
}

// finish saves a verified, durable file into the downloads folder and
// marks the transfer done.
func (m *Manager) finish(ctx context.Context, t *store.Transfer, trailing bool) error {
	partial := m.partialPath(t.ID)
	dest, err := m.place(ctx, t, partial)
	if err != nil {
		return err
	}
	reason := ""
	if trailing {
		reason = "the sender sent more bytes than offered; they were discarded"
	}
	nt, q, err := m.store.UpdateTransfer(ctx, t.ID, func(x *store.Transfer) (*store.NewOutgoing, error) {
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
	m.log.Info("file received", "transfer", t.ID, "peer", t.Peer.ShortString(), "size", t.Size, "path", dest)
	m.publish(nt)
	m.queued(q)
	return nil
}

// place links (or copies) the partial file into the downloads folder under
// a safe name that is not taken, and returns its path. The chosen path is
// recorded before the link, so that after a crash the same file is found
// again rather than saved twice.
func (m *Manager) place(ctx context.Context, t *store.Transfer, partial string) (string, error) {
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
		if _, _, err := m.store.UpdateTransfer(ctx, t.ID, func(x *store.Transfer) (*store.NewOutgoing, error) {
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
// file, then record the checkpoint, at most every everyBytes or
// everyPeriod, so that no fsync sits in the data path.
type checkpointer struct {
	st          Store
	f           *os.File
	id          chat.MsgID
	everyBytes  int64
	everyPeriod time.Duration
	req         chan checkpoint
	wg          sync.WaitGroup

	mu      sync.Mutex // guards the following fields
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

func newCheckpointer(st Store, f *os.File, id chat.MsgID, durable, everyBytes int64, everyPeriod time.Duration) *checkpointer {
	c := &checkpointer{st: st, f: f, id: id, everyBytes: everyBytes, everyPeriod: everyPeriod, req: make(chan checkpoint, 1),
		durable: durable, sentAt: time.Now()}
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
	if end-c.sent.end < c.everyBytes && time.Since(c.sentAt) < c.everyPeriod {
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
