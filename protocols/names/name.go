package names

import (
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The name rule. A directory name is what a user types to find a friend,
// so it must be unambiguous when read aloud or on a screen:
//
//   - ASCII only: letters a-z (upper case is folded to lower case), digits
//     0-9, and the separators '-', '_' and '.'. No other script, so no
//     homoglyphs from Cyrillic or Greek ("а" vs "a"), no invisible or
//     combining characters, no look-alike punctuation.
//   - MinLen to MaxLen characters (3..32).
//   - Starts and ends with a letter or digit; separators stand alone (no
//     "--", "._").
//   - Not something natter would read as a peer ID (a few short strings
//     starting with '1', such as "1x11", decode as one).
//
// Normalize applies the rule and returns the canonical (lower-case) form,
// which is what is signed, stored and looked up.
//
// Inside ASCII some names still look alike. Skeleton maps a canonical name
// to a key under which look-alikes collide: separators are dropped, '0'
// reads as 'o', '1' as 'l', "rn" as "m" and "vv" as "w". A server holds at
// most one name per skeleton, so once "bob.smith" is taken nobody else can
// take "bobsmith", "bob-smith", "b0b_smith" or "bob.srnith".
const (
	MinLen = 3
	MaxLen = 32
)

// ErrInvalidName is wrapped by every error Normalize returns.
var ErrInvalidName = errors.New("invalid name")

// Normalize checks s against the name rule (see above) and returns its
// canonical form. Surrounding spaces are not trimmed: a name with spaces is
// refused, not silently changed.
func Normalize(s string) (string, error) {
	if len(s) < MinLen || len(s) > MaxLen {
		return "", fmt.Errorf("%w: %q must be %d to %d characters long", ErrInvalidName, truncate(s), MinLen, MaxLen)
	}
	b := make([]byte, len(s))
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case isSep(c):
			if i == 0 || i == len(s)-1 {
				return "", fmt.Errorf("%w: %q must start and end with a letter or digit", ErrInvalidName, s)
			}
			if isSep(s[i-1]) {
				return "", fmt.Errorf("%w: %q has two separators in a row", ErrInvalidName, s)
			}
		default:
			return "", fmt.Errorf("%w: %q may only use a-z, 0-9 and single '-', '_' or '.' separators", ErrInvalidName, truncate(s))
		}
		b[i] = c
	}
	name := string(b)
	// Real peer IDs are longer than MaxLen, but a few short strings
	// decode as identity-hash peer IDs ("1x11"); a name must never be
	// mistaken for one (natter contacts add takes both).
	if _, err := peer.Decode(name); err == nil {
		return "", fmt.Errorf("%w: %q reads as a peer ID", ErrInvalidName, name)
	}
	return name, nil
}

func isSep(c byte) bool { return c == '-' || c == '_' || c == '.' }

// Skeleton returns the key under which names that look alike collide (see
// the rule above). name must be canonical (from Normalize).
func Skeleton(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case isSep(c):
			continue
		case c == '0':
			c = 'o'
		case c == '1':
			c = 'l'
		case c == 'r' && i+1 < len(name) && name[i+1] == 'n':
			c = 'm'
			i++
		case c == 'v' && i+1 < len(name) && name[i+1] == 'v':
			c = 'w'
			i++
		}
		b.WriteByte(c)
	}
	return b.String()
}

// truncate keeps error messages short when a peer sends a long name.
func truncate(s string) string {
	if len(s) > 2*MaxLen {
		return s[:2*MaxLen] + "..."
	}
	return s
}
