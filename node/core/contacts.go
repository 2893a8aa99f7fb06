package core

import (
	"fmt"

	"github.com/natterim/natter/node/store"
)

// CanChat explains why c cannot be written to (a message, a file), if it
// cannot: only accepted contacts can. The one rule, in the same words, for
// every feature that sends.
func CanChat(c store.Contact) error {
	switch c.State {
	case store.StateAccepted:
		return nil
	case store.StatePendingOut:
		return Conflict(fmt.Errorf("%s has not accepted your friend request yet", c.Label()))
	case store.StatePendingIn:
		return Conflict(fmt.Errorf("%s asked to be your contact: accept first (natter contacts accept %s)", c.Label(), c.Label()))
	}
	return Conflict(fmt.Errorf("%s is blocked", c.Label()))
}
