package file

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	msmux "github.com/multiformats/go-multistream"

	"github.com/natterim/natter/protocols/file/pb"
	"github.com/natterim/natter/protocols/wire"
)

// FetchOptions tune the receiver's side of one exchange.
type FetchOptions struct {
	// AllowRelayed lets the stream use a relayed (limited) connection
	// when there is no direct one. The caller decides (the file's size
	// against its own relay limit); the sender has its own limit.
	AllowRelayed bool
	// StallTimeout ends the exchange when no data arrived for this long
	// (default DefaultStallTimeout).
	StallTimeout time.Duration
	// Written is called, in order, once chunk i, ending at byte end, has
	// matched its sum, been written to the destination and been added to
	// the running hash. An error stops the download.
	Written func(chunk int, end int64) error
	// Opened is called with the connection the stream runs on.
	Opened func(c network.Conn)
}

func (o *FetchOptions) stall() time.Duration {
	if o.StallTimeout > 0 {
		return o.StallTimeout
	}
	return DefaultStallTimeout
}

// ErrNoConnection means there is no connection to the sender that the
// exchange may use (none at all, or only relayed ones and AllowRelayed is
// false).
var ErrNoConnection = errors.New("no usable connection to the sender")

// openStream opens a file stream to p on the best existing connection:
// a direct TCP one (the fastest for bulk data here), else another direct
// one, else, if allowed, a relayed one. It never dials.
func openStream(ctx context.Context, h host.Host, p peer.ID, allowRelayed bool) (network.Stream, error) {
	var (
		best     network.Conn
		bestRank = -1
	)
	for _, c := range h.Network().ConnsToPeer(p) {
		if c.IsClosed() {
			continue
		}
		rank := 1
		switch {
		case limited(c):
			if !allowRelayed {
				continue
			}
			rank = 0
		case isTCP(c.RemoteMultiaddr()):
			rank = 2
		}
		if rank > bestRank {
			best, bestRank = c, rank
		}
	}
	if best == nil {
		return nil, ErrNoConnection
	}
	if bestRank == 0 {
		ctx = network.WithAllowLimitedConn(ctx, "file")
	}
	octx, cancel := context.WithTimeout(ctx, DefaultRequestTimeout)
	defer cancel()
	st, err := best.NewStream(octx)
	if err != nil {
		return nil, fmt.Errorf("open file stream: %w", err)
	}
	if err := st.SetProtocol(ID); err != nil {
		st.Reset()
		return nil, fmt.Errorf("open file stream: %w", err)
	}
	if err := st.Scope().SetService(ServiceName); err != nil {
		st.Reset()
		return nil, fmt.Errorf("open file stream: %w", err)
	}
	_ = st.SetDeadline(time.Now().Add(DefaultRequestTimeout))
	if err := msmux.SelectProtoOrFail(ID, st); err != nil {
		st.Reset()
		return nil, fmt.Errorf("negotiate %s: %w", ID, err)
	}
	_ = st.SetDeadline(time.Time{})
	return st, nil
}

func isTCP(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_TCP)
	return err == nil
}

// request opens a stream, sends req and reads the response; on OK the
// stream is returned positioned at the data, else a *RefusedError.
func request(ctx context.Context, h host.Host, p peer.ID, req *pb.Request, o *FetchOptions) (network.Stream, *pb.Response, error) {
	st, err := openStream(ctx, h, p, o.AllowRelayed)
	if err != nil {
		return nil, nil, err
	}
	if o.Opened != nil {
		o.Opened(st.Conn())
	}
	fail := func(err error) (network.Stream, *pb.Response, error) {
		st.Reset()
		return nil, nil, err
	}
	if err := st.SetDeadline(time.Now().Add(o.stall())); err != nil {
		return fail(err)
	}
	if err := wire.WriteMsg(st, req, MaxRequestSize); err != nil {
		return fail(err)
	}
	if err := st.CloseWrite(); err != nil {
		return fail(err)
	}
	var resp pb.Response
	if err := wire.ReadMsg(st, &resp, MaxResponseSize); err != nil {
		return fail(fmt.Errorf("read response: %w", err))
	}
	if err := validateResponse(&resp); err != nil {
		return fail(err)
	}
	if resp.GetStatus() != pb.Status_OK {
		_ = st.Close()
		return nil, nil, &RefusedError{Status: resp.GetStatus(), Reason: resp.GetReason(), RelayMax: int64(min(resp.GetRelayMax(), uint64(MaxFileSize)))}
	}
	return st, &resp, nil
}

// FetchSums asks p for the chunk hash list of o and returns it once it
// matches the offer's chunks root (else an error wrapping ErrHashList).
func FetchSums(ctx context.Context, h host.Host, p peer.ID, o Offer, opts FetchOptions) ([]byte, error) {
	n := o.Chunks()
	st, resp, err := request(ctx, h, p, &pb.Request{Transfer: o.ID[:], Kind: pb.Kind_HASHES}, &opts)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			st.Reset()
		}
	}()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	if resp.GetLength() != uint64(n) {
		return nil, fmt.Errorf("%w: the sender has %d chunk sums, the offer %d chunks", ErrHashList, resp.GetLength(), n)
	}
	sums := make([]byte, 0, n*SumLen)
	for len(sums) < n*SumLen {
		if err := st.SetReadDeadline(time.Now().Add(opts.stall())); err != nil {
			return nil, err
		}
		var f pb.Hashes
		if err := wire.ReadMsg(st, &f, MaxHashesSize); err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: %w", ErrShort, io.ErrUnexpectedEOF)
			}
			return nil, fmt.Errorf("read chunk sums: %w", err)
		}
		if err := validateHashes(&f); err != nil {
			return nil, err
		}
		if len(sums)+len(f.GetSums()) > n*SumLen {
			return nil, fmt.Errorf("%w: more chunk sums than announced", ErrHashList)
		}
		sums = append(sums, f.GetSums()...)
	}
	if err := CheckSums(o, sums); err != nil {
		return nil, err
	}
	ok = true
	_ = st.Close()
	return sums, nil
}

// Result is what a finished download learnt.
type Result struct {
	// Trailing is true if the sender sent more bytes than the offer's size
	// (they were read, never written, and the stream was reset).
	Trailing bool
}

// Download fetches o's data from chunk from to the end from p, checks
// every chunk against sums (already verified with CheckSums), writes it to
// dst at its offset and adds it to whole, which must hold the SHA-256
// state of the first from chunks. When the last chunk is written it checks
// whole against the offered SHA-256.
//
// Reading, chunk hashing, and file hashing plus writing run in three
// goroutines, pipelined, with a fixed number of 1 MiB buffers: memory does
// not grow with the file. Errors: a *RefusedError (the sender's answer),
// a *ChunkError (fetch again from that chunk), ErrShort, ErrLength,
// ErrFileHash, a stall (a timeout), a reset, or dst's write error as it
// is (ENOSPC...).
func Download(ctx context.Context, h host.Host, p peer.ID, o Offer, sums []byte, from int, dst io.WriterAt, whole hash.Hash, opts FetchOptions) (Result, error) {
	n := o.Chunks()
	if from < 0 || from > n || len(sums) != n*SumLen {
		return Result{}, fmt.Errorf("download from chunk %d of %d with %d bytes of sums", from, n, len(sums))
	}
	if from == n {
		return Result{}, finalCheck(o, whole)
	}
	st, resp, err := request(ctx, h, p, &pb.Request{Transfer: o.ID[:], Kind: pb.Kind_DATA, FromChunk: uint64(from)}, &opts)
	if err != nil {
		return Result{}, err
	}
	var res Result
	start := int64(from) * int64(o.ChunkSize)
	if resp.GetLength() != uint64(o.Size-start) {
		st.Reset()
		return res, fmt.Errorf("%w: %d bytes from chunk %d, want %d", ErrLength, resp.GetLength(), from, o.Size-start)
	}
	d := &download{o: o, sums: sums, st: st, dst: dst, whole: whole, opts: &opts, start: start, from: from}
	res.Trailing, err = d.run(ctx)
	if err != nil {
		st.Reset()
		return res, err
	}
	if res.Trailing {
		st.Reset()
	} else {
		_ = st.Close()
	}
	return res, nil
}

func finalCheck(o Offer, whole hash.Hash) error {
	var sum [SumLen]byte
	whole.Sum(sum[:0])
	if sum != o.SHA256 {
		return ErrFileHash
	}
	return nil
}

// pipelineDepth is the number of piece buffers of one download.
const pipelineDepth = 16

type piece struct {
	buf   []byte
	n     int
	off   int64
	chunk int
	last  bool // the last piece of its chunk
}

type download struct {
	o     Offer
	sums  []byte
	st    network.Stream
	dst   io.WriterAt
	whole hash.Hash
	opts  *FetchOptions
	start int64
	from  int
}

func (d *download) run(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Cancelling unblocks a reader stuck in Read.
	stop := context.AfterFunc(ctx, func() { d.st.Reset() })
	defer stop()
	var (
		once  sync.Once
		first error
	)
	fail := func(err error) {
		once.Do(func() {
			first = err
			cancel()
		})
	}

	psize := min(pieceSize, d.o.ChunkSize)
	pool := make(chan []byte, pipelineDepth)
	for range pipelineDepth {
		pool <- make([]byte, psize)
	}
	read := make(chan piece, pipelineDepth)
	verified := make(chan piece, pipelineDepth)
	var (
		wg       sync.WaitGroup
		trailing bool
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(read)
		var err error
		if trailing, err = d.read(ctx, pool, read); err != nil {
			fail(err)
		}
	}()
	go func() {
		defer wg.Done()
		defer close(verified)
		if err := d.verify(ctx, read, verified); err != nil {
			fail(err)
		}
	}()
	if err := d.write(ctx, verified, pool); err != nil {
		fail(err)
	}
	for range verified { // let the other stages finish
	}
	wg.Wait()
	if first != nil {
		return false, first
	}
	return trailing, nil
}

// read reads the data into pieces.
func (d *download) read(ctx context.Context, pool chan []byte, out chan<- piece) (trailing bool, err error) {
	stall := d.opts.stall()
	var lastDL time.Time
	deadline := func() error {
		if now := time.Now(); now.Sub(lastDL) > stall/8 {
			lastDL = now
			return d.st.SetReadDeadline(now.Add(stall))
		}
		return nil
	}
	off := d.start
	for chunk := d.from; chunk < d.o.Chunks(); chunk++ {
		end := d.o.ChunkEnd(chunk)
		for off < end {
			var buf []byte
			select {
			case buf = <-pool:
			case <-ctx.Done():
				return false, ctx.Err()
			}
			n := int(min(int64(len(buf)), end-off))
			for read := 0; read < n; {
				if err := deadline(); err != nil {
					return false, err
				}
				m, err := d.st.Read(buf[read:n])
				read += m
				if err != nil {
					if errors.Is(err, io.EOF) {
						if read == n {
							break
						}
						return false, fmt.Errorf("%w: %d bytes short", ErrShort, d.o.Size-off-int64(read))
					}
					return false, fmt.Errorf("read data: %w", err)
				}
			}
			p := piece{buf: buf, n: n, off: off, chunk: chunk, last: off+int64(n) == end}
			off += int64(n)
			select {
			case out <- p:
			case <-ctx.Done():
				return false, ctx.Err()
			}
		}
	}
	// Everything offered has arrived: the sender should now end the
	// stream. More bytes are a protocol violation; they are never
	// written anywhere.
	var one [1]byte
	_ = d.st.SetReadDeadline(time.Now().Add(min(stall, 5*time.Second)))
	m, _ := d.st.Read(one[:])
	return m > 0, nil
}

// verify checks every chunk against its sum.
func (d *download) verify(ctx context.Context, in <-chan piece, out chan<- piece) error {
	h := sha256.New()
	var sum [SumLen]byte
	for p := range in {
		h.Write(p.buf[:p.n])
		if p.last {
			h.Sum(sum[:0])
			h.Reset()
			if !equalSum(sum, Sum(d.sums, p.chunk)) {
				return &ChunkError{Chunk: p.chunk}
			}
		}
		select {
		case out <- p:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// write adds verified pieces to the running hash and the destination.
func (d *download) write(ctx context.Context, in <-chan piece, pool chan<- []byte) error {
	for p := range in {
		if err := ctx.Err(); err != nil {
			return err // another stage failed first; its error wins
		}
		d.whole.Write(p.buf[:p.n])
		if _, err := d.dst.WriteAt(p.buf[:p.n], p.off); err != nil {
			return err
		}
		pool <- p.buf
		if !p.last {
			continue
		}
		if p.chunk == d.o.Chunks()-1 {
			if err := finalCheck(d.o, d.whole); err != nil {
				return err
			}
		}
		if d.opts.Written != nil {
			if err := d.opts.Written(p.chunk, d.o.ChunkEnd(p.chunk)); err != nil {
				return err
			}
		}
	}
	return nil
}
