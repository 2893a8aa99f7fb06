package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/api"
	"github.com/natterim/natter/node/control"
)

func js(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func ptr[T any](v T) *T { return &v }

// TestRoutes: every route of the table calls the right domain method with
// the arguments decoded from the path, query and body, touches presence
// on the routes the user drives, and answers with the documented status
// and the domain's result as JSON.
func TestRoutes(t *testing.T) {
	f := newFake(t)
	_, hc := start(t, f, api.Config{})

	contact := control.Contact{Name: "bob", State: control.StateAccepted, Rendezvous: []string{}, Note: "hi"}
	add := control.AddContactRequest{Target: "natter:x", Name: "bob", Note: "hello"}
	pres := control.PresenceRequest{State: control.PresenceBusy, Message: ptr("lunch")}
	send := control.SendRequest{Text: "hi", Wait: "1s"}
	prof := control.ProfileRequest{Name: ptr("Alice")}
	sendFile := control.SendFileRequest{Path: "/tmp/a.txt", Name: "b.txt", Note: "n"}

	for _, tc := range []struct {
		method, path string
		body         any // nil: no body
		want         call
		touch        bool
		code         int
		answer       any // nil: empty body
	}{
		{"GET", "/v1/status", nil, call{"Status", nil}, false, 200, cannedStatus},
		{"GET", "/v1/id", nil, call{"Invite", nil}, false, 200, control.Identity{PeerID: f.id.String(), Invite: "natter:invite"}},
		{"GET", "/v1/contacts", nil, call{"Contacts", nil}, false, 200, cannedContacts},
		{"POST", "/v1/contacts", add, call{"AddContact", []any{add}}, false, 201, contact},
		{"DELETE", "/v1/contacts/bob", nil, call{"RemoveContact", []any{"bob"}}, false, 200, contact},
		{"DELETE", "/v1/contacts/bob%20smith", nil, call{"RemoveContact", []any{"bob smith"}}, false, 200, contact},
		{"POST", "/v1/contacts/bob/ping", nil, call{"Ping", []any{"bob"}}, false, 200, cannedPing},
		{"POST", "/v1/contacts/bob/accept", control.AcceptRequest{Name: "bobby"}, call{"AcceptContact", []any{"bob", "bobby"}}, false, 200, contact},
		{"POST", "/v1/contacts/bob/accept", nil, call{"AcceptContact", []any{"bob", ""}}, false, 200, contact},
		{"POST", "/v1/contacts/bob/reject", nil, call{"RejectContact", []any{"bob"}}, false, 200, contact},
		{"POST", "/v1/contacts/bob/block", nil, call{"BlockContact", []any{"bob"}}, false, 200, contact},
		{"POST", "/v1/contacts/bob/receipts", control.ReceiptsRequest{Mode: "off"}, call{"SetReceipts", []any{"bob", "off"}}, false, 200, contact},
		{"POST", "/v1/presence", pres, call{"SetPresence", []any{pres}}, true, 200, cannedStatus},
		{"POST", "/v1/contacts/bob/messages", send, call{"Send", []any{"bob", send}}, true, 201, cannedMessage},
		{"GET", "/v1/contacts/bob/messages", nil, call{"History", []any{"bob", "", 50}}, false, 200, cannedMessages},
		{"GET", "/v1/contacts/bob/messages?before=m0&limit=7", nil, call{"History", []any{"bob", "m0", 7}}, false, 200, cannedMessages},
		{"GET", "/v1/contacts/bob/messages?limit=10000", nil, call{"History", []any{"bob", "", 10000}}, false, 200, cannedMessages},
		{"POST", "/v1/contacts/bob/read", nil, call{"MarkRead", []any{"bob"}}, true, 200, cannedRead},
		{"POST", "/v1/contacts/bob/typing", control.TypingRequest{Typing: true}, call{"Typing", []any{"bob", true}}, true, 200, control.TypingResult{Sent: true}},
		{"GET", "/v1/search?q=hello+world&contact=bob&limit=5", nil, call{"Search", []any{"hello world", "bob", 5}}, false, 200, cannedMessages},
		{"GET", "/v1/search?q=x", nil, call{"Search", []any{"x", "", 50}}, false, 200, cannedMessages},
		{"GET", "/v1/names", nil, call{"OwnNames", nil}, false, 200, []control.OwnName{cannedOwnName}},
		{"POST", "/v1/names", control.NameRequest{Name: "alice"}, call{"RegisterName", []any{"alice"}}, false, 200, cannedOwnName},
		{"DELETE", "/v1/names/alice", nil, call{"ReleaseName", []any{"alice"}}, false, 200, cannedOwnName},
		{"GET", "/v1/directory/bob", nil, call{"LookupName", []any{"bob"}}, false, 200, cannedLookup},
		{"GET", "/v1/profile", nil, call{"OwnProfile", nil}, false, 200, cannedProfile},
		{"POST", "/v1/profile", prof, call{"SetProfile", []any{prof}}, true, 200, cannedProfile},
		{"GET", "/v1/contacts/bob/profile", nil, call{"ContactProfile", []any{"bob"}}, false, 200, cannedProfile},
		{"GET", "/v1/mailbox", nil, call{"Mailbox", nil}, false, 200, cannedMailbox},
		{"POST", "/v1/contacts/bob/files", sendFile, call{"SendFile", []any{"bob", sendFile}}, true, 201, cannedTransfer},
		{"GET", "/v1/files", nil, call{"Files", nil}, false, 200, []control.Transfer{cannedTransfer}},
		{"GET", "/v1/files/t1", nil, call{"File", []any{"t1"}}, false, 200, cannedTransfer},
		{"POST", "/v1/files/t1/accept", nil, call{"FileAction", []any{"t1", "accept"}}, true, 200, cannedTransfer},
		{"POST", "/v1/files/t1/cancel", nil, call{"FileAction", []any{"t1", "cancel"}}, true, 200, cannedTransfer},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			body := ""
			if tc.body != nil {
				body = js(t, tc.body)
			}
			code, got := do(t, hc, tc.method, tc.path, body)
			require.Equal(t, tc.code, code, got)
			require.JSONEq(t, js(t, tc.answer), got)
			calls, touches := f.take()
			require.Equal(t, []call{tc.want}, calls)
			if tc.touch {
				require.Equal(t, 1, touches, "a route the user drives counts as activity")
			} else {
				require.Zero(t, touches)
			}
		})
	}
}

// TestActivity: POST /v1/activity touches presence and answers 204 with
// no body.
func TestActivity(t *testing.T) {
	f := newFake(t)
	_, hc := start(t, f, api.Config{})
	code, body := do(t, hc, "POST", "/v1/activity", "")
	require.Equal(t, http.StatusNoContent, code)
	require.Empty(t, body)
	calls, touches := f.take()
	require.Empty(t, calls)
	require.Equal(t, 1, touches)
}

// TestUnknownEndpoint: a path or a method the table does not have is
// 404 with the method and path in the message.
func TestUnknownEndpoint(t *testing.T) {
	f := newFake(t)
	_, hc := start(t, f, api.Config{})
	for _, tc := range []struct{ method, path string }{
		{"GET", "/v1/nope"},
		{"POST", "/v1/status"},
		{"GET", "/v2/status"},
		{"PUT", "/v1/contacts/bob"},
	} {
		code, body := do(t, hc, tc.method, tc.path, "")
		require.Equal(t, http.StatusNotFound, code)
		require.JSONEq(t, js(t, control.Error{Error: "no such endpoint: " + tc.method + " " + tc.path}), body)
	}
	calls, touches := f.take()
	require.Empty(t, calls)
	require.Zero(t, touches)
}

// TestLimitParam: a limit outside 1..10000 is refused before any domain
// call, saying what is allowed.
func TestLimitParam(t *testing.T) {
	f := newFake(t)
	_, hc := start(t, f, api.Config{})
	for _, path := range []string{"/v1/contacts/bob/messages", "/v1/search?q=x&"} {
		for _, l := range []string{"0", "-1", "10001", "ten", "1.5"} {
			sep := "?"
			if path[len(path)-1] == '&' {
				sep = ""
			}
			code, body := do(t, hc, "GET", path+sep+"limit="+l, "")
			require.Equal(t, http.StatusBadRequest, code)
			require.JSONEq(t, js(t, control.Error{Error: `limit: "` + l + `" is not a number in 1..10000`}), body)
		}
	}
	calls, _ := f.take()
	require.Empty(t, calls)
}
