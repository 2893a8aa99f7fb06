package rendezvous

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// maxSocketPath is the longest unix socket path Linux accepts.
const maxSocketPath = 107

// ErrNotRunning means no server answers on the data dir's admin socket.
var ErrNotRunning = errors.New("no natter-rendezvous is running")

// serveAdmin serves the admin API (HTTP+JSON) on <data_dir>/admin.sock,
// mode 0600. The data dir lock is held, so a socket left there is stale.
func (s *Server) serveAdmin() error {
	p := s.adminPath
	if len(p) > maxSocketPath {
		return fmt.Errorf("admin socket path %s is longer than %d bytes; use a shorter --data-dir", p, maxSocketPath)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale admin socket: %w", err)
	}
	ln, err := net.Listen("unix", p)
	if err != nil {
		return fmt.Errorf("admin socket %s: %w", p, err)
	}
	// The data dir is 0700, so nobody else can reach the socket in the
	// moment before the chmod.
	if err := os.Chmod(p, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("admin socket %s: %w", p, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/peers", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, s.Online())
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, s.Status())
	})
	s.mailboxRoutes(mux)
	s.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin api stopped", "err", err)
		}
	}()
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// AdminClient talks to a running server's admin API.
type AdminClient struct {
	sock string
	hc   *http.Client
}

// NewAdminClient returns a client for the server on dataDir.
func NewAdminClient(dataDir string) *AdminClient {
	sock := filepath.Join(dataDir, AdminSocket)
	return &AdminClient{
		sock: sock,
		hc: &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "unix", sock)
				},
			},
		},
	}
}

// Peers returns the server's online list.
func (c *AdminClient) Peers(ctx context.Context) ([]OnlinePeer, error) {
	var out []OnlinePeer
	return out, c.get(ctx, "/v1/peers", &out)
}

// Status returns the server's status.
func (c *AdminClient) Status(ctx context.Context) (Status, error) {
	var out Status
	return out, c.get(ctx, "/v1/status", &out)
}

func (c *AdminClient) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://natter-rendezvous"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("%w (%s)", ErrNotRunning, c.sock)
		}
		return fmt.Errorf("admin api: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("admin api %s: %s: %s", path, resp.Status, b)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return fmt.Errorf("admin api %s: decode: %w", path, err)
	}
	return nil
}
