package files

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/file"
	"github.com/natterim/natter/protocols/wire"
)

// Defaults of Config's tuning fields.
const (
	// DefaultCheckpointBytes: a checkpoint at least every this many
	// verified bytes.
	DefaultCheckpointBytes = 64 << 20
	// DefaultCheckpointInterval: a checkpoint at least this often while
	// data moves.
	DefaultCheckpointInterval = 2 * time.Second
	// DefaultProgressInterval: at most one progress event per transfer
	// this often.
	DefaultProgressInterval = 500 * time.Millisecond
	// DefaultDiskRetry is how long a transfer paused for a full disk
	// waits before it checks again.
	DefaultDiskRetry = 30 * time.Second
)

const (
	// maxActiveDownloads is how many incoming transfers move data at
	// once; the others wait for a slot.
	maxActiveDownloads = 4
	// maxBadTries is how often a chunk may fail verification (or the
	// sender end the data early) without progress before the transfer
	// fails.
	maxBadTries = 3
	// diskMargin is left free on the disk beyond what a transfer needs.
	diskMargin = 16 << 20
)

// Config is what files reads of the node's configuration.
type Config struct {
	// DataDir holds partial/, the partial files of incoming transfers.
	DataDir string
	// DownloadDir is where received files are saved ("" =
	// <DataDir>/downloads).
	DownloadDir string
	// AutoAcceptMax: offers from accepted contacts up to this many bytes
	// are accepted without asking.
	AutoAcceptMax int64
	// RelayMax is the largest file sent or fetched over a relayed
	// connection (0: none).
	RelayMax int64
	// StallTimeout pauses a transfer that moved no data for this long (0:
	// file.DefaultStallTimeout).
	StallTimeout time.Duration
	// CheckpointBytes and CheckpointInterval bound how much verified data
	// may be lost to a crash (0: the defaults).
	CheckpointBytes    int64
	CheckpointInterval time.Duration
	// ProgressInterval is the period of progress events (0: the default).
	ProgressInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.StallTimeout <= 0 {
		c.StallTimeout = file.DefaultStallTimeout
	}
	if c.CheckpointBytes <= 0 {
		c.CheckpointBytes = DefaultCheckpointBytes
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
}

// Option configures a Manager beyond its Config.
type Option func(*options)

type options struct {
	log     *slog.Logger
	metrics *wire.Metrics
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithMetrics counts failed file streams (default: none).
func WithMetrics(m *wire.Metrics) Option { return func(o *options) { o.metrics = m } }

var (
	errFileChanged = errors.New("the file changed after it was offered")
	errNoChange    = errors.New("no change")
)

// Manager is the node's file-transfer machinery: the domain methods the
// control API calls, the kinds it plugs into chat, the runners of incoming
// transfers and the file service that serves outgoing ones.
type Manager struct {
	cfg         Config
	h           host.Host
	store       Store
	links       Links
	chat        Chat
	policy      Policy
	events      core.Publisher
	log         *slog.Logger
	metrics     *wire.Metrics
	svc         *file.Service
	partialDir  string
	downloadDir string
	slots       chan struct{}
	// diskRetry is how long (ns) a transfer paused for a full disk waits
	// before checking again; tests shorten it.
	diskRetry atomic.Int64
	// afterChunk, if set (tests), runs after each verified chunk.
	afterChunk atomic.Pointer[func(ctx context.Context, end int64)]

	// life owns the goroutines the Manager started (runners, the progress
	// loop): life.Context ends when Close starts, and Close waits for them.
	life      *wire.Tracker
	closeOnce sync.Once
	closeErr  error

	mu     sync.Mutex // guards the following fields
	closed bool
	runs   map[chat.MsgID]*fileRun
	lives  map[chat.MsgID]*liveXfer
	aborts map[chat.MsgID]*atomic.Bool
}

// fileRun is the runner of one incoming transfer.
type fileRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	kick   chan struct{}
}

// liveXfer is a transfer whose data is moving now.
type liveXfer struct {
	bytes atomic.Int64

	mu        sync.Mutex // guards the following fields
	t         store.Transfer
	path      core.Path // PathNone until the data stream is open
	rate      float64
	lastBytes int64 // at the last tick of progressLoop, which published it
	lastAt    time.Time
}

// New starts file transfer: it makes the partial and downloads folders,
// serves our offered files on h, and picks up where the last run stopped
// (transfers that were moving are paused, incoming ones get their runner
// back). ctx bounds the start only. The caller must Close the Manager.
func New(ctx context.Context, cfg Config, h host.Host, st Store, links Links, ch Chat, policy Policy, events core.Publisher,
	opts ...Option) (*Manager, error) {
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	cfg.setDefaults()
	m := &Manager{
		cfg: cfg, h: h, store: st, links: links, chat: ch, policy: policy, events: events, log: o.log, metrics: o.metrics,
		partialDir:  filepath.Join(cfg.DataDir, "partial"),
		downloadDir: cfg.DownloadDir,
		slots:       make(chan struct{}, maxActiveDownloads),
		life:        wire.NewTracker(),
		runs:        map[chat.MsgID]*fileRun{},
		lives:       map[chat.MsgID]*liveXfer{},
		aborts:      map[chat.MsgID]*atomic.Bool{},
	}
	m.diskRetry.Store(int64(DefaultDiskRetry))
	if m.downloadDir == "" {
		m.downloadDir = filepath.Join(cfg.DataDir, "downloads")
	}
	for _, d := range []string{m.partialDir, m.downloadDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			m.life.Close()
			return nil, fmt.Errorf("files: %w", err)
		}
	}
	var err error
	if m.downloadDir, err = filepath.Abs(m.downloadDir); err != nil {
		m.life.Close()
		return nil, fmt.Errorf("files: %w", err)
	}
	m.svc = file.New(h, m, file.WithLogger(m.log), file.WithMetrics(m.metrics),
		file.WithRelayMax(cfg.RelayMax), file.WithStallTimeout(cfg.StallTimeout))
	if err := m.start(ctx); err != nil {
		_ = m.Close()
		return nil, fmt.Errorf("files: resume transfers: %w", err)
	}
	return m, nil
}

// Close stops the runners and the progress loop and waits for them, then
// stops serving files. It is safe to call more than once.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		m.life.Close()
		m.closeErr = m.svc.Close()
	})
	return m.closeErr
}

// SetDiskRetry sets how long a transfer paused for a full disk waits
// before it checks again (tests shorten it).
func (m *Manager) SetDiskRetry(d time.Duration) { m.diskRetry.Store(int64(d)) }

// SetAfterChunk sets a function run after each verified chunk of a
// download, with the download's context and the end of the verified data
// (tests use it to stop a download at a given point); nil removes it.
func (m *Manager) SetAfterChunk(f func(ctx context.Context, end int64)) {
	if f == nil {
		m.afterChunk.Store(nil)
		return
	}
	m.afterChunk.Store(&f)
}

// spawn runs f as a goroutine the Manager owns, with its lifetime
// context; false once Close has started.
func (m *Manager) spawn(f func(ctx context.Context)) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.spawnLocked(f)
}

// spawnLocked is spawn with m.mu held.
func (m *Manager) spawnLocked(f func(ctx context.Context)) bool {
	if m.closed {
		return false
	}
	return m.life.Go(f)
}

// start picks up where the last run stopped: transfers that were moving
// are paused, incoming ones get their runner back.
func (m *Manager) start(ctx context.Context) error {
	ts, err := m.store.ActiveTransfers(ctx)
	if err != nil {
		return err
	}
	m.removeLeftovers(ts)
	for _, t := range ts {
		if t.State == store.TransferTransferring {
			t, _, err = m.store.UpdateTransfer(ctx, t.ID, func(t *store.Transfer) (*store.NewOutgoing, error) {
				t.State, t.Reason = store.TransferPaused, "interrupted by a restart"
				return nil, nil
			})
			if err != nil {
				return err
			}
		}
		if !t.Outgoing && t.State != store.TransferOffered {
			m.startRun(t.ID)
		}
	}
	m.spawn(m.progressLoop)
	return nil
}

// removeLeftovers deletes partial files of transfers that are over (a
// crash or a shutdown came between the end and the deletion) and copies a
// crash left in the downloads folder.
func (m *Manager) removeLeftovers(active []store.Transfer) {
	keep := map[string]bool{}
	for _, t := range active {
		if !t.Outgoing {
			keep[filepath.Base(m.partialPath(t.ID))] = true
		}
	}
	if es, err := os.ReadDir(m.partialDir); err == nil {
		for _, e := range es {
			name := e.Name()
			id, ok := strings.CutSuffix(name, ".part")
			if _, err := chat.ParseID(id); ok && err == nil && !keep[name] && e.Type().IsRegular() {
				_ = os.Remove(filepath.Join(m.partialDir, name))
			}
		}
	}
	if es, err := os.ReadDir(m.downloadDir); err == nil {
		for _, e := range es {
			name := e.Name()
			if strings.HasPrefix(name, ".natter-") && strings.HasSuffix(name, ".tmp") && e.Type().IsRegular() {
				_ = os.Remove(filepath.Join(m.downloadDir, name))
			}
		}
	}
}

func (m *Manager) retryDisk() time.Duration { return time.Duration(m.diskRetry.Load()) }

func (m *Manager) partialPath(id chat.MsgID) string {
	return filepath.Join(m.partialDir, id.String()+".part")
}
