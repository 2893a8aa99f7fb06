package node

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
)

const (
	// defaultHistoryLimit and maxHistoryLimit bound one history page.
	defaultHistoryLimit = 50
	maxHistoryLimit     = 10_000
)

func limitParam(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return defaultHistoryLimit, nil
	}
	l, err := strconv.Atoi(s)
	if err != nil || l < 1 || l > maxHistoryLimit {
		return 0, core.Invalid(fmt.Errorf("limit: %q is not a number in 1..%d", s, maxHistoryLimit))
	}
	return l, nil
}

func (n *Node) handleSend(w http.ResponseWriter, r *http.Request) {
	var req control.SendRequest
	if !decodeBody(w, r, &req) {
		return
	}
	n.touch()
	m, err := n.chat.Send(r.Context(), r.PathValue("ref"), req)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusCreated, m)
}

func (n *Node) handleHistory(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	ms, err := n.chat.History(r.Context(), r.PathValue("ref"), r.URL.Query().Get("before"), limit)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, ms)
}

func (n *Node) handleSearch(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	q := r.URL.Query()
	ms, err := n.chat.Search(r.Context(), q.Get("q"), q.Get("contact"), limit)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, ms)
}

func (n *Node) handleRead(w http.ResponseWriter, r *http.Request) {
	n.touch()
	res, err := n.chat.MarkRead(r.Context(), r.PathValue("ref"))
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (n *Node) handleTyping(w http.ResponseWriter, r *http.Request) {
	var req control.TypingRequest
	if !decodeBody(w, r, &req) {
		return
	}
	n.touch()
	sent, err := n.chat.Typing(r.Context(), r.PathValue("ref"), req.Typing)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, control.TypingResult{Sent: sent})
}

func (n *Node) handleReceipts(w http.ResponseWriter, r *http.Request) {
	var req control.ReceiptsRequest
	if !decodeBody(w, r, &req) {
		return
	}
	c, err := n.chat.SetReceipts(r.Context(), r.PathValue("ref"), req.Mode)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, toAPIContact(c))
}
