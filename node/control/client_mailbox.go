package control

import (
	"context"
	"net/http"
)

// Mailbox returns the node's offline-delivery state (GET /v1/mailbox).
func (c *Client) Mailbox(ctx context.Context) (Mailbox, error) {
	var m Mailbox
	err := c.Do(ctx, http.MethodGet, "/mailbox", nil, &m)
	return m, err
}
