//go:build linux

package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/natterim/natter/internal/lab"
	"github.com/natterim/natter/node/control"
)

// screenWithin bounds how long the terminal UI may take to show
// something (the race build on a busy machine is slow to start).
const screenWithin = 30 * time.Second

// tuiProc is `natter chat` running in a pseudo-terminal inside a lab host.
type tuiProc struct {
	t    testing.TB
	cmd  *exec.Cmd
	ptmx *os.File // our end
	tty  *os.File // the program's terminal, kept open to read its modes
	mu   sync.Mutex
	out  []byte
	done chan error
}

// startTUI runs natter with args for n in its namespace, on a new 80x24
// terminal.
func startTUI(t testing.TB, n *nodeProc, args ...string) *tuiProc {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 80}); err != nil {
		t.Fatalf("pty size: %v", err)
	}
	args = append(append([]string{"netns", "exec", n.host.Netns(), bin.natter}, args...), "--data-dir", n.dataDir)
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), "TERM=xterm-256color", "COLORTERM=")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true, Setctty: true, Pdeathsig: unix.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start natter chat: %v", err)
	}
	p := &tuiProc{t: t, cmd: cmd, ptmx: ptmx, tty: tty, done: make(chan error, 1)}
	go func() {
		buf := make([]byte, 32<<10)
		for {
			k, err := ptmx.Read(buf)
			p.mu.Lock()
			p.out = append(p.out, buf[:k]...)
			p.mu.Unlock()
			if err != nil {
				return // EIO once the terminal is closed
			}
		}
	}()
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
			}
		}
		ptmx.Close()
		tty.Close()
		if t.Failed() {
			t.Logf("natter chat screen output (escapes stripped):\n%s", ansi.Strip(string(p.output())))
		}
	})
	return p
}

func (p *tuiProc) output() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]byte(nil), p.out...)
}

// mark is a position in the output, to look only at what came after it.
func (p *tuiProc) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.out)
}

// waitScreen waits until the output after from, escapes stripped, shows s.
func (p *tuiProc) waitScreen(from int, s string) {
	p.t.Helper()
	waitFor(p.t, screenWithin, "the terminal UI to show "+s, func() bool {
		return strings.Contains(ansi.Strip(string(p.output()[from:])), s)
	})
}

func (p *tuiProc) keys(s string) {
	p.t.Helper()
	if _, err := p.ptmx.WriteString(s); err != nil {
		p.t.Fatalf("type into the terminal: %v", err)
	}
}

// TestChatTUI runs `natter chat bob` for alice in a pseudo-terminal in the
// NAT lab: what she types arrives at bob; what bob sends with the CLI
// appears on her screen (and is marked read, being on screen); his typing
// and nudge show; a file she offers with /file shows its progress to done
// and reaches bob intact; the UI redraws on resize and leaves the terminal
// as it found it on Ctrl+C.
func TestChatTUI(t *testing.T) {
	t.Parallel()
	alice, bob := pair(t, "bob", lab.Cone, control.PathDirect)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bobEvents := bob.events(ctx, t)

	var before unix.Termios
	tui := startTUI(t, alice, "chat", "bob")
	if tp, err := unix.IoctlGetTermios(int(tui.tty.Fd()), unix.TCGETS); err == nil {
		before = *tp
	} else {
		t.Fatalf("termios: %v", err)
	}
	tui.waitScreen(0, "bob · online · direct")
	tui.waitScreen(0, "no messages yet with bob")

	// Alice types: bob's daemon hears that she is typing, then gets the
	// line.
	tui.keys("hello bob, from the terminal")
	waitEvent(t, bobEvents, "alice typing", func(e control.Event) bool {
		return e.Type == control.EventTyping && e.PeerID == alice.id && e.Typing != nil && *e.Typing
	})
	m := tui.mark()
	tui.keys("\r")
	waitFor(t, deliverWithin, "bob has alice's line", func() bool {
		for _, msg := range bob.history(t, "alice") {
			if msg.Direction == "in" && msg.Text == "hello bob, from the terminal" {
				return true
			}
		}
		return false
	})
	tui.waitScreen(m, "✓✓ delivered")

	// Bob answers with the CLI: it appears on alice's screen, live.
	m = tui.mark()
	if out, err := bob.cli(t, "send", "alice", "hi alice, from the cli"); err != nil {
		t.Fatalf("bob send: %v: %s", err, out)
	}
	tui.waitScreen(m, "hi alice, from the cli")
	// It is on her screen: read, and bob is told.
	waitFor(t, deliverWithin, "bob's message read", func() bool {
		for _, msg := range bob.history(t, "alice") {
			if msg.Text == "hi alice, from the cli" {
				return msg.Status == control.StatusRead
			}
		}
		return false
	})

	// Bob nudges: the bell rings and the nudge shows.
	m = tui.mark()
	if out, err := bob.cli(t, "nudge", "alice"); err != nil {
		t.Fatalf("bob nudge: %v: %s", err, out)
	}
	tui.waitScreen(m, "bob nudged you!")
	if !strings.Contains(string(tui.output()[m:]), "\a") {
		t.Fatal("no terminal bell for the nudge")
	}

	// Alice offers a file from the terminal: her screen follows it to
	// done, and bob has it, intact.
	path, sum := randomFile(t, t.TempDir(), "tui-photo.bin", 300<<10)
	m = tui.mark()
	tui.keys("/file " + path + "\r")
	tui.waitScreen(m, "offered tui-photo.bin (300.0 KiB) to bob")
	tui.waitScreen(m, "⇪ tui-photo.bin (300.0 KiB) — done")
	tui.waitScreen(m, "⇪ tui-photo.bin (300.0 KiB) · done") // the history line
	var got control.Transfer
	waitFor(t, transferWithin, "bob has tui-photo.bin", func() bool {
		for _, tr := range bob.files(t) {
			if tr.Direction == "in" && tr.Name == "tui-photo.bin" && tr.State == control.TransferDone {
				got = tr
				return true
			}
		}
		return false
	})
	if got.SHA256 != sum || got.Size != 300<<10 {
		t.Fatalf("bob's transfer: sha256 %s size %d, want %s %d", got.SHA256, got.Size, sum, 300<<10)
	}
	if s := sha256File(t, got.FinalPath); s != sum {
		t.Fatalf("bob's copy %s has sha256 %s, want %s", got.FinalPath, s, sum)
	}

	// A bigger terminal: everything is drawn again, at the new size.
	m = tui.mark()
	if err := pty.Setsize(tui.ptmx, &pty.Winsize{Rows: 60, Cols: 200}); err != nil {
		t.Fatalf("resize: %v", err)
	}
	tui.waitScreen(m, "hello bob, from the terminal")
	tui.waitScreen(m, "hi alice, from the cli")
	tui.waitScreen(m, "tui-photo.bin")

	// Ctrl+C: a clean exit, and the terminal as it was.
	tui.keys("\x03")
	select {
	case err := <-tui.done:
		if err != nil {
			t.Fatalf("natter chat exited with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("natter chat did not exit on Ctrl+C")
	}
	out := string(tui.output())
	for _, seq := range [][2]string{
		{"\x1b[?1049h", "\x1b[?1049l"}, // alternate screen
		{"\x1b[?25l", "\x1b[?25h"},     // hidden cursor
		{"\x1b[?2004h", "\x1b[?2004l"}, // bracketed paste
	} {
		on, off := strings.LastIndex(out, seq[0]), strings.LastIndex(out, seq[1])
		if on < 0 || off < on {
			t.Fatalf("the terminal is left with %q on (last set at %d, reset at %d)", seq[0], on, off)
		}
	}
	after, err := unix.IoctlGetTermios(int(tui.tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatalf("termios: %v", err)
	}
	if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
		t.Fatalf("terminal modes not restored: lflag %#x -> %#x, iflag %#x -> %#x, oflag %#x -> %#x",
			before.Lflag, after.Lflag, before.Iflag, after.Iflag, before.Oflag, after.Oflag)
	}
}

// TestChatStartsDaemon: `natter chat --start` with no daemon running
// starts one for the session, and stops it on exit.
func TestChatStartsDaemon(t *testing.T) {
	t.Parallel()
	l := lab.New(t)
	r := startRendezvous(t, l.Public("rdv"))
	n := newNode(t, l.Home("alice", lab.Cone), "alice", r, nodeOpts{})
	// The daemon flags the harness would give `natter daemon`, to chat.
	tui := startTUI(t, n, append([]string{"chat", "--start"}, n.args[3:]...)...)
	tui.waitScreen(0, "starting natter daemon")
	tui.waitScreen(0, "alice ● online")
	tui.waitScreen(0, "Contacts (0)")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	st, err := n.api.Status(ctx)
	cancel()
	if err != nil || st.Name != "alice" {
		t.Fatalf("status of the started daemon: %v %+v", err, st)
	}
	waitFor(t, directWithin, "the started daemon registered on the rendezvous", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := n.api.Status(ctx)
		return err == nil && len(st.Rendezvous) == 1 && st.Rendezvous[0].Registered
	})
	tui.keys("\x11") // Ctrl+Q
	select {
	case err := <-tui.done:
		if err != nil {
			t.Fatalf("natter chat exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("natter chat did not exit on Ctrl+Q")
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.api.Status(ctx); !errors.Is(err, control.ErrNoDaemon) {
		t.Fatalf("the daemon started for the chat still answers after it ended: %v", err)
	}
}

// waitEvent waits for an event matching ok.
func waitEvent(t testing.TB, events <-chan control.Event, what string, ok func(control.Event) bool) {
	t.Helper()
	deadline := time.After(deliverWithin)
	for {
		select {
		case e, open := <-events:
			if !open {
				t.Fatalf("event stream ended waiting for %s", what)
			}
			if ok(e) {
				return
			}
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s", deliverWithin, what)
		}
	}
}
