package file

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// Hashes is what a sender computes before offering a file.
type Hashes struct {
	SHA256 [SumLen]byte
	// Sums is the chunk hash list; Root its SHA-256.
	Sums []byte
	Root [SumLen]byte
}

// HashFile reads exactly size bytes from r and computes the whole file's
// SHA-256 and its chunk sums for chunkSize, the two in parallel, with a
// fixed number of buffers. It fails if r ends early or holds more than
// size bytes.
func HashFile(ctx context.Context, r io.Reader, size int64, chunkSize int) (Hashes, error) {
	if chunkSize <= 0 || ChunkCount(size, chunkSize) > MaxChunks {
		return Hashes{}, fmt.Errorf("hash file: %d bytes in chunks of %d", size, chunkSize)
	}
	type buf struct {
		b    []byte
		n    int
		last bool // last piece of a chunk
		refs atomic.Int32
	}
	psize := min(pieceSize, chunkSize)
	pool := make(chan *buf, pipelineDepth)
	for range pipelineDepth {
		pool <- &buf{b: make([]byte, psize)}
	}
	release := func(b *buf) {
		if b.refs.Add(-1) == 0 {
			pool <- b
		}
	}
	toWhole := make(chan *buf, pipelineDepth)
	toChunks := make(chan *buf, pipelineDepth)
	var (
		wg    sync.WaitGroup
		out   Hashes
		whole = sha256.New()
	)
	out.Sums = make([]byte, 0, ChunkCount(size, chunkSize)*SumLen)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for b := range toWhole {
			whole.Write(b.b[:b.n])
			release(b)
		}
	}()
	go func() {
		defer wg.Done()
		h := sha256.New()
		for b := range toChunks {
			h.Write(b.b[:b.n])
			if b.last {
				out.Sums = h.Sum(out.Sums)
				h.Reset()
			}
			release(b)
		}
	}()
	err := func() error {
		defer close(toWhole)
		defer close(toChunks)
		var off int64
		for off < size {
			if err := ctx.Err(); err != nil {
				return err
			}
			b := <-pool
			chunkEnd := min((off/int64(chunkSize)+1)*int64(chunkSize), size)
			b.n = int(min(int64(len(b.b)), chunkEnd-off))
			if _, err := io.ReadFull(r, b.b[:b.n]); err != nil {
				pool <- b
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					return fmt.Errorf("the file is shorter than %d bytes (did it change?)", size)
				}
				return err
			}
			off += int64(b.n)
			b.last = off == chunkEnd
			b.refs.Store(2)
			toWhole <- b
			toChunks <- b
		}
		var one [1]byte
		if n, _ := r.Read(one[:]); n > 0 {
			return fmt.Errorf("the file is longer than %d bytes (did it change?)", size)
		}
		return nil
	}()
	wg.Wait()
	if err != nil {
		return Hashes{}, fmt.Errorf("hash file: %w", err)
	}
	whole.Sum(out.SHA256[:0])
	out.Root = RootOf(out.Sums)
	return out, nil
}
