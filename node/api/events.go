package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/natterim/natter/node/control"
)

// handleEvents streams events as JSON lines, after a hello line, until
// the client goes away, falls too far behind (the bus ends its
// subscription) or the server closes.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	sub, cancel := s.svc.Events.Subscribe()
	defer cancel()
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	if err := enc.Encode(control.Event{Type: control.EventHello, Time: time.Now(), PeerID: s.svc.Node.ID().String()}); err != nil {
		return
	}
	if fl != nil {
		fl.Flush()
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-sub.C():
			if !ok {
				return
			}
			if err := enc.Encode(e); err != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
	}
}
