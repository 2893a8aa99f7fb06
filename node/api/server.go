package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// TokenName is the name of the file in the data dir holding the bearer
// token of the loopback TCP API.
const TokenName = "control.token"

// Config says where the API listens.
type Config struct {
	// Socket is the unix socket's path (required). A file there is
	// removed first: the caller holds the data dir lock, so it belongs
	// to a dead daemon.
	Socket string
	// TCPListen, if set, also serves the API on this loopback ip:port,
	// guarded by the token in TokenFile.
	TCPListen string
	// TokenFile holds the TCP API's bearer token; it is created (0600)
	// if missing. Required with TCPListen.
	TokenFile string
}

// Option tunes a Server.
type Option func(*options)

type options struct {
	log               *slog.Logger
	readHeaderTimeout time.Duration
	shutdownTimeout   time.Duration
}

func defaults() options {
	return options{
		log:               slog.New(slog.DiscardHandler),
		readHeaderTimeout: 10 * time.Second,
		shutdownTimeout:   2 * time.Second,
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithShutdownTimeout bounds how long Close waits for requests in flight
// before it cuts their connections (default 2s).
func WithShutdownTimeout(d time.Duration) Option { return func(o *options) { o.shutdownTimeout = d } }

// Server serves the control API on the unix socket and, optionally, a
// loopback TCP port.
type Server struct {
	cfg Config
	svc Services
	opt options

	// ctx is the lifetime of the server and the base context of every
	// request: Close cancels it, which ends event streams and the domain
	// calls still in flight.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// servers and tcpAddr are set up by New, before the Server is
	// shared.
	servers []*http.Server
	tcpAddr string

	closeOnce sync.Once
	closeErr  error
}

// New listens on cfg.Socket (mode 0600 from the start) and, if set,
// cfg.TCPListen, and serves the API there until Close.
func New(cfg Config, svc Services, opts ...Option) (*Server, error) {
	o := defaults()
	for _, opt := range opts {
		opt(&o)
	}
	if err := svc.check(); err != nil {
		return nil, err
	}
	if cfg.Socket == "" {
		return nil, errors.New("control socket: no path")
	}
	if cfg.TCPListen != "" {
		if err := checkLoopback(cfg.TCPListen); err != nil {
			return nil, err
		}
		if cfg.TokenFile == "" {
			return nil, errors.New("control.tcp_listen: no token file")
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, svc: svc, opt: o, ctx: ctx, cancel: cancel}
	if err := s.listen(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// listen opens the listeners and starts serving on them.
func (s *Server) listen() error {
	if err := os.Remove(s.cfg.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale control socket: %w", err)
	}
	// The umask makes the socket 0600 from the start: no window in which
	// another user could connect.
	old := umask(0o177)
	ln, err := net.Listen("unix", s.cfg.Socket)
	umask(old)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", s.cfg.Socket, err)
	}
	if err := os.Chmod(s.cfg.Socket, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	mux := s.routes()
	s.serve(ln, mux)
	if s.cfg.TCPListen == "" {
		return nil
	}
	token, err := loadOrCreateToken(s.cfg.TokenFile)
	if err != nil {
		return err
	}
	tln, err := net.Listen("tcp", s.cfg.TCPListen)
	if err != nil {
		return fmt.Errorf("control.tcp_listen %s: %w", s.cfg.TCPListen, err)
	}
	s.tcpAddr = tln.Addr().String()
	s.serve(tln, requireToken(token, mux))
	return nil
}

// TCPAddr is the address the TCP API listens on ("" without one): the
// port chosen when Config.TCPListen asked for port 0.
func (s *Server) TCPAddr() string { return s.tcpAddr }

func (s *Server) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.opt.readHeaderTimeout,
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
	}
	s.servers = append(s.servers, srv)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.opt.log.Error("control api stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
}

// Close cancels the requests in flight, stops the listeners (waiting up
// to the shutdown timeout for answers being written), removes the socket
// file and waits for the serving goroutines. It is safe to call more than
// once; every call returns the first one's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		var errs []error
		for _, srv := range s.servers {
			ctx, cancel := context.WithTimeout(context.Background(), s.opt.shutdownTimeout)
			if err := srv.Shutdown(ctx); err != nil {
				errs = append(errs, srv.Close())
			}
			cancel()
		}
		_ = os.Remove(s.cfg.Socket)
		s.wg.Wait()
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// checkLoopback refuses a TCP address that is not loopback ip:port: the
// control API never listens on the network. (node.Config.Validate says
// the same earlier; this keeps the server safe on its own.)
func checkLoopback(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("control.tcp_listen: %q is not ip:port: %w", addr, err)
	}
	if !ap.Addr().IsLoopback() {
		return fmt.Errorf("control.tcp_listen: %s is not a loopback address; the control API never listens on the network", ap.Addr())
	}
	return nil
}

// loadOrCreateToken reads the bearer token from path, or writes a new
// random one there (0600) if there is none of at least 32 characters.
func loadOrCreateToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("control token: %w", err)
	}
	tok := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write control token: %w", err)
	}
	return tok, nil
}

// requireToken lets through only requests that carry the bearer token.
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

// check refuses Services with a missing feature.
func (f Services) check() error {
	for name, v := range map[string]any{
		"Node": f.Node, "Contacts": f.Contacts, "Presence": f.Presence, "Chat": f.Chat, "Files": f.Files,
		"Profiles": f.Profiles, "Names": f.Names, "Mailbox": f.Mailbox, "Events": f.Events,
	} {
		if v == nil {
			return fmt.Errorf("control api: no %s service", name)
		}
	}
	return nil
}
