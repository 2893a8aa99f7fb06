package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/x/ansi"

	"github.com/natterim/natter/node/control"
)

// The smallest terminal the UI draws itself in, and the widest a
// conversation gets (long lines are hard to read).
const (
	minWidth     = 40
	minHeight    = 10
	maxConvWidth = 110
	// maxRendered bounds the cache of rendered messages.
	maxRendered = 20000
)

// listWidth is the width of the contact list; 0 in a narrow terminal,
// where the list and the conversation take turns (Tab).
func (m *Model) listWidth() int {
	if m.width < 64 {
		return 0
	}
	return min(max(m.width*3/10, 22), 34)
}

// rightWidth is the width of the conversation column.
func (m *Model) rightWidth() int {
	if lw := m.listWidth(); lw > 0 {
		return max(m.width-lw-1, 1)
	}
	return max(m.width, 1)
}

// bodyHeight is the number of rows between the title and the footer.
func (m *Model) bodyHeight() int { return max(m.height-2, 1) }

// inputHeight is the input's height: its lines as wrapped, within bounds
// that leave the conversation at least one row.
func (m *Model) inputHeight() int {
	tw := max(m.rightWidth()-2, 1)
	rows := 0
	for _, l := range strings.Split(m.input.Value(), "\n") {
		rows += max(1, (width(l)+tw)/tw)
	}
	return min(max(rows, 1), maxInputLines, max(m.bodyHeight()-5, 1))
}

// layout sizes the components for the terminal and redraws the
// conversation (its wrapping depends on the width).
func (m *Model) layout() {
	rw := m.rightWidth()
	ih := m.inputHeight()
	m.input.SetWidth(rw)
	m.input.SetHeight(ih)
	vh := max(m.bodyHeight()-4-ih, 1)
	m.vp.Width, m.vp.Height = rw, vh
	m.ov.Width, m.ov.Height = rw, vh
	m.refreshConv(false)
	if m.overlay != overlayNone {
		m.refreshOverlay()
	}
	m.keepSelVisible()
}

// listRows is how many contacts the list shows at once.
func (m *Model) listRows() int { return max((m.bodyHeight()-1)/2, 1) }

func (m *Model) keepSelVisible() {
	rows := m.listRows()
	if m.sel < m.listTop {
		m.listTop = m.sel
	}
	if m.sel >= m.listTop+rows {
		m.listTop = m.sel - rows + 1
	}
	m.listTop = min(max(m.listTop, 0), max(len(m.contacts)-rows, 0))
}

// refreshConv redraws the open conversation into the viewport. It stays
// at the bottom while following; keepPos keeps the same messages on
// screen after older ones were added above.
func (m *Model) refreshConv(keepPos bool) {
	oldTotal, oldY := m.vp.TotalLineCount(), m.vp.YOffset
	lines := m.convLines(min(m.rightWidth(), maxConvWidth))
	m.convLen = len(lines)
	if pad := m.vp.Height - len(lines); pad > 0 {
		// A short conversation sits at the bottom, next to the input.
		lines = append(make([]string, pad), lines...)
	}
	m.vp.SetContent(strings.Join(lines, "\n"))
	switch {
	case m.follow:
		m.vp.GotoBottom()
	case keepPos:
		m.vp.SetYOffset(oldY + m.vp.TotalLineCount() - oldTotal)
	}
}

// convLines renders the open conversation, w cells wide.
func (m *Model) convLines(w int) []string {
	ct := m.byID[m.open]
	if m.open == "" || ct == nil {
		return m.welcomeLines(w)
	}
	c := m.convs[m.open]
	var out []string
	sys := func(s string) {
		for _, l := range wrap(s, w) {
			out = append(out, m.st.system.Render(l))
		}
	}
	center := func(s string) {
		pad := max((w-width(s))/2, 0)
		out = append(out, m.st.dim.Render(fit(strings.Repeat(" ", pad)+s, w)))
	}
	switch ct.State {
	case control.StatePendingIn:
		sys(ct.label() + " asked to be your contact.")
		if ct.note != "" {
			sys("Their note: “" + oneLine(ct.note) + "”")
		}
		sys("Type /accept to accept (you can then chat and see each other's presence) or /reject.")
		return out
	case control.StatePendingOut:
		sys("Waiting for " + ct.label() + " to accept your friend request. You can chat once they do.")
		return out
	case control.StateBlocked:
		sys(ct.label() + " is blocked: nothing from them reaches you. To unblock: natter contacts remove " + ct.label())
		return out
	}
	switch {
	case c == nil || !c.loaded && c.err == "":
		return append(out, m.st.dim.Render("loading…"))
	case !c.loaded:
		sys("cannot load the conversation: " + c.err)
		return out
	}
	switch {
	case c.start && len(c.msgs) == 0:
		center("no messages yet with " + ct.label() + " — say hello!")
	case c.start:
		center("— the beginning of your conversation with " + ct.label() + " —")
	case c.loading:
		center("↑ loading older messages…")
	default:
		center("↑ PgUp for older messages")
	}
	r := convRender{st: m.st, loc: m.loc, width: w, them: ct.label()}
	for i, msg := range c.msgs {
		if i == 0 || !sameDay(c.msgs[i-1].SentAt, msg.SentAt, m.loc) {
			out = append(out, r.daySeparator(msg.SentAt))
		}
		out = append(out, m.messageLines(r, msg)...)
	}
	out = append(out, m.transferBlock(m.open, w)...)
	return out
}

// messageLines renders a message, from the cache when nothing it depends
// on changed.
func (m *Model) messageLines(r convRender, msg control.Message) []string {
	file := ""
	if msg.Kind == control.KindFile {
		// The transfer's live state is newer than the page's.
		file = "?"
		if msg.File != nil {
			file = msg.File.State
		}
		if t := m.xfers[msg.ID]; t != nil {
			msg.File, file = fileRefIn(msg.File, t.Transfer), t.State
		}
	}
	if c, ok := m.rendered[msg.ID]; ok && c.status == msg.Status && c.via == msg.Via && c.them == r.them && c.width == r.width && c.file == file {
		return c.lines
	}
	lines := r.message(msg)
	if len(m.rendered) >= maxRendered {
		clear(m.rendered)
	}
	m.rendered[msg.ID] = renderedMsg{status: msg.Status, via: msg.Via, them: r.them, width: r.width, file: file, lines: lines}
	return lines
}

func (m *Model) welcomeLines(w int) []string {
	var out []string
	add := func(s string) { out = append(out, wrap(s, w)...) }
	add("")
	if !m.loaded {
		add("connecting to the natter daemon…")
		return out
	}
	if len(m.contacts) == 0 {
		add("No contacts yet.")
		add("")
		add("Add one with /add followed by their name, peer ID or invite (they get a friend request); give them yours: natter id, or register a name: natter names register NAME.")
		return out
	}
	add("No conversation open.")
	add("")
	add("Tab to the contact list, ↑↓ to choose, Enter to open. /help lists the keys and commands.")
	return out
}

// refreshOverlay draws help or search results into the overlay viewport.
func (m *Model) refreshOverlay() {
	w := m.rightWidth()
	var out []string
	switch m.overlay {
	case overlayHelp:
		out = m.helpLines(w)
	case overlaySearch:
		out = m.searchLines(w)
	}
	m.ov.SetContent(strings.Join(out, "\n"))
}

var keyHelp = [][2]string{
	{"Enter", "send the message"},
	{"Alt+Enter", "new line (also Ctrl+J)"},
	{"Tab", "contacts ⇄ input"},
	{"↑ ↓ Enter", "in the contacts: choose, open"},
	{"a / r", "in the contacts: accept / reject a request"},
	{"Alt+↑ Alt+↓", "previous / next conversation"},
	{"PgUp PgDn", "scroll; PgUp at the top loads older messages"},
	{"Ctrl+End", "back to the newest message"},
	{"F1", "this help; Esc closes it"},
	{"Ctrl+C", "quit (also Ctrl+Q)"},
}

func (m *Model) helpLines(w int) []string {
	var out []string
	section := func(title string, rows [][2]string) {
		out = append(out, m.st.bold.Render(title))
		// The key column fits most keys; a longer one gets its own line.
		kw := min(14, w/3)
		for _, r := range rows {
			if width(r[0]) > kw {
				out = append(out, fit("  "+r[0], w))
				r[0] = ""
			}
			for i, d := range wrap(r[1], max(w-kw-4, 8)) {
				k := ""
				if i == 0 {
					k = r[0]
				}
				out = append(out, fit("  "+fit(k, kw)+"  "+d, w))
			}
		}
	}
	section("Keys", keyHelp)
	out = append(out, "")
	section("Commands", commandHelp)
	out = append(out, "", m.st.dim.Render(fit("Esc closes this help.", w)))
	return out
}

func (m *Model) searchLines(w int) []string {
	head := fmt.Sprintf("Search “%s”: %d match", oneLine(m.search.query), len(m.search.results))
	if len(m.search.results) != 1 {
		head += "es"
	}
	out := []string{m.st.bold.Render(fit(head, w)), m.st.dim.Render(fit("PgUp/PgDn scroll, Esc closes", w)), ""}
	for _, r := range m.search.results {
		who := oneLine(r.Contact)
		if who == "" {
			who = r.PeerID
		}
		if r.Direction == "out" {
			who = "me → " + who
		}
		out = append(out, m.st.dim.Render(r.SentAt.In(m.loc).Format("2006-01-02 15:04"))+" "+m.st.them.Render(fit(who, max(w-17, 1))))
		text := sanitize(r.Text)
		if r.Kind == control.KindNudge {
			text = "*** nudge ***"
		}
		for _, l := range wrap(text, max(w-2, 1)) {
			out = append(out, "  "+l)
		}
	}
	return out
}

// ---- View ----

// View implements tea.Model: exactly height lines of width cells.
func (m *Model) View() string {
	if m.width < minWidth || m.height < minHeight {
		msg := fmt.Sprintf("natter: the terminal is %dx%d; make it at least %dx%d", m.width, m.height, minWidth, minHeight)
		lines := wrap(msg, max(m.width, 1))
		return strings.Join(lines[:min(len(lines), max(m.height, 1))], "\n")
	}
	lines := make([]string, 0, m.height)
	lines = append(lines, m.titleLine())
	bh := m.bodyHeight()
	lw := m.listWidth()
	var left, right []string
	switch {
	case lw > 0:
		left = m.listLines(lw, bh)
		right = m.rightLines(m.rightWidth(), bh)
	case m.focus == focusList:
		right = m.listLines(m.width, bh)
	default:
		right = m.rightLines(m.width, bh)
	}
	sep := m.st.sep.Render("│")
	for i := range bh {
		if lw > 0 {
			lines = append(lines, left[i]+sep+right[i])
		} else {
			lines = append(lines, right[i])
		}
	}
	lines = append(lines, m.footerLine())
	if m.shake > 0 {
		off := shakeOffsets[len(shakeOffsets)-m.shake]
		pad := strings.Repeat(" ", off)
		for i, l := range lines {
			lines[i] = ansi.Truncate(pad+l, m.width, "")
		}
	}
	return strings.Join(lines, "\n")
}

func (m *Model) titleLine() string {
	left := " natter"
	if m.self.Name != "" || m.self.PeerID != "" {
		name := oneLine(m.self.Name)
		if name == "" {
			name = m.self.PeerID
		}
		pres, shown := m.self.Presence, m.self.Presence
		if m.self.AutoAway {
			pres, shown = "away (idle)", control.PresenceAway
		}
		icon, _ := m.st.presenceIcon(control.StateAccepted, shown)
		left += " │ " + name + " " + icon + " " + pres
		if m.self.StatusMessage != "" {
			left += " — " + oneLine(m.self.StatusMessage)
		}
	}
	right := "● connected "
	if !m.live {
		why := m.downWhy
		if why == "" {
			why = "connecting"
		}
		right = "○ " + why + ", reconnecting… "
	}
	if unread := m.totalUnread(); unread > 0 {
		right = fmt.Sprintf("%d unread · ", unread) + right
	}
	lw := m.width - width(right)
	if lw < 12 {
		return m.st.title.Render(fit(left, m.width))
	}
	return m.st.title.Render(fit(left, lw)) + m.st.titleDim.Render(right)
}

func (m *Model) totalUnread() int {
	n := 0
	for _, c := range m.contacts {
		if c.State == control.StateAccepted {
			n += c.Unread
		}
	}
	return n
}

func (m *Model) footerLine() string {
	if m.notice != "" {
		st := m.st.okText
		if m.noticeErr {
			st = m.st.errText
		}
		return st.Render(fit(" "+oneLine(m.notice), m.width))
	}
	hint := " Enter send · Alt+Enter newline · PgUp older · Tab list · /help · Ctrl+C quit"
	if m.focus == focusList {
		hint = " ↑↓ choose · Enter open · a/r accept/reject · Tab input · F1 help · Ctrl+C quit"
	}
	if m.overlay != overlayNone {
		hint = " PgUp/PgDn scroll · Esc close · Ctrl+C quit"
	}
	return m.st.dim.Render(fit(hint, m.width))
}

// listLines renders the contact list: a header, then two rows per
// contact.
func (m *Model) listLines(w, h int) []string {
	out := make([]string, 0, h)
	reqs := 0
	for _, c := range m.contacts {
		if c.State == control.StatePendingIn {
			reqs++
		}
	}
	head := fmt.Sprintf(" Contacts (%d)", len(m.contacts)-reqs)
	if reqs > 0 {
		long := fmt.Sprintf("%s · %d request", head, reqs)
		if reqs > 1 {
			long += "s"
		}
		if width(long) > w {
			long = fmt.Sprintf("%s · %d req", head, reqs)
		}
		head = long
	}
	out = append(out, m.st.bold.Render(fit(head, w)))
	if len(m.contacts) == 0 {
		for _, l := range wrap("none yet: /add NAME|ID|INVITE", max(w-1, 1)) {
			out = append(out, m.st.dim.Render(fit(" "+l, w)))
		}
	}
	waiting := m.waitingByPeer()
	for i := m.listTop; i < len(m.contacts) && len(out)+2 <= h; i++ {
		out = append(out, m.contactLines(m.contacts[i], i, w, waiting)...)
	}
	for len(out) < h {
		out = append(out, strings.Repeat(" ", w))
	}
	return out[:h]
}

func (m *Model) contactLines(c *contact, i, w int, waiting map[string]int) []string {
	mark := " "
	switch {
	case m.focus == focusList && i == m.sel:
		mark = "▸"
	case c.PeerID == m.open:
		mark = "›"
	}
	icon, ist := m.st.presenceIcon(c.State, c.Presence)
	badge := ""
	switch {
	case c.typing && c.State == control.StateAccepted:
		badge = " ✎"
	}
	if waiting[c.PeerID] > 0 {
		badge += " ⇩"
	}
	if c.Unread > 0 && c.State == control.StateAccepted {
		badge += " " + m.st.badge.Render(fmt.Sprintf(" %d ", c.Unread))
	}
	nameW := max(w-3-width(badge), 1)
	name := fit(c.label(), nameW)
	switch {
	case m.focus == focusList && i == m.sel:
		name = m.st.sel.Render(name)
	case c.PeerID == m.open:
		name = m.st.bold.Render(name)
	}
	line1 := mark + ist.Render(icon) + " " + name + badge
	var detail string
	switch c.State {
	case control.StatePendingIn:
		detail = "wants to be friends"
	case control.StatePendingOut:
		detail = "request sent"
	case control.StateBlocked:
		detail = "blocked"
	default:
		p := c.Presence
		if p == "" {
			p = control.PresenceOffline
		}
		detail = p
		if c.Connected && c.Path != "" && c.Path != control.PathNone {
			detail += " · " + c.Path
		}
		if c.StatusMessage != "" {
			detail += " · " + oneLine(c.StatusMessage)
		}
	}
	return []string{fit(line1, w), m.st.dim.Render(fit("   "+detail, w))}
}

// rightLines renders the conversation column: header, messages (or an
// overlay), the typing line, the input.
func (m *Model) rightLines(w, h int) []string {
	out := make([]string, 0, h)
	out = append(out, m.convHeader(w), m.st.sep.Render(strings.Repeat("─", w)))
	view := m.vp.View()
	if m.overlay != overlayNone {
		view = m.ov.View()
	}
	for _, l := range strings.Split(view, "\n") {
		out = append(out, fit(l, w))
	}
	out = append(out, m.statusLine(w), m.st.sep.Render(strings.Repeat("─", w)))
	for _, l := range strings.Split(m.input.View(), "\n") {
		out = append(out, fit(l, w))
	}
	for len(out) < h {
		out = append(out, strings.Repeat(" ", w))
	}
	return out[:h]
}

func (m *Model) convHeader(w int) string {
	switch m.overlay {
	case overlayHelp:
		return m.st.bold.Render(fit(" Help", w))
	case overlaySearch:
		return m.st.bold.Render(fit(" Search", w))
	}
	c := m.byID[m.open]
	if c == nil {
		return m.st.dim.Render(fit(" no conversation open", w))
	}
	icon, ist := m.st.presenceIcon(c.State, c.Presence)
	var parts []string
	switch c.State {
	case control.StatePendingIn:
		parts = append(parts, "asks to be your contact")
	case control.StatePendingOut:
		parts = append(parts, "friend request sent")
	case control.StateBlocked:
		parts = append(parts, "blocked")
	default:
		p := c.Presence
		if p == "" {
			p = control.PresenceOffline
		}
		parts = append(parts, p)
		if c.Connected && c.Path != "" && c.Path != control.PathNone {
			parts = append(parts, c.Path)
		}
		if c.StatusMessage != "" {
			parts = append(parts, "“"+oneLine(c.StatusMessage)+"”")
		}
	}
	if m.flashPeer == c.PeerID && m.shake > 0 {
		return m.st.flash.Render(fit(" "+icon+" "+c.label()+" ‼ NUDGE ‼ "+strings.Join(parts, " · "), w))
	}
	return " " + ist.Render(icon) + " " + m.st.bold.Render(c.label()) + m.st.dim.Render(fit(" · "+strings.Join(parts, " · "), max(w-3-width(c.label()), 0)))
}

// statusLine is the row above the input: a nudge, the contact typing, or
// where the scrollback is.
func (m *Model) statusLine(w int) string {
	c := m.byID[m.open]
	switch {
	case m.shake > 0 && m.flashPeer != "":
		who := m.flashPeer
		if fc := m.byID[m.flashPeer]; fc != nil {
			who = fc.label()
		}
		return m.st.nudge.Render(fit(" *** "+who+" nudged you! ***", w))
	case m.overlay != overlayNone:
		return fit("", w)
	case c != nil && c.typing:
		return m.st.typing.Render(fit(" "+c.label()+" is typing…", w))
	case m.newBelow > 0:
		s := "s"
		if m.newBelow == 1 {
			s = ""
		}
		return m.st.bold.Render(fit(fmt.Sprintf(" ↓ %d new message%s below: PgDn or Ctrl+End", m.newBelow, s), w))
	case !m.follow && c != nil:
		return m.st.dim.Render(fit(" ↑ scrolled back: PgDn or Ctrl+End for the newest", w))
	}
	return fit("", w)
}
