package file

import (
	"fmt"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameBytes is the longest name SafeName returns, in bytes. It leaves
// room under the usual 255-byte limit of file systems for a " (9999)"
// clash suffix.
const MaxNameBytes = 200

// fallbackName is used when nothing usable is left of an offered name.
const fallbackName = "file"

// SafeName turns a name offered by a peer into one that is safe to create
// in a downloads folder on any common system. It never fails:
//
//   - only the last element of a path is kept ("../../x" -> "x",
//     "/etc/passwd" -> "passwd", `C:\x\y.txt` -> "y.txt"); "." and ".."
//     are never a name;
//   - invalid UTF-8, control and format characters (including bidi
//     overrides and zero-width characters, which can disguise an
//     extension) and the characters Windows forbids (<>:"/\|?*) become
//     "_";
//   - leading dots and dashes (hidden files, option look-alikes) and
//     leading or trailing spaces and trailing dots are removed;
//   - Windows reserved device names (CON, PRN, AUX, NUL, COM0-9, LPT0-9,
//     also with an extension, any case) get a "_" in front;
//   - the result is at most MaxNameBytes bytes, cut on a character
//     boundary and keeping a short extension;
//   - an empty result becomes "file".
func SafeName(offered string) string {
	s := strings.ToValidUTF8(offered, "\uFFFD")
	s = strings.ReplaceAll(s, `\`, "/")
	base := ""
	parts := strings.Split(s, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		p := strings.TrimSpace(parts[i])
		if p != "" && p != "." && p != ".." {
			base = parts[i]
			break
		}
	}
	var b strings.Builder
	for _, r := range base {
		switch {
		case r == utf8.RuneError, unicode.IsControl(r), unicode.Is(unicode.Cf, r), unicode.Is(unicode.Zl, r), unicode.Is(unicode.Zp, r):
			b.WriteByte('_')
		case strings.ContainsRune(`<>:"/\|?*`, r):
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	s = trimEnds(b.String())
	if s == "" {
		return fallbackName
	}
	if isReserved(s) {
		s = "_" + s
	}
	// Cutting may end the name on a space or a dot again.
	if s = trimEnds(trimName(s, MaxNameBytes)); s == "" {
		return fallbackName
	}
	return s
}

// trimEnds removes what must not start a name (white space of any kind,
// dots, dashes: hidden files, options) or end it (white space, dots).
func trimEnds(s string) string {
	s = strings.TrimLeftFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '.' || r == '-' })
	return strings.TrimRightFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '.' })
}

// isReserved reports whether name is, or starts with, a Windows device
// name ("con", "nul.txt", "COM1.tar.gz").
func isReserved(name string) bool {
	stem, _, _ := strings.Cut(name, ".")
	stem = strings.ToUpper(strings.TrimRight(stem, " "))
	switch stem {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(stem) == 4 && (strings.HasPrefix(stem, "COM") || strings.HasPrefix(stem, "LPT")) && stem[3] >= '0' && stem[3] <= '9' {
		return true
	}
	// Windows also treats COM¹, COM², COM³ (superscript digits) as devices.
	for _, p := range []string{"COM", "LPT"} {
		if rest, ok := strings.CutPrefix(stem, p); ok && (rest == "¹" || rest == "²" || rest == "³") {
			return true
		}
	}
	return false
}

// trimName cuts s to at most max bytes on a character boundary, keeping
// its extension if that is short (up to 16 bytes).
func trimName(s string, max int) string {
	if len(s) <= max {
		return s
	}
	ext := path.Ext(s)
	if len(ext) > 16 || len(ext) == len(s) {
		ext = ""
	}
	stem := s[:len(s)-len(ext)]
	keep := max - len(ext)
	for keep > 0 && !utf8.RuneStart(stem[keep]) {
		keep--
	}
	out := strings.TrimRight(stem[:keep], " .") + ext
	if strings.TrimLeft(out, " .") == "" {
		return fallbackName
	}
	return out
}

// ClashName is the name tried for the n-th clash (n >= 1): "a (1).txt".
func ClashName(name string, n int) string {
	ext := path.Ext(name)
	if len(ext) > 16 || len(ext) == len(name) {
		ext = ""
	}
	stem := strings.TrimSuffix(name, ext)
	suffix := fmt.Sprintf(" (%d)", n)
	// Stay within MaxNameBytes + the suffix: never longer than the file
	// system allows.
	return trimName(stem, MaxNameBytes-len(ext)) + suffix + ext
}

// CheckSendName validates a name a user chooses for a file they send
// (natter send-file --as): a plain file name, not a path.
func CheckSendName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("the file name is empty")
	case len(name) > 255:
		return fmt.Errorf("the file name is longer than 255 bytes")
	case !utf8.ValidString(name):
		return fmt.Errorf("the file name is not valid UTF-8")
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("the file name %q contains a path separator; give a plain name", name)
	case name == "." || name == "..":
		return fmt.Errorf("%q is not a file name", name)
	case strings.ContainsFunc(name, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }):
		return fmt.Errorf("the file name contains control characters")
	}
	return nil
}
