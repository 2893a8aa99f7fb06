package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/profile"
)

const (
	// MaxRequestBody bounds a request body (413 over it).
	MaxRequestBody = 1 << 20
	// MaxProfileBody bounds POST /v1/profile: an avatar file of
	// profile.MaxInputBytes in base64, and room for the rest.
	MaxProfileBody = (profile.MaxInputBytes+2)/3*4 + 64<<10

	// defaultHistoryLimit and maxHistoryLimit bound one page of history
	// or search results (?limit=).
	defaultHistoryLimit = 50
	maxHistoryLimit     = 10_000
)

// none is the request or answer of a route that has none.
type none = struct{}

// routes is the control API's one route table (docs/control-api.md).
func (s *Server) routes() *http.ServeMux {
	var (
		mux = http.NewServeMux()
		v   = "/" + control.Version
		f   = s.svc
	)
	ref := func(r *http.Request) string { return r.PathValue("ref") }

	// The node.
	mux.HandleFunc("GET "+v+"/status", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) (control.Status, error) {
		return f.Node.Status(r.Context())
	}))
	mux.HandleFunc("GET "+v+"/id", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) (control.Identity, error) {
		inv, err := f.Node.Invite(r.Context())
		if err != nil {
			return control.Identity{}, err
		}
		return control.Identity{PeerID: f.Node.ID().String(), Invite: inv}, nil
	}))
	mux.HandleFunc("GET "+v+"/events", s.handleEvents)

	// Contacts and friend requests.
	mux.HandleFunc("GET "+v+"/contacts", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) ([]control.Contact, error) {
		return f.Contacts.Contacts(r.Context())
	}))
	mux.HandleFunc("POST "+v+"/contacts", endpoint(jsonBody, http.StatusCreated, func(r *http.Request, req control.AddContactRequest) (control.Contact, error) {
		return contactView(f.Contacts.AddContact(r.Context(), req))
	}))
	mux.HandleFunc("DELETE "+v+"/contacts/{ref}", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) (control.Contact, error) {
		return contactView(f.Contacts.RemoveContact(r.Context(), ref(r)))
	}))
	mux.HandleFunc("POST "+v+"/contacts/{ref}/ping", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) (control.PingResult, error) {
		return f.Node.Ping(r.Context(), ref(r))
	}))
	mux.HandleFunc("POST "+v+"/contacts/{ref}/accept", endpoint(optionalBody, http.StatusOK, func(r *http.Request, req control.AcceptRequest) (control.Contact, error) {
		return contactView(f.Contacts.AcceptContact(r.Context(), ref(r), req.Name))
	}))
	mux.HandleFunc("POST "+v+"/contacts/{ref}/reject", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) (control.Contact, error) {
		return contactView(f.Contacts.RejectContact(r.Context(), ref(r)))
	}))
	mux.HandleFunc("POST "+v+"/contacts/{ref}/block", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) (control.Contact, error) {
		return contactView(f.Contacts.BlockContact(r.Context(), ref(r)))
	}))

	// Presence and activity.
	mux.HandleFunc("POST "+v+"/presence", endpoint(jsonBody, http.StatusOK, func(r *http.Request, req control.PresenceRequest) (control.Status, error) {
		f.Presence.Touch()
		return f.Presence.SetPresence(r.Context(), req)
	}))
	mux.HandleFunc("POST "+v+"/activity", func(w http.ResponseWriter, _ *http.Request) {
		f.Presence.Touch()
		w.WriteHeader(http.StatusNoContent)
	})

	// Chat.
	mux.HandleFunc("POST "+v+"/contacts/{ref}/messages", endpoint(jsonBody, http.StatusCreated, func(r *http.Request, req control.SendRequest) (control.Message, error) {
		f.Presence.Touch()
		return f.Chat.Send(r.Context(), ref(r), req)
	}))
	mux.HandleFunc("GET "+v+"/contacts/{ref}/messages", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) ([]control.Message, error) {
		limit, err := limitParam(r)
		if err != nil {
			return nil, err
		}
		return f.Chat.History(r.Context(), ref(r), r.URL.Query().Get("before"), limit)
	}))
	mux.HandleFunc("POST "+v+"/contacts/{ref}/read", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) (control.ReadResult, error) {
		f.Presence.Touch()
		return f.Chat.MarkRead(r.Context(), ref(r))
	}))
	mux.HandleFunc("POST "+v+"/contacts/{ref}/typing", endpoint(jsonBody, http.StatusOK, func(r *http.Request, req control.TypingRequest) (control.TypingResult, error) {
		f.Presence.Touch()
		sent, err := f.Chat.Typing(r.Context(), ref(r), req.Typing)
		return control.TypingResult{Sent: sent}, err
	}))
	mux.HandleFunc("POST "+v+"/contacts/{ref}/receipts", endpoint(jsonBody, http.StatusOK, func(r *http.Request, req control.ReceiptsRequest) (control.Contact, error) {
		return contactView(f.Chat.SetReceipts(r.Context(), ref(r), req.Mode))
	}))
	mux.HandleFunc("GET "+v+"/search", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) ([]control.Message, error) {
		limit, err := limitParam(r)
		if err != nil {
			return nil, err
		}
		q := r.URL.Query()
		return f.Chat.Search(r.Context(), q.Get("q"), q.Get("contact"), limit)
	}))

	// Names.
	mux.HandleFunc("GET "+v+"/names", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) ([]control.OwnName, error) {
		return f.Names.OwnNames(r.Context())
	}))
	mux.HandleFunc("POST "+v+"/names", endpoint(jsonBody, http.StatusOK, func(r *http.Request, req control.NameRequest) (control.OwnName, error) {
		return f.Names.RegisterName(r.Context(), req.Name)
	}))
	mux.HandleFunc("DELETE "+v+"/names/{name}", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) (control.OwnName, error) {
		return f.Names.ReleaseName(r.Context(), r.PathValue("name"))
	}))
	mux.HandleFunc("GET "+v+"/directory/{name}", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) (control.NameLookup, error) {
		return f.Names.LookupName(r.Context(), r.PathValue("name"))
	}))

	// Profiles.
	mux.HandleFunc("GET "+v+"/profile", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) (control.Profile, error) {
		return f.Profiles.OwnProfile(r.Context())
	}))
	mux.HandleFunc("POST "+v+"/profile", endpoint(body{limit: MaxProfileBody}, http.StatusOK, func(r *http.Request, req control.ProfileRequest) (control.Profile, error) {
		f.Presence.Touch()
		return f.Profiles.SetProfile(r.Context(), req)
	}))
	mux.HandleFunc("GET "+v+"/contacts/{ref}/profile", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) (control.Profile, error) {
		return f.Profiles.ContactProfile(r.Context(), ref(r))
	}))

	// Offline delivery.
	mux.HandleFunc("GET "+v+"/mailbox", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) (control.Mailbox, error) {
		return f.Mailbox.Mailbox(r.Context())
	}))

	// Files.
	mux.HandleFunc("POST "+v+"/contacts/{ref}/files", endpoint(jsonBody, http.StatusCreated, func(r *http.Request, req control.SendFileRequest) (control.Transfer, error) {
		f.Presence.Touch()
		return f.Files.SendFile(r.Context(), ref(r), req)
	}))
	mux.HandleFunc("GET "+v+"/files", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) ([]control.Transfer, error) {
		return f.Files.Files(r.Context())
	}))
	mux.HandleFunc("GET "+v+"/files/{id}", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) (control.Transfer, error) {
		return f.Files.File(r.Context(), r.PathValue("id"))
	}))
	mux.HandleFunc("POST "+v+"/files/{id}/{action}", endpoint(noBody, http.StatusOK, func(r *http.Request, _ none) (control.Transfer, error) {
		f.Presence.Touch()
		return f.Files.FileAction(r.Context(), r.PathValue("id"), r.PathValue("action"))
	}))

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotFound, fmt.Errorf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// contactView is a contact as the API shows it; err passes through.
func contactView(c store.Contact, err error) (control.Contact, error) {
	if err != nil {
		return control.Contact{}, err
	}
	return control.Contact{
		PeerID: c.PeerID.String(), Name: c.Name, State: string(c.State), Rendezvous: strs(c.Rendezvous),
		AddedAt: c.CreatedAt, ReadReceipts: c.ReadReceipts, Note: c.Note, DirName: c.DirName,
	}, nil
}

// limitParam is the ?limit= of a page of messages.
func limitParam(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return defaultHistoryLimit, nil
	}
	l, err := strconv.Atoi(s)
	if err != nil || l < 1 || l > maxHistoryLimit {
		return 0, core.Invalid(fmt.Errorf("limit: %q is not a number in 1..%d", s, maxHistoryLimit))
	}
	return l, nil
}

func strs[T fmt.Stringer](xs []T) []string {
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		out = append(out, x.String())
	}
	return out
}
