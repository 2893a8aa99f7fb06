package tui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/natterim/natter/node/control"
)

// File transfers in the conversation. The daemon tells the UI about every
// transfer through file events (state changes, and progress at most twice
// a second); on every hello the UI also loads GET /v1/files, so a
// restarted UI shows the transfers in flight. A conversation shows its
// contact's transfers below the messages: those in flight, and those that
// ended less than finishedFor ago. The history keeps every offer as a
// message of kind file, its state kept current by the same events.
const (
	// finishedFor is how long a transfer that ended stays below the
	// conversation.
	finishedFor = time.Minute
	// maxShownTransfers bounds the transfers shown below a conversation
	// (the newest); a line says how many more there are.
	maxShownTransfers = 4
	// offerTimeout bounds POST /v1/contacts/{c}/files: the daemon hashes
	// the whole file before it answers.
	offerTimeout = 10 * time.Minute
)

// transfer is a file transfer the UI follows: one in flight, or one that
// ended less than finishedFor ago.
type transfer struct {
	control.Transfer
	seq     int       // order of arrival, for offers made at the same time
	gen     int       // Model.xferGen when it last changed
	endedAt time.Time // when it reached a final state; zero while it runs
}

// transferChange is what applying a transfer's new state changed.
type transferChange struct {
	waiting bool    // an incoming offer now waits for the user
	ended   bool    // it reached a final state
	cmd     tea.Cmd // removes it after finishedFor
}

// filesMsg is the answer to GET /v1/files; gen is Model.xferGen when it
// was asked.
type filesMsg struct {
	ts  []control.Transfer
	gen int
	err error
}

// fileMsg is the answer to a /file offer.
type fileMsg struct {
	peer, path string
	t          control.Transfer
	err        error
}

// fileActionMsg is the answer to /accept, /reject or /cancel of a file.
type fileActionMsg struct {
	action, name, who string
	t                 control.Transfer
	err               error
}

// transferGoneTick removes a transfer that ended finishedFor ago.
type transferGoneTick struct{ id string }

// waitsForUser reports whether t is an offer to us that waits for an
// answer (the daemon accepts small ones by itself: they never wait).
func waitsForUser(t control.Transfer) bool {
	return t.Direction == "in" && t.State == control.TransferOffered
}

// checkFile resolves a /file argument (~ is the home directory) to an
// absolute path and checks it is a regular file this user can read: the
// daemon reads it, so a mistake is best caught here, with a clear word.
func checkFile(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("/file: %w", err)
		}
		p = filepath.Join(home, p[1:])
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("/file: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("/file: no such file %s", abs)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("/file: %s is not a regular file", abs)
	}
	f, err := os.Open(abs)
	if err != nil {
		return "", fmt.Errorf("/file: cannot read %s: %w", abs, err)
	}
	f.Close()
	return abs, nil
}

// baseName is the file name shown for a path.
func baseName(p string) string { return filepath.Base(p) }

// ---- state ----

// applyTransfer records a transfer's new state. live is true for what
// just happened (an event, an answer to this UI); false for a load,
// where a transfer that ended unseen is left to the history.
func (m *Model) applyTransfer(nt control.Transfer, live bool) transferChange {
	var ch transferChange
	if nt.ID == "" {
		return ch
	}
	t := m.xfers[nt.ID]
	switch {
	case t == nil && control.TransferFinal(nt.State) && !live:
		m.updateFileMessage(nt)
		return ch // long over: its history line says how it ended
	case t == nil && control.TransferFinal(m.fileMessageState(nt)) && !control.TransferFinal(nt.State):
		return ch // a progress report that crossed the end (ends are final)
	case t == nil:
		m.xferSeq++
		t = &transfer{seq: m.xferSeq}
		m.xfers[nt.ID] = t
	case control.TransferFinal(t.State) && !control.TransferFinal(nt.State):
		return ch
	}
	m.updateFileMessage(nt)
	prev := t.Transfer
	m.xferGen++
	t.Transfer, t.gen = nt, m.xferGen
	if waitsForUser(nt) && !waitsForUser(prev) { // prev is zero for a new one
		ch.waiting = true
	}
	if control.TransferFinal(nt.State) && !control.TransferFinal(prev.State) {
		ch.ended = true
		t.endedAt = m.now()
		ch.cmd = m.after(finishedFor, transferGoneTick{id: nt.ID})
	}
	return ch
}

// fileMessageState is the file state of t's history message, if it is
// loaded.
func (m *Model) fileMessageState(t control.Transfer) string {
	if c := m.convs[t.PeerID]; c != nil {
		if i, ok := c.index[t.ID]; ok && c.msgs[i].File != nil {
			return c.msgs[i].File.State
		}
	}
	return ""
}

// updateFileMessage keeps the file state of t's history message (the
// offer has the transfer's id) current.
func (m *Model) updateFileMessage(t control.Transfer) {
	c := m.convs[t.PeerID]
	if c == nil {
		return
	}
	i, ok := c.index[t.ID]
	if !ok {
		return
	}
	c.msgs[i].File = fileRefIn(c.msgs[i].File, t)
}

// fileRefIn returns a copy of f (made from t if f is nil) in t's state: a
// copy, since a message may share its FileRef with an event or a page.
func fileRefIn(f *control.FileRef, t control.Transfer) *control.FileRef {
	nf := control.FileRef{Name: t.Name, Size: t.Size, MediaType: t.MediaType, SHA256: t.SHA256}
	if f != nil {
		nf = *f
	}
	nf.State = t.State
	return &nf
}

// onTransfer acts on a transfer that changed: a file event, or the answer
// to an offer made here.
func (m *Model) onTransfer(nt control.Transfer) []tea.Cmd {
	ch := m.applyTransfer(nt, true)
	cmds := []tea.Cmd{ch.cmd}
	switch {
	case ch.waiting:
		cmds = append(cmds, m.setNotice(m.offerNotice(nt), false))
	case ch.ended:
		text, isErr := m.endNotice(nt)
		cmds = append(cmds, m.setNotice(text, isErr))
	}
	if nt.PeerID == m.open {
		m.refreshConv(false)
	}
	return cmds
}

func (m *Model) loadFiles() tea.Cmd {
	gen := m.xferGen
	return m.call(func(ctx context.Context) tea.Msg {
		ts, err := m.api.Files(ctx)
		return filesMsg{ts: ts, gen: gen, err: err}
	})
}

// onFiles merges a load of every transfer. What changed through events
// after the load was asked is newer than the load, and stays.
func (m *Model) onFiles(msg filesMsg) []tea.Cmd {
	if errors.Is(msg.err, ErrFilesUnavailable) {
		return nil // an older daemon: no transfers to show
	}
	if msg.err != nil {
		return []tea.Cmd{m.setNotice("cannot load file transfers: "+apiErrText(msg.err), true)}
	}
	var cmds []tea.Cmd
	var waiting []control.Transfer
	seen := make(map[string]bool, len(msg.ts))
	for _, nt := range msg.ts {
		seen[nt.ID] = true
		if t := m.xfers[nt.ID]; t != nil && t.gen > msg.gen {
			continue
		}
		ch := m.applyTransfer(nt, false)
		cmds = append(cmds, ch.cmd)
		if ch.waiting {
			waiting = append(waiting, nt)
		}
	}
	for id, t := range m.xfers {
		if !seen[id] && t.gen <= msg.gen {
			delete(m.xfers, id) // the daemon no longer has it
		}
	}
	switch len(waiting) {
	case 0:
	case 1:
		cmds = append(cmds, m.setNotice(m.offerNotice(waiting[0]), false))
	default:
		cmds = append(cmds, m.setNotice(fmt.Sprintf("%d files offered to you wait for an answer (⇩ in the list): /accept or /reject in the conversation", len(waiting)), false))
	}
	m.refreshConv(false)
	return cmds
}

// onTransferGone removes a transfer that ended finishedFor ago.
func (m *Model) onTransferGone(id string) []tea.Cmd {
	t := m.xfers[id]
	if t == nil || t.endedAt.IsZero() {
		return nil
	}
	if left := finishedFor - m.now().Sub(t.endedAt); left > 0 {
		return []tea.Cmd{m.after(left, transferGoneTick{id: id})}
	}
	delete(m.xfers, id)
	if t.PeerID == m.open {
		m.refreshConv(false)
	}
	return nil
}

// peerTransfers returns peer's transfers, oldest first.
func (m *Model) peerTransfers(peer string) []*transfer {
	var ts []*transfer
	for _, t := range m.xfers {
		if t.PeerID == peer {
			ts = append(ts, t)
		}
	}
	slices.SortFunc(ts, func(a, b *transfer) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
	return ts
}

// waitingOffer is peer's newest offer that waits for an answer.
func (m *Model) waitingOffer(peer string) *transfer {
	ts := m.peerTransfers(peer)
	for i := len(ts) - 1; i >= 0; i-- {
		if waitsForUser(ts[i].Transfer) {
			return ts[i]
		}
	}
	return nil
}

// unfinished is the newest transfer with peer that is not over, whose
// name starts with name (any, if name is empty; case ignored).
func (m *Model) unfinished(peer, name string) *transfer {
	ts := m.peerTransfers(peer)
	for i := len(ts) - 1; i >= 0; i-- {
		if !control.TransferFinal(ts[i].State) && strings.HasPrefix(strings.ToLower(ts[i].Name), strings.ToLower(name)) {
			return ts[i]
		}
	}
	return nil
}

// waitingByPeer counts the offers waiting for an answer, per peer.
func (m *Model) waitingByPeer() map[string]int {
	n := map[string]int{}
	for _, t := range m.xfers {
		if waitsForUser(t.Transfer) {
			n[t.PeerID]++
		}
	}
	return n
}

// fileAction runs /accept, /reject or /cancel on a transfer.
func (m *Model) fileAction(t *transfer, action string) tea.Cmd {
	id, name, who := t.ID, t.Name, m.peerLabel(t.PeerID, t.Contact)
	return m.call(func(ctx context.Context) tea.Msg {
		nt, err := m.api.FileAction(ctx, id, action)
		return fileActionMsg{action: action, name: name, who: who, t: nt, err: err}
	})
}

func (m *Model) onFileAction(msg fileActionMsg) []tea.Cmd {
	name := oneLine(msg.name)
	if msg.err != nil {
		return []tea.Cmd{m.setNotice(fmt.Sprintf("cannot %s %s: %s", msg.action, name, apiErrText(msg.err)), true)}
	}
	cmds := []tea.Cmd{m.applyTransfer(msg.t, true).cmd}
	if msg.t.PeerID == m.open {
		m.refreshConv(false)
	}
	var text string
	switch msg.action {
	case "accept":
		text = "accepted " + name + " from " + msg.who + ": it downloads now"
	case "reject":
		text = "rejected " + name + " (" + msg.who + " is told)"
	default:
		text = "cancelled " + name + " (" + msg.who + " is told)"
	}
	return append(cmds, m.setNotice(text, false))
}

// offerFile posts a /file offer. The daemon hashes the file first, which
// takes a while for a big one.
func (m *Model) offerFile(peer, path string) tea.Cmd {
	parent := m.ctx
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(parent, offerTimeout)
		defer cancel()
		t, err := m.api.OfferFile(ctx, peer, path)
		return fileMsg{peer: peer, path: path, t: t, err: err}
	}
}

func (m *Model) onFileOffered(msg fileMsg) []tea.Cmd {
	if msg.err != nil {
		return []tea.Cmd{m.setNotice(apiErrText(msg.err), true)}
	}
	t := msg.t
	if t.PeerID == "" {
		t.PeerID = msg.peer
	}
	if t.Name == "" {
		t.Name = baseName(msg.path)
	}
	if t.Direction == "" {
		t.Direction = "out"
	}
	cmds := m.onTransfer(t)
	return append(cmds, m.setNotice(fmt.Sprintf("offered %s (%s) to %s", oneLine(t.Name), humanSize(t.Size), m.peerLabel(t.PeerID, t.Contact)), false))
}

// peerLabel names a peer for a notice: its contact's label, else the
// name the daemon gave, else its peer ID.
func (m *Model) peerLabel(peer, name string) string {
	if c := m.byID[peer]; c != nil {
		return c.label()
	}
	if name != "" {
		return oneLine(name)
	}
	return oneLine(peer)
}

func (m *Model) offerNotice(t control.Transfer) string {
	s := fmt.Sprintf("%s offers you %s (%s): /accept or /reject", m.peerLabel(t.PeerID, t.Contact), oneLine(t.Name), humanSize(t.Size))
	if t.PeerID != m.open {
		s += " in their conversation"
	}
	if t.Note != "" {
		s += " — “" + oneLine(t.Note) + "”"
	}
	return s
}

// endNotice says how a transfer ended.
func (m *Model) endNotice(t control.Transfer) (string, bool) {
	name, who := oneLine(t.Name), m.peerLabel(t.PeerID, t.Contact)
	why := func(s string) string {
		if t.Reason != "" {
			return s + ": " + oneLine(t.Reason)
		}
		return s
	}
	switch t.State {
	case control.TransferDone:
		if t.Direction == "in" {
			return "received " + name + " from " + who + ": saved to " + oneLine(t.FinalPath), false
		}
		return who + " received " + name, false
	case control.TransferFailed:
		return why(name + " failed"), true
	case control.TransferRejected:
		return why(name + " was rejected"), false
	case control.TransferCancelled:
		return why(name + " was cancelled"), false
	}
	return name + ": " + sanitize(t.State), false
}

// ---- rendering ----

// transferBlock renders peer's transfers for the bottom of its
// conversation: the newest maxShownTransfers, and how many more there are.
func (m *Model) transferBlock(peer string, w int) []string {
	ts := m.peerTransfers(peer)
	if len(ts) == 0 {
		return nil
	}
	label := " file transfers "
	side := max((w-width(label))/2, 0)
	out := []string{m.st.dim.Render(fit(strings.Repeat("┄", side)+label+strings.Repeat("┄", max(w-side-width(label), 0)), w))}
	if n := len(ts) - maxShownTransfers; n > 0 {
		s := "s"
		if n == 1 {
			s = ""
		}
		out = append(out, m.st.dim.Render(fit(fmt.Sprintf("… and %d more transfer%s (natter files lists them)", n, s), w)))
		ts = ts[n:]
	}
	for _, t := range ts {
		out = append(out, m.transferLines(t.Transfer, w)...)
	}
	return out
}

// transferLines shows one transfer:
//
//	⇪ report.pdf (2.9 MiB) — transferring
//	[██████████░░░░░░░░░░░░░░░░░░░░░░░░░░░]  27%
//	800.0 KiB of 2.9 MiB · 1.2 MiB/s · ETA 0:02 · direct
func (m *Model) transferLines(t control.Transfer, w int) []string {
	arrow, state := "⇪", sanitize(t.State)
	if t.Direction == "in" {
		arrow = "⇩"
		if t.State == control.TransferOffered {
			state = "offered to you"
		}
	}
	head := fmt.Sprintf("%s %s (%s) — %s", arrow, oneLine(t.Name), humanSize(t.Size), state)
	pct := percent(t)
	done, size := t.BytesDone, t.Size
	if pct == 100 {
		done, size = 1, 1
	}
	out := []string{m.st.bold.Render(fit(head, w))}
	// A bar only where data moves or moved.
	switch {
	case t.State == control.TransferOffered:
	case control.TransferFinal(t.State) && t.State != control.TransferDone && t.BytesDone == 0:
	default:
		out = append(out, fit(bar(done, size, w-5)+fmt.Sprintf("%4d%%", pct), w))
	}
	detail := wrap(transferDetail(t), w)
	if len(detail) > 2 {
		detail = detail[:2]
		detail[1] = ansi.Truncate(detail[1], max(w-1, 0), "") + "…"
	}
	for _, l := range detail {
		out = append(out, m.st.system.Render(fit(l, w)))
	}
	return out
}

// transferDetail is the line under a transfer's bar: amounts, rate and
// ETA while it moves; why it waits, stopped or failed; where a received
// file was saved.
func transferDetail(t control.Transfer) string {
	amount := humanSize(t.BytesDone) + " of " + humanSize(t.Size)
	var parts []string
	switch {
	case t.State == control.TransferTransferring:
		parts = append(parts, amount)
		if t.Rate > 0 {
			parts = append(parts, humanSize(int64(t.Rate))+"/s")
			if left := t.Size - t.BytesDone; left > 0 {
				parts = append(parts, "ETA "+fmtETA(time.Duration(float64(left)/t.Rate*float64(time.Second))))
			}
		}
		if t.Path != "" {
			parts = append(parts, oneLine(t.Path))
		}
	case t.State == control.TransferDone && t.Direction == "in":
		parts = append(parts, "saved to "+oneLine(t.FinalPath))
	case t.State == control.TransferDone:
		parts = append(parts, "sent")
		if t.Path != "" {
			parts = append(parts, oneLine(t.Path))
		}
	case waitsForUser(t):
		// The daemon's reason names the CLI; here it is a command.
		parts = append(parts, "/accept to receive it, /reject to decline")
	default:
		if t.BytesDone > 0 && t.State != control.TransferDone {
			parts = append(parts, amount)
		}
		if t.Reason != "" {
			parts = append(parts, oneLine(t.Reason))
		}
	}
	if len(parts) == 0 {
		return sanitize(t.State)
	}
	return strings.Join(parts, " · ")
}

// percent is how much of t is done, 0 to 100.
func percent(t control.Transfer) int {
	switch {
	case t.State == control.TransferDone:
		return 100
	case t.Size <= 0:
		return 0
	}
	return int(min(max(t.BytesDone, 0), t.Size) * 100 / t.Size)
}

// fmtETA formats a remaining time as m:ss or h:mm:ss.
func fmtETA(d time.Duration) string {
	d = min(d.Round(time.Second), 99*time.Hour)
	h, mi, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, mi, s)
	}
	return fmt.Sprintf("%d:%02d", mi, s)
}
