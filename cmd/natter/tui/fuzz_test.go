package tui

import (
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"github.com/natterim/natter/node/control"
)

// FuzzParseCommand: any input line parses to a command or an error, and
// a text is the line itself (less the escaping slash).
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"hello", "/nudge", "//x", "/status busy  out", "/add x y", "/file \"a b\"", "/", "/\t", "/é", "/Status\tAway"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := parseCommand(line)
		if err != nil {
			return
		}
		switch c.kind {
		case cmdText:
			if c.text != line && "/"+c.text != line {
				t.Fatalf("text %q from line %q", c.text, line)
			}
		case cmdStatus:
			switch c.state {
			case control.PresenceOnline, control.PresenceAway, control.PresenceBusy, control.PresenceInvisible:
			default:
				t.Fatalf("state %q from line %q", c.state, line)
			}
		case cmdSearch, cmdAdd, cmdFile:
			if c.text == "" {
				t.Fatalf("empty argument from line %q", line)
			}
		}
	})
}

// FuzzRenderMessage: whatever a peer sends, its message fits the column
// and never reaches the terminal as a control character.
func FuzzRenderMessage(f *testing.F) {
	f.Add("hello", "bob", uint8(80), false, false)
	f.Add("\x1b[2J\x1b]0;pwned\a", "\x1b[31mbob", uint8(40), false, false)
	f.Add("全角文字とemoji 🎉🎉🎉 and a verylongwordwithoutanyspacesatallthatmustbebroken", "ボブ", uint8(20), true, false)
	f.Add("line\nline\r\n\ttab\u202eevil", "b", uint8(1), true, true)
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	st := newStyles(r)
	f.Fuzz(func(t *testing.T, text, name string, w uint8, out, nudge bool) {
		if !utf8.ValidString(text) || !utf8.ValidString(name) {
			return // the daemon refuses invalid UTF-8
		}
		m := control.Message{ID: "x", Direction: "in", Kind: control.KindText, Text: text, SentAt: time.Unix(0, 0), Status: control.StatusRead}
		if out {
			m.Direction = "out"
		}
		if nudge {
			m.Kind = control.KindNudge
		}
		cr := convRender{st: st, loc: time.UTC, width: int(w) + 1, them: oneLine(name)}
		for _, l := range cr.message(m) {
			if ansi.StringWidth(l) > cr.width {
				t.Fatalf("line %q is %d wide, column %d", l, ansi.StringWidth(l), cr.width)
			}
			if strings.ContainsFunc(l, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }) {
				t.Fatalf("control character in %q", l)
			}
		}
	})
}

// FuzzRenderTransfer: whatever a peer names its file and whatever the
// daemon reports (reasons quote the peer), a transfer and its history
// line fit the column and never reach the terminal as a control
// character.
func FuzzRenderTransfer(f *testing.F) {
	f.Add("report.pdf", "waiting for a direct link (relay limit 8 MiB)", "/dl/report.pdf", uint8(2), int64(3000), int64(1500), float64(1000), uint8(54), false)
	f.Add("\x1b[2J\x1b]0;pwned\a\u202eexe.txt", "cancelled by bob: \x1b[31m", "/dl/\x1b]8;;x\x07", uint8(4), int64(1), int64(1), float64(0), uint8(0), true)
	f.Add("全角ファイル名🎉.tar", "", "", uint8(9), int64(-5), int64(1<<62), float64(1e-300), uint8(200), true)
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	m := New(f.Context(), newFakeAPI(), Options{Renderer: r})
	states := []string{control.TransferOffered, control.TransferAccepted, control.TransferTransferring, control.TransferPaused,
		control.TransferDone, control.TransferFailed, control.TransferRejected, control.TransferCancelled, "", "resuming"}
	bad := func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }
	f.Fuzz(func(t *testing.T, name, reason, path string, state uint8, size, done int64, rate float64, w uint8, in bool) {
		if !utf8.ValidString(name) || !utf8.ValidString(reason) || !utf8.ValidString(path) {
			return // the daemon's JSON is valid UTF-8
		}
		tr := control.Transfer{ID: "x", Direction: "out", Name: name, Size: size, BytesDone: done, Rate: rate,
			State: states[int(state)%len(states)], Reason: reason, FinalPath: path, Path: path, Note: reason}
		if in {
			tr.Direction = "in"
		}
		width := int(w) + 1
		lines := m.transferLines(tr, width)
		msg := control.Message{ID: "x", Direction: tr.Direction, Kind: control.KindFile, Text: reason, SentAt: time.Unix(0, 0),
			File: &control.FileRef{Name: name, Size: size, State: tr.State}}
		lines = append(lines, convRender{st: m.st, loc: time.UTC, width: width, them: "bob"}.message(msg)...)
		for _, l := range lines {
			if ansi.StringWidth(l) > width {
				t.Fatalf("line %q is %d wide, column %d", l, ansi.StringWidth(l), width)
			}
			if strings.ContainsFunc(l, bad) {
				t.Fatalf("control character in %q", l)
			}
		}
	})
}
