package control

import (
	"context"
	"net/http"
)

// Profile returns our profile.
func (c *Client) Profile(ctx context.Context) (Profile, error) {
	var out Profile
	err := c.Do(ctx, http.MethodGet, "/profile", nil, &out)
	return out, err
}

// ContactProfile returns a contact's profile as last fetched.
func (c *Client) ContactProfile(ctx context.Context, ref string) (Profile, error) {
	var out Profile
	err := c.Do(ctx, http.MethodGet, "/contacts/"+PathEscape(ref)+"/profile", nil, &out)
	return out, err
}

// SetProfile changes our profile (see ProfileRequest).
func (c *Client) SetProfile(ctx context.Context, req ProfileRequest) (Profile, error) {
	var out Profile
	err := c.Do(ctx, http.MethodPost, "/profile", req, &out)
	return out, err
}
