package node

import (
	"net/http"

	"github.com/natterim/natter/node/control"
)

// namesRoutes serves the name directory's control API.
func (n *Node) namesRoutes(mux *http.ServeMux, v string) {
	mux.HandleFunc("GET "+v+"/names", func(w http.ResponseWriter, r *http.Request) {
		own, err := n.social.OwnNames(r.Context())
		if err != nil {
			writeErr(w, statusOf(err), err)
			return
		}
		writeJSON(w, http.StatusOK, own)
	})
	mux.HandleFunc("POST "+v+"/names", func(w http.ResponseWriter, r *http.Request) {
		var req control.NameRequest
		if !decodeBody(w, r, &req) {
			return
		}
		on, err := n.social.RegisterName(r.Context(), req.Name)
		if err != nil {
			writeErr(w, statusOf(err), err)
			return
		}
		writeJSON(w, http.StatusOK, on)
	})
	mux.HandleFunc("DELETE "+v+"/names/{name}", func(w http.ResponseWriter, r *http.Request) {
		on, err := n.social.ReleaseName(r.Context(), r.PathValue("name"))
		if err != nil {
			writeErr(w, statusOf(err), err)
			return
		}
		writeJSON(w, http.StatusOK, on)
	})
	mux.HandleFunc("GET "+v+"/directory/{name}", func(w http.ResponseWriter, r *http.Request) {
		res, err := n.social.LookupName(r.Context(), r.PathValue("name"))
		if err != nil {
			writeErr(w, statusOf(err), err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
}
