package tui

import (
	"context"
	"errors"
	"net/http"

	"github.com/natterim/natter/node/control"
)

// API is what the terminal UI needs from the daemon: a subset of
// control.Client (see ClientAPI), so tests can drive the model with a
// fake.
type API interface {
	Status(ctx context.Context) (control.Status, error)
	Contacts(ctx context.Context) ([]control.Contact, error)
	History(ctx context.Context, ref, before string, limit int) ([]control.Message, error)
	Send(ctx context.Context, ref string, req control.SendRequest) (control.Message, error)
	MarkRead(ctx context.Context, ref string) (control.ReadResult, error)
	Typing(ctx context.Context, ref string, typing bool) (control.TypingResult, error)
	Activity(ctx context.Context) error
	AcceptContact(ctx context.Context, ref, name string) (control.Contact, error)
	RejectContact(ctx context.Context, ref string) (control.Contact, error)
	AddContact(ctx context.Context, req control.AddContactRequest) (control.Contact, error)
	SetPresence(ctx context.Context, req control.PresenceRequest) (control.Status, error)
	Search(ctx context.Context, words, ref string, limit int) ([]control.Message, error)
	// OfferFile offers the file at path (absolute) to a contact. It
	// returns ErrFilesUnavailable when the daemon has no file transfer.
	OfferFile(ctx context.Context, ref, path string) (control.Transfer, error)
	// Files lists every transfer (GET /v1/files); ErrFilesUnavailable
	// when the daemon has no file transfer.
	Files(ctx context.Context) ([]control.Transfer, error)
	// FileAction accepts, rejects or cancels a transfer.
	FileAction(ctx context.Context, id, action string) (control.Transfer, error)
	// Events opens the event stream.
	Events(ctx context.Context) (EventStream, error)
}

// EventStream is an open GET /v1/events (control.EventStream).
type EventStream interface {
	Next() (control.Event, error)
	Close() error
}

// ErrFilesUnavailable means the daemon does not offer file transfer (it
// has no POST /v1/contacts/{contact}/files).
var ErrFilesUnavailable = errors.New("file transfer is not available in this daemon (it has no /v1/contacts/{contact}/files endpoint); update natter to send files")

// ClientAPI adapts a control.Client to API.
type ClientAPI struct{ *control.Client }

var _ API = ClientAPI{}

// Events opens the daemon's event stream.
func (c ClientAPI) Events(ctx context.Context) (EventStream, error) {
	s, err := c.Client.Events(ctx)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// OfferFile posts the offer. A 404 for a contact the daemon knows means the
// route does not exist: this daemon has no file transfer.
func (c ClientAPI) OfferFile(ctx context.Context, ref, path string) (control.Transfer, error) {
	t, err := c.SendFile(ctx, ref, control.SendFileRequest{Path: path})
	if isNotFound(err) {
		cs, cerr := c.Contacts(ctx)
		if cerr != nil {
			return t, err
		}
		for _, ct := range cs {
			if ct.PeerID == ref || ct.Name == ref {
				return t, ErrFilesUnavailable
			}
		}
	}
	return t, err
}

// Files lists the transfers; a 404 means the daemon has no file transfer.
func (c ClientAPI) Files(ctx context.Context) ([]control.Transfer, error) {
	ts, err := c.Client.Files(ctx)
	if isNotFound(err) {
		return nil, ErrFilesUnavailable
	}
	return ts, err
}

func isNotFound(err error) bool {
	ae, ok := errors.AsType[*control.APIError](err)
	return ok && ae.Code == http.StatusNotFound
}
