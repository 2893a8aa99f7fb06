package node

import (
	"net/http"

	"github.com/natterim/natter/node/control"
)

// fileRoutes registers the file-transfer endpoints.
func (n *Node) fileRoutes(mux *http.ServeMux, v string) {
	mux.HandleFunc("POST "+v+"/contacts/{ref}/files", n.handleSendFile)
	mux.HandleFunc("GET "+v+"/files", n.handleFiles)
	mux.HandleFunc("GET "+v+"/files/{id}", n.handleFile)
	mux.HandleFunc("POST "+v+"/files/{id}/{action}", n.handleFileAction)
}

func (n *Node) handleSendFile(w http.ResponseWriter, r *http.Request) {
	var req control.SendFileRequest
	if !decodeBody(w, r, &req) {
		return
	}
	n.touch()
	t, err := n.files.SendFile(r.Context(), r.PathValue("ref"), req)
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

func (n *Node) handleFiles(w http.ResponseWriter, r *http.Request) {
	ts, err := n.files.Files(r.Context())
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, ts)
}

func (n *Node) handleFile(w http.ResponseWriter, r *http.Request) {
	t, err := n.files.File(r.Context(), r.PathValue("id"))
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (n *Node) handleFileAction(w http.ResponseWriter, r *http.Request) {
	n.touch()
	t, err := n.files.FileAction(r.Context(), r.PathValue("id"), r.PathValue("action"))
	if err != nil {
		writeErr(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}
