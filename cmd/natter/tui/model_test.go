package tui

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
)

// callsLike returns the recorded calls starting with prefix (and forgets
// all calls).
func (f *fakeAPI) callsLike(prefix string) []string {
	var out []string
	for _, c := range f.Calls() {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func TestContactList(t *testing.T) {
	api := newFakeAPI()
	h := newHarness(t, api, "")
	v := h.view()

	// No conversation open: the list has the focus and the cursor.
	require.Contains(t, v, "Contacts (4) · 1 req")
	require.Contains(t, v, "No conversation open")
	for _, want := range []struct{ name, line1, line2 string }{
		{"erin", "? erin", "wants to be friends"},
		{"bob", "● bob", "online · direct"},
		{"carol", "◐ carol", "away · relayed"},
		{"dave", "○ dave", "offline"},
		{"frank", "… frank", "request sent"},
	} {
		l := h.line(want.line1)
		require.NotEmpty(t, l, "no list line %q in\n%s", want.line1, v)
		lines := strings.Split(v, "\n")
		i := slices.Index(lines, l)
		require.Contains(t, lines[i+1], want.line2, "%s's second line", want.name)
	}
	require.Contains(t, h.line("● bob"), " 3 ", "bob's unread count")
	require.NotEmpty(t, h.line("3 unread"), "the title's total")
	require.Contains(t, h.line("away · relayed"), "away · relayed")
	// Requests first, then who is around, then offline, then our requests.
	order := []string{"? erin", "● bob", "◐ carol", "○ dave", "… frank"}
	last := -1
	for _, s := range order {
		i := strings.Index(v, s)
		require.Greater(t, i, last, "%s out of order in\n%s", s, v)
		last = i
	}
	require.Contains(t, h.line("? erin"), "▸", "the cursor starts on the first contact")

	// Link and presence events update the list in place.
	h.send(eventMsg{control.Event{Type: control.EventLink, PeerID: carolID, Connected: true, Path: control.PathDirect}})
	h.send(eventMsg{control.Event{Type: control.EventPresence, PeerID: carolID, Presence: control.PresenceBusy, StatusMessage: "in a meeting"}})
	require.NotEmpty(t, h.line("busy · direct · in a"), h.view())
	require.NotEmpty(t, h.line("⊘ carol"))
	h.send(eventMsg{control.Event{Type: control.EventLink, PeerID: bobID, Connected: false}})
	h.send(eventMsg{control.Event{Type: control.EventPresence, PeerID: bobID, Presence: control.PresenceOffline}})
	require.NotEmpty(t, h.line("○ bob"), h.view())
	require.NotContains(t, h.view(), "online · direct")

	// Another client read bob's messages: no unread left.
	h.send(eventMsg{control.Event{Type: control.EventRead, PeerID: bobID}})
	require.NotContains(t, h.line("○ bob"), " 3 ", "bob's unread count after a read event")
	require.Empty(t, h.line("3 unread"), "the title's total")
}

func TestSendAndReceive(t *testing.T) {
	api := newFakeAPI()
	api.seed(bobID, 4)
	h := newHarness(t, api, bobID)
	calls := api.Calls()
	require.Contains(t, calls, fmt.Sprintf("history %s before= limit=%d", bobID, pageSize))
	require.Contains(t, calls, "read "+bobID, "the open conversation is visible: marked read")
	require.NotContains(t, h.line("● bob"), " 3 ", "unread cleared")

	v := h.view()
	require.Contains(t, v, "● bob · online · direct")
	require.Contains(t, v, "10:00 bob  msg 000")
	require.Contains(t, v, "10:01 me   msg 001")
	require.Contains(t, v, "Mon 30 Nov 2026")
	require.Contains(t, v, "the beginning of your conversation with bob")

	// A line + Enter sends it.
	h.typeText("hello bob")
	require.Contains(t, h.view(), "> hello bob")
	h.key(tea.KeyEnter)
	require.Equal(t, []string{fmt.Sprintf("send %s  %q", bobID, "hello bob")}, api.callsLike("send"))
	require.Contains(t, h.view(), "> type a message", "the input is cleared")
	require.Contains(t, h.line("hello bob"), "◷ queued")

	// The daemon's message event for it changes nothing (same id).
	sent := api.history[bobID][len(api.history[bobID])-1]
	h.send(eventMsg{control.Event{Type: control.EventMessage, PeerID: bobID, Message: &sent}})
	require.Equal(t, 1, strings.Count(h.view(), "hello bob"))

	// Status events move the mark, never backwards; unknown states show
	// as text.
	for _, tc := range []struct{ status, want string }{
		{control.StatusSent, "✓ sent"},
		{"stored", "stored"},
		{control.StatusQueued, "stored"}, // an old event arriving late
		{control.StatusDelivered, "✓✓ delivered"},
		{control.StatusRead, "✓✓ read"},
		{control.StatusDelivered, "✓✓ read"},
	} {
		h.send(eventMsg{control.Event{Type: control.EventStatus, PeerID: bobID, IDs: []string{sent.ID}, Status: tc.status, Path: control.PathDirect}})
		require.Contains(t, h.line("hello bob"), tc.want, "after %s", tc.status)
	}
	sent2 := control.Message{ID: "x-failed", PeerID: bobID, Direction: "out", Kind: control.KindText, Text: "doomed", SentAt: at(3000), Status: control.StatusQueued}
	h.send(eventMsg{control.Event{Type: control.EventMessage, PeerID: bobID, Message: &sent2}})
	h.send(eventMsg{control.Event{Type: control.EventStatus, PeerID: bobID, IDs: []string{"x-failed"}, Status: "failed"}})
	require.Contains(t, h.line("doomed"), "✗ failed")

	// An incoming message appears, ends bob's typing, and is marked read
	// at once since it is on screen.
	yes := true
	h.send(eventMsg{control.Event{Type: control.EventTyping, PeerID: bobID, Typing: &yes}})
	require.Contains(t, h.view(), "bob is typing…")
	in := control.Message{ID: "in-1", PeerID: bobID, Direction: "in", Kind: control.KindText, Text: "hi alice 👋", SentAt: at(3001), Status: control.StatusDelivered}
	api.Calls()
	h.send(eventMsg{control.Event{Type: control.EventMessage, PeerID: bobID, Message: &in}})
	require.Contains(t, h.view(), "hi alice 👋")
	require.NotContains(t, h.view(), "bob is typing")
	require.Equal(t, []string{"read " + bobID}, api.callsLike("read"))

	// From another contact: counted unread, not marked read.
	in2 := control.Message{ID: "in-2", PeerID: carolID, Direction: "in", Kind: control.KindText, Text: "psst", SentAt: at(3002), Status: control.StatusDelivered}
	h.send(eventMsg{control.Event{Type: control.EventMessage, PeerID: carolID, Message: &in2}})
	require.Empty(t, api.callsLike("read"))
	require.Contains(t, h.line("◐ carol"), " 1 ")
	require.NotContains(t, h.view(), "psst")

	// A send that fails gives the text back.
	api.sendErr = &control.APIError{Code: 409, Message: "bob is blocked"}
	h.typeText("lost?")
	h.key(tea.KeyEnter)
	require.Contains(t, h.view(), "> lost?")
	require.Contains(t, h.view(), "bob is blocked")
}

func TestNudge(t *testing.T) {
	api := newFakeAPI()
	api.seed(bobID, 2)
	h := newHarness(t, api, bobID)
	still := h.view()

	nudge := control.Message{ID: "n-1", PeerID: bobID, Direction: "in", Kind: control.KindNudge, SentAt: at(3000), Status: control.StatusDelivered}
	h.send(eventMsg{control.Event{Type: control.EventMessage, PeerID: bobID, Name: "bob", Message: &nudge}})
	h.send(eventMsg{control.Event{Type: control.EventNudge, PeerID: bobID, Name: "bob", Message: &nudge}})
	require.Equal(t, "\a", h.bell.String(), "the bell rings once")

	// The first frame shifts the whole UI and flashes the conversation.
	v := h.view()
	lines := strings.Split(v, "\n")
	for i, l := range lines {
		require.True(t, strings.HasPrefix(l, strings.Repeat(" ", shakeOffsets[0])), "line %d not shaken: %q", i, l)
	}
	require.Contains(t, v, "‼ NUDGE ‼")
	require.Contains(t, v, "*** bob nudged you! ***")
	require.Contains(t, v, "*** nudged you! ***", "the nudge is in the history too")

	frames := 0
	for h.fire(func(m tea.Msg) bool { _, ok := m.(shakeTick); return ok }) > 0 {
		frames++
		require.Less(t, frames, 100)
	}
	require.Equal(t, len(shakeOffsets), frames)
	v = h.view()
	require.NotContains(t, v, "NUDGE")
	require.Equal(t, strings.Split(still, "\n")[0], strings.Split(v, "\n")[0], "back in place")

	// Another nudge right away shakes nothing and rings nothing.
	h.send(eventMsg{control.Event{Type: control.EventNudge, PeerID: bobID, Name: "bob", Message: &nudge}})
	require.Equal(t, "\a", h.bell.String())
	require.NotContains(t, h.view(), "NUDGE")

	// /nudge sends one; the sender sees it in the history.
	h.typeText("/nudge")
	h.key(tea.KeyEnter)
	require.Equal(t, []string{fmt.Sprintf("send %s nudge %q", bobID, "")}, api.callsLike("send"))
	require.Contains(t, h.view(), "*** you nudged bob ***")
}

func TestResize(t *testing.T) {
	api := newFakeAPI()
	api.seed(bobID, 30)
	long := strings.Repeat("a long message with 全角 wide characters and emoji 🎉 ", 12)
	api.history[bobID] = append(api.history[bobID], control.Message{ID: "long", PeerID: bobID, Direction: "in", Kind: control.KindText,
		Text: long + "\nsecond line\tafter a tab \x1b[31mred?\x1b[0m", SentAt: at(40), Status: control.StatusRead})
	h := newHarness(t, api, bobID)
	for _, size := range [][2]int{{80, 24}, {200, 60}, {64, 16}, {50, 14}, {40, 10}, {120, 40}, {80, 24}} {
		h.send(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		v := h.view() // checks every line fits
		require.Contains(t, v, "second line", "%dx%d", size[0], size[1])
		require.Contains(t, v, "> type a message", "%dx%d", size[0], size[1])
		require.NotContains(t, v, "\x1b", "a peer's escape sequence reached the terminal")
		require.Contains(t, v, `\x1b[31mred?`, "shown escaped")
		if size[0] >= 64 {
			require.Contains(t, v, "Contacts (4)", "%dx%d: the list is shown", size[0], size[1])
		} else {
			require.NotContains(t, v, "Contacts (4)", "%dx%d: narrow, the conversation alone", size[0], size[1])
		}
	}
	// Narrow: Tab shows the list instead of the conversation.
	h.send(tea.WindowSizeMsg{Width: 50, Height: 14})
	h.key(tea.KeyTab)
	require.Contains(t, h.view(), "Contacts (4)")
	require.NotContains(t, h.view(), "second line")
	h.key(tea.KeyTab)
	require.Contains(t, h.view(), "second line")

	// Too small: says so instead of drawing garbage.
	h.send(tea.WindowSizeMsg{Width: 30, Height: 8})
	require.Contains(t, strings.ReplaceAll(h.view(), "\n", " "), "at least 40x10")
}

func TestParseCommand(t *testing.T) {
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		line string
		want command
		err  string
	}{
		{line: "hello", want: command{kind: cmdText, text: "hello"}},
		{line: "  indented /not a command", want: command{kind: cmdText, text: "  indented /not a command"}},
		{line: "//nudge is a command", want: command{kind: cmdText, text: "/nudge is a command"}},
		{line: "/ hello", want: command{kind: cmdText, text: "/ hello"}},
		{line: "/", want: command{kind: cmdText, text: "/"}},
		{line: "/:)", want: command{kind: cmdText, text: "/:)"}},
		{line: "/help", want: command{kind: cmdHelp}},
		{line: "/HELP", want: command{kind: cmdHelp}},
		{line: "/?", want: command{kind: cmdText, text: "/?"}},
		{line: "/nudge", want: command{kind: cmdNudge}},
		{line: "/nudge bob", err: "no arguments"},
		{line: "/accept", want: command{kind: cmdAccept}},
		{line: "/accept  Erin W. ", want: command{kind: cmdAccept, text: "Erin W."}},
		{line: "/reject", want: command{kind: cmdReject}},
		{line: "/reject now", err: "no arguments"},
		{line: "/search", err: "usage: /search"},
		{line: "/search hello wor*", want: command{kind: cmdSearch, text: "hello wor*"}},
		{line: "/status", err: "usage: /status"},
		{line: "/status away", want: command{kind: cmdStatus, state: "away"}},
		{line: "/status BUSY in a meeting", want: command{kind: cmdStatus, state: "busy", message: str("in a meeting")}},
		{line: "/status online -", want: command{kind: cmdStatus, state: "online", message: str("")}},
		{line: "/status invisible", want: command{kind: cmdStatus, state: "invisible"}},
		{line: "/status sleeping", err: `"sleeping" is not online, away, busy or invisible`},
		{line: "/add", err: "usage: /add"},
		{line: "/add natter:12D3KooWabc?n=bob", want: command{kind: cmdAdd, text: "natter:12D3KooWabc?n=bob"}},
		{line: "/add 12D3KooWabc it's me, carol", want: command{kind: cmdAdd, text: "12D3KooWabc", note: "it's me, carol"}},
		{line: "/file", err: "usage: /file PATH"},
		{line: "/file ~/My Documents/report.pdf", want: command{kind: cmdFile, text: "~/My Documents/report.pdf"}},
		{line: `/file "a b.txt"`, want: command{kind: cmdFile, text: "a b.txt"}},
		{line: "/cancel", want: command{kind: cmdCancel}},
		{line: "/cancel rep", want: command{kind: cmdCancel, text: "rep"}},
		{line: `/cancel "my file"`, want: command{kind: cmdCancel, text: "my file"}},
		{line: "/quit", want: command{kind: cmdQuit}},
		{line: "/q", want: command{kind: cmdQuit}},
		{line: "/frobnicate x", err: "unknown command /frobnicate"},
		{line: "/accept\tErin", want: command{kind: cmdAccept, text: "Erin"}},
		{line: "/émoji", err: "unknown command /émoji"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			got, err := parseCommand(tc.line)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestFriendRequests(t *testing.T) {
	api := newFakeAPI()
	h := newHarness(t, api, erinID)
	v := h.view()
	require.Contains(t, v, "? erin · asks to be your contact")
	require.Contains(t, v, "erin asked to be your contact.")
	require.Contains(t, v, "“met you at the meetup”")

	// Chatting is refused until accepted, with the way out.
	h.typeText("hi")
	h.key(tea.KeyEnter)
	require.Empty(t, api.callsLike("send"))
	require.Contains(t, h.view(), "/accept first")

	h.send(tea.KeyMsg{Type: tea.KeyCtrlU}) // clear the line
	h.typeText("/accept")
	h.key(tea.KeyEnter)
	require.Equal(t, []string{fmt.Sprintf("accept %s %q", erinID, "")}, api.callsLike("accept"))
	v = h.view()
	require.Contains(t, v, "accepted erin")
	require.Contains(t, v, "○ erin · offline")
	require.Contains(t, v, "no messages yet with erin")

	// From the list: a new request arrives (a contact event), r asks,
	// y rejects.
	api.mu.Lock()
	api.contacts = append(api.contacts, control.Contact{PeerID: "12D3KooWGregGreg", Name: "greg", State: control.StatePendingIn})
	api.status.Contacts = append(api.status.Contacts, control.ContactStatus{PeerID: "12D3KooWGregGreg", Name: "greg", State: control.StatePendingIn, Presence: control.PresenceOffline})
	api.mu.Unlock()
	h.send(eventMsg{control.Event{Type: control.EventContact, PeerID: "12D3KooWGregGreg", Name: "greg", State: control.StatePendingIn, Note: "hello"}})
	require.Contains(t, h.view(), "greg asks to be your contact")
	require.NotEmpty(t, h.line("? greg"))
	h.key(tea.KeyTab)
	h.send(tea.KeyMsg{Type: tea.KeyHome})
	require.Contains(t, h.line("greg"), "▸")
	h.typeText("r")
	require.Contains(t, h.view(), "reject greg's friend request? y/n")
	h.typeText("y")
	require.Equal(t, []string{"reject 12D3KooWGregGreg"}, api.callsLike("reject"))
	require.Empty(t, h.line("? greg"))

	// And a: accepts at once.
	api.mu.Lock()
	api.contacts = append(api.contacts, control.Contact{PeerID: "12D3KooWHalHal", Name: "hal", State: control.StatePendingIn})
	api.status.Contacts = append(api.status.Contacts, control.ContactStatus{PeerID: "12D3KooWHalHal", Name: "hal", State: control.StatePendingIn})
	api.mu.Unlock()
	h.send(eventMsg{control.Event{Type: control.EventContact, PeerID: "12D3KooWHalHal", Name: "hal", State: control.StatePendingIn}})
	h.send(tea.KeyMsg{Type: tea.KeyHome})
	h.typeText("a")
	require.Equal(t, []string{fmt.Sprintf("accept %s %q", "12D3KooWHalHal", "")}, api.callsLike("accept"))
	require.Contains(t, h.view(), "accepted hal")

	// A request taken back leaves the list, and says so.
	api.mu.Lock()
	api.contacts = append(api.contacts, control.Contact{PeerID: "12D3KooWIdaIda", Name: "ida", State: control.StatePendingIn})
	api.status.Contacts = append(api.status.Contacts, control.ContactStatus{PeerID: "12D3KooWIdaIda", Name: "ida", State: control.StatePendingIn})
	api.mu.Unlock()
	h.send(eventMsg{control.Event{Type: control.EventContact, PeerID: "12D3KooWIdaIda", Name: "ida", State: control.StatePendingIn}})
	require.NotEmpty(t, h.line("? ida"))
	api.mu.Lock()
	api.contacts = api.contacts[:len(api.contacts)-1]
	api.status.Contacts = api.status.Contacts[:len(api.status.Contacts)-1]
	api.mu.Unlock()
	h.send(eventMsg{control.Event{Type: control.EventContact, PeerID: "12D3KooWIdaIda", Name: "ida", State: control.StateWithdrawn}})
	require.Contains(t, h.view(), "ida withdrew their friend request")
	require.Empty(t, h.line("? ida"))
}

func TestScrollback(t *testing.T) {
	api := newFakeAPI()
	api.seed(bobID, 2*pageSize+17)
	h := newHarness(t, api, bobID)
	require.Equal(t, []string{fmt.Sprintf("history %s before= limit=%d", bobID, pageSize)}, api.callsLike("history"))
	v := h.view()
	require.Contains(t, v, fmt.Sprintf("msg %03d", 2*pageSize+16), "the newest message")
	require.NotContains(t, v, "msg 000")

	// Page up to the top of the first page: the page before it loads.
	var befores []string
	for range 200 {
		h.key(tea.KeyPgUp)
		for _, c := range api.callsLike("history") {
			befores = append(befores, c[strings.Index(c, "before=")+len("before="):strings.Index(c, " limit")])
		}
		if strings.Contains(h.view(), "the beginning of your conversation") {
			break
		}
	}
	require.Equal(t, []string{"id-BobB-067", "id-BobB-017"}, befores, "each page asks for the one before its oldest message")
	v = h.view()
	require.Contains(t, v, "msg 000")
	require.Contains(t, v, "the beginning of your conversation")
	require.Contains(t, v, "scrolled back")

	// PgDn to the bottom: following again.
	for range 200 {
		h.key(tea.KeyPgDown)
		if h.m.follow {
			break
		}
	}
	require.Contains(t, h.view(), fmt.Sprintf("msg %03d", 2*pageSize+16))
	require.NotContains(t, h.view(), "scrolled back")

	// While scrolled up, a new message is not marked read: it is counted
	// below.
	h.key(tea.KeyPgUp)
	api.Calls()
	in := control.Message{ID: "late", PeerID: bobID, Direction: "in", Kind: control.KindText, Text: "are you there?", SentAt: at(3000)}
	h.send(eventMsg{control.Event{Type: control.EventMessage, PeerID: bobID, Message: &in}})
	require.Empty(t, api.callsLike("read"))
	require.Contains(t, h.view(), "↓ 1 new message below")
	h.send(tea.KeyMsg{Type: tea.KeyCtrlEnd})
	require.Contains(t, h.view(), "are you there?")
	require.Equal(t, []string{"read " + bobID}, api.callsLike("read"))
}

func TestTyping(t *testing.T) {
	api := newFakeAPI()
	h := newHarness(t, api, bobID)
	api.Calls()
	h.typeText("h")
	require.Equal(t, []string{"typing " + bobID + " true"}, api.callsLike("typing"))
	h.typeText("el")
	require.Empty(t, api.callsLike("typing"), "rate-limited")
	h.now = h.now.Add(typingRefresh)
	h.typeText("lo")
	require.Equal(t, []string{"typing " + bobID + " true"}, api.callsLike("typing"), "renewed")

	// Idle: the check finds a recent key and waits again; then stops.
	h.now = h.now.Add(typingIdle / 2)
	h.fire(func(m tea.Msg) bool { _, ok := m.(typingCheckTick); return ok })
	require.Empty(t, api.callsLike("typing"))
	h.now = h.now.Add(typingIdle)
	h.fire(func(m tea.Msg) bool { _, ok := m.(typingCheckTick); return ok })
	require.Equal(t, []string{"typing " + bobID + " false"}, api.callsLike("typing"))

	// Typing again, then emptying the line: stopped.
	h.typeText("!")
	require.Equal(t, []string{"typing " + bobID + " true"}, api.callsLike("typing"))
	for range 10 {
		h.key(tea.KeyBackspace)
	}
	require.Equal(t, []string{"typing " + bobID + " false"}, api.callsLike("typing"))

	// Slash commands are not typing.
	h.typeText("/search x")
	require.Empty(t, api.callsLike("typing"))
	h.send(tea.KeyMsg{Type: tea.KeyCtrlU})

	// Switching conversation tells the first one we stopped.
	h.typeText("hey")
	api.Calls()
	h.send(tea.KeyMsg{Type: tea.KeyDown, Alt: true})
	require.Equal(t, []string{"typing " + bobID + " false"}, api.callsLike("typing"))

	// Theirs: shown, renewed, and forgotten when it times out.
	yes := true
	h.send(eventMsg{control.Event{Type: control.EventTyping, PeerID: bobID, Typing: &yes}})
	require.Contains(t, h.line("● bob"), "✎")
	h.send(tea.KeyMsg{Type: tea.KeyUp, Alt: true})
	require.Contains(t, h.view(), "bob is typing…")
	h.now = h.now.Add(theirTypingFor)
	h.fire(func(m tea.Msg) bool { _, ok := m.(theirTypingTick); return ok })
	require.NotContains(t, h.view(), "bob is typing…")
}

func TestIdleAwayEnds(t *testing.T) {
	api := newFakeAPI()
	api.status.AutoAway = true
	h := newHarness(t, api, "")
	// Opening the chat is activity: the daemon is told, and our presence
	// shown again.
	require.Contains(t, api.Calls(), "activity")
	require.NotContains(t, h.view(), "away (idle)")
	require.Contains(t, h.view(), "alice ● online")

	// Keys are activity too, at most every activityEvery.
	h.typeText("w")
	require.Empty(t, api.callsLike("activity"), "just told")
	h.now = h.now.Add(activityEvery)
	h.typeText("x")
	require.Equal(t, []string{"activity"}, api.callsLike("activity"))
	h.typeText("y")
	require.Empty(t, api.callsLike("activity"))
	h.now = h.now.Add(activityEvery)
	h.typeText("z")
	require.Equal(t, []string{"activity"}, api.callsLike("activity"))

	// Our presence changed elsewhere (another client, the idle timer):
	// the title follows the self events.
	h.send(eventMsg{control.Event{Type: control.EventSelf, Presence: control.PresenceBusy, StatusMessage: "on a call"}})
	require.Contains(t, h.view(), "alice ⊘ busy — on a call")
	h.send(eventMsg{control.Event{Type: control.EventSelf, Presence: control.PresenceOnline, AutoAway: true}})
	require.Contains(t, h.view(), "away (idle)")
}

func TestReconnect(t *testing.T) {
	api := newFakeAPI()
	api.seed(bobID, 3)
	h := newHarness(t, api, bobID)
	require.Contains(t, h.view(), "● connected")
	h.send(streamDownMsg{err: control.ErrNoDaemon})
	require.Contains(t, h.view(), "the daemon is not running, reconnecting…")

	// While away: bob sent a message and went away; carol was removed.
	api.seed(bobID, 5) // adds msg 000..004 again with the same ids, and 003, 004
	api.mu.Lock()
	api.status.Contacts[0].Presence = control.PresenceAway
	api.status.Contacts = slices.Delete(api.status.Contacts, 1, 2)
	api.contacts = slices.Delete(api.contacts, 1, 2)
	api.mu.Unlock()
	api.Calls()
	h.send(eventMsg{control.Event{Type: control.EventHello, PeerID: selfID}})
	calls := api.Calls()
	require.Contains(t, calls, "status")
	require.Contains(t, calls, fmt.Sprintf("history %s before= limit=%d", bobID, pageSize))
	v := h.view()
	require.Contains(t, v, "● connected")
	require.Contains(t, v, "msg 004")
	require.Contains(t, v, "◐ bob")
	require.NotContains(t, v, "carol")
}

func TestCommands(t *testing.T) {
	api := newFakeAPI()
	api.results = []control.Message{{ID: "s1", PeerID: carolID, Contact: "carol", Direction: "in", Kind: control.KindText, Text: "the hello world", SentAt: at(5)}}
	h := newHarness(t, api, bobID)

	h.typeText("/search hello")
	h.key(tea.KeyEnter)
	require.Equal(t, []string{fmt.Sprintf("search %q %q %d", "hello", "", 200)}, api.callsLike("search"))
	v := h.view()
	require.Contains(t, v, "Search “hello”: 1 match")
	require.Contains(t, v, "2026-11-30 10:05 carol")
	require.Contains(t, v, "the hello world")
	h.key(tea.KeyEsc)
	require.NotContains(t, h.view(), "Search “hello”")

	h.typeText("/status busy in a meeting")
	h.key(tea.KeyEnter)
	require.Equal(t, []string{fmt.Sprintf("presence busy %q", "in a meeting")}, api.callsLike("presence"))
	require.Contains(t, h.view(), "alice ⊘ busy — in a meeting")

	// A multi-line message: Alt+Enter breaks the line.
	h.typeText("line one")
	h.send(tea.KeyMsg{Type: tea.KeyEnter, Alt: true})
	h.typeText("line two")
	h.key(tea.KeyEnter)
	require.Contains(t, api.callsLike("send"), fmt.Sprintf("send %s  %q", bobID, "line one\nline two"))
	require.Contains(t, h.view(), "line one")
	require.Contains(t, h.view(), "           line two")

	h.typeText("/add nobody")
	h.key(tea.KeyEnter)
	require.Contains(t, h.view(), "neither a peer ID nor an invite")
	require.Equal(t, []string{fmt.Sprintf("add nobody %q", "")}, api.callsLike("add"))
	h.send(tea.KeyMsg{Type: tea.KeyCtrlU})
	h.typeText("/add 12D3KooWNewNew hi, it's me")
	h.key(tea.KeyEnter)
	require.Equal(t, []string{fmt.Sprintf("add 12D3KooWNewNew %q", "hi, it's me")}, api.callsLike("add"))
	require.Contains(t, h.view(), "friend request sent to 12D3KooWNewNew")
	require.Contains(t, h.view(), "Waiting for 12D3Ko…NewNew to accept")

	h.typeText("/help")
	h.key(tea.KeyEnter)
	v = h.view()
	require.Contains(t, v, "/nudge")
	require.Contains(t, v, "Ctrl+C")
	h.key(tea.KeyEsc)

	h.typeText("/bogus")
	h.key(tea.KeyEnter)
	require.Contains(t, h.view(), "unknown command /bogus")
	h.send(tea.KeyMsg{Type: tea.KeyCtrlU})

	h.key(tea.KeyCtrlC)
	require.True(t, h.quit)
}
