package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/proto"

	nodechat "github.com/natterim/natter/node/chat"
	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/file"
)

// fileRoutes registers the file-transfer endpoints.
func (n *Node) fileRoutes(mux *http.ServeMux, v string) {
	mux.HandleFunc("POST "+v+"/contacts/{ref}/files", n.handleSendFile)
	mux.HandleFunc("GET "+v+"/files", n.handleFiles)
	mux.HandleFunc("GET "+v+"/files/{id}", n.handleFile)
	mux.HandleFunc("POST "+v+"/files/{id}/{action}", n.handleFileAction)
}

// SendFile offers a file to a contact: it checks and hashes the file, then
// records the transfer and queues the offer in one transaction. The file
// is read again, from its path, when the contact fetches it; if it changes
// in between the transfer fails.
func (n *Node) SendFile(ctx context.Context, ref string, req control.SendFileRequest) (control.Transfer, error) {
	n.touch()
	c, err := n.findContactRef(ctx, ref)
	if err != nil {
		return control.Transfer{}, err
	}
	if err := nodechat.CanChat(c); err != nil {
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
	mediaType, err := mediaTypeOf(fh, name)
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
	entry, err := n.store.OfferFile(ctx, t, h.Sums, msg)
	if err != nil {
		if errors.Is(err, store.ErrDiskFull) {
			return control.Transfer{}, core.DiskFull(errors.New("disk full: the file was not offered (free some space and send it again)"))
		}
		return control.Transfer{}, err
	}
	n.files.queued(&entry)
	t.CreatedAt, t.UpdatedAt = now, now
	n.log.Info("file offered", "transfer", id, "peer", c.PeerID.ShortString(), "size", t.Size)
	sm := store.Message{ID: id, Peer: c.PeerID, Outgoing: true, Kind: store.KindFile, Text: req.Note, Seq: entry.Seq, SentAt: now, Status: store.StatusQueued}
	cm := n.chat.ToAPI(sm, c.Name)
	n.publish(control.Event{Type: control.EventMessage, PeerID: c.PeerID.String(), Name: c.Name, Message: &cm})
	return n.files.publishAs(t, c.Name), nil
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

// mediaTypeOf guesses a media type from the name's extension, else from
// the first bytes.
func mediaTypeOf(f *os.File, name string) (string, error) {
	if t := mime.TypeByExtension(filepath.Ext(name)); t != "" {
		return file.CleanMediaType(t), nil
	}
	buf := make([]byte, 512)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return file.CleanMediaType(http.DetectContentType(buf[:n])), nil
}

// Files lists every transfer, oldest first.
func (n *Node) Files(ctx context.Context) ([]control.Transfer, error) {
	ts, err := n.store.Transfers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]control.Transfer, 0, len(ts))
	for _, t := range ts {
		out = append(out, n.files.view(ctx, t, ""))
	}
	return out, nil
}

func (n *Node) findTransfer(ctx context.Context, ref string) (store.Transfer, error) {
	t, err := n.store.FindTransfer(ctx, ref)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return t, core.NotFound(fmt.Errorf("no transfer %q (see: natter files)", ref))
	case errors.Is(err, store.ErrAmbiguous):
		return t, core.Invalid(err)
	}
	return t, err
}

// FileAction accepts, rejects or cancels a transfer.
//
//   - accept: an incoming offer is accepted (and fetched); a paused
//     incoming transfer is retried at once.
//   - reject: an incoming offer is declined; the sender is told.
//   - cancel: any transfer that is not over stops in either direction;
//     the contact is told and a partial file is removed.
func (n *Node) FileAction(ctx context.Context, ref, action string) (control.Transfer, error) {
	n.touch()
	t, err := n.findTransfer(ctx, ref)
	if err != nil {
		return control.Transfer{}, err
	}
	var edit func(x *store.Transfer) (*store.NewOutgoing, error)
	switch action {
	case "accept":
		if t.Outgoing {
			return control.Transfer{}, core.Conflict(errors.New("you are sending this file; only the receiver accepts it"))
		}
		if t.State != store.TransferOffered {
			if t.State == store.TransferPaused || t.State == store.TransferAccepted {
				n.files.startRun(t.ID) // retry now
				return n.files.view(ctx, t, ""), nil
			}
			return control.Transfer{}, core.Conflict(fmt.Errorf("the transfer is %s", t.State))
		}
		edit = func(x *store.Transfer) (*store.NewOutgoing, error) {
			if x.State != store.TransferOffered {
				return nil, core.Conflict(fmt.Errorf("the transfer is %s", x.State))
			}
			x.State, x.Reason = store.TransferAccepted, ""
			return n.files.update(x.Peer, x.ID, store.TransferAccepted, ""), nil
		}
	case "reject":
		if t.Outgoing || t.State != store.TransferOffered {
			return control.Transfer{}, core.Conflict(fmt.Errorf("only an offer you received can be rejected (this one is %s %s; use cancel)", direction(t), t.State))
		}
		edit = func(x *store.Transfer) (*store.NewOutgoing, error) {
			if x.State != store.TransferOffered {
				return nil, core.Conflict(fmt.Errorf("the transfer is %s", x.State))
			}
			x.State, x.Reason = store.TransferRejected, "you rejected it"
			return n.files.update(x.Peer, x.ID, store.TransferRejected, ""), nil
		}
	case "cancel":
		if store.FinalState(t.State) {
			return control.Transfer{}, core.Conflict(fmt.Errorf("the transfer is already %s", t.State))
		}
		edit = func(x *store.Transfer) (*store.NewOutgoing, error) {
			if store.FinalState(x.State) {
				return nil, core.Conflict(fmt.Errorf("the transfer is already %s", x.State))
			}
			x.State, x.Reason, x.HashState = store.TransferCancelled, "you cancelled it", nil
			return n.files.update(x.Peer, x.ID, store.TransferCancelled, ""), nil
		}
	default:
		return control.Transfer{}, core.NotFound(fmt.Errorf("unknown action %q (accept, reject or cancel)", action))
	}
	nt, q, err := n.store.UpdateTransfer(ctx, t.ID, edit)
	if err != nil {
		return control.Transfer{}, err
	}
	n.files.queued(q)
	switch {
	case nt.State == store.TransferAccepted:
		n.files.startRun(nt.ID)
	case nt.State == store.TransferCancelled && nt.Outgoing:
		n.files.abortServing(nt.ID)
	case nt.State == store.TransferCancelled:
		n.files.stopRun(nt.ID, true)
	}
	n.log.Info("file transfer answered", "action", action, "transfer", nt.ID, "peer", nt.Peer.ShortString())
	n.files.publish(nt)
	return n.files.view(ctx, nt, ""), nil
}

func direction(t store.Transfer) string {
	if t.Outgoing {
		return "outgoing"
	}
	return "incoming"
}

func (n *Node) handleSendFile(w http.ResponseWriter, r *http.Request) {
	var req control.SendFileRequest
	if !decodeBody(w, r, &req) {
		return
	}
	t, err := n.SendFile(r.Context(), r.PathValue("ref"), req)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

func (n *Node) handleFiles(w http.ResponseWriter, r *http.Request) {
	ts, err := n.Files(r.Context())
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, ts)
}

func (n *Node) handleFile(w http.ResponseWriter, r *http.Request) {
	t, err := n.findTransfer(r.Context(), r.PathValue("id"))
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, n.files.view(r.Context(), t, ""))
}

func (n *Node) handleFileAction(w http.ResponseWriter, r *http.Request) {
	t, err := n.FileAction(r.Context(), r.PathValue("id"), r.PathValue("action"))
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}
