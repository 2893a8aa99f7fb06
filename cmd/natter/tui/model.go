package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textarea"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/natterim/natter/node/control"
)

// Timing of the UI. None of it polls the daemon: these pace what the UI
// sends and how long it shows things.
const (
	apiTimeout = 15 * time.Second
	// pageSize is how many messages one history page holds.
	pageSize = 50
	// typingRefresh: while the user keeps typing, "typing" is re-sent
	// this often (the contact's UI forgets it after theirTypingFor).
	typingRefresh = 3 * time.Second
	// typingIdle: this long without a key press sends "stopped typing".
	typingIdle = 5 * time.Second
	// theirTypingFor: a contact's "typing" shows this long unless renewed.
	theirTypingFor = 8 * time.Second
	// activityEvery paces POST /v1/activity (it ends idle away).
	activityEvery = 30 * time.Second
	// noticeFor is how long a notice stays in the footer.
	noticeFor = 8 * time.Second
	// shakeFrame and shakeOffsets animate a nudge; nudgeQuiet ignores
	// the effects of nudges closer together than this.
	shakeFrame = 45 * time.Millisecond
	nudgeQuiet = 1500 * time.Millisecond
	// maxInputLines bounds the input's height.
	maxInputLines = 5
)

// shakeOffsets are the horizontal offsets of the UI in the frames of a
// nudge.
var shakeOffsets = []int{4, 0, 4, 0, 3, 0, 2, 0, 1, 0}

type focusArea int

const (
	focusInput focusArea = iota
	focusList
)

type overlayKind int

const (
	overlayNone overlayKind = iota
	overlayHelp
	overlaySearch
)

// Options configure a Model.
type Options struct {
	// Open is the peer ID of the conversation to open at start.
	Open string
	// Renderer renders the styles; nil: lipgloss's default (stdout).
	Renderer *lipgloss.Renderer
	// Bell is where a nudge rings the terminal bell; nil: nowhere.
	Bell io.Writer
}

// contact is one entry of the contact list.
type contact struct {
	control.ContactStatus
	note        string
	typing      bool
	typingUntil time.Time
}

func (c *contact) label() string {
	if c.Name != "" {
		return oneLine(c.Name)
	}
	if len(c.PeerID) > 12 {
		return c.PeerID[:6] + "…" + c.PeerID[len(c.PeerID)-6:]
	}
	return c.PeerID
}

// conv is the loaded part of one conversation: the newest messages, and
// older pages as the user scrolls up.
type conv struct {
	peer    string
	msgs    []control.Message // oldest first
	index   map[string]int
	loaded  bool // the newest page arrived
	start   bool // the oldest message is loaded
	loading bool // a page request is in flight
	err     string
}

func newConv(peer string) *conv { return &conv{peer: peer, index: map[string]int{}} }

func (c *conv) reindex() {
	clear(c.index)
	for i, m := range c.msgs {
		c.index[m.ID] = i
	}
}

// upsert adds a message at the end, or updates its delivery state if it
// is there; it reports whether it was new.
func (c *conv) upsert(m control.Message) bool {
	if i, ok := c.index[m.ID]; ok {
		old := &c.msgs[i]
		if newerStatus(old.Status, m.Status) {
			old.Status = m.Status
		}
		if m.Via != "" {
			old.Via = m.Via
		}
		return false
	}
	c.msgs = append(c.msgs, m)
	c.index[m.ID] = len(c.msgs) - 1
	return true
}

// mergeNewest merges the newest page. If the page does not reach back to
// what is loaded (many messages were missed while disconnected) it
// replaces it, so the loaded messages never have a gap.
func (c *conv) mergeNewest(page []control.Message) {
	if len(c.msgs) == 0 || len(page) == 0 {
		if len(page) > 0 || !c.loaded {
			c.msgs = slices.Clone(page)
			c.reindex()
			c.start = len(page) < pageSize
		}
		return
	}
	if _, ok := c.index[page[0].ID]; !ok {
		c.msgs = slices.Clone(page)
		c.reindex()
		c.start = len(page) < pageSize
		return
	}
	for _, m := range page {
		c.upsert(m)
	}
}

// prependOlder adds an older page in front.
func (c *conv) prependOlder(page []control.Message) int {
	older := make([]control.Message, 0, len(page))
	for _, m := range page {
		if _, ok := c.index[m.ID]; !ok {
			older = append(older, m)
		}
	}
	c.msgs = append(older, c.msgs...)
	c.reindex()
	return len(older)
}

// Model is the terminal UI's bubbletea model.
type Model struct {
	api   API
	ctx   context.Context
	st    styles
	bell  io.Writer
	now   func() time.Time
	after func(time.Duration, tea.Msg) tea.Cmd
	loc   *time.Location

	width, height int

	// the daemon
	self     control.Status
	live     bool   // the event stream is up
	downWhy  string // why it is not
	loaded   bool   // the state was loaded at least once
	loading  bool   // a state load is in flight
	reloadAg bool   // load again when the one in flight is done

	contacts []*contact // in display order
	byID     map[string]*contact
	sel      int // list cursor
	listTop  int // first contact shown
	open     string
	wantOpen string
	convs    map[string]*conv

	focus   focusArea
	overlay overlayKind
	ov      viewport.Model
	search  struct {
		query   string
		results []control.Message
	}

	input    textarea.Model
	vp       viewport.Model
	follow   bool // the conversation sticks to its newest message
	convLen  int  // lines of the conversation, without the padding above
	newBelow int  // messages that arrived while scrolled up

	// our typing notices
	typingTo     string
	typingSentAt time.Time
	lastKeyAt    time.Time
	typingCheck  bool
	lastActivity time.Time

	termFocused bool

	// nudge effects
	shake     int // frames left
	shakeGen  int
	flashPeer string
	lastNudge time.Time

	notice    string
	noticeErr bool
	noticeGen int

	confirm     string // "reject": waiting for y
	confirmPeer string

	readInFlight map[string]bool
	readAgain    map[string]bool

	// xfers are the file transfers shown (see files.go), by id.
	xfers   map[string]*transfer
	xferSeq int // transfers seen
	xferGen int // changes applied to xfers

	// rendered caches each message's lines: redrawing the conversation
	// for every event would otherwise wrap every loaded message again.
	rendered map[string]renderedMsg
}

// renderedMsg is a message's lines and what they depend on.
type renderedMsg struct {
	status, via, them string
	file              string // a file offer's state
	width             int
	lines             []string
}

// New returns the model for api; Run wires it to the terminal.
func New(ctx context.Context, api API, o Options) *Model {
	r := o.Renderer
	if r == nil {
		r = lipgloss.DefaultRenderer()
	}
	m := &Model{
		api:          api,
		ctx:          ctx,
		st:           newStyles(r),
		bell:         o.Bell,
		now:          time.Now,
		after:        func(d time.Duration, msg tea.Msg) tea.Cmd { return tea.Tick(d, func(time.Time) tea.Msg { return msg }) },
		loc:          time.Local,
		byID:         map[string]*contact{},
		convs:        map[string]*conv{},
		wantOpen:     o.Open,
		follow:       true,
		termFocused:  true,
		readInFlight: map[string]bool{},
		readAgain:    map[string]bool{},
		rendered:     map[string]renderedMsg{},
		xfers:        map[string]*transfer{},
		width:        80,
		height:       24,
	}
	ta := textarea.New()
	ta.ShowLineNumbers = false
	ta.Prompt = "> "
	ta.Placeholder = "type a message, or /help"
	ta.CharLimit = 0
	ta.MaxHeight = 0
	ta.SetHeight(1)
	ta.Cursor.SetMode(cursor.CursorStatic)
	ta.KeyMap.InsertNewline = key.NewBinding(key.WithKeys("alt+enter", "ctrl+j"))
	// Pasting is the terminal's job (bracketed paste); Ctrl+V would run
	// a clipboard helper instead.
	ta.KeyMap.Paste.SetEnabled(false)
	plain := textarea.Style{Base: r.NewStyle(), CursorLine: r.NewStyle(), Text: r.NewStyle(),
		Prompt: m.st.bold, Placeholder: m.st.dim, EndOfBuffer: r.NewStyle(), LineNumber: r.NewStyle(), CursorLineNumber: r.NewStyle()}
	ta.FocusedStyle, ta.BlurredStyle = plain, plain
	ta.BlurredStyle.Text = m.st.dim
	ta.Focus()
	m.input = ta
	m.vp = viewport.New(0, 0)
	m.ov = viewport.New(0, 0)
	m.layout()
	return m
}

// Init implements tea.Model. The event pump (see Run) delivers hello,
// which loads the state.
func (m *Model) Init() tea.Cmd { return nil }

// ---- messages of the model's own commands ----

type stateMsg struct {
	status   control.Status
	contacts []control.Contact
	err      error
}

type historyMsg struct {
	peer   string
	before string
	msgs   []control.Message
	err    error
}

type sentMsg struct {
	peer string
	text string
	msg  control.Message
	err  error
}

type readMsg struct {
	peer string
	err  error
}

// actionMsg is the answer to accept, reject or add.
type actionMsg struct {
	what string
	c    control.Contact
	err  error
}

type presenceMsg struct {
	status control.Status
	err    error
}

type searchMsg struct {
	query string
	msgs  []control.Message
	err   error
}

type errMsg struct{ err error }

// selfMsg refreshes our own presence.
type selfMsg struct{ status control.Status }

// ticks
type shakeTick struct{ gen int }
type typingCheckTick struct{}
type theirTypingTick struct{ peer string }
type noticeTick struct{ gen int }

// call runs fn against the daemon as a command, with a timeout.
func (m *Model) call(fn func(ctx context.Context) tea.Msg) tea.Cmd {
	parent := m.ctx
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(parent, apiTimeout)
		defer cancel()
		return fn(ctx)
	}
}

func (m *Model) loadState() tea.Cmd {
	if m.loading {
		m.reloadAg = true
		return nil
	}
	m.loading = true
	return m.call(func(ctx context.Context) tea.Msg {
		st, err := m.api.Status(ctx)
		if err != nil {
			return stateMsg{err: err}
		}
		cs, err := m.api.Contacts(ctx)
		return stateMsg{status: st, contacts: cs, err: err}
	})
}

func (m *Model) loadPage(c *conv, before string) tea.Cmd {
	if c.loading {
		return nil
	}
	c.loading = true
	peer := c.peer
	return m.call(func(ctx context.Context) tea.Msg {
		ms, err := m.api.History(ctx, peer, before, pageSize)
		return historyMsg{peer: peer, before: before, msgs: ms, err: err}
	})
}

// ---- Update ----

// Update implements tea.Model.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	var cmds []tea.Cmd
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
	case tea.FocusMsg:
		m.termFocused = true
		cmds = append(cmds, m.maybeMarkRead())
	case tea.BlurMsg:
		m.termFocused = false
	case tea.KeyMsg:
		cmds = append(cmds, m.onKey(msg)...)
	case eventMsg:
		cmds = append(cmds, m.onEvent(msg.e)...)
	case streamDownMsg:
		m.live = false
		m.downWhy = "event stream lost"
		if errors.Is(msg.err, control.ErrNoDaemon) {
			m.downWhy = "the daemon is not running"
		}
	case stateMsg:
		cmds = append(cmds, m.onState(msg)...)
	case historyMsg:
		cmds = append(cmds, m.onHistory(msg)...)
	case sentMsg:
		if msg.err != nil {
			// Give the text back rather than lose it.
			if msg.text != "" && m.input.Value() == "" {
				m.input.SetValue(msg.text)
				m.layout()
			}
			what := "nudge not sent: "
			if msg.text != "" {
				what = "not sent (your text is back in the input): "
			}
			cmds = append(cmds, m.setNotice(what+apiErrText(msg.err), true))
			break
		}
		if c := m.convs[msg.peer]; c != nil && c.loaded {
			c.upsert(msg.msg)
			m.follow = true
			m.refreshConv(false)
		}
	case readMsg:
		m.readInFlight[msg.peer] = false
		if msg.err == nil {
			if c := m.byID[msg.peer]; c != nil {
				c.Unread = 0
			}
		}
		if m.readAgain[msg.peer] {
			m.readAgain[msg.peer] = false
			cmds = append(cmds, m.maybeMarkRead())
		}
	case actionMsg:
		if msg.err != nil {
			cmds = append(cmds, m.setNotice(apiErrText(msg.err), true))
			break
		}
		name := labelOf(msg.c)
		text := ""
		switch {
		case msg.what == "accept":
			text = "accepted " + name + ": you can chat now"
		case msg.what == "reject":
			text = "rejected " + name + "'s request"
		case msg.c.State == control.StateAccepted:
			text = name + " is now a contact (they had asked you)"
		default:
			text = "friend request sent to " + name + "; you can chat once they accept"
		}
		if msg.what != "reject" {
			m.wantOpen = msg.c.PeerID
		}
		cmds = append(cmds, m.setNotice(text, false), m.loadState())
	case presenceMsg:
		if msg.err != nil {
			cmds = append(cmds, m.setNotice(apiErrText(msg.err), true))
			break
		}
		m.self = msg.status
		t := "you are " + msg.status.Presence
		if msg.status.StatusMessage != "" {
			t += " — " + oneLine(msg.status.StatusMessage)
		}
		cmds = append(cmds, m.setNotice(t, false))
	case searchMsg:
		if msg.err != nil {
			cmds = append(cmds, m.setNotice(apiErrText(msg.err), true))
			break
		}
		m.search.query, m.search.results = msg.query, msg.msgs
		m.overlay = overlaySearch
		m.refreshOverlay()
		m.ov.GotoBottom()
	case fileMsg:
		cmds = append(cmds, m.onFileOffered(msg)...)
	case filesMsg:
		cmds = append(cmds, m.onFiles(msg)...)
	case fileActionMsg:
		cmds = append(cmds, m.onFileAction(msg)...)
	case transferGoneTick:
		cmds = append(cmds, m.onTransferGone(msg.id)...)
	case selfMsg:
		m.self = msg.status
	case errMsg:
		cmds = append(cmds, m.setNotice(apiErrText(msg.err), true))
	case shakeTick:
		if msg.gen == m.shakeGen && m.shake > 0 {
			m.shake--
			if m.shake > 0 {
				cmds = append(cmds, m.after(shakeFrame, shakeTick{gen: m.shakeGen}))
			} else {
				m.flashPeer = ""
			}
		}
	case typingCheckTick:
		m.typingCheck = false
		if m.typingTo != "" {
			if idle := m.now().Sub(m.lastKeyAt); idle >= typingIdle {
				cmds = append(cmds, m.stopTyping())
			} else {
				m.typingCheck = true
				cmds = append(cmds, m.after(typingIdle-idle, typingCheckTick{}))
			}
		}
	case theirTypingTick:
		if c := m.byID[msg.peer]; c != nil && c.typing && !m.now().Before(c.typingUntil) {
			c.typing = false
		}
	case noticeTick:
		if msg.gen == m.noticeGen {
			m.notice = ""
		}
	}
	return m, batch(cmds)
}

// batch drops nil commands.
func batch(cmds []tea.Cmd) tea.Cmd {
	cmds = slices.DeleteFunc(cmds, func(c tea.Cmd) bool { return c == nil })
	switch len(cmds) {
	case 0:
		return nil
	case 1:
		return cmds[0]
	}
	return tea.Batch(cmds...)
}

func (m *Model) setNotice(text string, isErr bool) tea.Cmd {
	m.noticeGen++
	m.notice, m.noticeErr = text, isErr
	return m.after(noticeFor, noticeTick{gen: m.noticeGen})
}

// activity tells the daemon the user is here (it ends idle away); if we
// showed as away because idle, it fetches our status again to show that
// we no longer do.
func (m *Model) activity() tea.Cmd {
	m.lastActivity = m.now()
	wasAway := m.self.AutoAway
	return m.call(func(ctx context.Context) tea.Msg {
		if err := m.api.Activity(ctx); err != nil || !wasAway {
			return nil // best effort
		}
		st, err := m.api.Status(ctx)
		if err != nil {
			return nil
		}
		return selfMsg{st}
	})
}

// ---- keys ----

func (m *Model) onKey(k tea.KeyMsg) []tea.Cmd {
	var cmds []tea.Cmd
	if now := m.now(); now.Sub(m.lastActivity) >= activityEvery {
		cmds = append(cmds, m.activity())
	}
	key := k.String()
	if m.confirm != "" {
		what, peer := m.confirm, m.confirmPeer
		m.confirm, m.confirmPeer = "", ""
		m.notice = ""
		if key == "y" || key == "Y" {
			if what == "reject" {
				cmds = append(cmds, m.reject(peer))
			}
		}
		return cmds
	}
	switch key {
	case "ctrl+c", "ctrl+q":
		return append(cmds, tea.Quit)
	case "esc":
		switch {
		case m.overlay != overlayNone:
			m.overlay = overlayNone
		case m.focus == focusList && m.open != "":
			m.setFocus(focusInput)
		default:
			m.notice = ""
		}
		return cmds
	case "tab", "shift+tab":
		if m.focus == focusInput {
			m.setFocus(focusList)
		} else {
			m.setFocus(focusInput)
		}
		return cmds
	case "pgup", "ctrl+b":
		return append(cmds, m.scroll(-1))
	case "pgdown", "ctrl+f":
		return append(cmds, m.scroll(1))
	case "ctrl+end":
		m.vp.GotoBottom()
		m.follow, m.newBelow = true, 0
		return append(cmds, m.maybeMarkRead())
	case "alt+up", "ctrl+up":
		return append(cmds, m.switchConv(-1)...)
	case "alt+down", "ctrl+down":
		return append(cmds, m.switchConv(1)...)
	case "f1":
		m.toggleHelp()
		return cmds
	}
	if m.focus == focusList {
		return append(cmds, m.onListKey(k)...)
	}
	if key == "enter" {
		return append(cmds, m.submit()...)
	}
	before := m.input.Value()
	var c tea.Cmd
	m.input, c = m.input.Update(k)
	cmds = append(cmds, c)
	if after := m.input.Value(); after != before {
		if m.inputHeight() != m.input.Height() {
			m.layout() // the input grew or shrank
		}
		cmds = append(cmds, m.onInputChanged(after))
	}
	return cmds
}

func (m *Model) onListKey(k tea.KeyMsg) []tea.Cmd {
	cur := m.selected()
	switch k.String() {
	case "up", "k":
		m.moveSel(-1)
	case "down", "j":
		m.moveSel(1)
	case "home", "g":
		m.sel = 0
		m.keepSelVisible()
	case "end", "G":
		m.sel = max(len(m.contacts)-1, 0)
		m.keepSelVisible()
	case "enter", "right", "l":
		if cur != nil {
			cmds := m.openConv(cur.PeerID)
			m.setFocus(focusInput)
			return cmds
		}
	case "a":
		if cur != nil && cur.State == control.StatePendingIn {
			return []tea.Cmd{m.accept(cur.PeerID, "")}
		}
	case "r":
		if cur != nil && cur.State == control.StatePendingIn {
			m.confirm, m.confirmPeer = "reject", cur.PeerID
			m.notice, m.noticeErr = "reject "+cur.label()+"'s friend request? y/n", false
		}
	case "?":
		m.toggleHelp()
	default:
		// Typing in the list goes to the input.
		if k.Type == tea.KeyRunes && !k.Alt {
			m.setFocus(focusInput)
			return m.onKey(k)
		}
	}
	return nil
}

func (m *Model) setFocus(f focusArea) {
	m.focus = f
	if f == focusInput {
		m.input.Focus()
	} else {
		m.input.Blur()
		if i := m.indexOf(m.open); i >= 0 {
			m.sel = i
		}
		m.keepSelVisible()
	}
	m.layout()
}

func (m *Model) toggleHelp() {
	if m.overlay == overlayHelp {
		m.overlay = overlayNone
		return
	}
	m.overlay = overlayHelp
	m.refreshOverlay()
	m.ov.GotoTop()
}

func (m *Model) selected() *contact {
	if m.sel >= 0 && m.sel < len(m.contacts) {
		return m.contacts[m.sel]
	}
	return nil
}

func (m *Model) indexOf(peer string) int {
	return slices.IndexFunc(m.contacts, func(c *contact) bool { return c.PeerID == peer })
}

func (m *Model) moveSel(d int) {
	if len(m.contacts) == 0 {
		return
	}
	m.sel = min(max(m.sel+d, 0), len(m.contacts)-1)
	m.keepSelVisible()
}

// switchConv opens the previous (d<0) or next contact's conversation.
func (m *Model) switchConv(d int) []tea.Cmd {
	if len(m.contacts) == 0 {
		return nil
	}
	i := m.indexOf(m.open)
	if i < 0 {
		i = m.sel
		if d > 0 {
			i--
		}
	}
	i = (i + d + len(m.contacts)) % len(m.contacts)
	m.sel = i
	m.keepSelVisible()
	return m.openConv(m.contacts[i].PeerID)
}

// scroll pages the conversation (or the overlay) up (d<0) or down.
// Reaching the top loads the page before it.
func (m *Model) scroll(d int) tea.Cmd {
	if m.overlay != overlayNone {
		if d < 0 {
			m.ov.PageUp()
		} else {
			m.ov.PageDown()
		}
		return nil
	}
	c := m.convs[m.open]
	if c == nil {
		return nil
	}
	if d < 0 {
		wasTop := m.vp.AtTop()
		m.vp.PageUp()
		m.follow = false
		if (wasTop || m.vp.AtTop()) && c.loaded && !c.start && len(c.msgs) > 0 {
			return m.loadPage(c, c.msgs[0].ID)
		}
		return nil
	}
	m.vp.PageDown()
	if m.vp.AtBottom() {
		m.follow, m.newBelow = true, 0
		return m.maybeMarkRead()
	}
	return nil
}

// submit acts on the input line.
func (m *Model) submit() []tea.Cmd {
	line := m.input.Value()
	if strings.TrimSpace(line) == "" {
		return nil
	}
	cmd, err := parseCommand(line)
	if err != nil {
		return []tea.Cmd{m.setNotice(err.Error(), true)}
	}
	clearInput := func() {
		m.input.Reset()
		m.layout()
	}
	c := m.byID[m.open]
	switch cmd.kind {
	case cmdText:
		if err := m.canChat(c); err != nil {
			return []tea.Cmd{m.setNotice(err.Error(), true)}
		}
		clearInput()
		// The message ends the typing at the other end.
		m.typingTo = ""
		peer, text := c.PeerID, cmd.text
		return []tea.Cmd{m.call(func(ctx context.Context) tea.Msg {
			sent, err := m.api.Send(ctx, peer, control.SendRequest{Text: text})
			return sentMsg{peer: peer, text: text, msg: sent, err: err}
		})}
	case cmdNudge:
		if err := m.canChat(c); err != nil {
			return []tea.Cmd{m.setNotice(err.Error(), true)}
		}
		clearInput()
		peer := c.PeerID
		return []tea.Cmd{m.call(func(ctx context.Context) tea.Msg {
			sent, err := m.api.Send(ctx, peer, control.SendRequest{Kind: control.KindNudge})
			return sentMsg{peer: peer, msg: sent, err: err}
		})}
	case cmdHelp:
		clearInput()
		if m.overlay != overlayHelp {
			m.toggleHelp()
		}
		return nil
	case cmdQuit:
		clearInput()
		return []tea.Cmd{tea.Quit}
	case cmdAccept, cmdReject:
		// A friend request comes first: until it is answered there is
		// no chat, and no file, with that contact.
		if c != nil && c.State == control.StatePendingIn {
			clearInput()
			if cmd.kind == cmdAccept {
				return []tea.Cmd{m.accept(c.PeerID, cmd.text)}
			}
			return []tea.Cmd{m.reject(c.PeerID)}
		}
		if c != nil {
			if t := m.waitingOffer(c.PeerID); t != nil {
				if cmd.text != "" {
					return []tea.Cmd{m.setNotice("/accept NAME names a new contact; a file offer is accepted with /accept alone", true)}
				}
				clearInput()
				if cmd.kind == cmdAccept {
					return []tea.Cmd{m.fileAction(t, "accept")}
				}
				return []tea.Cmd{m.fileAction(t, "reject")}
			}
		}
		who := "the open contact"
		if c != nil {
			who = c.label()
		}
		return []tea.Cmd{m.setNotice(fmt.Sprintf("%s has no friend request or file offer waiting for you", who), true)}
	case cmdCancel:
		if c == nil {
			return []tea.Cmd{m.setNotice("open a conversation first: /cancel stops a file transfer with its contact", true)}
		}
		t := m.unfinished(c.PeerID, cmd.text)
		if t == nil {
			what := "no file transfer with " + c.label() + " is in progress"
			if cmd.text != "" {
				what = "no file transfer with " + c.label() + " named " + oneLine(cmd.text) + "… is in progress"
			}
			return []tea.Cmd{m.setNotice(what, true)}
		}
		clearInput()
		return []tea.Cmd{m.fileAction(t, "cancel")}
	case cmdSearch:
		clearInput()
		q := cmd.text
		return []tea.Cmd{m.call(func(ctx context.Context) tea.Msg {
			ms, err := m.api.Search(ctx, q, "", 200)
			return searchMsg{query: q, msgs: ms, err: err}
		})}
	case cmdStatus:
		clearInput()
		req := control.PresenceRequest{State: cmd.state, Message: cmd.message}
		return []tea.Cmd{m.call(func(ctx context.Context) tea.Msg {
			st, err := m.api.SetPresence(ctx, req)
			return presenceMsg{status: st, err: err}
		})}
	case cmdAdd:
		clearInput()
		req := control.AddContactRequest{Target: cmd.text, Note: cmd.note}
		return []tea.Cmd{m.call(func(ctx context.Context) tea.Msg {
			ct, err := m.api.AddContact(ctx, req)
			return actionMsg{what: "add", c: ct, err: err}
		})}
	case cmdFile:
		if err := m.canChat(c); err != nil {
			return []tea.Cmd{m.setNotice(err.Error(), true)}
		}
		path, err := checkFile(cmd.text)
		if err != nil {
			return []tea.Cmd{m.setNotice(err.Error(), true)}
		}
		clearInput()
		return []tea.Cmd{m.offerFile(c.PeerID, path), m.setNotice("reading "+oneLine(baseName(path))+" to offer it…", false)}
	}
	return nil
}

// canChat explains why the open conversation cannot take a message.
func (m *Model) canChat(c *contact) error {
	switch {
	case c == nil:
		return errors.New("open a conversation first: Tab to the contacts, ↑↓ and Enter")
	case c.State == control.StatePendingIn:
		return fmt.Errorf("%s asked to be your contact: /accept first (or /reject)", c.label())
	case c.State == control.StatePendingOut:
		return fmt.Errorf("%s has not accepted your friend request yet", c.label())
	case c.State == control.StateBlocked:
		return fmt.Errorf("%s is blocked", c.label())
	}
	return nil
}

func (m *Model) accept(peer, name string) tea.Cmd {
	return m.call(func(ctx context.Context) tea.Msg {
		ct, err := m.api.AcceptContact(ctx, peer, name)
		return actionMsg{what: "accept", c: ct, err: err}
	})
}

func (m *Model) reject(peer string) tea.Cmd {
	return m.call(func(ctx context.Context) tea.Msg {
		ct, err := m.api.RejectContact(ctx, peer)
		return actionMsg{what: "reject", c: ct, err: err}
	})
}

// onInputChanged sends typing notices: "typing" on the first key press and
// again every typingRefresh while keys keep coming; "stopped" once the
// input is empty, a message was sent, or after typingIdle without keys.
func (m *Model) onInputChanged(value string) tea.Cmd {
	c := m.byID[m.open]
	typing := strings.TrimSpace(value) != "" && !strings.HasPrefix(value, "/") || strings.HasPrefix(value, "//")
	if c == nil || c.State != control.StateAccepted || !typing {
		return m.stopTyping()
	}
	now := m.now()
	m.lastKeyAt = now
	var cmds []tea.Cmd
	if m.typingTo != c.PeerID || now.Sub(m.typingSentAt) >= typingRefresh {
		if m.typingTo != c.PeerID {
			cmds = append(cmds, m.stopTyping())
		}
		m.typingTo, m.typingSentAt = c.PeerID, now
		peer := c.PeerID
		cmds = append(cmds, m.call(func(ctx context.Context) tea.Msg {
			_, _ = m.api.Typing(ctx, peer, true) // best effort by design
			return nil
		}))
	}
	if !m.typingCheck {
		m.typingCheck = true
		cmds = append(cmds, m.after(typingIdle, typingCheckTick{}))
	}
	return batch(cmds)
}

func (m *Model) stopTyping() tea.Cmd {
	peer := m.typingTo
	if peer == "" {
		return nil
	}
	m.typingTo = ""
	return m.call(func(ctx context.Context) tea.Msg {
		_, _ = m.api.Typing(ctx, peer, false)
		return nil
	})
}

// StopTyping returns the peer told that the user is typing ("" if none),
// so that Run can tell it the user stopped when the UI exits.
func (m *Model) StopTyping() string { return m.typingTo }

// ---- events ----

func (m *Model) onEvent(e control.Event) []tea.Cmd {
	switch e.Type {
	case control.EventHello:
		m.live, m.downWhy = true, ""
		clear(m.rendered)
		// Anything may have happened while we were away: reload.
		cmds := []tea.Cmd{m.loadState(), m.loadFiles()}
		for peer, c := range m.convs {
			if peer != m.open {
				delete(m.convs, peer)
				continue
			}
			c.loading = false
			cmds = append(cmds, m.loadPage(c, ""))
		}
		return cmds
	case control.EventMessage:
		return m.onMessage(e)
	case control.EventFile:
		if e.Transfer == nil {
			return nil
		}
		return m.onTransfer(*e.Transfer)
	case control.EventStatus:
		c := m.convs[e.PeerID]
		if c == nil {
			return nil
		}
		changed := false
		for _, id := range e.IDs {
			if i, ok := c.index[id]; ok {
				msg := &c.msgs[i]
				if newerStatus(msg.Status, e.Status) {
					msg.Status, changed = e.Status, true
				}
				if e.Path != "" && msg.Via != e.Path {
					msg.Via, changed = e.Path, true
				}
			}
		}
		if changed && e.PeerID == m.open {
			m.refreshConv(false)
		}
	case control.EventTyping:
		c := m.byID[e.PeerID]
		if c == nil || e.Typing == nil {
			return nil
		}
		c.typing = *e.Typing
		if c.typing {
			c.typingUntil = m.now().Add(theirTypingFor)
			return []tea.Cmd{m.after(theirTypingFor, theirTypingTick{peer: e.PeerID})}
		}
	case control.EventNudge:
		return m.onNudge(e)
	case control.EventLink:
		if c := m.byID[e.PeerID]; c != nil {
			c.Connected, c.Path = e.Connected, e.Path
			if !e.Connected || c.Path == "" {
				c.Path = control.PathNone
			}
		}
	case control.EventPresence:
		if c := m.byID[e.PeerID]; c != nil {
			c.Presence, c.StatusMessage = e.Presence, e.StatusMessage
			m.sortContacts()
		}
	case control.EventRead:
		// Read through another client (or us): nothing unread there.
		if c := m.byID[e.PeerID]; c != nil {
			c.Unread = 0
		}
	case control.EventSelf:
		m.self.Presence, m.self.StatusMessage, m.self.AutoAway = e.Presence, e.StatusMessage, e.AutoAway
	case control.EventContact:
		var note string
		name := e.Name
		if name == "" {
			name = e.PeerID
		}
		name = oneLine(name)
		switch e.State {
		case control.StatePendingIn:
			note = name + " asks to be your contact: open them and /accept, or a/r in the list"
			if e.Note != "" {
				note += " — “" + oneLine(e.Note) + "”"
			}
		case control.StateAccepted:
			note = name + " is now your contact"
		case control.StateRejected:
			note = "the friend request with " + name + " was rejected"
		case control.StateWithdrawn:
			note = name + " withdrew their friend request"
		case control.StateBlocked:
			note = name + " is blocked"
		}
		cmds := []tea.Cmd{m.loadState()}
		if note != "" {
			cmds = append(cmds, m.setNotice(note, false))
		}
		return cmds
	}
	return nil
}

func (m *Model) onMessage(e control.Event) []tea.Cmd {
	if e.Message == nil {
		return nil
	}
	msg := *e.Message
	peer := e.PeerID
	if peer == "" {
		peer = msg.PeerID
	}
	ct := m.byID[peer]
	if ct == nil {
		// Not in the list yet (the list is loading): the next load has it.
		return []tea.Cmd{m.loadState()}
	}
	isNew := true
	if c := m.convs[peer]; c != nil && c.loaded {
		isNew = c.upsert(msg)
		if peer == m.open {
			if !m.follow && isNew && msg.Direction == "in" {
				m.newBelow++
			}
			m.refreshConv(false)
		}
	}
	if msg.Direction != "in" || !isNew {
		return nil
	}
	ct.typing = false
	ct.Unread++
	return []tea.Cmd{m.maybeMarkRead()}
}

func (m *Model) onNudge(e control.Event) []tea.Cmd {
	now := m.now()
	if now.Sub(m.lastNudge) < nudgeQuiet {
		return nil // a peer nudging in a loop does not get a bell each time
	}
	m.lastNudge = now
	m.shakeGen++
	m.shake = len(shakeOffsets)
	m.flashPeer = e.PeerID
	who := e.Name
	if c := m.byID[e.PeerID]; c != nil {
		who = c.label()
	}
	if who == "" {
		who = e.PeerID
	}
	cmds := []tea.Cmd{m.after(shakeFrame, shakeTick{gen: m.shakeGen}), m.setNotice(oneLine(who)+" nudged you!", false)}
	if w := m.bell; w != nil {
		cmds = append(cmds, func() tea.Msg {
			_, _ = w.Write([]byte{'\a'})
			return nil
		})
	}
	return cmds
}

// visible reports whether the newest messages of peer's conversation are
// on screen, so that they count as read.
func (m *Model) visible(peer string) bool {
	c := m.convs[peer]
	return peer != "" && peer == m.open && c != nil && c.loaded && m.termFocused && m.follow &&
		m.overlay == overlayNone && (m.listWidth() > 0 || m.focus == focusInput)
}

// maybeMarkRead marks the open conversation read if it has unread
// messages and they are on screen.
func (m *Model) maybeMarkRead() tea.Cmd {
	peer := m.open
	c := m.byID[peer]
	if c == nil || c.Unread == 0 || c.State != control.StateAccepted || !m.visible(peer) {
		return nil
	}
	if m.readInFlight[peer] {
		m.readAgain[peer] = true
		return nil
	}
	m.readInFlight[peer] = true
	return m.call(func(ctx context.Context) tea.Msg {
		_, err := m.api.MarkRead(ctx, peer)
		return readMsg{peer: peer, err: err}
	})
}

// ---- state ----

func (m *Model) onState(msg stateMsg) []tea.Cmd {
	m.loading = false
	var cmds []tea.Cmd
	if m.reloadAg {
		m.reloadAg = false
		cmds = append(cmds, m.loadState())
	}
	if msg.err != nil {
		return append(cmds, m.setNotice("cannot load contacts: "+apiErrText(msg.err), true))
	}
	first := !m.loaded
	m.loaded = true
	m.self = msg.status
	notes := map[string]string{}
	for _, c := range msg.contacts {
		notes[c.PeerID] = c.Note
	}
	old := m.byID
	m.byID = make(map[string]*contact, len(msg.status.Contacts))
	m.contacts = m.contacts[:0]
	for _, cs := range msg.status.Contacts {
		c := &contact{ContactStatus: cs, note: notes[cs.PeerID]}
		if o := old[cs.PeerID]; o != nil {
			c.typing, c.typingUntil = o.typing, o.typingUntil
		}
		m.byID[cs.PeerID] = c
		m.contacts = append(m.contacts, c)
	}
	selPeer := ""
	if s := m.selected(); s != nil {
		selPeer = s.PeerID
	}
	m.sortContacts()
	if i := m.indexOf(selPeer); i >= 0 && !first {
		m.sel = i
	} else {
		m.sel = min(m.sel, max(len(m.contacts)-1, 0))
	}
	if first {
		m.sel = 0
	}
	if m.open != "" && m.byID[m.open] == nil {
		// Removed or rejected.
		delete(m.convs, m.open)
		m.open = ""
		m.refreshConv(false)
	}
	if m.wantOpen != "" {
		if m.byID[m.wantOpen] != nil {
			peer := m.wantOpen
			m.wantOpen = ""
			cmds = append(cmds, m.openConv(peer)...)
			m.setFocus(focusInput)
		} else if first {
			m.wantOpen = ""
		}
	} else if first && m.open == "" {
		m.setFocus(focusList)
	}
	if first && m.self.AutoAway {
		cmds = append(cmds, m.activity()) // opening the chat is activity
	}
	m.keepSelVisible()
	return cmds
}

// sortContacts orders the list: friend requests first, then contacts
// that are around, the offline ones, requests we sent, blocked peers;
// by name within each group. The cursor stays on its contact.
func (m *Model) sortContacts() {
	var selPeer string
	if s := m.selected(); s != nil {
		selPeer = s.PeerID
	}
	group := func(c *contact) int {
		switch c.State {
		case control.StatePendingIn:
			return 0
		case control.StateAccepted:
			if c.Presence == control.PresenceOffline || c.Presence == "" {
				return 2
			}
			return 1
		case control.StatePendingOut:
			return 3
		}
		return 4
	}
	slices.SortStableFunc(m.contacts, func(a, b *contact) int {
		if ga, gb := group(a), group(b); ga != gb {
			return ga - gb
		}
		return strings.Compare(strings.ToLower(a.label()), strings.ToLower(b.label()))
	})
	if i := m.indexOf(selPeer); i >= 0 {
		m.sel = i
	}
}

// openConv shows peer's conversation, loading its newest page if needed.
func (m *Model) openConv(peer string) []tea.Cmd {
	var cmds []tea.Cmd
	if peer != m.open {
		cmds = append(cmds, m.stopTyping())
	}
	m.open = peer
	m.overlay = overlayNone
	m.follow, m.newBelow = true, 0
	if i := m.indexOf(peer); i >= 0 {
		m.sel = i
		m.keepSelVisible()
	}
	c := m.convs[peer]
	if c == nil {
		c = newConv(peer)
		m.convs[peer] = c
	}
	if !c.loaded {
		cmds = append(cmds, m.loadPage(c, ""))
	}
	m.layout()
	cmds = append(cmds, m.maybeMarkRead())
	return cmds
}

func (m *Model) onHistory(msg historyMsg) []tea.Cmd {
	c := m.convs[msg.peer]
	if c == nil {
		return nil
	}
	c.loading = false
	if msg.err != nil {
		c.err = apiErrText(msg.err)
		if msg.peer == m.open {
			m.refreshConv(false)
		}
		return []tea.Cmd{m.setNotice("cannot load history: "+c.err, true)}
	}
	c.err = ""
	if msg.before == "" {
		c.mergeNewest(msg.msgs)
		c.loaded = true
	} else {
		if len(c.msgs) == 0 || c.msgs[0].ID != msg.before {
			return nil // the conversation was reloaded meanwhile
		}
		c.prependOlder(msg.msgs)
		if len(msg.msgs) < pageSize {
			c.start = true
		}
	}
	if msg.peer != m.open {
		return nil
	}
	m.refreshConv(msg.before != "")
	var cmds []tea.Cmd
	// Fill the screen: a short first page leaves room for older ones.
	if !c.start && len(c.msgs) > 0 && m.convLen <= m.vp.Height {
		cmds = append(cmds, m.loadPage(c, c.msgs[0].ID))
	}
	cmds = append(cmds, m.maybeMarkRead())
	return cmds
}

func labelOf(c control.Contact) string {
	if c.Name != "" {
		return oneLine(c.Name)
	}
	return c.PeerID
}

// apiErrText is an error as one line for the footer.
func apiErrText(err error) string {
	if errors.Is(err, control.ErrNoDaemon) {
		return "the natter daemon is not running (start it: natter daemon)"
	}
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}
