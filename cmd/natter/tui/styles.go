package tui

import (
	"github.com/charmbracelet/lipgloss"

	"github.com/natterim/natter/node/control"
)

// styles are made from one renderer, which knows what the terminal can
// show: on a terminal without colours (TERM=dumb, NO_COLOR) they render
// as plain text, so nothing may rely on colour alone.
type styles struct {
	title, titleDim lipgloss.Style
	dim, bold       lipgloss.Style
	errText, okText lipgloss.Style
	me, them        lipgloss.Style
	sel             lipgloss.Style
	badge           lipgloss.Style
	online, away    lipgloss.Style
	busy, offline   lipgloss.Style
	request         lipgloss.Style
	queued, read    lipgloss.Style
	failed          lipgloss.Style
	nudge, flash    lipgloss.Style
	sep             lipgloss.Style
	typing          lipgloss.Style
	system          lipgloss.Style
}

func newStyles(r *lipgloss.Renderer) styles {
	// The 16 ANSI colours only: the terminal's theme maps them to what
	// reads well on its background, so nothing has to ask the terminal
	// for its background colour (a query bubbletea's input would see).
	c := func(ansi string) lipgloss.Color { return lipgloss.Color(ansi) }
	return styles{
		title:    r.NewStyle().Bold(true).Foreground(c("15")).Background(c("5")),
		titleDim: r.NewStyle().Foreground(c("15")).Background(c("5")),
		dim:      r.NewStyle().Foreground(c("8")),
		bold:     r.NewStyle().Bold(true),
		errText:  r.NewStyle().Foreground(c("1")).Bold(true),
		okText:   r.NewStyle().Foreground(c("2")),
		me:       r.NewStyle().Foreground(c("4")).Bold(true),
		them:     r.NewStyle().Foreground(c("5")).Bold(true),
		sel:      r.NewStyle().Reverse(true),
		badge:    r.NewStyle().Bold(true).Foreground(c("15")).Background(c("1")),
		online:   r.NewStyle().Foreground(c("2")),
		away:     r.NewStyle().Foreground(c("3")),
		busy:     r.NewStyle().Foreground(c("1")),
		offline:  r.NewStyle().Foreground(c("8")),
		request:  r.NewStyle().Foreground(c("4")).Bold(true),
		queued:   r.NewStyle().Foreground(c("3")),
		read:     r.NewStyle().Foreground(c("2")),
		failed:   r.NewStyle().Foreground(c("1")).Bold(true),
		nudge:    r.NewStyle().Foreground(c("5")).Bold(true),
		flash:    r.NewStyle().Reverse(true).Bold(true),
		sep:      r.NewStyle().Foreground(c("8")),
		typing:   r.NewStyle().Italic(true).Foreground(c("8")),
		system:   r.NewStyle().Italic(true).Foreground(c("8")),
	}
}

// presenceIcon is the glyph and style for a contact's state and presence.
// The glyphs differ, so presence reads without colour too.
func (s styles) presenceIcon(state, presence string) (string, lipgloss.Style) {
	switch state {
	case control.StatePendingIn:
		return "?", s.request
	case control.StatePendingOut:
		return "…", s.dim
	case control.StateBlocked:
		return "✕", s.dim
	}
	switch presence {
	case control.PresenceOnline:
		return "●", s.online
	case control.PresenceAway:
		return "◐", s.away
	case control.PresenceBusy:
		return "⊘", s.busy
	}
	return "○", s.offline
}

// statusTag is how a message's delivery state is shown. States this
// client does not know (a newer daemon's) are shown as their name.
func (s styles) statusTag(status string) string {
	switch status {
	case control.StatusQueued:
		return s.queued.Render("◷ queued")
	case control.StatusSent:
		return s.dim.Render("✓ sent")
	case control.StatusDelivered:
		return s.dim.Render("✓✓ delivered")
	case control.StatusRead:
		return s.read.Render("✓✓ read")
	case "failed":
		return s.failed.Render("✗ failed")
	case "":
		return ""
	}
	return s.dim.Render(sanitize(status))
}

// statusRank orders the known delivery states; unknown ones rank -1.
func statusRank(status string) int {
	switch status {
	case control.StatusQueued:
		return 0
	case control.StatusSent:
		return 1
	case "stored": // held by a rendezvous mailbox for an offline contact
		return 2
	case control.StatusDelivered:
		return 3
	case control.StatusRead:
		return 4
	}
	return -1
}

// newerStatus reports whether a message in state old should show next
// instead: known states only move forward (events may cross a send's
// answer); an unknown state is always taken.
func newerStatus(old, next string) bool {
	if next == "" || next == old {
		return false
	}
	ro, rn := statusRank(old), statusRank(next)
	if ro < 0 || rn < 0 {
		return true
	}
	return rn > ro
}
