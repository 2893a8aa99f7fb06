package links

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/store"
)

// Contacts is what the links read from the contact list (node passes the
// store).
type Contacts interface {
	// ContactByPeer returns the contact with peer ID p, or an error
	// (store.ErrNotFound) if there is none. Its Name labels link logs and
	// events; its Rendezvous (the servers its invite named) gives relay
	// addresses to try when no connected server knows the contact.
	ContactByPeer(ctx context.Context, p peer.ID) (store.Contact, error)
}

// The hooks the features register (before Start) instead of being called
// by name:
//
//   - OnLink(func(core.LinkEvent)): a contact link came up, went down,
//     changed path, or its heartbeat ticked.
//   - OnRendezvous(func(server peer.ID, up bool)): a rendezvous server was
//     connected (up) or lost.
//
// Both are called synchronously from the link's goroutine, in order; they
// must return quickly and start their own goroutines for anything slow.
