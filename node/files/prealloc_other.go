//go:build !linux

package files

import "os"

// preallocate is a no-op where fallocate does not exist.
func preallocate(*os.File, int64, int64) error { return nil }
