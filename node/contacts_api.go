package node

import (
	"net/http"

	"github.com/natterim/natter/node/control"
)

func (n *Node) handleAccept(w http.ResponseWriter, r *http.Request) {
	var req control.AcceptRequest
	if r.ContentLength != 0 && !decodeBody(w, r, &req) {
		return
	}
	c, err := n.social.AcceptContact(r.Context(), r.PathValue("ref"), req.Name)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, toAPIContact(c))
}

func (n *Node) handleReject(w http.ResponseWriter, r *http.Request) {
	c, err := n.social.RejectContact(r.Context(), r.PathValue("ref"))
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, toAPIContact(c))
}

func (n *Node) handleBlock(w http.ResponseWriter, r *http.Request) {
	c, err := n.social.BlockContact(r.Context(), r.PathValue("ref"))
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, toAPIContact(c))
}

func (n *Node) handlePresence(w http.ResponseWriter, r *http.Request) {
	var req control.PresenceRequest
	if !decodeBody(w, r, &req) {
		return
	}
	n.touch()
	st, err := n.social.SetPresence(r.Context(), req)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// handleActivity records that the user is at the keyboard (the terminal
// UI calls it on key presses): it ends an automatic away.
func (n *Node) handleActivity(w http.ResponseWriter, _ *http.Request) {
	n.touch()
	w.WriteHeader(http.StatusNoContent)
}
