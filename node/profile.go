package node

import (
	"net/http"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/protocols/profile"
)

// maxProfileBody bounds POST /v1/profile: an avatar file of
// profile.MaxInputBytes in base64, and room for the rest.
const maxProfileBody = (profile.MaxInputBytes+2)/3*4 + 64<<10

// profileRoutes serves the profile control API.
func (n *Node) profileRoutes(mux *http.ServeMux, v string) {
	mux.HandleFunc("GET "+v+"/profile", func(w http.ResponseWriter, r *http.Request) {
		p, err := n.social.OwnProfile(r.Context())
		if err != nil {
			writeErr(w, statusOf(err), err)
			return
		}
		writeJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("POST "+v+"/profile", func(w http.ResponseWriter, r *http.Request) {
		var req control.ProfileRequest
		if !decodeBodyMax(w, r, &req, maxProfileBody) {
			return
		}
		n.touch()
		p, err := n.social.SetProfile(r.Context(), req)
		if err != nil {
			writeErr(w, statusOf(err), err)
			return
		}
		writeJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("GET "+v+"/contacts/{ref}/profile", func(w http.ResponseWriter, r *http.Request) {
		p, err := n.social.ContactProfile(r.Context(), r.PathValue("ref"))
		if err != nil {
			writeErr(w, statusOf(err), err)
			return
		}
		writeJSON(w, http.StatusOK, p)
	})
}
