package api_test

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/api"
	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
)

// call is one domain call the fake saw: the method's name and its
// arguments after the context.
type call struct {
	name string
	args []any
}

// fake implements every interface api declares. It records each call and
// answers with the canned values below, or with err if set.
type fake struct {
	id  peer.ID
	bus *core.Bus

	mu      sync.Mutex // guards the following fields
	calls   []call
	touches int
	err     error
	// block, if set, makes Send wait for its context to end.
	block bool
	subs  int
}

func newFake(t *testing.T) *fake {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	require.NoError(t, err)
	id, err := peer.IDFromPrivateKey(sk)
	require.NoError(t, err)
	return &fake{id: id, bus: core.NewBus()}
}

func (f *fake) record(name string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{name, args})
	return f.err
}

func (f *fake) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// take returns the calls and touches seen since the last take.
func (f *fake) take() ([]call, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	calls, touches := f.calls, f.touches
	f.calls, f.touches = nil, 0
	return calls, touches
}

// The canned answers.
var (
	cannedStatus   = control.Status{PeerID: "me", Name: "alice", Presence: control.PresenceOnline}
	cannedContact  = store.Contact{Name: "bob", State: store.StateAccepted, Note: "hi"}
	cannedContacts = []control.Contact{{PeerID: "p1", Name: "bob", State: control.StateAccepted, Warning: "w"}}
	cannedPing     = control.PingResult{PeerID: "p1", Path: control.PathDirect, RTTMillis: 1.5}
	cannedMessage  = control.Message{ID: "m1", Text: "hello", Status: "queued"}
	cannedMessages = []control.Message{{ID: "m1"}, {ID: "m2"}}
	cannedRead     = control.ReadResult{Marked: 3, Receipts: true}
	cannedTransfer = control.Transfer{ID: "t1", Name: "a.txt"}
	cannedProfile  = control.Profile{PeerID: "me", Name: "Alice"}
	cannedOwnName  = control.OwnName{Name: "alice"}
	cannedLookup   = control.NameLookup{Name: "bob", PeerID: "p1"}
	cannedMailbox  = control.Mailbox{Enabled: true, Servers: []control.MailboxServer{}, Contacts: []control.MailboxContact{}}
)

func (f *fake) ID() peer.ID { return f.id }

func (f *fake) Status(context.Context) (control.Status, error) {
	return cannedStatus, f.record("Status")
}

func (f *fake) Invite(context.Context) (string, error) { return "natter:invite", f.record("Invite") }

func (f *fake) Ping(_ context.Context, ref string) (control.PingResult, error) {
	return cannedPing, f.record("Ping", ref)
}

func (f *fake) Contacts(context.Context) ([]control.Contact, error) {
	return cannedContacts, f.record("Contacts")
}

func (f *fake) AddContact(_ context.Context, req control.AddContactRequest) (store.Contact, error) {
	return cannedContact, f.record("AddContact", req)
}

func (f *fake) AcceptContact(_ context.Context, ref, name string) (store.Contact, error) {
	return cannedContact, f.record("AcceptContact", ref, name)
}

func (f *fake) RejectContact(_ context.Context, ref string) (store.Contact, error) {
	return cannedContact, f.record("RejectContact", ref)
}

func (f *fake) BlockContact(_ context.Context, ref string) (store.Contact, error) {
	return cannedContact, f.record("BlockContact", ref)
}

func (f *fake) RemoveContact(_ context.Context, ref string) (store.Contact, error) {
	return cannedContact, f.record("RemoveContact", ref)
}

func (f *fake) SetPresence(_ context.Context, req control.PresenceRequest) (control.Status, error) {
	return cannedStatus, f.record("SetPresence", req)
}

func (f *fake) Touch() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.touches++
}

func (f *fake) Send(ctx context.Context, ref string, req control.SendRequest) (control.Message, error) {
	err := f.record("Send", ref, req)
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return control.Message{}, ctx.Err()
	}
	return cannedMessage, err
}

func (f *fake) History(_ context.Context, ref, before string, limit int) ([]control.Message, error) {
	return cannedMessages, f.record("History", ref, before, limit)
}

func (f *fake) Search(_ context.Context, query, ref string, limit int) ([]control.Message, error) {
	return cannedMessages, f.record("Search", query, ref, limit)
}

func (f *fake) MarkRead(_ context.Context, ref string) (control.ReadResult, error) {
	return cannedRead, f.record("MarkRead", ref)
}

func (f *fake) Typing(_ context.Context, ref string, typing bool) (bool, error) {
	return true, f.record("Typing", ref, typing)
}

func (f *fake) SetReceipts(_ context.Context, ref, mode string) (store.Contact, error) {
	return cannedContact, f.record("SetReceipts", ref, mode)
}

func (f *fake) SendFile(_ context.Context, ref string, req control.SendFileRequest) (control.Transfer, error) {
	return cannedTransfer, f.record("SendFile", ref, req)
}

func (f *fake) Files(context.Context) ([]control.Transfer, error) {
	return []control.Transfer{cannedTransfer}, f.record("Files")
}

func (f *fake) File(_ context.Context, ref string) (control.Transfer, error) {
	return cannedTransfer, f.record("File", ref)
}

func (f *fake) FileAction(_ context.Context, ref, action string) (control.Transfer, error) {
	return cannedTransfer, f.record("FileAction", ref, action)
}

func (f *fake) OwnProfile(context.Context) (control.Profile, error) {
	return cannedProfile, f.record("OwnProfile")
}

func (f *fake) SetProfile(_ context.Context, req control.ProfileRequest) (control.Profile, error) {
	return cannedProfile, f.record("SetProfile", req)
}

func (f *fake) ContactProfile(_ context.Context, ref string) (control.Profile, error) {
	return cannedProfile, f.record("ContactProfile", ref)
}

func (f *fake) OwnNames(context.Context) ([]control.OwnName, error) {
	return []control.OwnName{cannedOwnName}, f.record("OwnNames")
}

func (f *fake) RegisterName(_ context.Context, name string) (control.OwnName, error) {
	return cannedOwnName, f.record("RegisterName", name)
}

func (f *fake) ReleaseName(_ context.Context, name string) (control.OwnName, error) {
	return cannedOwnName, f.record("ReleaseName", name)
}

func (f *fake) LookupName(_ context.Context, name string) (control.NameLookup, error) {
	return cannedLookup, f.record("LookupName", name)
}

func (f *fake) Mailbox(context.Context) (control.Mailbox, error) {
	return cannedMailbox, f.record("Mailbox")
}

func (f *fake) Subscribe() (*core.Subscription, func()) {
	sub, cancel := f.bus.Subscribe()
	f.mu.Lock()
	f.subs++
	f.mu.Unlock()
	var once sync.Once
	return sub, func() {
		once.Do(func() {
			f.mu.Lock()
			f.subs--
			f.mu.Unlock()
		})
		cancel()
	}
}

// subscribers is the number of event subscriptions not ended yet.
func (f *fake) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subs
}

func (f *fake) services() api.Services {
	return api.Services{
		Node: f, Contacts: f, Presence: f, Chat: f, Files: f, Profiles: f, Names: f, Mailbox: f, Events: f,
	}
}

// socketDir is a short temporary directory: a unix socket path must fit
// in 108 bytes, and t.TempDir() names can be long.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "napi")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// start serves f's API on a socket in a fresh directory (unless cfg
// names one) and returns it with a client for that socket; the server is
// closed when the test ends.
func start(t *testing.T, f *fake, cfg api.Config, opts ...api.Option) (*api.Server, *http.Client) {
	t.Helper()
	if cfg.Socket == "" {
		cfg.Socket = filepath.Join(socketDir(t), control.SocketName)
	}
	s, err := api.New(cfg, f.services(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s, rawClient(cfg.Socket)
}

// rawClient speaks HTTP over the unix socket, for requests the control
// client would never send.
func rawClient(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
}

// do sends one request with a raw body ("" = none) and returns the
// status and body.
func do(t *testing.T, hc *http.Client, method, path, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://natter"+path, r)
	require.NoError(t, err)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	_, err = io.Copy(&b, resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b.String()
}
