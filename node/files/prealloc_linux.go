package files

import (
	"errors"
	"os"
	"syscall"
)

// preallocate reserves disk space for n bytes of f from off on, without
// changing its size: a disk that cannot hold the file says so now (ENOSPC)
// rather than in the middle of the transfer, and the file system can lay
// the file out in one piece. File systems that cannot do it are not an
// error.
func preallocate(f *os.File, off, n int64) error {
	if n <= 0 {
		return nil
	}
	const keepSize = 1 // FALLOC_FL_KEEP_SIZE
	err := syscall.Fallocate(int(f.Fd()), keepSize, off, n)
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return err
	}
	return nil
}
