package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/file"
	filepb "github.com/natterim/natter/protocols/file/pb"
)

// SendFile offers a file to a contact: it checks and hashes the file, then
// records the transfer and queues the offer in one transaction. The file
// is read again, from its path, when the contact fetches it; if it changes
// in between the transfer fails.
func (m *Manager) SendFile(ctx context.Context, ref string, req control.SendFileRequest) (control.Transfer, error) {
	c, err := m.findContact(ctx, ref)
	if err != nil {
		return control.Transfer{}, err
	}
	if err := core.CanChat(c); err != nil {
		return control.Transfer{}, err
	}
	if !filepath.IsAbs(req.Path) {
		return control.Transfer{}, core.Invalid(fmt.Errorf("path %q is not absolute", req.Path))
	}
	path := filepath.Clean(req.Path)
	fh, fi, err := openRegular(path)
	if err != nil {
		return control.Transfer{}, core.Invalid(err)
	}
	defer fh.Close()
	if fi.Size() > file.MaxFileSize {
		return control.Transfer{}, core.Invalid(fmt.Errorf("%s is %s; natter sends files up to %s", path, file.FormatSize(fi.Size()), file.FormatSize(file.MaxFileSize)))
	}
	name := req.Name
	if name == "" {
		name = file.SafeName(filepath.Base(path))
	} else if err := file.CheckSendName(name); err != nil {
		return control.Transfer{}, core.Invalid(fmt.Errorf("--as: %w", err))
	}
	if err := file.CheckNote(req.Note); err != nil {
		return control.Transfer{}, core.Invalid(err)
	}
	mediaType, err := file.MediaTypeOf(fh, name)
	if err != nil {
		return control.Transfer{}, core.Invalid(fmt.Errorf("read %s: %w", path, err))
	}
	chunk := file.ChunkSizeFor(fi.Size())
	h, err := file.HashFile(ctx, io.NewSectionReader(fh, 0, fi.Size()+1), fi.Size(), chunk)
	if err != nil {
		if ctx.Err() != nil {
			return control.Transfer{}, ctx.Err()
		}
		return control.Transfer{}, core.Invalid(fmt.Errorf("%s: %w", path, err))
	}
	if fi2, err := fh.Stat(); err != nil || fi2.Size() != fi.Size() || !fi2.ModTime().Equal(fi.ModTime()) {
		return control.Transfer{}, core.Invalid(fmt.Errorf("%s changed while it was being hashed; send it again when it is complete", path))
	}
	id := chat.NewID()
	offer := file.Offer{ID: file.TransferID(id), Size: fi.Size(), SHA256: h.SHA256, ChunkSize: chunk, Root: h.Root}
	payload, err := proto.Marshal(file.ToWire(offer, file.Meta{Name: name, MediaType: mediaType, Note: req.Note}))
	if err != nil {
		return control.Transfer{}, err
	}
	t := store.Transfer{
		ID: id, Peer: c.PeerID, Outgoing: true, State: store.TransferOffered, Name: name, Size: fi.Size(), SHA256: h.SHA256,
		MediaType: mediaType, Note: req.Note, ChunkSize: chunk, Root: h.Root, Path: path, SrcMtime: fi.ModTime().UnixNano(),
	}
	now := time.Now()
	msg := store.NewOutgoing{ID: id, Peer: c.PeerID, Kind: store.KindFile, Text: req.Note, SentAt: now, Payload: payload}
	entry, err := m.store.OfferFile(ctx, t, h.Sums, msg)
	if err != nil {
		if errors.Is(err, store.ErrDiskFull) {
			return control.Transfer{}, core.DiskFull(errors.New("disk full: the file was not offered (free some space and send it again)"))
		}
		return control.Transfer{}, err
	}
	m.queued(&entry)
	t.CreatedAt, t.UpdatedAt = now, now
	m.log.Info("file offered", "transfer", id, "peer", c.PeerID.ShortString(), "size", t.Size)
	sm := store.Message{ID: id, Peer: c.PeerID, Outgoing: true, Kind: store.KindFile, Text: req.Note, Seq: entry.Seq, SentAt: now, Status: store.StatusQueued}
	cm := m.chat.ToAPI(sm, c.Name)
	m.events.Publish(control.Event{Type: control.EventMessage, PeerID: c.PeerID.String(), Name: c.Name, Message: &cm})
	return m.publishAs(t, c.Name), nil
}

// openRegular opens path for reading if it is a regular file, with one
// clear error otherwise.
func openRegular(path string) (*os.File, os.FileInfo, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, fmt.Errorf("there is no file %s", path)
	case errors.Is(err, fs.ErrPermission):
		return nil, nil, fmt.Errorf("cannot read %s: permission denied", path)
	case err != nil:
		return nil, nil, err
	case fi.IsDir():
		return nil, nil, fmt.Errorf("%s is a directory; send-file sends one file (make an archive of the directory first)", path)
	case !fi.Mode().IsRegular():
		return nil, nil, fmt.Errorf("%s is not a regular file", path)
	}
	fh, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, nil, fmt.Errorf("cannot read %s: permission denied", path)
		}
		return nil, nil, err
	}
	if fi, err = fh.Stat(); err != nil || !fi.Mode().IsRegular() {
		fh.Close()
		return nil, nil, fmt.Errorf("%s is not a regular file", path)
	}
	// A file the daemon may open but not read (it happens on some file
	// systems) fails here rather than when the contact asks for it.
	var one [1]byte
	if _, err := fh.ReadAt(one[:], 0); err != nil && !errors.Is(err, io.EOF) {
		fh.Close()
		return nil, nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	return fh, fi, nil
}

// findContact resolves a contact reference (name or peer ID).
func (m *Manager) findContact(ctx context.Context, ref string) (store.Contact, error) {
	c, err := m.store.FindContact(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return c, core.NotFound(fmt.Errorf("no contact %q (see: natter contacts list)", ref))
	}
	return c, err
}

// Source implements file.Provider: it serves our outgoing transfers to the
// peers they were offered to.
func (m *Manager) Source(ctx context.Context, from peer.ID, id file.TransferID, conn network.Conn, kind filepb.Kind) (*file.Source, error) {
	t, err := m.store.GetTransfer(ctx, chat.MsgID(id))
	if err != nil || !t.Outgoing || t.Peer != from || !m.policy.Allow(ctx, from) {
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
		sums, err := m.store.TransferSums(ctx, t.ID)
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
	if core.PathOf(conn) == core.PathRelayed && t.Size > m.cfg.RelayMax {
		// The service answers RELAY_LIMIT; nothing moves.
		return &file.Source{Size: t.Size, ChunkSize: t.ChunkSize, File: fh, Close: fh.Close,
			Done: func(error) { m.relayWait(t) }}, nil
	}
	abort := new(atomic.Bool)
	m.mu.Lock()
	m.aborts[t.ID] = abort
	m.mu.Unlock()
	via := core.PathOf(conn)
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

func (m *Manager) abortServing(id chat.MsgID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.aborts[id]; a != nil {
		a.Store(true)
	}
}

// served records how a stream serving an outgoing transfer ended.
func (m *Manager) served(t store.Transfer, sent int64, err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.life.Context()), 10*time.Second)
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

// relayWait notes that the receiver asked over a relay for a file too
// large for it.
func (m *Manager) relayWait(t store.Transfer) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.life.Context()), 10*time.Second)
	defer cancel()
	m.change(ctx, &t, func(x *store.Transfer) {
		x.Reason = fmt.Sprintf("waiting for a direct link (relay limit %s)", file.FormatSize(m.cfg.RelayMax))
	})
}

// failOutgoing marks an outgoing transfer failed and tells the receiver.
func (m *Manager) failOutgoing(ctx context.Context, t *store.Transfer, reason string) {
	m.end(ctx, t, store.TransferFailed, reason, true)
}
