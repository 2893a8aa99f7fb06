package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/api"
	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
)

// padded is a valid JSON object of exactly n bytes.
func padded(n int) string {
	const obj = `{"text":"x"}`
	return obj + strings.Repeat(" ", n-len(obj))
}

// TestBadBodies: a body over the route's limit is 413, malformed JSON or
// invalid UTF-8 is 400, each with today's message, and none reaches the
// domain nor counts as activity. A body of exactly the limit passes.
func TestBadBodies(t *testing.T) {
	f := newFake(t)
	_, hc := start(t, f, api.Config{})
	for _, tc := range []struct {
		name, path, body string
		code             int
		msg              string // "" = accepted
	}{
		{"at the limit", "/v1/contacts/bob/messages", padded(api.MaxRequestBody), 201, ""},
		{"over the limit", "/v1/contacts/bob/messages", padded(api.MaxRequestBody + 1), 413, "request body over 1048576 bytes"},
		{"profile over the common limit", "/v1/profile", padded(api.MaxRequestBody + 1), 200, ""},
		{"profile at its limit", "/v1/profile", padded(api.MaxProfileBody), 200, ""},
		{"profile over its limit", "/v1/profile", padded(api.MaxProfileBody + 1), 413, fmt.Sprintf("request body over %d bytes", api.MaxProfileBody)},
		{"bad json", "/v1/contacts/bob/messages", `{"text":`, 400, "bad request body: unexpected end of JSON input"},
		{"wrong type", "/v1/contacts/bob/typing", `{"typing":"yes"}`, 400, "bad request body: json: cannot unmarshal"},
		{"no body where one is needed", "/v1/contacts", "", 400, "bad request body: unexpected end of JSON input"},
		{"not utf-8", "/v1/contacts/bob/messages", "{\"text\":\"bad \xff utf-8\"}", 400, "request body: text is not valid UTF-8"},
		{"not utf-8, optional body", "/v1/contacts/bob/accept", "{\"name\":\"\xff\"}", 400, "request body: text is not valid UTF-8"},
		{"bad json, optional body", "/v1/contacts/bob/accept", `{`, 400, "bad request body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, hc, "POST", tc.path, tc.body)
			require.Equal(t, tc.code, code, body)
			calls, touches := f.take()
			if tc.msg == "" {
				require.Len(t, calls, 1)
				return
			}
			var e control.Error
			require.NoError(t, json.Unmarshal([]byte(body), &e))
			require.Contains(t, e.Error, tc.msg)
			require.Empty(t, calls, "a refused body reaches no domain method")
			require.Zero(t, touches, "a refused body is no activity")
		})
	}
}

// TestErrorKinds: the kind of a domain error picks the status; the
// message is the error's own, unchanged.
func TestErrorKinds(t *testing.T) {
	f := newFake(t)
	_, hc := start(t, f, api.Config{})
	for _, tc := range []struct {
		err  error
		code int
	}{
		{core.Invalid(errors.New("bad thing")), http.StatusBadRequest},
		{core.Invalidf("bad %s", "input"), http.StatusBadRequest},
		{core.NotFound(errors.New(`no contact "bob" (see: natter contacts list)`)), http.StatusNotFound},
		{fmt.Errorf("lookup: %w", store.ErrNotFound), http.StatusNotFound},
		{core.Conflict(errors.New("bob is blocked")), http.StatusConflict},
		{fmt.Errorf("wrapped: %w", core.Conflict(errors.New("inner"))), http.StatusConflict},
		{core.Unavailable(errors.New("bob is not connected (see: natter status)")), http.StatusServiceUnavailable},
		{core.Upstream(errors.New("every server refused")), http.StatusBadGateway},
		{core.DiskFull(errors.New("disk full: the message was not sent")), http.StatusInsufficientStorage},
		{core.ErrClosed, http.StatusInternalServerError},
		{context.Canceled, http.StatusInternalServerError},
		{errors.New("database is locked"), http.StatusInternalServerError},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			f.setErr(tc.err)
			for _, r := range []struct{ method, path, body string }{
				{"GET", "/v1/status", ""},
				{"POST", "/v1/contacts/bob/messages", `{"text":"hi"}`},
				{"POST", "/v1/contacts/bob/accept", ""},
				{"DELETE", "/v1/contacts/bob", ""},
				{"GET", "/v1/files/t1", ""},
			} {
				code, body := do(t, hc, r.method, r.path, r.body)
				require.Equal(t, tc.code, code, "%s %s", r.method, r.path)
				require.JSONEq(t, js(t, control.Error{Error: tc.err.Error()}), body)
			}
			f.take()
		})
	}
}
