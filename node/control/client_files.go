package control

import (
	"context"
	"net/http"
)

// SendFile offers a file to a contact. The daemon hashes the file before
// it answers, which takes a while for big files: give ctx room.
func (c *Client) SendFile(ctx context.Context, ref string, req SendFileRequest) (Transfer, error) {
	var t Transfer
	err := c.Do(ctx, http.MethodPost, "/contacts/"+PathEscape(ref)+"/files", req, &t)
	return t, err
}

// Files lists every transfer, oldest first.
func (c *Client) Files(ctx context.Context) ([]Transfer, error) {
	var ts []Transfer
	err := c.Do(ctx, http.MethodGet, "/files", nil, &ts)
	return ts, err
}

// File returns one transfer by id (or a unique prefix of it).
func (c *Client) File(ctx context.Context, ref string) (Transfer, error) {
	var t Transfer
	err := c.Do(ctx, http.MethodGet, "/files/"+PathEscape(ref), nil, &t)
	return t, err
}

// FileAction accepts, rejects or cancels a transfer: action is "accept",
// "reject" or "cancel".
func (c *Client) FileAction(ctx context.Context, ref, action string) (Transfer, error) {
	var t Transfer
	err := c.Do(ctx, http.MethodPost, "/files/"+PathEscape(ref)+"/"+action, nil, &t)
	return t, err
}
