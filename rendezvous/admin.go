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
	mux.HandleFunc("GET /v1/backup", s.serveBackup)
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

// serveBackup streams a backup (see Backup) as application/x-tar. The
// database is snapshotted first, so a failure there is an error status.
func (s *Server) serveBackup(w http.ResponseWriter, r *http.Request) {
	files, cleanup, err := s.prepareBackup(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer cleanup()
	w.Header().Set("Content-Type", "application/x-tar")
	if err := writeBackup(w, files); err != nil {
		// The client sees a truncated archive and fails reading it.
		s.log.Warn("backup interrupted", "err", err)
		return
	}
	s.log.Info("backup sent")
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

// Backup writes a backup of the running server to w (a tar archive, see
// Server.Backup). It has no time limit of its own: bound it with ctx.
func (c *AdminClient) Backup(ctx context.Context, w io.Writer) error {
	resp, err := c.do(ctx, &http.Client{Transport: c.hc.Transport}, "/v1/backup")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("admin api /v1/backup: %w", err)
	}
	return nil
}

func (c *AdminClient) get(ctx context.Context, path string, out any) error {
	resp, err := c.do(ctx, c.hc, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return fmt.Errorf("admin api %s: decode: %w", path, err)
	}
	return nil
}

// do GETs path; a non-200 answer is an error.
func (c *AdminClient) do(ctx context.Context, hc *http.Client, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://natter-rendezvous"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOTDIR) {
			return nil, fmt.Errorf("%w (%s)", ErrNotRunning, c.sock)
		}
		return nil, fmt.Errorf("admin api: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("admin api %s: %s: %s", path, resp.Status, b)
	}
	return resp, nil
}
