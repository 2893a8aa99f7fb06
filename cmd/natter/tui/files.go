package tui

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// checkFile resolves a /file argument (~ is the home directory) to an
// absolute path and checks it is a regular file this user can read: the
// daemon reads it, so a mistake is best caught here, with a clear word.
func checkFile(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("/file: %w", err)
		}
		p = filepath.Join(home, p[1:])
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("/file: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("/file: no such file %s", abs)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("/file: %s is not a regular file", abs)
	}
	f, err := os.Open(abs)
	if err != nil {
		return "", fmt.Errorf("/file: cannot read %s: %w", abs, err)
	}
	f.Close()
	return abs, nil
}

// baseName is the file name shown for a path.
func baseName(p string) string { return filepath.Base(p) }
