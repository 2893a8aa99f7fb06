package control

import (
	"context"
	"net/http"
)

// Names lists our directory names and their state on each rendezvous.
func (c *Client) Names(ctx context.Context) ([]OwnName, error) {
	var out []OwnName
	err := c.Do(ctx, http.MethodGet, "/names", nil, &out)
	return out, err
}

// RegisterName claims name on every connected rendezvous server.
func (c *Client) RegisterName(ctx context.Context, name string) (OwnName, error) {
	var out OwnName
	err := c.Do(ctx, http.MethodPost, "/names", NameRequest{Name: name}, &out)
	return out, err
}

// ReleaseName gives one of our names up on every connected rendezvous.
func (c *Client) ReleaseName(ctx context.Context, name string) (OwnName, error) {
	var out OwnName
	err := c.Do(ctx, http.MethodDelete, "/names/"+PathEscape(name), nil, &out)
	return out, err
}

// LookupName asks the connected rendezvous servers who holds name.
func (c *Client) LookupName(ctx context.Context, name string) (NameLookup, error) {
	var out NameLookup
	err := c.Do(ctx, http.MethodGet, "/directory/"+PathEscape(name), nil, &out)
	return out, err
}
