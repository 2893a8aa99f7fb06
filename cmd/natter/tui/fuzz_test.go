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
