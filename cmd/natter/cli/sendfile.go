package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/protocols/file"
)

func newSendFileCmd(g *globals) *cobra.Command {
	var (
		as, note string
		wait     bool
	)
	cmd := &cobra.Command{
		Use:   "send-file <contact> <path> [--as NAME] [--note TEXT] [--wait]",
		Short: "Offer a file to a contact; prints the transfer's id",
		Long: `send-file offers a file to a contact. The offer shows in both histories;
the contact's node accepts small files by itself (files.auto_accept_max) and
asks its user about larger ones (natter files accept). The data then moves
directly between the two computers, verified chunk by chunk, and resumes by
itself after a broken link or a restart. Through the rendezvous relay only
files up to files.relay_max move; larger ones wait for a direct link.

The file is read when the contact fetches it: leave it in place and
unchanged until the transfer is done (if it changes, the transfer fails).

With --wait it follows the transfer until it is done (a progress bar on a
terminal, one line per change otherwise) and exits 1 if it fails, is
rejected or cancelled. Ctrl-C stops waiting, not the transfer.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := checkSendPath(args[1])
			if err != nil {
				return err
			}
			if as != "" {
				if err := file.CheckSendName(as); err != nil {
					return usageError{fmt.Errorf("send-file: --as: %w", err)}
				}
			}
			var events <-chan control.Event
			if wait {
				ctx, cancel := context.WithCancel(cmd.Context())
				defer cancel()
				if events, err = subscribeEvents(ctx, g.client()); err != nil {
					return g.apiErr(err)
				}
			}
			// Hashing a big file takes a while: no fixed timeout, Ctrl-C
			// ends it.
			t, err := g.client().SendFile(cmd.Context(), args[0], control.SendFileRequest{Path: path, Name: as, Note: note})
			if err != nil {
				return g.apiErr(err)
			}
			if !wait {
				fmt.Fprintln(g.stdout, t.ID)
				return nil
			}
			return followTransfer(cmd.Context(), g, t, events)
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "offer the file under this name")
	cmd.Flags().StringVar(&note, "note", "", "a note shown with the offer")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the transfer until it is done")
	return cmd
}

// checkSendPath makes path absolute and checks, before bothering the
// daemon, that it is a regular file we can read.
func checkSendPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("there is no file %s", p)
	case errors.Is(err, fs.ErrPermission):
		return "", fmt.Errorf("cannot read %s: permission denied", p)
	case err != nil:
		return "", err
	case fi.IsDir():
		return "", fmt.Errorf("%s is a directory; send-file sends one file (make an archive of the directory first)", p)
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("%s is not a regular file", p)
	}
	f, err := os.Open(abs)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return "", fmt.Errorf("cannot read %s: permission denied", p)
		}
		return "", err
	}
	f.Close()
	return abs, nil
}

// subscribeEvents streams the daemon's events until ctx ends.
func subscribeEvents(ctx context.Context, c *control.Client) (<-chan control.Event, error) {
	body, err := c.Stream(ctx, "/events")
	if err != nil {
		return nil, err
	}
	ch := make(chan control.Event, 64)
	go func() {
		defer close(ch)
		defer body.Close()
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var e control.Event
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue
			}
			select {
			case ch <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// followTransfer shows a transfer's progress until it is over.
func followTransfer(ctx context.Context, g *globals, t control.Transfer, events <-chan control.Event) error {
	p := newProgress(g.stdout)
	start := time.Now()
	startBytes := t.BytesDone
	p.show(t)
	poll := time.NewTicker(5 * time.Second) // in case the event stream drops
	defer poll.Stop()
	for {
		if control.TransferFinal(t.State) {
			p.done()
			return transferResult(g, t, time.Since(start), startBytes)
		}
		select {
		case <-ctx.Done():
			p.done()
			fmt.Fprintf(g.stderr, "stopped waiting; the transfer goes on (see: natter files)\n")
			return nil
		case e, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if e.Type == control.EventFile && e.Transfer != nil && e.Transfer.ID == t.ID {
				if e.Transfer.State == control.TransferTransferring && t.State != control.TransferTransferring {
					start, startBytes = time.Now(), e.Transfer.BytesDone
				}
				t = *e.Transfer
				p.show(t)
			}
		case <-poll.C:
			pctx, cancel := context.WithTimeout(ctx, apiTimeout)
			nt, err := g.client().File(pctx, t.ID)
			cancel()
			if err == nil {
				t = nt
				p.show(t)
			}
		}
	}
}

func transferResult(g *globals, t control.Transfer, took time.Duration, startBytes int64) error {
	if t.State != control.TransferDone {
		fmt.Fprintf(g.stdout, "%s %s\n", t.ID, t.State)
		return fmt.Errorf("transfer %s: %s", t.State, orDash(t.Reason))
	}
	rate := ""
	if moved := t.Size - startBytes; moved > 0 && took > 0 {
		rate = ", " + fmtRate(float64(moved)/took.Seconds())
	}
	fmt.Fprintf(g.stdout, "%s done: %s in %s%s (%s)\n", t.ID, file.FormatSize(t.Size), took.Round(100*time.Millisecond), rate, orDash(t.Path))
	return nil
}

// progress renders a transfer: a bar redrawn in place on a terminal,
// plain lines otherwise (one per state change, at most one progress line
// every 2 s).
type progress struct {
	w        io.Writer
	tty      bool
	width    int
	last     string
	lastLine time.Time
	drawn    bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, width: 80}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 20 {
			p.width = cols
		}
	}
	return p
}

func (p *progress) show(t control.Transfer) {
	if p.tty {
		line := barLine(t, p.width)
		fmt.Fprintf(p.w, "\r%s", line)
		p.drawn = true
		return
	}
	changed := t.State != p.last
	if !changed && (t.State != control.TransferTransferring || time.Since(p.lastLine) < 2*time.Second) {
		return
	}
	p.last, p.lastLine = t.State, time.Now()
	fmt.Fprintln(p.w, plainLine(t))
}

func (p *progress) done() {
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
}

// barLine is "[=====>    ]  45%  115.2 MiB/256 MiB  31.4 MiB/s  ETA 0:04  direct".
func barLine(t control.Transfer, width int) string {
	info := fmt.Sprintf(" %3d%%  %s/%s", percent(t), file.FormatSize(t.BytesDone), file.FormatSize(t.Size))
	switch t.State {
	case control.TransferTransferring:
		info += "  " + fmtRate(t.Rate)
		if t.Rate > 0 {
			info += "  ETA " + fmtETA(time.Duration(float64(t.Size-t.BytesDone)/t.Rate*float64(time.Second)))
		}
		if t.Path != "" {
			info += "  " + t.Path
		}
	default:
		info += "  " + t.State
		if t.Reason != "" {
			info += ": " + t.Reason
		}
	}
	// The bar keeps one width (10 to 40 columns) and leaves room for the
	// numbers of a transfer in progress; a long reason is cut.
	barW := min(max(width-1-2-54, 10), 40)
	if room := width - 1 - barW - 2; room > 10 {
		info = truncRunes(info, room)
	}
	fill := barW * percent(t) / 100
	bar := strings.Repeat("=", fill)
	if fill < barW {
		bar += ">" + strings.Repeat(" ", barW-fill-1)
	}
	line := "[" + bar + "]" + info
	if pad := width - 1 - len([]rune(line)); pad > 0 {
		line += strings.Repeat(" ", pad) // clear what a longer line left
	}
	return line
}

func plainLine(t control.Transfer) string {
	s := fmt.Sprintf("%s %s %s/%s", t.ID, t.State, file.FormatSize(t.BytesDone), file.FormatSize(t.Size))
	if t.State == control.TransferTransferring {
		s += " " + fmtRate(t.Rate)
		if t.Path != "" {
			s += " " + t.Path
		}
	}
	if t.Reason != "" {
		s += " (" + t.Reason + ")"
	}
	return s
}

func percent(t control.Transfer) int {
	if t.Size <= 0 {
		if t.State == control.TransferDone {
			return 100
		}
		return 0
	}
	return int(min(t.BytesDone*100/t.Size, 100))
}

func fmtRate(bps float64) string {
	if bps <= 0 {
		return "-"
	}
	return file.FormatSize(int64(bps)) + "/s"
}

func fmtETA(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

// truncRunes cuts s to at most n characters.
func truncRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}
