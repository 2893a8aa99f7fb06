package node

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/invite"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
)

// maxRequestBody bounds control API request bodies.
const maxRequestBody = 1 << 20

// tokenName is the file holding the bearer token of the loopback TCP API.
const tokenName = "control.token"

// apiServer serves the control API on the unix socket (and optionally a
// loopback TCP port).
type apiServer struct {
	servers []*http.Server
	socket  string
	done    chan struct{}
}

func (n *Node) socketPath() string {
	if n.cfg.Control.Socket != "" {
		return n.cfg.Control.Socket
	}
	return control.SocketPath(n.cfg.DataDir)
}

// startAPI listens on the control socket. The data dir lock is held, so a
// socket file left there belongs to a dead daemon and is removed.
func (n *Node) startAPI() (*apiServer, error) {
	a := &apiServer{socket: n.socketPath(), done: make(chan struct{})}
	if err := os.Remove(a.socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale control socket: %w", err)
	}
	// The umask makes the socket 0600 from the start: no window in which
	// another user could connect.
	old := umask(0o177)
	ln, err := net.Listen("unix", a.socket)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", a.socket, err)
	}
	if err := os.Chmod(a.socket, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	mux := n.apiMux()
	a.serve(ln, mux, n)
	if n.cfg.Control.TCPListen != "" {
		token, err := loadOrCreateToken(filepath.Join(n.cfg.DataDir, tokenName))
		if err != nil {
			a.close()
			return nil, err
		}
		tln, err := net.Listen("tcp", n.cfg.Control.TCPListen)
		if err != nil {
			a.close()
			return nil, fmt.Errorf("control.tcp_listen %s: %w", n.cfg.Control.TCPListen, err)
		}
		a.serve(tln, requireToken(token, mux), n)
	}
	return a, nil
}

func (a *apiServer) serve(ln net.Listener, h http.Handler, n *Node) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return n.ctx },
	}
	a.servers = append(a.servers, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("control api stopped", "err", err)
		}
	}()
}

func (a *apiServer) close() error {
	var errs []error
	for _, s := range a.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := s.Shutdown(ctx); err != nil {
			errs = append(errs, s.Close())
		}
		cancel()
	}
	_ = os.Remove(a.socket)
	return errors.Join(errs...)
}

func loadOrCreateToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write control token: %w", err)
	}
	return tok, nil
}

func requireToken(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			writeErr(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token (see control.token in the data dir)"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (n *Node) apiMux() *http.ServeMux {
	mux := http.NewServeMux()
	v := "/" + control.Version
	mux.HandleFunc("GET "+v+"/status", n.handleStatus)
	mux.HandleFunc("GET "+v+"/id", n.handleID)
	mux.HandleFunc("GET "+v+"/contacts", n.handleContacts)
	mux.HandleFunc("POST "+v+"/contacts", n.handleAddContact)
	mux.HandleFunc("DELETE "+v+"/contacts/{ref}", n.handleRemoveContact)
	mux.HandleFunc("POST "+v+"/contacts/{ref}/ping", n.handlePing)
	mux.HandleFunc("POST "+v+"/contacts/{ref}/accept", n.handleAccept)
	mux.HandleFunc("POST "+v+"/contacts/{ref}/reject", n.handleReject)
	mux.HandleFunc("POST "+v+"/contacts/{ref}/block", n.handleBlock)
	mux.HandleFunc("POST "+v+"/presence", n.handlePresence)
	mux.HandleFunc("POST "+v+"/activity", n.handleActivity)
	mux.HandleFunc("POST "+v+"/contacts/{ref}/messages", n.handleSend)
	mux.HandleFunc("GET "+v+"/contacts/{ref}/messages", n.handleHistory)
	mux.HandleFunc("POST "+v+"/contacts/{ref}/read", n.handleRead)
	mux.HandleFunc("POST "+v+"/contacts/{ref}/typing", n.handleTyping)
	mux.HandleFunc("POST "+v+"/contacts/{ref}/receipts", n.handleReceipts)
	mux.HandleFunc("GET "+v+"/search", n.handleSearch)
	mux.HandleFunc("GET "+v+"/events", n.handleEvents)
	n.namesRoutes(mux, v)
	n.profileRoutes(mux, v)
	n.mailboxRoutes(mux, v)
	n.fileRoutes(mux, v)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotFound, fmt.Errorf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeBody decodes a JSON request body. Invalid UTF-8 is refused rather
// than silently replaced (which is what encoding/json would do to it).
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeBodyMax(w, r, v, maxRequestBody)
}

// decodeBodyMax is decodeBody for a body of up to limit bytes.
func decodeBodyMax(w http.ResponseWriter, r *http.Request, v any, limit int) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	switch {
	case err != nil:
		writeErr(w, http.StatusBadRequest, fmt.Errorf("read request body: %w", err))
		return false
	case len(b) > limit:
		writeErr(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", limit))
		return false
	case !utf8.Valid(b):
		writeErr(w, http.StatusBadRequest, fmt.Errorf("request body: %w", chat.ErrNotUTF8))
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("bad request body: %w", err))
		return false
	}
	return true
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, control.Error{Error: err.Error()})
}

// Status returns what `natter status` shows.
func (n *Node) Status(ctx context.Context) (control.Status, error) {
	name, err := n.store.Setting(ctx, store.SettingName)
	if err != nil {
		return control.Status{}, err
	}
	found, mapped := n.natStatus()
	st := control.Status{
		PeerID:        n.host.ID().String(),
		Name:          name,
		Version:       Version,
		Reachability:  reachabilityString(network.Reachability(n.reachability.Load())),
		NATMapping:    control.NATMapping{Enabled: n.cfg.NATPortMap, Found: found, Mapped: strs(mapped)},
		ListenAddrs:   strs(n.host.Network().ListenAddresses()),
		ObservedAddrs: n.observedAddrs(),
		Rendezvous:    n.rendezvousStatus(),
		StartedAt:     n.startedAt,
	}
	st.Presence, st.AutoAway = n.social.Self()
	if prof, err := n.store.OwnProfile(ctx); err == nil {
		st.StatusMessage = prof.Status
	}
	if st.NATMapping.Mapped == nil {
		st.NATMapping.Mapped = []string{}
	}
	if st.ObservedAddrs == nil {
		st.ObservedAddrs = []string{}
	}
	if st.Contacts, err = n.contactStatus(ctx); err != nil {
		return control.Status{}, err
	}
	return st, nil
}

func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request) {
	st, err := n.Status(r.Context())
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// Invite is the invite string for this node: peer ID, rendezvous servers
// and name.
func (n *Node) Invite(ctx context.Context) (string, error) {
	name, err := n.store.Setting(ctx, store.SettingName)
	if err != nil {
		return "", err
	}
	rdvs, _ := n.cfg.RendezvousInfos()
	if len(rdvs) > invite.MaxRendezvous {
		rdvs = rdvs[:invite.MaxRendezvous]
	}
	if len(name) > invite.MaxNameLen {
		name = name[:invite.MaxNameLen]
	}
	return invite.Invite{Peer: n.host.ID(), Rendezvous: rdvs, Name: name}.String(), nil
}

func (n *Node) handleID(w http.ResponseWriter, r *http.Request) {
	inv, err := n.Invite(r.Context())
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, control.Identity{PeerID: n.host.ID().String(), Invite: inv})
}

func toAPIContact(c store.Contact) control.Contact {
	return control.Contact{PeerID: c.PeerID.String(), Name: c.Name, State: string(c.State), Rendezvous: strs(c.Rendezvous), AddedAt: c.CreatedAt, ReadReceipts: c.ReadReceipts, Note: c.Note, DirName: c.DirName}
}

func (n *Node) handleContacts(w http.ResponseWriter, r *http.Request) {
	cs, err := n.store.Contacts(r.Context())
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	warnings := n.social.NameWarnings(r.Context())
	out := make([]control.Contact, 0, len(cs))
	for _, c := range cs {
		ac := toAPIContact(c)
		ac.Warning = warnings[c.PeerID]
		out = append(out, ac)
	}
	writeJSON(w, http.StatusOK, out)
}

func (n *Node) handleAddContact(w http.ResponseWriter, r *http.Request) {
	var req control.AddContactRequest
	if !decodeBody(w, r, &req) {
		return
	}
	c, err := n.social.AddContact(r.Context(), req)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusCreated, toAPIContact(c))
}

func (n *Node) handleRemoveContact(w http.ResponseWriter, r *http.Request) {
	c, err := n.social.RemoveContact(r.Context(), r.PathValue("ref"))
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, toAPIContact(c))
}

// Ping measures the round trip to a contact over the current path.
func (n *Node) Ping(ctx context.Context, ref string) (control.PingResult, error) {
	c, err := n.findContactRef(ctx, ref)
	if err != nil {
		return control.PingResult{}, err
	}
	res := control.PingResult{PeerID: c.PeerID.String(), Path: control.PathNone}
	if path, _ := n.pathTo(c.PeerID); path == control.PathNone {
		return res, core.Unavailable(fmt.Errorf("%s is not connected (see: natter status)", c.Label()))
	}
	rtt, conn, err := n.pingPeer(ctx, c.PeerID)
	if err != nil {
		return res, core.Unavailable(fmt.Errorf("ping %s: %w", c.Label(), err))
	}
	res.RTTMillis = millis(rtt)
	res.RemoteAddr = conn.RemoteMultiaddr().String()
	res.Path = control.PathDirect
	if isCircuit(conn.RemoteMultiaddr()) || conn.Stat().Limited {
		res.Path = control.PathRelayed
	}
	return res, nil
}

func (n *Node) handlePing(w http.ResponseWriter, r *http.Request) {
	res, err := n.Ping(r.Context(), r.PathValue("ref"))
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// handleEvents streams events as JSON lines until the client goes away or
// falls too far behind.
func (n *Node) handleEvents(w http.ResponseWriter, r *http.Request) {
	sub, cancel := n.events.Subscribe()
	defer cancel()
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	if err := enc.Encode(control.Event{Type: control.EventHello, Time: time.Now(), PeerID: n.host.ID().String()}); err != nil {
		return
	}
	if fl != nil {
		fl.Flush()
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-sub.C():
			if !ok {
				return
			}
			if err := enc.Encode(e); err != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
	}
}

// statusOf maps a domain error to its HTTP status: the one place where
// error kinds become status codes.
func statusOf(err error) int {
	switch {
	case errors.Is(err, core.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, core.ErrNotFound), errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, core.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, core.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, core.ErrUpstream):
		return http.StatusBadGateway
	case errors.Is(err, core.ErrDiskFull):
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}

func strs[T fmt.Stringer](xs []T) []string {
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		out = append(out, x.String())
	}
	return out
}
