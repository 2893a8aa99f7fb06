package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
)

// body says whether and how a route reads a JSON request body.
type body struct {
	limit    int  // 0: the route reads no body
	optional bool // an empty body leaves the request at its zero value
}

var (
	// noBody: the route reads no body.
	noBody = body{}
	// jsonBody: a JSON body of up to MaxRequestBody bytes.
	jsonBody = body{limit: MaxRequestBody}
	// optionalBody: jsonBody, or nothing at all.
	optionalBody = body{limit: MaxRequestBody, optional: true}
)

// endpoint is the one adapter between HTTP and a domain call: it decodes
// the request body as b says, calls call, and writes its result as JSON
// with status code, or its error with the status its kind maps to.
func endpoint[Req, Resp any](b body, code int, call func(r *http.Request, req Req) (Resp, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if b.limit > 0 && !(b.optional && r.ContentLength == 0) && !decodeBody(w, r, &req, b.limit) {
			return
		}
		resp, err := call(r, req)
		if err != nil {
			writeErr(w, statusOf(err), err)
			return
		}
		writeJSON(w, code, resp)
	}
}

// decodeBody decodes a JSON request body of up to limit bytes. Invalid
// UTF-8 is refused rather than silently replaced (which is what
// encoding/json would do to it).
func decodeBody(w http.ResponseWriter, r *http.Request, v any, limit int) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	switch {
	case err != nil:
		writeErr(w, http.StatusBadRequest, fmt.Errorf("read request body: %w", err))
		return false
	case len(b) > limit:
		writeErr(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", limit))
		return false
	case !utf8.Valid(b):
		writeErr(w, http.StatusBadRequest, fmt.Errorf("request body: %w", chat.ErrNotUTF8))
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("bad request body: %w", err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, control.Error{Error: err.Error()})
}

// statusOf maps a domain error to its HTTP status: the one place where
// error kinds become status codes.
func statusOf(err error) int {
	switch {
	case errors.Is(err, core.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, core.ErrNotFound), errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, core.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, core.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, core.ErrUpstream):
		return http.StatusBadGateway
	case errors.Is(err, core.ErrDiskFull):
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}
