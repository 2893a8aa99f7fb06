package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"
)

// ErrNotUTF8 is returned for message text that is not valid UTF-8.
var ErrNotUTF8 = errors.New("cannot send: text is not valid UTF-8")

// ErrNoDaemon means nothing answers on the control socket.
var ErrNoDaemon = errors.New("no natter daemon is running")

// APIError is a non-2xx answer from the daemon.
type APIError struct {
	Code    int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Client talks to one daemon.
type Client struct {
	hc     *http.Client
	socket string
	base   string
	token  string
}

// SocketPath is the control socket of the daemon owning dataDir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// NewClient returns a client for the daemon listening on the unix socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableCompression: true,
	}
	return &Client{hc: &http.Client{Transport: tr}, socket: socket, base: "http://natter/" + Version}
}

// NewTCPClient returns a client for a daemon whose control API also
// listens on loopback TCP (addr "127.0.0.1:port") with a bearer token.
func NewTCPClient(addr, token string) *Client {
	return &Client{hc: &http.Client{}, base: "http://" + addr + "/" + Version, token: token}
}

// Do sends in (if non-nil) as JSON and decodes the answer into out (if
// non-nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s answer: %w", method, path, err)
	}
	return nil
}

// Stream sends a request and returns the open response body, for endpoints
// that stream (events). The caller closes it.
func (c *Client) Stream(ctx context.Context, path string) (io.ReadCloser, error) {
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if isNoDaemon(err) {
			return nil, ErrNoDaemon
		}
		return nil, fmt.Errorf("control api: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
			if e.Error == "" {
				e.Error = resp.Status
			}
		}
		return nil, &APIError{Code: resp.StatusCode, Message: e.Error}
	}
	return resp, nil
}

func isNoDaemon(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

// PathEscape escapes a contact reference for use in a URL path.
func PathEscape(s string) string { return url.PathEscape(s) }

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.Do(ctx, http.MethodGet, "/status", nil, &s)
	return s, err
}

// ID returns the node's peer ID and invite.
func (c *Client) ID(ctx context.Context) (Identity, error) {
	var id Identity
	err := c.Do(ctx, http.MethodGet, "/id", nil, &id)
	return id, err
}

// Contacts lists contacts.
func (c *Client) Contacts(ctx context.Context) ([]Contact, error) {
	var cs []Contact
	err := c.Do(ctx, http.MethodGet, "/contacts", nil, &cs)
	return cs, err
}

// AddContact adds a contact by peer ID or invite.
func (c *Client) AddContact(ctx context.Context, req AddContactRequest) (Contact, error) {
	var out Contact
	err := c.Do(ctx, http.MethodPost, "/contacts", req, &out)
	return out, err
}

// RemoveContact removes a contact.
func (c *Client) RemoveContact(ctx context.Context, ref string) error {
	return c.Do(ctx, http.MethodDelete, "/contacts/"+PathEscape(ref), nil, nil)
}

// Ping measures the RTT to a contact over the current path.
func (c *Client) Ping(ctx context.Context, ref string) (PingResult, error) {
	var r PingResult
	err := c.Do(ctx, http.MethodPost, "/contacts/"+PathEscape(ref)+"/ping", nil, &r)
	return r, err
}

// Send sends a text or a nudge to a contact (see SendRequest).
func (c *Client) Send(ctx context.Context, ref string, req SendRequest) (Message, error) {
	var m Message
	if !utf8.ValidString(req.Text) {
		// JSON would silently replace the bad bytes.
		return m, ErrNotUTF8
	}
	err := c.Do(ctx, http.MethodPost, "/contacts/"+PathEscape(ref)+"/messages", req, &m)
	return m, err
}

// History returns up to limit messages of the conversation with a
// contact, oldest first, ending before the message with id before ("":
// the newest).
func (c *Client) History(ctx context.Context, ref, before string, limit int) ([]Message, error) {
	q := url.Values{}
	if before != "" {
		q.Set("before", before)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var ms []Message
	err := c.Do(ctx, http.MethodGet, "/contacts/"+PathEscape(ref)+"/messages?"+q.Encode(), nil, &ms)
	return ms, err
}

// Search searches all history, or one contact's if ref is not "".
func (c *Client) Search(ctx context.Context, words, ref string, limit int) ([]Message, error) {
	q := url.Values{"q": {words}}
	if ref != "" {
		q.Set("contact", ref)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var ms []Message
	err := c.Do(ctx, http.MethodGet, "/search?"+q.Encode(), nil, &ms)
	return ms, err
}

// MarkRead marks a conversation read.
func (c *Client) MarkRead(ctx context.Context, ref string) (ReadResult, error) {
	var r ReadResult
	err := c.Do(ctx, http.MethodPost, "/contacts/"+PathEscape(ref)+"/read", nil, &r)
	return r, err
}

// Typing tells a contact the user started or stopped typing.
func (c *Client) Typing(ctx context.Context, ref string, typing bool) (TypingResult, error) {
	var r TypingResult
	err := c.Do(ctx, http.MethodPost, "/contacts/"+PathEscape(ref)+"/typing", TypingRequest{Typing: typing}, &r)
	return r, err
}

// SetReceipts sets a contact's read receipts to "on", "off" or "default".
func (c *Client) SetReceipts(ctx context.Context, ref, mode string) (Contact, error) {
	var out Contact
	err := c.Do(ctx, http.MethodPost, "/contacts/"+PathEscape(ref)+"/receipts", ReceiptsRequest{Mode: mode}, &out)
	return out, err
}

// AcceptContact accepts ref's friend request; name, if not empty, names
// the contact locally.
func (c *Client) AcceptContact(ctx context.Context, ref, name string) (Contact, error) {
	var out Contact
	err := c.Do(ctx, http.MethodPost, "/contacts/"+PathEscape(ref)+"/accept", AcceptRequest{Name: name}, &out)
	return out, err
}

// RejectContact rejects ref's friend request.
func (c *Client) RejectContact(ctx context.Context, ref string) (Contact, error) {
	var out Contact
	err := c.Do(ctx, http.MethodPost, "/contacts/"+PathEscape(ref)+"/reject", nil, &out)
	return out, err
}

// BlockContact blocks a contact or any peer ID.
func (c *Client) BlockContact(ctx context.Context, ref string) (Contact, error) {
	var out Contact
	err := c.Do(ctx, http.MethodPost, "/contacts/"+PathEscape(ref)+"/block", nil, &out)
	return out, err
}

// SetPresence sets our presence and/or status message.
func (c *Client) SetPresence(ctx context.Context, req PresenceRequest) (Status, error) {
	var out Status
	err := c.Do(ctx, http.MethodPost, "/presence", req, &out)
	return out, err
}

// Activity tells the daemon the user is active (ends an automatic away).
func (c *Client) Activity(ctx context.Context) error {
	return c.Do(ctx, http.MethodPost, "/activity", nil, nil)
}
