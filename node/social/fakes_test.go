package social_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/test"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/social"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/contact"
	"github.com/natterim/natter/protocols/names"
	"github.com/natterim/natter/protocols/presence"
	"github.com/natterim/natter/protocols/profile"
)

// fakeStore is the database in memory.
type fakeStore struct {
	mu       sync.Mutex
	contacts map[peer.ID]store.Contact
	settings map[string]string
	own      store.Profile
	profiles map[peer.ID]store.Profile
	names    map[string]uint64
	warnings map[peer.ID]store.NameWarning
	// withdrawals and rejections are what a restart keeps (a new
	// Service on the same fakeStore).
	withdrawals map[peer.ID]time.Time
	rejections  map[peer.ID]time.Time
}

func newFakeStore() *fakeStore {
	return &fakeStore{contacts: map[peer.ID]store.Contact{}, settings: map[string]string{}, profiles: map[peer.ID]store.Profile{},
		names: map[string]uint64{}, warnings: map[peer.ID]store.NameWarning{},
		withdrawals: map[peer.ID]time.Time{}, rejections: map[peer.ID]time.Time{}}
}

func (f *fakeStore) RemoveWithdrawing(_ context.Context, p peer.ID, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.contacts[p]; !ok {
		return store.ErrNotFound
	}
	delete(f.contacts, p)
	f.withdrawals[p] = at
	return nil
}

func (f *fakeStore) Withdrawals(context.Context) (map[peer.ID]time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[peer.ID]time.Time{}
	for p, at := range f.withdrawals {
		out[p] = at
	}
	return out, nil
}

func (f *fakeStore) DropWithdrawal(_ context.Context, p peer.ID) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.withdrawals[p]
	delete(f.withdrawals, p)
	return ok, nil
}

func (f *fakeStore) withdrawal(p peer.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.withdrawals[p]
	return ok
}

func (f *fakeStore) RemoveRejected(_ context.Context, p peer.ID, at, forgetBefore time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.contacts[p]; !ok {
		return store.ErrNotFound
	}
	delete(f.contacts, p)
	for q, t := range f.rejections {
		if t.Before(forgetBefore) {
			delete(f.rejections, q)
		}
	}
	f.rejections[p] = at
	return nil
}

func (f *fakeStore) RejectedAt(_ context.Context, p peer.ID) (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rejections[p], nil
}

func (f *fakeStore) ContactByPeer(_ context.Context, p peer.ID) (store.Contact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.contacts[p]
	if !ok {
		return c, store.ErrNotFound
	}
	return c, nil
}

func (f *fakeStore) FindContact(_ context.Context, ref string) (store.Contact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.contacts {
		if c.PeerID.String() == ref || c.Name != "" && strings.EqualFold(c.Name, ref) {
			return c, nil
		}
	}
	return store.Contact{}, store.ErrNotFound
}

func (f *fakeStore) ContactByDirName(_ context.Context, dn string) (store.Contact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.contacts {
		if c.DirName == dn {
			return c, nil
		}
	}
	return store.Contact{}, store.ErrNotFound
}

func (f *fakeStore) Contacts(context.Context) ([]store.Contact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []store.Contact{}
	for _, c := range f.contacts {
		out = append(out, c)
	}
	return out, nil
}

func (f *fakeStore) CountState(_ context.Context, state store.ContactState) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.contacts {
		if c.State == state {
			n++
		}
	}
	return n, nil
}

// nameTakenLocked reports whether another contact than p has name.
func (f *fakeStore) nameTakenLocked(p peer.ID, name string) bool {
	for _, o := range f.contacts {
		if o.PeerID != p && name != "" && strings.EqualFold(o.Name, name) {
			return true
		}
	}
	return false
}

func (f *fakeStore) AddContact(_ context.Context, c store.Contact) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.contacts[c.PeerID]; ok || f.nameTakenLocked(c.PeerID, c.Name) {
		return store.ErrExists
	}
	f.contacts[c.PeerID] = c
	return nil
}

func (f *fakeStore) UpdateContact(_ context.Context, c store.Contact) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.contacts[c.PeerID]; !ok {
		return store.ErrNotFound
	}
	if f.nameTakenLocked(c.PeerID, c.Name) {
		return store.ErrExists
	}
	f.contacts[c.PeerID] = c
	return nil
}

func (f *fakeStore) RemoveContact(_ context.Context, p peer.ID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.contacts, p)
	delete(f.warnings, p)
	return nil
}

func (f *fakeStore) Setting(_ context.Context, key string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.settings[key], nil
}

func (f *fakeStore) SetSetting(_ context.Context, key, value string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.settings[key] = value
	return nil
}

func (f *fakeStore) OwnProfile(context.Context) (store.Profile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.own, nil
}

func (f *fakeStore) SetOwnProfile(_ context.Context, edit func(*store.Profile)) (store.Profile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	edit(&f.own)
	f.own.Version++
	return f.own, nil
}

func (f *fakeStore) ContactProfile(_ context.Context, p peer.ID) (store.Profile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pr, ok := f.profiles[p]
	if !ok {
		return pr, store.ErrNotFound
	}
	return pr, nil
}

func (f *fakeStore) SaveContactProfile(_ context.Context, p peer.ID, pr store.Profile) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.profiles[p]; ok && pr.Version <= old.Version {
		return false, nil
	}
	f.profiles[p] = pr
	return true, nil
}

func (f *fakeStore) OwnNames(context.Context) ([]store.OwnName, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []store.OwnName{}
	for n, seq := range f.names {
		out = append(out, store.OwnName{Name: n, Seq: seq})
	}
	return out, nil
}

func (f *fakeStore) NextNameSeq(_ context.Context, name string, next func(uint64) uint64) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.names[name] = next(f.names[name])
	return f.names[name], nil
}

func (f *fakeStore) RemoveOwnName(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.names, name)
	return nil
}

func (f *fakeStore) NameWarnings(context.Context) (map[peer.ID]store.NameWarning, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[peer.ID]store.NameWarning{}
	for p, w := range f.warnings {
		out[p] = w
	}
	return out, nil
}

func (f *fakeStore) SetNameWarning(_ context.Context, p peer.ID, w store.NameWarning) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.warnings[p]; ok && old.Warning == w.Warning {
		return false, nil
	}
	f.warnings[p] = w
	return true, nil
}

func (f *fakeStore) ClearNameWarning(_ context.Context, p peer.ID) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.warnings[p]
	delete(f.warnings, p)
	return ok, nil
}

func (f *fakeStore) contact(t *testing.T, p peer.ID) (store.Contact, bool) {
	t.Helper()
	c, err := f.ContactByPeer(context.Background(), p)
	return c, err == nil
}

// sent is one friend-request message the fake network carried.
type sent struct {
	to  peer.ID
	req contact.Request
}

// pushed is one presence push.
type pushed struct {
	to peer.ID
	pr presence.Presence
}

// fakeNet is the network: it records what social sends and answers with
// the functions a test sets.
type fakeNet struct {
	id       peer.ID
	contacts chan sent
	pushes   chan pushed

	mu           sync.Mutex
	answer       func(sent) (contact.Response, error)
	profile      func(p peer.ID) (profile.Profile, error)
	fetches      int
	registers    []string // server/name
	lookup       func(server peer.ID, name string) (names.Record, error)
	disconnected []peer.ID
}

func newFakeNet(t *testing.T) *fakeNet {
	return &fakeNet{id: test.RandPeerIDFatal(t), contacts: make(chan sent, 100), pushes: make(chan pushed, 100)}
}

func (n *fakeNet) ID() peer.ID { return n.id }

func (n *fakeNet) SendContact(_ context.Context, p peer.ID, req contact.Request) (contact.Response, error) {
	s := sent{p, req}
	n.contacts <- s
	n.mu.Lock()
	answer := n.answer
	n.mu.Unlock()
	if answer == nil {
		return contact.Response{Status: contact.StatusOK}, nil
	}
	return answer(s)
}

func (n *fakeNet) PushPresence(_ context.Context, p peer.ID, pr presence.Presence) error {
	n.pushes <- pushed{p, pr}
	return nil
}

func (n *fakeNet) FetchProfile(_ context.Context, p peer.ID) (profile.Profile, error) {
	n.mu.Lock()
	n.fetches++
	f := n.profile
	n.mu.Unlock()
	if f == nil {
		return profile.Profile{}, errors.New("no profile")
	}
	return f(p)
}

func (n *fakeNet) Disconnect(p peer.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.disconnected = append(n.disconnected, p)
}

func (n *fakeNet) RegisterName(_ context.Context, server peer.ID, name string, _ uint64) (time.Time, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.registers = append(n.registers, server.String()+"/"+name)
	return time.Now().Add(30 * 24 * time.Hour), nil
}

func (n *fakeNet) ReleaseName(context.Context, peer.ID, string, uint64) error { return nil }

func (n *fakeNet) LookupName(_ context.Context, server peer.ID, name string) (names.Record, error) {
	n.mu.Lock()
	f := n.lookup
	n.mu.Unlock()
	if f == nil {
		return names.Record{}, names.ErrNotFound
	}
	return f(server, name)
}

func (n *fakeNet) setAnswer(f func(sent) (contact.Response, error)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.answer = f
}

func (n *fakeNet) registerCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.registers)
}

// nextContact waits for the next friend-request message.
func (n *fakeNet) nextContact(t *testing.T) sent {
	t.Helper()
	select {
	case s := <-n.contacts:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no friend-request message sent")
	}
	return sent{}
}

// nextPush waits for the next presence push.
func (n *fakeNet) nextPush(t *testing.T) pushed {
	t.Helper()
	select {
	case p := <-n.pushes:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no presence push")
	}
	return pushed{}
}

// fakeLinks are the links, the tokens and the status source.
type fakeLinks struct {
	mu        sync.Mutex
	paths     map[peer.ID]core.Path
	started   map[peer.ID]int
	stopped   map[peer.ID]int
	kept      map[peer.ID]int
	blocked   map[peer.ID]bool
	errs      map[peer.ID]error
	errsSet   int
	servers   []peer.ID
	connected map[peer.ID]time.Time
	tokens    chan peer.ID
}

func newFakeLinks() *fakeLinks {
	return &fakeLinks{paths: map[peer.ID]core.Path{}, started: map[peer.ID]int{}, stopped: map[peer.ID]int{}, kept: map[peer.ID]int{},
		blocked: map[peer.ID]bool{}, errs: map[peer.ID]error{}, connected: map[peer.ID]time.Time{}, tokens: make(chan peer.ID, 100)}
}

func (l *fakeLinks) Path(p peer.ID) (core.Path, network.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.paths[p], nil
}

func (l *fakeLinks) StartContact(p peer.ID) { l.mu.Lock(); l.started[p]++; l.mu.Unlock() }
func (l *fakeLinks) StopContact(p peer.ID)  { l.mu.Lock(); l.stopped[p]++; l.mu.Unlock() }
func (l *fakeLinks) KeepLink(p peer.ID)     { l.mu.Lock(); l.kept[p]++; l.mu.Unlock() }

func (l *fakeLinks) SetBlocked(p peer.ID, b bool) { l.mu.Lock(); l.blocked[p] = b; l.mu.Unlock() }
func (l *fakeLinks) SetError(p peer.ID, err error) {
	l.mu.Lock()
	l.errs[p] = err
	l.errsSet++
	l.mu.Unlock()
}

func (l *fakeLinks) Servers() []peer.ID {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]peer.ID(nil), l.servers...)
}

func (l *fakeLinks) ConnectedServers() map[peer.ID]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[peer.ID]time.Time{}
	for p, at := range l.connected {
		out[p] = at
	}
	return out
}

func (l *fakeLinks) PushToken(_ context.Context, p peer.ID) { l.tokens <- p }

func (l *fakeLinks) Status(context.Context) (control.Status, error) {
	return control.Status{PeerID: "status"}, nil
}

func (l *fakeLinks) setPath(p peer.ID, path core.Path) { l.mu.Lock(); l.paths[p] = path; l.mu.Unlock() }

func (l *fakeLinks) count(m map[peer.ID]int, p peer.ID) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return m[p]
}

func (l *fakeLinks) errCalls() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errsSet
}

func (l *fakeLinks) err(p peer.ID) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errs[p]
}

// events is the publisher: every event in a channel.
type events chan control.Event

func (e events) Publish(ev control.Event) { e <- ev }

// next waits for the next event matching ok, skipping others.
func (e events) next(t *testing.T, ok func(control.Event) bool) control.Event {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-e:
			if ok(ev) {
				return ev
			}
		case <-timeout:
			t.Fatal("event never came")
			return control.Event{}
		}
	}
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a Service with fakes around it.
type env struct {
	s     *social.Service
	store *fakeStore
	net   *fakeNet
	links *fakeLinks
	ev    events
	clock *clock
}

func newEnv(t *testing.T, cfg social.Config) *env {
	t.Helper()
	e := &env{store: newFakeStore(), net: newFakeNet(t), links: newFakeLinks(), ev: make(events, 1000),
		clock: &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	if cfg.RejectCooldown == 0 {
		cfg.RejectCooldown = time.Hour
	}
	if cfg.RenewInterval == 0 {
		cfg.RenewInterval = 24 * time.Hour
	}
	if cfg.RecheckInterval == 0 {
		cfg.RecheckInterval = 6 * time.Hour
	}
	if cfg.MaxRecordAge == 0 {
		cfg.MaxRecordAge = 45 * 24 * time.Hour
	}
	s, err := social.New(context.Background(), cfg, e.store, e.net, e.links, e.links, e.links, e.ev, social.WithClock(e.clock.Now))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	e.s = s
	return e
}
