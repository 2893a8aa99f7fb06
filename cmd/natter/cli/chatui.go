package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/natterim/natter/cmd/natter/tui"
	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/identity"
)

// Bounds of `natter chat --start`.
const (
	// daemonStartWithin bounds how long the daemon may take to answer on
	// its control socket.
	daemonStartWithin = 30 * time.Second
	// daemonStopWithin bounds its shutdown before it is killed.
	daemonStopWithin = 10 * time.Second
	// daemonLogName is the daemon's log in the data dir.
	daemonLogName = "daemon.log"
)

func newChatCmd(g *globals) *cobra.Command {
	var start bool
	// The daemon's flags, for --start; any flag the daemon gains shows up
	// here too.
	daemon := newDaemonCmd(g)
	cmd := &cobra.Command{
		Use:   "chat [contact] [--start [daemon flags]]",
		Short: "The terminal chat client: contacts, presence and conversations, live",
		Long: `chat opens natter's terminal UI: your contacts on the left (presence,
unread messages, direct or relayed link, friend requests), the conversation on
the right, an input line at the bottom. With a contact it opens straight into
that conversation. Enter sends; /help lists the keys and the slash commands
(/nudge, /file, /accept, /search, /status, /add). Ctrl+C quits.

It talks to the running daemon of --data-dir. With --start and no daemon
running, it starts one for the session (natter daemon with the same data dir
and the daemon flags given here, logging to <data-dir>/daemon.log) and stops
it when you quit.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			client := g.client()
			if err := pingDaemon(ctx, client); err != nil {
				if !errors.Is(err, control.ErrNoDaemon) || !start {
					return g.chatDaemonErr(err)
				}
				stop, err := startDaemon(ctx, g, cmd.Flags(), daemon.Flags(), client)
				if err != nil {
					return err
				}
				defer func() {
					if err := stop(); err != nil {
						fmt.Fprintf(g.stderr, "natter: %s\n", oneLine(err))
					}
				}()
			}
			open := ""
			if len(args) == 1 {
				p, err := resolveContact(ctx, client, args[0])
				if err != nil {
					return g.apiErr(err)
				}
				open = p
			}
			in, inOK := cmd.InOrStdin().(*os.File)
			out, outOK := g.stdout.(*os.File)
			if !inOK || !outOK || !term.IsTerminal(int(in.Fd())) || !term.IsTerminal(int(out.Fd())) {
				return errors.New("natter chat needs a terminal (scripts: natter send, natter history --json, or the control API)")
			}
			return tui.Run(ctx, tui.ClientAPI{Client: client}, in, out, tui.Options{Open: open})
		},
	}
	cmd.Flags().BoolVar(&start, "start", false, "start a daemon for this session if none is running (stopped on exit)")
	daemon.Flags().VisitAll(func(f *pflag.Flag) {
		if cmd.Flags().Lookup(f.Name) == nil && cmd.PersistentFlags().Lookup(f.Name) == nil {
			f.Usage = "with --start: " + f.Usage
			cmd.Flags().AddFlag(f)
		}
	})
	return cmd
}

// chatDaemonErr is apiErr with the --start hint.
func (g *globals) chatDaemonErr(err error) error {
	if errors.Is(err, control.ErrNoDaemon) {
		if _, serr := os.Stat(g.dataDir); serr == nil {
			return fmt.Errorf("no natter daemon is running on data dir %s (start it with: natter daemon --data-dir %s --rendezvous MADDR, or run natter chat --start to start one for this session)", g.dataDir, g.dataDir)
		}
	}
	return g.apiErr(err)
}

func pingDaemon(ctx context.Context, c *control.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := c.Status(ctx)
	return err
}

// resolveContact finds a contact by peer ID or name (names are
// case-insensitive, as everywhere in natter) and returns its peer ID.
func resolveContact(ctx context.Context, c *control.Client, ref string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	cs, err := c.Contacts(ctx)
	if err != nil {
		return "", err
	}
	for _, ct := range cs {
		if ct.PeerID == ref || (ct.Name != "" && strings.EqualFold(ct.Name, ref)) {
			return ct.PeerID, nil
		}
	}
	return "", fmt.Errorf("no contact %q (see: natter contacts list; add one with: natter contacts add)", ref)
}

// startDaemon runs `natter daemon` on the data dir with the daemon flags
// given to chat, waits until it answers, and returns how to stop it. An
// encrypted key is unlocked here, at the terminal, and its passphrase
// handed to the daemon through a pipe (never the command line).
func startDaemon(ctx context.Context, g *globals, chatFlags, daemonFlags *pflag.FlagSet, client *control.Client) (func() error, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	if fi, err := os.Stat(g.dataDir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("data dir %s does not exist; create it with: natter init --data-dir %s --name NAME", g.dataDir, g.dataDir)
	}
	args := []string{"daemon", "--data-dir", g.dataDir}
	chatFlags.Visit(func(f *pflag.Flag) {
		if daemonFlags.Lookup(f.Name) == nil {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				args = append(args, "--"+f.Name+"="+v)
			}
			return
		}
		args = append(args, "--"+f.Name+"="+f.Value.String())
	})
	d := exec.Command(exe, args...)
	setDaemonProcAttr(d)

	passFile, _ := chatFlags.GetString("passphrase-file")
	enc, err := identity.Encrypted(g.dataDir)
	if err != nil {
		return nil, keyErr(g.dataDir, err)
	}
	if enc && passFile == "" && os.Getenv("NATTER_PASSPHRASE") == "" {
		_, pass, err := unlockKey(g.dataDir, "", g.stderr)
		if err != nil {
			return nil, err
		}
		r, w, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("start daemon: %w", err)
		}
		_, werr := w.Write(append(pass, '\n'))
		w.Close()
		clear(pass)
		if werr != nil {
			r.Close()
			return nil, fmt.Errorf("start daemon: %w", werr)
		}
		defer r.Close()
		d.ExtraFiles = []*os.File{r}
		d.Args = append(d.Args, "--passphrase-file=/dev/fd/3")
	}

	logPath := filepath.Join(g.dataDir, daemonLogName)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("daemon log: %w", err)
	}
	defer logf.Close() // the child has its own copy
	d.Stdout, d.Stderr = logf, logf
	if err := d.Start(); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- d.Wait() }()
	stop := func() error {
		_ = d.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(daemonStopWithin)
		defer t.Stop()
		select {
		case err := <-exited:
			if err != nil {
				return fmt.Errorf("the daemon started for this chat stopped with %v (log: %s)", err, logPath)
			}
			return nil
		case <-t.C:
			_ = d.Process.Kill()
			<-exited
			return fmt.Errorf("the daemon started for this chat did not stop within %s; killed it (log: %s)", daemonStopWithin, logPath)
		}
	}
	fmt.Fprintf(g.stderr, "starting natter daemon on %s (log: %s)\n", g.dataDir, logPath)
	deadline := time.NewTimer(daemonStartWithin)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("the daemon exited at start (%v): %s (log: %s)", err, lastLine(logPath), logPath)
		case <-ctx.Done():
			_ = stop()
			return nil, ctx.Err()
		case <-deadline.C:
			_ = stop()
			return nil, fmt.Errorf("the daemon did not answer within %s (log: %s)", daemonStartWithin, logPath)
		case <-tick.C:
			if pingDaemon(ctx, client) == nil {
				return stop, nil
			}
		}
	}
}

// lastLine is the last non-empty line of a log file (read from its last
// 4 KiB: the log grows over sessions).
func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "no log"
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 4096 {
		_, _ = f.Seek(-4096, io.SeekEnd)
	}
	b, _ := io.ReadAll(io.LimitReader(f, 4096))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
