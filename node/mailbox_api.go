package node

import (
	"net/http"
)

func (n *Node) mailboxRoutes(mux *http.ServeMux, v string) {
	mux.HandleFunc("GET "+v+"/mailbox", func(w http.ResponseWriter, r *http.Request) {
		mb, err := n.offline.Mailbox(r.Context())
		if err != nil {
			writeErr(w, statusOf(err), err)
			return
		}
		writeJSON(w, http.StatusOK, mb)
	})
}
