package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/natterim/natter/node/control"
)

// sanitize keeps text from a peer (messages, names, notes, status
// messages) from driving the terminal: control characters become visible
// escapes (\x1b), tabs become spaces, and bidirectional overrides, which
// could make a line look like something else, are dropped. Newlines stay.
func sanitize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteRune(r)
		case r == '\t':
			b.WriteString("    ")
		case r == '\r':
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, "\\x%02x", r)
		case r == 0x2028 || r == 0x2029:
			b.WriteRune('\n')
		case (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f:
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// oneLine is sanitize for text shown on one line (names, notes).
func oneLine(s string) string {
	return strings.ReplaceAll(sanitize(s), "\n", " ")
}

// width is the number of terminal cells s takes (styles excluded, wide
// runes counted twice).
func width(s string) int { return ansi.StringWidth(s) }

// fit truncates s (which may be styled) to w cells, ending in "…" if cut,
// and pads it with spaces to exactly w cells.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if width(s) > w {
		s = ansi.Truncate(s, w, "…")
	}
	if pad := w - width(s); pad > 0 {
		s += strings.Repeat(" ", pad)
	}
	return s
}

// wrap breaks plain text into lines of at most w cells: at spaces where it
// can, inside words longer than a line where it must. Newlines in text
// start new lines.
func wrap(text string, w int) []string {
	if w < 1 {
		w = 1
	}
	var out []string
	for _, para := range strings.Split(text, "\n") {
		if para == "" {
			out = append(out, "")
			continue
		}
		for _, l := range strings.Split(ansi.Wrap(para, w, ""), "\n") {
			// Wrap keeps the spaces it broke at; they would only push
			// the line over its width.
			l = strings.TrimRight(l, " ")
			if width(l) > w { // a rune wider than the line
				l = ansi.Truncate(l, w, "")
			}
			out = append(out, l)
		}
	}
	return out
}

// convRender is what the conversation needs to draw its messages.
type convRender struct {
	st    styles
	loc   *time.Location
	width int
	// names: ours ("me") and the contact's, already sanitized.
	them string
}

// nameWidth is the width of the name column: the longer of the two names,
// within bounds.
func (r convRender) nameWidth() int {
	return min(max(width(r.them), 2), 12, max(r.width/5, 2))
}

// daySeparator is the line shown before the first message of a day.
func (r convRender) daySeparator(t time.Time) string {
	label := " " + t.In(r.loc).Format("Mon 2 Jan 2006") + " "
	side := max((r.width-width(label))/2, 0)
	line := strings.Repeat("─", side) + label + strings.Repeat("─", max(r.width-side-width(label), 0))
	return r.st.dim.Render(fit(line, r.width))
}

// message renders one message as lines of at most r.width cells:
//
//	15:04 bob  text that wraps under itself
//	           and goes on here
//	15:05 me   my answer               ✓✓ read
func (r convRender) message(m control.Message) []string {
	nw := r.nameWidth()
	ts := m.SentAt.In(r.loc).Format("15:04")
	name, nameStyle := r.them, r.st.them
	if m.Direction == "out" {
		name, nameStyle = "me", r.st.me
	}
	prefixW := width(ts) + 1 + nw + 2
	prefix := r.st.dim.Render(ts) + " " + nameStyle.Render(fit(name, nw)) + "  "
	indent := strings.Repeat(" ", prefixW)
	textW := r.width - prefixW
	if textW < 8 { // too narrow for a column: text below the name
		prefix = r.st.dim.Render(ts) + " " + nameStyle.Render(fit(name, max(r.width-width(ts)-1, 1)))
		indent, textW = "", r.width
	}

	var body []string
	if m.Kind == control.KindFile {
		body = r.fileBody(m, textW)
	} else if m.Kind == control.KindNudge {
		msg := "nudged you!"
		if m.Direction == "out" {
			msg = "you nudged " + r.them
		}
		for _, l := range wrap("*** "+msg+" ***", textW) {
			body = append(body, r.st.nudge.Render(l))
		}
	} else {
		body = wrap(sanitize(m.Text), textW)
	}

	lines := make([]string, 0, len(body)+1)
	if indent == "" {
		lines = append(lines, prefix)
		lines = append(lines, body...)
	} else {
		for i, l := range body {
			if i == 0 {
				lines = append(lines, prefix+l)
			} else {
				lines = append(lines, indent+l)
			}
		}
	}
	if m.Direction == "out" {
		if tag := r.st.statusTag(m.Status); tag != "" {
			last := lines[len(lines)-1]
			if gap := r.width - width(last) - width(tag); gap >= 2 {
				lines[len(lines)-1] = last + strings.Repeat(" ", gap) + tag
			} else {
				lines = append(lines, fit("", max(r.width-width(tag), 0))+ansi.Truncate(tag, r.width, ""))
			}
		}
	}
	for i, l := range lines {
		if width(l) > r.width { // only in a very narrow column
			lines[i] = ansi.Truncate(l, r.width, "")
		}
	}
	return lines
}

// fileBody is a file offer in the history: the file, its size and how
// its transfer stands, then the note:
//
//	⇩ photos-2026.tar (200.0 MiB) · done
//	  “the trip”
func (r convRender) fileBody(m control.Message, w int) []string {
	arrow := "⇪"
	if m.Direction == "in" {
		arrow = "⇩"
	}
	head := arrow + " a file"
	if f := m.File; f != nil {
		head = fmt.Sprintf("%s %s (%s)", arrow, oneLine(f.Name), humanSize(f.Size))
		if f.State != "" {
			head += " · " + oneLine(f.State)
		}
	}
	var body []string
	for _, l := range wrap(head, w) {
		body = append(body, r.st.bold.Render(l))
	}
	if m.Text != "" {
		body = append(body, wrap("“"+sanitize(m.Text)+"”", w)...)
	}
	return body
}

// sameDay reports whether a and b fall on the same local day.
func sameDay(a, b time.Time, loc *time.Location) bool {
	ya, ma, da := a.In(loc).Date()
	yb, mb, db := b.In(loc).Date()
	return ya == yb && ma == mb && da == db
}

// humanSize formats a byte count.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// bar draws a progress bar of w cells for done out of total.
func bar(done, total int64, w int) string {
	if w < 3 {
		return ""
	}
	inner := w - 2
	filled := 0
	if total > 0 {
		filled = int(min(max(done, 0), total) * int64(inner) / total)
	}
	return "[" + strings.Repeat("█", filled) + strings.Repeat("░", inner-filled) + "]"
}
