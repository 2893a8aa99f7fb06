package files

import (
	"errors"
	"strings"
	"syscall"
	"unicode"

	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/file"
)

func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, store.ErrDiskFull)
}

func diskFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// cleanReason makes a reason from a peer safe to show: one line, no
// control characters, bounded.
func cleanReason(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	return clipReason(strings.TrimSpace(s))
}

func clipReason(s string) string {
	if len(s) > file.MaxReasonBytes {
		s = strings.ToValidUTF8(s[:file.MaxReasonBytes], "")
	}
	return s
}

// shortErr is the last part of a wrapped error, for a reason line.
func shortErr(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[len(s)-120:]
		s = strings.ToValidUTF8(s, "")
	}
	return s
}
