package tui

// The model tests are white-box (package tui): they drive the model with
// its own timer and stream messages, which are unexported on purpose.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
)

// Peer IDs of the fake daemon's contacts.
const (
	selfID  = "12D3KooWSelfSelfSelfSelfSelfSelfSelfSelfSelfSelf01"
	bobID   = "12D3KooWBobBobBobBobBobBobBobBobBobBobBobBobBob002"
	carolID = "12D3KooWCarolCarolCarolCarolCarolCarolCarolCaro03"
	daveID  = "12D3KooWDaveDaveDaveDaveDaveDaveDaveDaveDaveDave04"
	erinID  = "12D3KooWErinErinErinErinErinErinErinErinErinErin05"
	frankID = "12D3KooWFrankFrankFrankFrankFrankFrankFrankFran06"
)

// fakeAPI is a daemon in memory: it answers like the control API and
// records every call.
type fakeAPI struct {
	mu       sync.Mutex
	status   control.Status
	contacts []control.Contact
	history  map[string][]control.Message // by peer ID, oldest first
	calls    []string
	sendErr  error
	offerErr error
	offer    control.Transfer
	// transfers is what GET /v1/files answers; FileAction changes them.
	transfers []control.Transfer
	filesErr  error
	actionErr error
	results   []control.Message
	next      int
}

func newFakeAPI() *fakeAPI {
	f := &fakeAPI{history: map[string][]control.Message{}}
	f.status = control.Status{PeerID: selfID, Name: "alice", Presence: control.PresenceOnline}
	add := func(id, name, state, presence, path string, unread int, note string) {
		f.status.Contacts = append(f.status.Contacts, control.ContactStatus{PeerID: id, Name: name, State: state,
			Presence: presence, Path: path, Connected: path != control.PathNone, Unread: unread})
		f.contacts = append(f.contacts, control.Contact{PeerID: id, Name: name, State: state, Note: note})
	}
	add(bobID, "bob", control.StateAccepted, control.PresenceOnline, control.PathDirect, 3, "")
	add(carolID, "carol", control.StateAccepted, control.PresenceAway, control.PathRelayed, 0, "")
	add(daveID, "dave", control.StateAccepted, control.PresenceOffline, control.PathNone, 0, "")
	add(erinID, "erin", control.StatePendingIn, control.PresenceOffline, control.PathNone, 0, "met you at the meetup")
	add(frankID, "frank", control.StatePendingOut, control.PresenceOffline, control.PathNone, 0, "")
	return f
}

// at is the fake's clock for message times: 2026-11-30 10:00 UTC + i min.
func at(i int) time.Time {
	return time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
}

// seed gives peer's conversation n messages "msg 000".."msg n-1".
func (f *fakeAPI) seed(peer string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range n {
		dir := "in"
		if i%2 == 1 {
			dir = "out"
		}
		f.history[peer] = append(f.history[peer], control.Message{ID: fmt.Sprintf("id-%s-%03d", peer[8:12], i), PeerID: peer,
			Direction: dir, Kind: control.KindText, Text: fmt.Sprintf("msg %03d", i), SentAt: at(i), Status: control.StatusRead})
	}
}

func (f *fakeAPI) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

// Calls returns the recorded calls and forgets them.
func (f *fakeAPI) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func (f *fakeAPI) Status(context.Context) (control.Status, error) {
	f.record("status")
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.status
	st.Contacts = slices.Clone(st.Contacts)
	return st, nil
}

func (f *fakeAPI) Contacts(context.Context) ([]control.Contact, error) {
	f.record("contacts")
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.contacts), nil
}

func (f *fakeAPI) History(_ context.Context, ref, before string, limit int) ([]control.Message, error) {
	f.record("history %s before=%s limit=%d", ref, before, limit)
	f.mu.Lock()
	defer f.mu.Unlock()
	ms := f.history[ref]
	end := len(ms)
	if before != "" {
		end = slices.IndexFunc(ms, func(m control.Message) bool { return m.ID == before })
		if end < 0 {
			return nil, &control.APIError{Code: 404, Message: "no message " + before}
		}
	}
	return slices.Clone(ms[max(end-limit, 0):end]), nil
}

func (f *fakeAPI) Send(_ context.Context, ref string, req control.SendRequest) (control.Message, error) {
	f.record("send %s %s %q", ref, req.Kind, req.Text)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sendErr != nil {
		return control.Message{}, f.sendErr
	}
	f.next++
	kind := req.Kind
	if kind == "" {
		kind = control.KindText
	}
	m := control.Message{ID: fmt.Sprintf("sent-%d", f.next), PeerID: ref, Direction: "out", Kind: kind, Text: req.Text,
		SentAt: at(1000 + f.next), Status: control.StatusQueued}
	f.history[ref] = append(f.history[ref], m)
	return m, nil
}

func (f *fakeAPI) MarkRead(_ context.Context, ref string) (control.ReadResult, error) {
	f.record("read %s", ref)
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.status.Contacts {
		if f.status.Contacts[i].PeerID == ref {
			f.status.Contacts[i].Unread = 0
		}
	}
	return control.ReadResult{Receipts: true}, nil
}

func (f *fakeAPI) Typing(_ context.Context, ref string, typing bool) (control.TypingResult, error) {
	f.record("typing %s %v", ref, typing)
	return control.TypingResult{Sent: true}, nil
}

func (f *fakeAPI) Activity(context.Context) error {
	f.record("activity")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status.AutoAway = false
	return nil
}

func (f *fakeAPI) setState(ref, state string) control.Contact {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.status.Contacts {
		if f.status.Contacts[i].PeerID == ref {
			f.status.Contacts[i].State = state
			f.contacts[i].State = state
			return f.contacts[i]
		}
	}
	return control.Contact{}
}

func (f *fakeAPI) AcceptContact(_ context.Context, ref, name string) (control.Contact, error) {
	f.record("accept %s %q", ref, name)
	return f.setState(ref, control.StateAccepted), nil
}

func (f *fakeAPI) RejectContact(_ context.Context, ref string) (control.Contact, error) {
	f.record("reject %s", ref)
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.contacts, func(c control.Contact) bool { return c.PeerID == ref })
	c := f.contacts[i]
	f.contacts = slices.Delete(f.contacts, i, i+1)
	f.status.Contacts = slices.Delete(f.status.Contacts, i, i+1)
	return c, nil
}

func (f *fakeAPI) AddContact(_ context.Context, req control.AddContactRequest) (control.Contact, error) {
	f.record("add %s %q", req.Target, req.Note)
	if !strings.HasPrefix(req.Target, "12D3KooW") {
		return control.Contact{}, &control.APIError{Code: 400, Message: fmt.Sprintf("%q is neither a peer ID nor an invite (natter:...)", req.Target)}
	}
	c := control.Contact{PeerID: req.Target, State: control.StatePendingOut}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.contacts = append(f.contacts, c)
	f.status.Contacts = append(f.status.Contacts, control.ContactStatus{PeerID: req.Target, State: control.StatePendingOut, Presence: control.PresenceOffline, Path: control.PathNone})
	return c, nil
}

func (f *fakeAPI) SetPresence(_ context.Context, req control.PresenceRequest) (control.Status, error) {
	msg := "<nil>"
	if req.Message != nil {
		msg = *req.Message
	}
	f.record("presence %s %q", req.State, msg)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status.Presence = req.State
	if req.Message != nil {
		f.status.StatusMessage = *req.Message
	}
	return f.status, nil
}

func (f *fakeAPI) Search(_ context.Context, words, ref string, limit int) ([]control.Message, error) {
	f.record("search %q %q %d", words, ref, limit)
	return f.results, nil
}

func (f *fakeAPI) OfferFile(_ context.Context, ref, path string) (control.Transfer, error) {
	f.record("file %s %s", ref, path)
	return f.offer, f.offerErr
}

func (f *fakeAPI) Files(context.Context) ([]control.Transfer, error) {
	f.record("files")
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.transfers), f.filesErr
}

// FileAction moves the transfer as the daemon would (without checking
// whether the action fits its state: the model decides what to ask).
func (f *fakeAPI) FileAction(_ context.Context, id, action string) (control.Transfer, error) {
	f.record("file-%s %s", action, id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.actionErr != nil {
		return control.Transfer{}, f.actionErr
	}
	i := slices.IndexFunc(f.transfers, func(t control.Transfer) bool { return t.ID == id })
	if i < 0 {
		return control.Transfer{}, &control.APIError{Code: 404, Message: "no transfer " + id}
	}
	t := &f.transfers[i]
	switch action {
	case "accept":
		t.State, t.Reason = control.TransferAccepted, ""
	case "reject":
		t.State, t.Reason = control.TransferRejected, "you rejected it"
	case "cancel":
		t.State, t.Reason = control.TransferCancelled, "you cancelled it"
	}
	return *t, nil
}

func (f *fakeAPI) Events(context.Context) (EventStream, error) {
	return nil, errors.New("the model tests feed events directly")
}

// harness drives a Model like bubbletea would: it runs the commands the
// model returns and feeds their messages back, synchronously. Timers are
// recorded, not run: tests fire them when they choose, with the fake
// clock where they want it.
type harness struct {
	t     *testing.T
	m     *Model
	api   *fakeAPI
	now   time.Time
	ticks []tea.Msg
	bell  bytes.Buffer
	quit  bool
}

func newHarness(t *testing.T, api *fakeAPI, open string) *harness {
	t.Helper()
	h := &harness{t: t, api: api, now: at(2000)}
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	h.m = New(t.Context(), api, Options{Open: open, Renderer: r, Bell: &h.bell})
	h.m.now = func() time.Time { return h.now }
	h.m.after = func(_ time.Duration, msg tea.Msg) tea.Cmd {
		h.ticks = append(h.ticks, msg)
		return nil
	}
	h.m.loc = time.UTC
	h.send(tea.WindowSizeMsg{Width: 80, Height: 24})
	h.send(eventMsg{control.Event{Type: control.EventHello, PeerID: selfID}})
	return h
}

// send delivers msg and everything that follows from it.
func (h *harness) send(msg tea.Msg) {
	h.t.Helper()
	queue := []tea.Msg{msg}
	for n := 0; len(queue) > 0; n++ {
		require.Less(h.t, n, 1000, "the model keeps producing messages")
		next := queue[0]
		queue = queue[1:]
		_, cmd := h.m.Update(next)
		queue = append(queue, h.exec(cmd)...)
	}
}

// exec runs a command (bounded in time) and returns its messages.
func (h *harness) exec(cmd tea.Cmd) []tea.Msg {
	h.t.Helper()
	if cmd == nil {
		return nil
	}
	done := make(chan tea.Msg, 1)
	go func() { done <- cmd() }()
	var msg tea.Msg
	select {
	case msg = <-done:
	case <-time.After(10 * time.Second):
		h.t.Fatal("a command of the model blocked")
	}
	switch msg := msg.(type) {
	case nil:
		return nil
	case tea.BatchMsg:
		var out []tea.Msg
		for _, c := range msg {
			out = append(out, h.exec(c)...)
		}
		return out
	case tea.QuitMsg:
		h.quit = true
		return nil
	}
	return []tea.Msg{msg}
}

// fire delivers the recorded timers that match, in order.
func (h *harness) fire(match func(tea.Msg) bool) int {
	h.t.Helper()
	var due, keep []tea.Msg
	for _, m := range h.ticks {
		if match(m) {
			due = append(due, m)
		} else {
			keep = append(keep, m)
		}
	}
	h.ticks = keep
	for _, m := range due {
		h.send(m)
	}
	return len(due)
}

func (h *harness) typeText(s string) {
	h.t.Helper()
	h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)})
}

func (h *harness) key(t tea.KeyType) {
	h.t.Helper()
	h.send(tea.KeyMsg{Type: t})
}

// view returns the screen as plain text, after checking that it fills
// the terminal exactly: height lines, none wider than the width.
func (h *harness) view() string {
	h.t.Helper()
	v := h.m.View()
	lines := strings.Split(v, "\n")
	if h.m.width >= minWidth && h.m.height >= minHeight {
		require.Len(h.t, lines, h.m.height, "the view must fill the terminal: %q", v)
	}
	for i, l := range lines {
		require.LessOrEqual(h.t, ansi.StringWidth(l), h.m.width, "line %d is wider than the terminal: %q", i, l)
	}
	return ansi.Strip(v)
}

// line returns the first screen line containing s ("" if none).
func (h *harness) line(s string) string {
	for _, l := range strings.Split(h.view(), "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}
