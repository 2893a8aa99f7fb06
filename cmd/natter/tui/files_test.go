package tui

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
)

// xfer is a transfer with peer, created at at(i).
func xfer(id, peer, dir, name string, size int64, state string, i int) control.Transfer {
	return control.Transfer{ID: id, PeerID: peer, Direction: dir, Name: name, Size: size, State: state,
		SHA256: strings.Repeat("ab", 32), CreatedAt: at(i), UpdatedAt: at(i)}
}

// fileEvent is the daemon's file event for t.
func fileEvent(t control.Transfer) eventMsg {
	return eventMsg{control.Event{Type: control.EventFile, PeerID: t.PeerID, Name: t.Contact, Transfer: &t}}
}

// offerMessage is the history message of t's offer.
func offerMessage(t control.Transfer, note string) control.Message {
	status := control.StatusQueued
	if t.Direction == "in" {
		status = control.StatusDelivered
	}
	return control.Message{ID: t.ID, PeerID: t.PeerID, Direction: t.Direction, Kind: control.KindFile, Text: note,
		SentAt: t.CreatedAt, Status: status, File: &control.FileRef{Name: t.Name, Size: t.Size, SHA256: t.SHA256, State: t.State}}
}

func messageEvent(m control.Message) eventMsg {
	return eventMsg{control.Event{Type: control.EventMessage, PeerID: m.PeerID, Message: &m}}
}

func isGoneTick(m tea.Msg) bool { _, ok := m.(transferGoneTick); return ok }

// TestFileOutgoing: /file offers a file; the daemon's file events move
// it along below the conversation (state, bar, percent, rate, ETA, why it
// waits), and the history line of the offer follows; a minute after it is
// done it leaves, the history line stays.
func TestFileOutgoing(t *testing.T) {
	api := newFakeAPI()
	api.filesErr = ErrFilesUnavailable // an older daemon, at first
	h := newHarness(t, api, bobID)
	require.Contains(t, api.Calls(), "files", "transfers are loaded on hello")
	require.NotContains(t, h.view(), "cannot load file transfers", "an older daemon has none: nothing to say")

	dir := t.TempDir()
	path := filepath.Join(dir, "report.pdf")
	require.NoError(t, os.WriteFile(path, make([]byte, 3000), 0o600))

	// A path that is not a file: said here, the daemon is not asked.
	h.typeText("/file " + filepath.Join(dir, "missing.pdf"))
	h.key(tea.KeyEnter)
	require.Contains(t, h.view(), "no such file")
	require.Empty(t, api.callsLike("file"))
	h.send(tea.KeyMsg{Type: tea.KeyCtrlU})
	h.typeText("/file " + dir)
	h.key(tea.KeyEnter)
	require.Contains(t, h.view(), "is not a regular file")
	h.send(tea.KeyMsg{Type: tea.KeyCtrlU})

	// This daemon has no file transfer.
	api.offerErr = ErrFilesUnavailable
	h.typeText("/file " + path)
	h.key(tea.KeyEnter)
	require.Equal(t, []string{"file " + bobID + " " + path}, api.callsLike("file"))
	require.Contains(t, h.view(), "file transfer is not available in this daemon")

	// One that has: the offer shows, waiting for bob.
	api.offerErr = nil
	tr := xfer("f1", bobID, "out", "report.pdf", 3000, control.TransferOffered, 100)
	tr.Contact, tr.Reason = "bob", "waiting for bob to accept"
	api.offer = tr
	h.typeText("/file " + path)
	h.key(tea.KeyEnter)
	v := h.view()
	require.Contains(t, v, "┄ file transfers ┄")
	require.Contains(t, v, "⇪ report.pdf (2.9 KiB) — offered")
	require.NotContains(t, v, "  0%", "no bar before data may move")
	require.Contains(t, v, "waiting for bob to accept")
	require.Contains(t, v, "offered report.pdf (2.9 KiB) to bob")
	// The daemon's message event for the offer: it is in the history.
	h.send(messageEvent(offerMessage(tr, "")))
	require.Contains(t, h.line("⇪ report.pdf (2.9 KiB) · offered"), "me ")

	// Data moves.
	tr.State, tr.BytesDone, tr.Rate, tr.Path, tr.Reason = control.TransferTransferring, 1500, 1000, control.PathDirect, ""
	h.send(fileEvent(tr))
	v = h.view()
	require.Contains(t, v, "⇪ report.pdf (2.9 KiB) — transferring")
	require.Contains(t, v, "1.5 KiB of 2.9 KiB · 1000 B/s · ETA 0:02 · direct")
	bar := h.line(" 50%")
	require.NotEmpty(t, bar, v)
	// The conversation column is 55 wide at 80x24: a bar of 50 cells,
	// 48 inside, half of them filled.
	require.Equal(t, 24, strings.Count(bar, "█"), bar)
	require.Equal(t, 24, strings.Count(bar, "░"), bar)
	require.Contains(t, h.line("⇪ report.pdf (2.9 KiB) ·"), "· transferring", "the history line follows")

	// Paused, with the daemon's reason.
	tr.State, tr.Rate, tr.Reason = control.TransferPaused, 0, "waiting for a direct link (relay limit 8 MiB)"
	h.send(fileEvent(tr))
	v = h.view()
	require.Contains(t, v, "— paused")
	require.Contains(t, v, "waiting for a direct link")
	require.Contains(t, v, "8 MiB)")
	require.NotContains(t, v, "ETA")

	// Done: bob has it.
	tr.State, tr.BytesDone, tr.Reason = control.TransferDone, 3000, ""
	h.send(fileEvent(tr))
	v = h.view()
	require.Contains(t, v, "⇪ report.pdf (2.9 KiB) — done")
	require.Contains(t, h.line("100%"), strings.Repeat("█", 48))
	require.Contains(t, v, "bob received report.pdf")
	require.Contains(t, h.line("⇪ report.pdf (2.9 KiB) ·"), "· done")

	// A progress report that crossed the end does not move it back.
	late := tr
	late.State, late.BytesDone = control.TransferTransferring, 2000
	h.send(fileEvent(late))
	require.Contains(t, h.view(), "— done")
	require.NotContains(t, h.view(), "transferring")

	// It stays a while, then leaves; the history keeps it.
	require.Equal(t, 1, h.fire(isGoneTick))
	require.Contains(t, h.view(), "— done", "not yet a minute")
	h.now = h.now.Add(finishedFor)
	require.Equal(t, 1, h.fire(isGoneTick))
	require.NotContains(t, h.view(), "— done")
	require.NotContains(t, h.view(), "100%")
	require.NotContains(t, h.view(), "file transfers")
	require.Contains(t, h.line("⇪ report.pdf (2.9 KiB) ·"), "· done")
}

// TestFileStartedElsewhere: a transfer offered with the CLI shows in its
// contact's conversation like one offered here, and only there; many
// transfers show the newest few.
func TestFileStartedElsewhere(t *testing.T) {
	api := newFakeAPI()
	h := newHarness(t, api, bobID)

	cli := xfer("c1", bobID, "out", "notes.txt", 5000, control.TransferOffered, 100)
	h.send(messageEvent(offerMessage(cli, "from the shell")))
	h.send(fileEvent(cli))
	cli.State, cli.BytesDone, cli.Rate, cli.Path = control.TransferTransferring, 2500, 2500, control.PathRelayed
	h.send(fileEvent(cli))
	v := h.view()
	require.Contains(t, v, "⇪ notes.txt (4.9 KiB) — transferring")
	require.Contains(t, v, " 50%")
	require.Contains(t, v, "relayed")
	require.Contains(t, v, "“from the shell”")

	// One to carol: not in bob's conversation, in carol's.
	toCarol := xfer("c2", carolID, "out", "carol.txt", 10, control.TransferAccepted, 101)
	h.send(fileEvent(toCarol))
	require.NotContains(t, h.view(), "carol.txt")
	h.send(tea.KeyMsg{Type: tea.KeyDown, Alt: true})
	require.Contains(t, h.view(), "◐ carol · away")
	require.Contains(t, h.view(), "⇪ carol.txt (10 B) — accepted")
	require.NotContains(t, h.view(), "notes.txt")
	h.send(tea.KeyMsg{Type: tea.KeyUp, Alt: true})

	// Many at once: the newest four, and how many more.
	for i := range 6 {
		h.send(fileEvent(xfer(fmt.Sprintf("m%d", i), bobID, "out", fmt.Sprintf("part%d.bin", i), 1<<20, control.TransferOffered, 200+i)))
	}
	v = h.view()
	require.Contains(t, v, "… and 3 more transfers")
	require.Contains(t, v, "part5.bin")
	require.NotContains(t, v, "part1.bin")
}

// TestFileIncomingOffer: an offer waiting for the user is announced and
// marked in the list; /accept and /reject in its conversation answer the
// newest one; a friend request still comes first.
func TestFileIncomingOffer(t *testing.T) {
	api := newFakeAPI()
	h := newHarness(t, api, bobID)

	offer := xfer("in1", carolID, "in", "photos.tar", 20<<20, control.TransferOffered, 200)
	offer.Contact, offer.Note, offer.Reason = "carol", "the trip", "accept with: natter files accept in1"
	api.transfers = append(api.transfers, offer)
	api.history[carolID] = append(api.history[carolID], offerMessage(offer, "the trip"))
	h.send(messageEvent(offerMessage(offer, "the trip")))
	h.send(fileEvent(offer))
	require.Equal(t, "carol offers you photos.tar (20.0 MiB): /accept or /reject in their conversation — “the trip”", h.m.notice)
	require.Contains(t, h.view(), "carol offers you photos.tar (20.0 MiB): /accept or /reject")
	require.Contains(t, h.line("◐ carol"), "⇩", "carol is marked in the list")
	require.NotContains(t, h.line("● bob"), "⇩")

	// Bob offers nothing: /accept in his conversation says so.
	h.typeText("/accept")
	h.key(tea.KeyEnter)
	require.Contains(t, h.view(), "bob has no friend request or file offer waiting for you")
	require.Empty(t, api.callsLike("file-"))
	h.send(tea.KeyMsg{Type: tea.KeyCtrlU})

	// In carol's conversation: the offer, what to do, the note.
	h.send(tea.KeyMsg{Type: tea.KeyDown, Alt: true})
	v := h.view()
	require.Contains(t, v, "⇩ photos.tar (20.0 MiB) — offered to you")
	require.Contains(t, v, "/accept to receive it, /reject to decline")
	require.NotContains(t, v, "natter files accept", "the CLI's advice is for the CLI")
	require.Contains(t, h.line("⇩ photos.tar (20.0 MiB) · offered"), "carol")
	require.Contains(t, v, "“the trip”")

	// /accept NAME is for friend requests.
	h.typeText("/accept Carol")
	h.key(tea.KeyEnter)
	require.Contains(t, h.view(), "a file offer is accepted with /accept alone")
	require.Empty(t, api.callsLike("file-"))
	h.send(tea.KeyMsg{Type: tea.KeyCtrlU})

	h.typeText("/accept")
	h.key(tea.KeyEnter)
	require.Equal(t, []string{"file-accept in1"}, api.callsLike("file-"))
	v = h.view()
	require.Contains(t, v, "⇩ photos.tar (20.0 MiB) — accepted")
	require.Contains(t, v, "accepted photos.tar from carol: it downloads now")
	require.NotContains(t, h.line("◐ carol"), "⇩", "nothing waits any more")

	// A second offer; /reject answers it (the newest waiting one).
	offer2 := xfer("in2", carolID, "in", "big.iso", 3<<30, control.TransferOffered, 201)
	api.transfers = append(api.transfers, offer2)
	h.send(fileEvent(offer2))
	require.Equal(t, "carol offers you big.iso (3.0 GiB): /accept or /reject", h.m.notice, "her conversation is open")
	h.typeText("/reject")
	h.key(tea.KeyEnter)
	require.Equal(t, []string{"file-reject in2"}, api.callsLike("file-"))
	v = h.view()
	require.Contains(t, v, "⇩ big.iso (3.0 GiB) — rejected")
	require.Contains(t, v, "you rejected it")
	require.Contains(t, v, "rejected big.iso (carol is told)")

	// The first one arrives: the notice says where it is.
	done := offer
	done.State, done.BytesDone, done.FinalPath, done.Reason = control.TransferDone, offer.Size, "/home/alice/downloads/photos.tar", ""
	h.send(fileEvent(done))
	v = h.view()
	require.Contains(t, v, "⇩ photos.tar (20.0 MiB) — done")
	require.Contains(t, v, "saved to /home/alice/downloads/photos.tar")
	require.Contains(t, h.m.notice, "received photos.tar from carol: saved to /home/alice/downloads/photos.tar")

	// Nothing waits now.
	h.typeText("/reject")
	h.key(tea.KeyEnter)
	require.Contains(t, h.view(), "carol has no friend request or file offer waiting for you")
	require.Empty(t, api.callsLike("file-"))
	h.send(tea.KeyMsg{Type: tea.KeyCtrlU})

	// A failure is said as an error.
	failed := xfer("in3", carolID, "in", "x.bin", 100, control.TransferFailed, 202)
	failed.Reason = "the file does not have the offered SHA-256"
	h.send(fileEvent(failed))
	require.True(t, h.m.noticeErr)
	require.Contains(t, h.view(), "x.bin failed: the file does not have the offered SHA-256")
}

// TestFileOfferAfterFriendRequest: /accept and /reject answer a pending
// friend request first, then file offers.
func TestFileOfferAfterFriendRequest(t *testing.T) {
	api := newFakeAPI()
	h := newHarness(t, api, erinID)
	offer := xfer("e1", erinID, "in", "cv.pdf", 40<<20, control.TransferOffered, 300)
	api.transfers = append(api.transfers, offer)
	h.send(fileEvent(offer))
	require.Contains(t, h.line("⇩"), "? erin", "erin is marked in the list")

	h.typeText("/accept")
	h.key(tea.KeyEnter)
	calls := api.Calls()
	require.Contains(t, calls, fmt.Sprintf("accept %s %q", erinID, ""))
	for _, c := range calls {
		require.NotContains(t, c, "file-", "the friend request comes first")
	}
	require.Contains(t, h.view(), "accepted erin")

	// Now a contact: /accept takes the file.
	h.typeText("/accept")
	h.key(tea.KeyEnter)
	require.Equal(t, []string{"file-accept e1"}, api.callsLike("file-"))
	require.Contains(t, h.view(), "⇩ cv.pdf (40.0 MiB) — accepted")
}

// TestFileCancel: /cancel stops the newest transfer that is not over, or
// the one whose name starts with its argument.
func TestFileCancel(t *testing.T) {
	api := newFakeAPI()
	h := newHarness(t, api, bobID)
	old := xfer("k0", bobID, "in", "old.zip", 100, control.TransferDone, 299)
	a := xfer("k1", bobID, "out", "Archive.bin", 10<<20, control.TransferTransferring, 300)
	r := xfer("k2", bobID, "out", "report.pdf", 3000, control.TransferOffered, 301)
	api.transfers = append(api.transfers, old, a, r)
	for _, tr := range api.transfers {
		h.send(fileEvent(tr))
	}

	// The daemon refuses: said, nothing changes.
	api.actionErr = &control.APIError{Code: 409, Message: "the transfer is already done"}
	h.typeText("/cancel")
	h.key(tea.KeyEnter)
	require.Equal(t, []string{"file-cancel k2"}, api.callsLike("file-"))
	require.Contains(t, h.view(), "cannot cancel report.pdf: the transfer is already done")
	require.Contains(t, h.view(), "report.pdf (2.9 KiB) — offered")
	api.actionErr = nil

	h.typeText("/cancel")
	h.key(tea.KeyEnter)
	require.Equal(t, []string{"file-cancel k2"}, api.callsLike("file-"))
	v := h.view()
	require.Contains(t, v, "⇪ report.pdf (2.9 KiB) — cancelled")
	require.Contains(t, v, "you cancelled it")
	require.Contains(t, v, "cancelled report.pdf (bob is told)")

	h.typeText("/cancel zzz")
	h.key(tea.KeyEnter)
	require.Contains(t, h.view(), "no file transfer with bob named zzz… is in progress")
	require.Empty(t, api.callsLike("file-"))
	h.send(tea.KeyMsg{Type: tea.KeyCtrlU})

	h.typeText("/cancel arch")
	h.key(tea.KeyEnter)
	require.Equal(t, []string{"file-cancel k1"}, api.callsLike("file-"))
	require.Contains(t, h.view(), "⇪ Archive.bin (10.0 MiB) — cancelled")

	h.typeText("/cancel")
	h.key(tea.KeyEnter)
	require.Contains(t, h.view(), "no file transfer with bob is in progress")
	require.Empty(t, api.callsLike("file-"))
}

// TestFileReload: on hello the UI loads GET /v1/files, so a restarted UI
// shows the transfers in flight (not the ones long over) and the offers
// waiting; a load older than an event does not undo the event.
func TestFileReload(t *testing.T) {
	api := newFakeAPI()
	movie := xfer("r1", bobID, "in", "movie.mkv", 100<<20, control.TransferTransferring, 400)
	movie.BytesDone, movie.Rate, movie.Path = 40<<20, 10<<20, control.PathDirect
	api.transfers = []control.Transfer{
		xfer("r0", bobID, "out", "old.txt", 10, control.TransferDone, 10),
		movie,
		xfer("r2", carolID, "in", "song.flac", 30<<20, control.TransferOffered, 401),
	}
	h := newHarness(t, api, bobID)
	v := h.view()
	require.Contains(t, v, "⇩ movie.mkv (100.0 MiB) — transferring")
	require.Contains(t, v, " 40%")
	require.Contains(t, v, "ETA 0:06")
	require.NotContains(t, v, "old.txt", "long over: the history has it")
	require.Contains(t, v, "carol offers you song.flac (30.0 MiB)")
	require.Contains(t, h.line("◐ carol"), "⇩")

	// A load answered after a newer event keeps the event's state.
	load := h.m.loadFiles()
	ahead := movie
	ahead.BytesDone = 90 << 20
	h.send(fileEvent(ahead))
	for _, msg := range h.exec(load) {
		h.send(msg)
	}
	require.Contains(t, h.view(), " 90%")

	// The daemon restarts; meanwhile the movie arrived, carol withdrew
	// her offer and a new transfer started.
	h.send(streamDownMsg{err: control.ErrNoDaemon})
	api.mu.Lock()
	api.transfers[1].State, api.transfers[1].BytesDone, api.transfers[1].FinalPath = control.TransferDone, 100<<20, "/dl/movie.mkv"
	api.transfers[2].State, api.transfers[2].Reason = control.TransferCancelled, "cancelled by carol"
	api.transfers = append(api.transfers, xfer("r3", bobID, "out", "new.txt", 20, control.TransferAccepted, 402))
	api.mu.Unlock()
	api.Calls()
	h.send(eventMsg{control.Event{Type: control.EventHello, PeerID: selfID}})
	require.Contains(t, api.Calls(), "files")
	v = h.view()
	require.Contains(t, v, "⇩ movie.mkv (100.0 MiB) — done")
	require.Contains(t, v, "saved to /dl/movie.mkv")
	require.Contains(t, v, "⇪ new.txt (20 B) — accepted")
	require.NotContains(t, h.line("◐ carol"), "⇩")
	// The one that ended while away leaves after a while too.
	h.now = h.now.Add(finishedFor)
	h.fire(isGoneTick)
	require.NotContains(t, h.view(), "movie.mkv")
	require.Contains(t, h.view(), "new.txt")

	// A failed load is said once.
	api.filesErr = &control.APIError{Code: 500, Message: "database is locked"}
	h.send(eventMsg{control.Event{Type: control.EventHello, PeerID: selfID}})
	require.Contains(t, h.view(), "cannot load file transfers: database is locked")
}

// TestFileHistory: history messages of kind file show the file, its
// size, its state and the note, in both directions.
func TestFileHistory(t *testing.T) {
	api := newFakeAPI()
	api.seed(bobID, 2)
	out := offerMessage(xfer("h1", bobID, "out", "report.pdf", 3000, control.TransferDone, 10), "the quarterly numbers")
	out.Status = control.StatusRead
	in := offerMessage(xfer("h2", bobID, "in", "photo.jpg", 1<<20, control.TransferRejected, 11), "")
	bare := control.Message{ID: "h3", PeerID: bobID, Direction: "in", Kind: control.KindFile, Text: "no details", SentAt: at(12), Status: control.StatusDelivered}
	api.history[bobID] = append(api.history[bobID], out, in, bare)
	h := newHarness(t, api, bobID)
	v := h.view()
	require.Contains(t, v, "10:10 me   ⇪ report.pdf (2.9 KiB) · done")
	require.Contains(t, h.line("           “the quarterly numbers”"), "✓✓ read")
	require.Contains(t, v, "10:11 bob  ⇩ photo.jpg (1.0 MiB) · rejected")
	require.Contains(t, v, "10:12 bob  ⇩ a file")
	require.Contains(t, v, "“no details”")
	require.NotContains(t, v, "— rejected", "long over: no transfer line below")
}

// TestFileHostileNames: names, notes, reasons and paths from a peer never
// reach the terminal raw, and every frame fits.
func TestFileHostileNames(t *testing.T) {
	api := newFakeAPI()
	h := newHarness(t, api, carolID)
	evil := "\x1b[2J\x1b]0;pwned\a\u202eexe.txt " + strings.Repeat("Ｗ", 120) + "\r\n\t.png"
	offer := xfer("x1", carolID, "in", evil, 1<<30, control.TransferOffered, 500)
	offer.Contact, offer.Note = "carol\x1b[31m", "note \x1b[5mblink\x07"
	h.send(messageEvent(offerMessage(offer, offer.Note)))
	h.send(fileEvent(offer))
	failed := xfer("x2", carolID, "in", "a\x1b[1mb", 10, control.TransferFailed, 501)
	failed.Reason = "carol gave up: \x1b[41m" + strings.Repeat("because ", 40)
	h.send(fileEvent(failed))
	done := xfer("x3", carolID, "in", "ok.txt", 10, control.TransferDone, 502)
	done.FinalPath = "/dl/\x1b]8;;http://evil\x07link"
	h.send(fileEvent(done))
	for _, size := range [][2]int{{80, 24}, {40, 10}, {64, 16}, {50, 14}, {200, 60}, {80, 24}} {
		h.send(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		v := h.m.View()
		h.view() // fits exactly
		for _, bad := range []string{"\x1b]", "\x1b[2J", "\x1b[31m", "\x1b[5m", "\x1b[41m", "\x07", "\u202e", "\r", "\t"} {
			require.NotContains(t, v, bad, "%dx%d", size[0], size[1])
		}
	}
	v := h.view()
	require.Contains(t, v, `⇩ \x1b[2J\x1b]0;pwned\x07exe.txt`)
	require.Contains(t, v, `a\x1b[1mb`)
	require.Contains(t, v, `saved to /dl/\x1b]8;;http://evil\x07link`)
	require.Contains(t, v, `“note \x1b[5mblink\x07”`)
}
