package tui

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
)

// streamAPI hands out event streams: each Events call takes the next
// script (events, then the error the stream ends with); with none left it
// refuses like a stopped daemon.
type streamAPI struct {
	fakeAPI
	mu      sync.Mutex
	scripts [][]control.Event
	opened  int
}

type scriptStream struct {
	events []control.Event
	closed chan struct{}
	once   sync.Once
}

func (s *scriptStream) Next() (control.Event, error) {
	if len(s.events) > 0 {
		e := s.events[0]
		s.events = s.events[1:]
		return e, nil
	}
	return control.Event{}, io.EOF
}

func (s *scriptStream) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func (a *streamAPI) Events(context.Context) (EventStream, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.opened++
	if len(a.scripts) == 0 {
		return nil, control.ErrNoDaemon
	}
	s := &scriptStream{events: a.scripts[0], closed: make(chan struct{})}
	a.scripts = a.scripts[1:]
	return s, nil
}

// blockingStream never ends by itself: Next returns once it is closed.
type blockingStream struct {
	closed chan struct{}
	once   sync.Once
}

func (s *blockingStream) Next() (control.Event, error) {
	<-s.closed
	return control.Event{}, errors.New("closed")
}

func (s *blockingStream) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

type blockingAPI struct {
	fakeAPI
	stream *blockingStream
}

func (a *blockingAPI) Events(context.Context) (EventStream, error) { return a.stream, nil }

func TestPumpReconnects(t *testing.T) {
	hello := control.Event{Type: control.EventHello}
	msg := control.Event{Type: control.EventMessage, PeerID: bobID}
	api := &streamAPI{scripts: [][]control.Event{{hello, msg}, {hello}}}
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan tea.Msg, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pump(ctx, api, func(m tea.Msg) { got <- m })
	}()
	next := func() tea.Msg {
		select {
		case m := <-got:
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("the pump sent nothing")
			return nil
		}
	}
	require.Equal(t, eventMsg{hello}, next())
	require.Equal(t, eventMsg{msg}, next())
	down := next().(streamDownMsg)
	require.ErrorContains(t, down.err, "ended the event stream")
	require.Equal(t, minRetry, down.retryIn, "a stream that said hello resets the backoff")
	require.Equal(t, eventMsg{hello}, next(), "reconnected")
	down = next().(streamDownMsg)
	require.Equal(t, minRetry, down.retryIn)
	// No daemon now: the backoff grows.
	down = next().(streamDownMsg)
	require.ErrorIs(t, down.err, control.ErrNoDaemon)
	require.Equal(t, 2*minRetry, down.retryIn)
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the pump did not stop")
	}
}

func TestPumpStopsOnQuietStream(t *testing.T) {
	api := &blockingAPI{stream: &blockingStream{closed: make(chan struct{})}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pump(ctx, api, func(tea.Msg) {})
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the pump stayed blocked on a quiet stream after its context ended")
	}
}

// TestClientAPIOfferFile runs ClientAPI against a daemon-like server on a
// unix socket: one without the files routes (an older daemon), then one
// with them.
func TestClientAPIOfferFile(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "c.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	var withFiles bool
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/contacts", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode([]control.Contact{{PeerID: bobID, Name: "bob", State: control.StateAccepted}})
	})
	mux.HandleFunc("POST /v1/contacts/{ref}/files", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ok := withFiles
		mu.Unlock()
		if !ok || r.PathValue("ref") != "bob" {
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(control.Error{Error: "no such endpoint: " + r.Method + " " + r.URL.Path})
			return
		}
		var req control.SendFileRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || !filepath.IsAbs(req.Path) {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(control.Transfer{ID: "f1", PeerID: bobID, Direction: "out", Name: filepath.Base(req.Path), Size: 42, State: control.TransferOffered})
	})
	mux.HandleFunc("GET /v1/files", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ok := withFiles
		mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(control.Error{Error: "no such endpoint: " + r.Method + " " + r.URL.Path})
			return
		}
		_ = json.NewEncoder(w).Encode([]control.Transfer{{ID: "f1", PeerID: bobID, State: control.TransferDone}})
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	api := ClientAPI{Client: control.NewClient(sock)}
	ctx := t.Context()
	_, err = api.OfferFile(ctx, "bob", "/tmp/x.txt")
	require.ErrorIs(t, err, ErrFilesUnavailable)
	_, err = api.Files(ctx)
	require.ErrorIs(t, err, ErrFilesUnavailable)
	// An unknown contact stays the daemon's 404.
	_, err = api.OfferFile(ctx, "nobody", "/tmp/x.txt")
	require.NotErrorIs(t, err, ErrFilesUnavailable)
	ae, ok := errors.AsType[*control.APIError](err)
	require.True(t, ok)
	require.Equal(t, http.StatusNotFound, ae.Code)

	mu.Lock()
	withFiles = true
	mu.Unlock()
	off, err := api.OfferFile(ctx, "bob", "/tmp/x.txt")
	require.NoError(t, err)
	require.Equal(t, control.Transfer{ID: "f1", PeerID: bobID, Direction: "out", Name: "x.txt", Size: 42, State: control.TransferOffered}, off)
	ts, err := api.Files(ctx)
	require.NoError(t, err)
	require.Equal(t, []control.Transfer{{ID: "f1", PeerID: bobID, State: control.TransferDone}}, ts)

	// And the event stream through the same adapter.
	_, err = ClientAPI{Client: control.NewClient(filepath.Join(t.TempDir(), "none.sock"))}.Events(ctx)
	require.ErrorIs(t, err, control.ErrNoDaemon)
}
