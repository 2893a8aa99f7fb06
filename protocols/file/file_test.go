package file_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/natterim/natter/protocols/file"
	"github.com/natterim/natter/protocols/file/pb"
	"github.com/natterim/natter/protocols/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// mocknet and the libp2p host keep background goroutines that
		// their Close ends asynchronously.
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/net/mock.(*peernet).Close"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/host/eventbus.(*basicBus).Subscribe.func1"),
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoremem.(*AddrBook).background"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-flow-metrics.(*sweeper).run"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

// testFile is an offered file held in memory.
type testFile struct {
	data   []byte
	offer  file.Offer
	hashes file.Hashes
}

func newTestFile(t testing.TB, size int, chunkSize int) *testFile {
	t.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	h, err := file.HashFile(context.Background(), bytes.NewReader(data), int64(size), chunkSize)
	require.NoError(t, err)
	var id file.TransferID
	_, _ = rand.Read(id[:])
	return &testFile{data: data, hashes: h, offer: file.Offer{ID: id, Size: int64(size), SHA256: h.SHA256, ChunkSize: chunkSize, Root: h.Root}}
}

// provider serves testFiles, each only to the peer it was offered to.
type provider struct {
	mu      sync.Mutex
	files   map[file.TransferID]*testFile
	to      map[file.TransferID]peer.ID
	done    []error
	served  int
	changed bool // Check fails: the file changed on disk
}

func newProvider() *provider {
	return &provider{files: map[file.TransferID]*testFile{}, to: map[file.TransferID]peer.ID{}}
}

func (p *provider) add(f *testFile, to peer.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files[f.offer.ID] = f
	p.to[f.offer.ID] = to
}

func (p *provider) Source(_ context.Context, from peer.ID, id file.TransferID, _ network.Conn, _ pb.Kind) (*file.Source, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, ok := p.files[id]
	if !ok || p.to[id] != from {
		return nil, file.Refuse(file.StatusNotFound, "")
	}
	p.served++
	return &file.Source{
		Size: f.offer.Size, ChunkSize: f.offer.ChunkSize, Sums: f.hashes.Sums, File: bytes.NewReader(f.data),
		Check: func() error {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.changed {
				return errors.New("the file changed")
			}
			return nil
		},
		Done: func(err error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.done = append(p.done, err)
		},
	}, nil
}

func (p *provider) doneErrs() []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]error(nil), p.done...)
}

// pair returns two connected mocknet hosts: recv (the receiver) and send,
// which runs a file Service with provider p.
func pair(t *testing.T, p file.Provider, opts ...file.Option) (recv, send host.Host, m *wire.Metrics) {
	t.Helper()
	mn, err := mocknet.WithNPeers(2)
	require.NoError(t, err)
	t.Cleanup(func() { _ = mn.Close() })
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	return serve(t, mn.Hosts()[0], mn.Hosts()[1], p, opts...)
}

// tcpPair is pair over real loopback TCP connections: mocknet streams
// have no deadlines, so stalls need these.
func tcpPair(t *testing.T, p file.Provider, opts ...file.Option) (recv, send host.Host, m *wire.Metrics) {
	t.Helper()
	newHost := func() host.Host {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.Transport(tcp.NewTCPTransport))
		require.NoError(t, err)
		t.Cleanup(func() { h.Close() })
		return h
	}
	recv, send = newHost(), newHost()
	require.NoError(t, recv.Connect(context.Background(), peer.AddrInfo{ID: send.ID(), Addrs: send.Addrs()}))
	return serve(t, recv, send, p, opts...)
}

func serve(t *testing.T, recv, send host.Host, p file.Provider, opts ...file.Option) (host.Host, host.Host, *wire.Metrics) {
	m := wire.NewMetrics(nil)
	if p != nil {
		svc := file.New(send, p, append([]file.Option{file.WithMetrics(m)}, opts...)...)
		t.Cleanup(func() { require.NoError(t, svc.Close()) })
	}
	return recv, send, m
}

// memFile is a WriterAt in memory.
type memFile struct {
	mu   sync.Mutex
	data []byte
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if need := int(off) + len(p); need > len(f.data) {
		f.data = append(f.data, make([]byte, need-len(f.data))...)
	}
	copy(f.data[off:], p)
	return len(p), nil
}

func (f *memFile) bytes() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.data...)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestTransferWhole(t *testing.T) {
	p := newProvider()
	recv, send, _ := pair(t, p)
	f := newTestFile(t, 5<<20+12345, file.MinChunkSize*4)
	p.add(f, recv.ID())

	sums, err := file.FetchSums(ctx(t), recv, send.ID(), f.offer, file.FetchOptions{})
	require.NoError(t, err)
	require.Equal(t, f.hashes.Sums, sums)

	var (
		dst     memFile
		written []int
	)
	res, err := file.Download(ctx(t), recv, send.ID(), f.offer, sums, 0, &dst, sha256.New(), file.FetchOptions{
		Written: func(chunk int, end int64) error {
			written = append(written, chunk)
			require.Equal(t, f.offer.ChunkEnd(chunk), end)
			return nil
		},
	})
	require.NoError(t, err)
	require.False(t, res.Trailing)
	require.Equal(t, f.data, dst.bytes())
	require.Len(t, written, f.offer.Chunks())
	for i, c := range written {
		require.Equal(t, i, c, "chunks must be reported in order")
	}
	require.Eventually(t, func() bool { return len(p.doneErrs()) == 2 }, 5*time.Second, 10*time.Millisecond)
	for _, err := range p.doneErrs() {
		require.NoError(t, err)
	}
}

func TestEmptyFile(t *testing.T) {
	p := newProvider()
	recv, send, _ := pair(t, p)
	f := newTestFile(t, 0, file.DefaultChunkSize)
	p.add(f, recv.ID())
	sums, err := file.FetchSums(ctx(t), recv, send.ID(), f.offer, file.FetchOptions{})
	require.NoError(t, err)
	require.Empty(t, sums)
	_, err = file.Download(ctx(t), recv, send.ID(), f.offer, sums, 0, &memFile{}, sha256.New(), file.FetchOptions{})
	require.NoError(t, err)
}

// TestResume stops a download after some chunks, the way a crash would
// (the hash state is saved at a chunk boundary), and resumes from there
// with a restored hash: the file comes out intact.
func TestResume(t *testing.T) {
	p := newProvider()
	recv, send, _ := pair(t, p)
	f := newTestFile(t, 3<<20, file.MinChunkSize)
	p.add(f, recv.ID())
	sums, err := file.FetchSums(ctx(t), recv, send.ID(), f.offer, file.FetchOptions{})
	require.NoError(t, err)

	var (
		dst   memFile
		saved []byte
		next  int
		stop  = errors.New("simulated crash")
		whole = sha256.New()
	)
	_, err = file.Download(ctx(t), recv, send.ID(), f.offer, sums, 0, &dst, whole, file.FetchOptions{
		Written: func(chunk int, _ int64) error {
			if chunk == 17 {
				st, err := whole.(encoding.BinaryMarshaler).MarshalBinary()
				require.NoError(t, err)
				saved, next = st, chunk+1
				return stop
			}
			return nil
		},
	})
	require.ErrorIs(t, err, stop)

	restored := sha256.New()
	require.NoError(t, restored.(encoding.BinaryUnmarshaler).UnmarshalBinary(saved))
	_, err = file.Download(ctx(t), recv, send.ID(), f.offer, sums, next, &dst, restored, file.FetchOptions{})
	require.NoError(t, err)
	require.Equal(t, f.data, dst.bytes())
}

// liar is a sender that misbehaves in one way.
type liar struct {
	f        *testFile
	sums     []byte        // hash list it sends (default: the true one)
	data     []byte        // data it sends (default: the true one)
	length   int64         // announced length (default: the true one)
	extra    []byte        // sent after the data
	shortBy  int           // bytes left out at the end, then a clean close
	stallAt  int64         // stop sending (without closing) at this offset; 0: never
	stop     chan struct{} // closed when the test ends; a stalled handler waits for it
	rawReply []byte        // sent instead of a response
}

func (l *liar) handle(st network.Stream) {
	defer st.Close()
	var req pb.Request
	if err := wire.ReadMsg(st, &req, file.MaxRequestSize); err != nil {
		st.Reset()
		return
	}
	if l.rawReply != nil {
		_, _ = st.Write(l.rawReply)
		return
	}
	sums := l.f.hashes.Sums
	if l.sums != nil {
		sums = l.sums
	}
	if req.GetKind() == pb.Kind_HASHES {
		_ = wire.WriteMsg(st, &pb.Response{Status: pb.Status_OK, Length: uint64(len(sums) / file.SumLen)}, file.MaxResponseSize)
		for off := 0; off < len(sums); off += file.SumsPerFrame * file.SumLen {
			_ = wire.WriteMsg(st, &pb.Hashes{Sums: sums[off:min(off+file.SumsPerFrame*file.SumLen, len(sums))]}, file.MaxHashesSize)
		}
		return
	}
	data := l.f.data
	if l.data != nil {
		data = l.data
	}
	start := int64(req.GetFromChunk()) * int64(l.f.offer.ChunkSize)
	length := int64(len(data)) - start
	if l.length != 0 {
		length = l.length
	}
	_ = wire.WriteMsg(st, &pb.Response{Status: pb.Status_OK, Length: uint64(length)}, file.MaxResponseSize)
	body := data[start : len(data)-l.shortBy]
	if l.stallAt > 0 {
		_, _ = st.Write(body[:l.stallAt-start])
		// Stall past the receiver's stall timeout, until the test
		// ends, so that this goroutine never outlives it.
		<-l.stop
		st.Reset()
		return
	}
	_, _ = st.Write(body)
	_, _ = st.Write(l.extra)
}

func TestLyingSender(t *testing.T) {
	const size = 1<<20 + 777
	for _, tc := range []struct {
		name  string
		liar  func(f *testFile) *liar
		sums  bool // the lie shows in FetchSums
		check func(t *testing.T, res file.Result, err error, f *testFile, dst *memFile)
	}{
		{"wrong chunk", func(f *testFile) *liar {
			d := bytes.Clone(f.data)
			d[3*file.MinChunkSize+5] ^= 1
			return &liar{f: f, data: d}
		}, false, func(t *testing.T, _ file.Result, err error, _ *testFile, dst *memFile) {
			var ce *file.ChunkError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, 3, ce.Chunk, "the bad chunk is named, so only it is fetched again")
			require.ErrorIs(t, err, wire.ErrInvalid)
		}},
		{"hash list not matching the root", func(f *testFile) *liar {
			s := bytes.Clone(f.hashes.Sums)
			s[0] ^= 1
			return &liar{f: f, sums: s}
		}, true, func(t *testing.T, _ file.Result, err error, _ *testFile, _ *memFile) {
			require.ErrorIs(t, err, file.ErrHashList)
		}},
		{"hash list of another size", func(f *testFile) *liar {
			return &liar{f: f, sums: f.hashes.Sums[:len(f.hashes.Sums)-file.SumLen]}
		}, true, func(t *testing.T, _ file.Result, err error, _ *testFile, _ *memFile) {
			require.ErrorIs(t, err, file.ErrHashList)
		}},
		{"wrong whole-file hash in the offer", func(f *testFile) *liar {
			f.offer.SHA256[0] ^= 1
			return &liar{f: f}
		}, false, func(t *testing.T, _ file.Result, err error, _ *testFile, _ *memFile) {
			require.ErrorIs(t, err, file.ErrFileHash)
		}},
		{"wrong length", func(f *testFile) *liar {
			return &liar{f: f, length: size + 10}
		}, false, func(t *testing.T, _ file.Result, err error, _ *testFile, _ *memFile) {
			require.ErrorIs(t, err, file.ErrLength)
		}},
		{"short", func(f *testFile) *liar {
			return &liar{f: f, shortBy: 1000}
		}, false, func(t *testing.T, _ file.Result, err error, _ *testFile, _ *memFile) {
			require.ErrorIs(t, err, file.ErrShort)
		}},
		{"extra bytes", func(f *testFile) *liar {
			return &liar{f: f, extra: []byte("and some more")}
		}, false, func(t *testing.T, res file.Result, err error, f *testFile, dst *memFile) {
			require.NoError(t, err, "the file itself is intact and verified")
			require.True(t, res.Trailing)
			require.Equal(t, f.data, dst.bytes(), "nothing past the offered size may be written")
		}},
		{"stall", func(f *testFile) *liar {
			return &liar{f: f, stallAt: 200 << 10}
		}, false, func(t *testing.T, _ file.Result, err error, _ *testFile, dst *memFile) {
			require.True(t, wire.IsTimeout(err), "want a timeout, got %v", err)
			require.LessOrEqual(t, len(dst.bytes()), 3*file.MinChunkSize, "only whole chunks that arrived")
		}},
		{"garbage response", func(f *testFile) *liar {
			return &liar{f: f, rawReply: []byte{3, 0xff, 0xff, 0xff}}
		}, true, func(t *testing.T, _ file.Result, err error, _ *testFile, _ *memFile) {
			require.ErrorIs(t, err, wire.ErrMalformed)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recv, send, _ := tcpPair(t, nil)
			f := newTestFile(t, size, file.MinChunkSize)
			l := tc.liar(f)
			l.stop = make(chan struct{})
			t.Cleanup(func() { close(l.stop) })
			send.SetStreamHandler(file.ID, l.handle)
			opts := file.FetchOptions{StallTimeout: time.Second}
			sums, err := file.FetchSums(ctx(t), recv, send.ID(), f.offer, opts)
			if tc.sums {
				require.Error(t, err)
				tc.check(t, file.Result{}, err, f, nil)
				return
			}
			require.NoError(t, err)
			var dst memFile
			start := time.Now()
			res, err := file.Download(ctx(t), recv, send.ID(), f.offer, sums, 0, &dst, sha256.New(), opts)
			require.Less(t, time.Since(start), 10*time.Second)
			tc.check(t, res, err, f, &dst)
		})
	}
}

func TestMisbehavingReceiver(t *testing.T) {
	t.Run("unknown transfer", func(t *testing.T) {
		recv, send, _ := pair(t, newProvider())
		f := newTestFile(t, 1000, file.MinChunkSize)
		_, err := file.FetchSums(ctx(t), recv, send.ID(), f.offer, file.FetchOptions{})
		var re *file.RefusedError
		require.ErrorAs(t, err, &re)
		require.Equal(t, file.StatusNotFound, re.Status)
		require.True(t, re.Final())
	})
	t.Run("not the peer it was offered to", func(t *testing.T) {
		p := newProvider()
		recv, send, _ := pair(t, p)
		f := newTestFile(t, 1000, file.MinChunkSize)
		p.add(f, send.ID()) // offered to someone else
		_, err := file.Download(ctx(t), recv, send.ID(), f.offer, f.hashes.Sums, 0, &memFile{}, sha256.New(), file.FetchOptions{})
		var re *file.RefusedError
		require.ErrorAs(t, err, &re)
		require.Equal(t, file.StatusNotFound, re.Status)
	})
	for _, tc := range []struct {
		name   string
		frame  []byte
		reason string
	}{
		{"garbage request", []byte{5, 0xff, 0xff, 0xff, 0xff, 0xff}, "malformed"},
		{"oversized request", []byte{0xff, 0x7f}, "oversize"},
		{"short transfer id", frame(t, &pb.Request{Transfer: []byte{1, 2, 3}, Kind: pb.Kind_HASHES}), "invalid"},
		{"unknown kind", frame(t, &pb.Request{Transfer: make([]byte, 16), Kind: 9}), "invalid"},
		{"start past the end", nil, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider()
			recv, send, m := pair(t, p)
			f := newTestFile(t, 1000, file.MinChunkSize)
			p.add(f, recv.ID())
			if tc.frame == nil {
				tc.frame = frame(t, &pb.Request{Transfer: f.offer.ID[:], Kind: pb.Kind_DATA, FromChunk: 5})
			}
			st, err := recv.NewStream(ctx(t), send.ID(), file.ID)
			require.NoError(t, err)
			_, err = st.Write(tc.frame)
			require.NoError(t, err)
			_ = st.CloseWrite()
			_, err = io.ReadAll(st)
			require.Error(t, err, "the sender must reset the stream")
			require.Eventually(t, func() bool { return m.Count("file", tc.reason) == 1 }, 5*time.Second, 10*time.Millisecond,
				"want one %s error", tc.reason)
		})
	}
	t.Run("stops reading", func(t *testing.T) {
		p := newProvider()
		recv, send, m := tcpPair(t, p, file.WithStallTimeout(500*time.Millisecond))
		f := newTestFile(t, 64<<20, file.MinChunkSize)
		p.add(f, recv.ID())
		st, err := recv.NewStream(ctx(t), send.ID(), file.ID)
		require.NoError(t, err)
		defer st.Reset()
		_, err = st.Write(frame(t, &pb.Request{Transfer: f.offer.ID[:], Kind: pb.Kind_DATA}))
		require.NoError(t, err)
		// Read nothing: once the muxer's window (16 MiB) is full the
		// sender's writes block until its stall timeout ends the stream.
		require.Eventually(t, func() bool { return m.Count("file", "timeout") == 1 }, 10*time.Second, 10*time.Millisecond)
		errs := p.doneErrs()
		require.Len(t, errs, 1)
		require.True(t, wire.IsTimeout(errs[0]), "Done must see the timeout: %v", errs[0])
	})
	t.Run("too many at once", func(t *testing.T) {
		p := newProvider()
		recv, send, _ := pair(t, p, file.WithStreamsPerPeer(1), file.WithStallTimeout(5*time.Second))
		f := newTestFile(t, 4<<20, file.MinChunkSize)
		p.add(f, recv.ID())
		// The first stream holds the only slot (nobody reads it).
		st, err := recv.NewStream(ctx(t), send.ID(), file.ID)
		require.NoError(t, err)
		defer st.Reset()
		_, err = st.Write(frame(t, &pb.Request{Transfer: f.offer.ID[:], Kind: pb.Kind_DATA}))
		require.NoError(t, err)
		var resp pb.Response
		require.NoError(t, wire.ReadMsg(st, &resp, file.MaxResponseSize))
		require.Equal(t, pb.Status_OK, resp.GetStatus())
		_, err = file.FetchSums(ctx(t), recv, send.ID(), f.offer, file.FetchOptions{})
		var re *file.RefusedError
		require.ErrorAs(t, err, &re)
		require.Equal(t, file.StatusBusy, re.Status)
		require.False(t, re.Final())
	})
	t.Run("file changed on disk", func(t *testing.T) {
		p := newProvider()
		recv, send, _ := pair(t, p)
		f := newTestFile(t, 1<<20, file.MinChunkSize)
		p.add(f, recv.ID())
		p.changed = true
		_, err := file.Download(ctx(t), recv, send.ID(), f.offer, f.hashes.Sums, 0, &memFile{}, sha256.New(), file.FetchOptions{})
		require.Error(t, err, "the sender resets when Check fails")
		require.Eventually(t, func() bool { return len(p.doneErrs()) == 1 }, 5*time.Second, 10*time.Millisecond)
		require.ErrorContains(t, p.doneErrs()[0], "changed")
	})
}

// fullDisk fails every write after the first limit bytes with ENOSPC.
type fullDisk struct {
	memFile
	limit int64
}

func (f *fullDisk) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.limit {
		return 0, &os.PathError{Op: "write", Path: "partial", Err: syscall.ENOSPC}
	}
	return f.memFile.WriteAt(p, off)
}

// TestDiskFull: a destination that runs out of space stops the download
// with the write error as it is (the node pauses on ENOSPC), after the
// chunks written before it were reported.
func TestDiskFull(t *testing.T) {
	p := newProvider()
	recv, send, _ := pair(t, p)
	f := newTestFile(t, 1<<20, file.MinChunkSize)
	p.add(f, recv.ID())
	var last int
	_, err := file.Download(ctx(t), recv, send.ID(), f.offer, f.hashes.Sums, 0, &fullDisk{limit: 5 * file.MinChunkSize}, sha256.New(),
		file.FetchOptions{Written: func(chunk int, _ int64) error { last = chunk; return nil }})
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.Equal(t, 4, last, "chunks before the full disk are reported written")
}

func TestCloseIdempotent(t *testing.T) {
	mn, err := mocknet.WithNPeers(1)
	require.NoError(t, err)
	defer mn.Close()
	svc := file.New(mn.Hosts()[0], newProvider())
	require.NoError(t, svc.Close())
	require.NoError(t, svc.Close())
}

// blockingProvider's Source blocks until the service's context ends.
type blockingProvider struct {
	entered  chan struct{}
	returned chan struct{}
}

func (p *blockingProvider) Source(ctx context.Context, _ peer.ID, _ file.TransferID, _ network.Conn, _ pb.Kind) (*file.Source, error) {
	close(p.entered)
	<-ctx.Done()
	close(p.returned)
	return nil, ctx.Err()
}

// TestCloseWaitsForHandlers: Close aborts a handler in flight and returns
// only once it has ended; the receiver sees its stream end.
func TestCloseWaitsForHandlers(t *testing.T) {
	mn, err := mocknet.WithNPeers(2)
	require.NoError(t, err)
	defer mn.Close()
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	recv, send := mn.Hosts()[0], mn.Hosts()[1]
	p := &blockingProvider{entered: make(chan struct{}), returned: make(chan struct{})}
	svc := file.New(send, p)
	f := newTestFile(t, 10, file.MinChunkSize)
	fetched := make(chan error, 1)
	go func() {
		_, err := file.FetchSums(ctx(t), recv, send.ID(), f.offer, file.FetchOptions{})
		fetched <- err
	}()
	select {
	case <-p.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never asked the provider")
	}
	require.NoError(t, svc.Close())
	select {
	case <-p.returned:
	default:
		t.Fatal("Close returned before the handler ended")
	}
	require.Error(t, <-fetched)
	require.NoError(t, svc.Close())
}

func TestNoConnection(t *testing.T) {
	mn, err := mocknet.WithNPeers(2)
	require.NoError(t, err)
	defer mn.Close()
	f := newTestFile(t, 10, file.MinChunkSize)
	_, err = file.FetchSums(ctx(t), mn.Hosts()[0], mn.Hosts()[1].ID(), f.offer, file.FetchOptions{})
	require.ErrorIs(t, err, file.ErrNoConnection)
}

func frame(t testing.TB, m *pb.Request) []byte {
	var buf bytes.Buffer
	require.NoError(t, wire.WriteMsg(&buf, m, 1<<10))
	return buf.Bytes()
}

func TestHashFile(t *testing.T) {
	data := make([]byte, 3*file.MinChunkSize+10)
	_, _ = rand.Read(data)
	h, err := file.HashFile(context.Background(), bytes.NewReader(data), int64(len(data)), file.MinChunkSize)
	require.NoError(t, err)
	require.Equal(t, sha256.Sum256(data), h.SHA256)
	var want []byte
	for off := 0; off < len(data); off += file.MinChunkSize {
		s := sha256.Sum256(data[off:min(off+file.MinChunkSize, len(data))])
		want = append(want, s[:]...)
	}
	require.Equal(t, want, h.Sums)
	require.Equal(t, sha256.Sum256(want), h.Root)

	_, err = file.HashFile(context.Background(), bytes.NewReader(data[:100]), int64(len(data)), file.MinChunkSize)
	require.ErrorContains(t, err, "shorter")
	_, err = file.HashFile(context.Background(), bytes.NewReader(data), 100, file.MinChunkSize)
	require.ErrorContains(t, err, "longer")
}

func TestChunkSizeFor(t *testing.T) {
	for _, tc := range []struct {
		size int64
		want int
	}{
		{0, file.DefaultChunkSize},
		{1 << 30, file.DefaultChunkSize},
		{64 << 30, file.DefaultChunkSize},
		{64<<30 + 1, 2 << 20},
		{file.MaxFileSize, file.MaxChunkSize},
	} {
		got := file.ChunkSizeFor(tc.size)
		require.Equal(t, tc.want, got, "size %d", tc.size)
		o := file.Offer{Size: tc.size, ChunkSize: got}
		require.NoError(t, o.Check(), fmt.Sprint(tc.size))
	}
	require.Error(t, file.Offer{Size: file.MaxFileSize + 1, ChunkSize: file.MaxChunkSize}.Check())
	require.Error(t, file.Offer{Size: 10, ChunkSize: 3 << 20}.Check(), "not a power of two")
}
