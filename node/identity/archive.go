package identity

// Export archives move an identity, with its history, to another machine.
//
// Format (all integers big-endian):
//
//	header:  "NATTEREXP1" | time u32 | memory_kib u32 | threads u8 |
//	         salt [16] | nonce prefix [16] | key check [16]
//	chunks:  XChaCha20-Poly1305(plaintext chunk) ...
//
// The key is argon2id(passphrase, salt, params). Chunk i is sealed with the
// nonce prefix || i (u64) and the associated data header || last, where
// last is 1 for the final chunk and 0 otherwise (the STREAM construction):
// every chunk but the last holds exactly 64 KiB of plaintext, the last one
// 0..64 KiB, so reordering, dropping, truncating or editing chunks makes
// decryption fail. The key check is the tag of an empty message sealed
// with the nonce prefix || 2^64-1 (a counter the chunks never reach); it
// tells a wrong passphrase from a damaged archive before any chunk is read.
//
// The plaintext is a tar with two regular files: identity.key (the key
// file as it is on disk, so it keeps its own passphrase) and natter.db (a
// consistent snapshot of the database made with VACUUM INTO, so exporting
// works while a daemon is running).

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/chacha20poly1305"

	_ "modernc.org/sqlite" // database/sql driver "sqlite" for the snapshot
)

const (
	archiveMagic = "NATTEREXP1"
	// DBFileName is the database file's name inside a data dir (the same
	// as store.FileName; identity does not import store).
	DBFileName = "natter.db"

	chunkSize   = 64 << 10
	saltSize    = 16
	prefixSize  = 16
	tagSize     = chacha20poly1305.Overhead
	headerSize  = len(archiveMagic) + 4 + 4 + 1 + saltSize + prefixSize + tagSize
	checkCount  = math.MaxUint64
	maxTrailing = 64 << 10 // tar padding after the last entry

	// MaxArchiveKeySize and MaxArchiveDBSize bound what Import accepts.
	MaxArchiveKeySize = 64 << 10
	MaxArchiveDBSize  = 16 << 30
)

// ErrBadArchive means the archive is not an export archive, or it was
// truncated, reordered or edited.
var ErrBadArchive = errors.New("export archive is damaged, truncated or not a natter export")

// Export writes an encrypted archive of the identity and database of
// dataDir to w, sealed with pass under argon2id params p (zero:
// DefaultKDFParams). The database snapshot is consistent even while a
// daemon writes to it.
func Export(ctx context.Context, dataDir string, w io.Writer, pass []byte, p KDFParams) error {
	if len(pass) == 0 {
		return errors.New("export: an archive needs a passphrase")
	}
	if p == (KDFParams{}) {
		p = DefaultKDFParams()
	}
	if err := p.validate(); err != nil {
		return err
	}
	key, err := os.ReadFile(Path(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w", Path(dataDir), ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("read identity: %w", err)
	}
	if len(key) > MaxArchiveKeySize {
		return fmt.Errorf("identity file too large: %w", ErrCorrupt)
	}
	if _, err := readFile(Path(dataDir)); err != nil {
		return err
	}

	var db *os.File
	dbPath := filepath.Join(dataDir, DBFileName)
	if _, err := os.Stat(dbPath); err == nil {
		// The plaintext snapshot stays in the (0700) data dir rather than
		// a shared /tmp, and is removed when the archive is written.
		tmpDir, err := os.MkdirTemp(dataDir, ".export-*")
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer os.RemoveAll(tmpDir)
		snap := filepath.Join(tmpDir, DBFileName)
		if err := snapshotDB(ctx, dbPath, snap); err != nil {
			return err
		}
		if db, err = os.Open(snap); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer db.Close()
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("export: %w", err)
	}

	sw, err := newSealWriter(w, pass, p)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(sw)
	if err := writeEntry(tw, FileName, int64(len(key)), bytes.NewReader(key)); err != nil {
		return err
	}
	if db != nil {
		fi, err := db.Stat()
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if fi.Size() > MaxArchiveDBSize {
			return fmt.Errorf("export: database larger than %d bytes", int64(MaxArchiveDBSize))
		}
		if err := writeEntry(tw, DBFileName, fi.Size(), db); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return sw.Close()
}

func writeEntry(tw *tar.Writer, name string, size int64, r io.Reader) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o600, Size: size, Format: tar.FormatPAX}); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if n, err := io.Copy(tw, io.LimitReader(r, size)); err != nil || n != size {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("export %s: %w", name, err)
	}
	return nil
}

// snapshotDB copies the database at src to dst with VACUUM INTO: one read
// transaction, so the copy is consistent while a daemon writes (WAL mode).
func snapshotDB(ctx context.Context, src, dst string) error {
	db, err := sql.Open("sqlite", "file:"+src+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return fmt.Errorf("snapshot database: %w", err)
	}
	return nil
}

// sealWriter encrypts a stream in chunkSize chunks.
type sealWriter struct {
	w       io.Writer
	aead    cipher.AEAD
	header  []byte
	prefix  []byte
	buf     []byte
	counter uint64
	closed  bool
}

func newSealWriter(w io.Writer, pass []byte, p KDFParams) (*sealWriter, error) {
	salt := make([]byte, saltSize)
	prefix := make([]byte, prefixSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	if _, err := rand.Read(prefix); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	hdr := make([]byte, 0, headerSize)
	hdr = append(hdr, archiveMagic...)
	hdr = binary.BigEndian.AppendUint32(hdr, p.Time)
	hdr = binary.BigEndian.AppendUint32(hdr, p.MemoryKiB)
	hdr = append(hdr, p.Threads)
	hdr = append(hdr, salt...)
	hdr = append(hdr, prefix...)
	aead, err := chacha20poly1305.NewX(deriveKey(pass, salt, p))
	if err != nil {
		return nil, fmt.Errorf("cipher: %w", err)
	}
	check := aead.Seal(nil, nonceFor(prefix, checkCount), nil, hdr)
	hdr = append(hdr, check...)
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("write archive: %w", err)
	}
	return &sealWriter{w: w, aead: aead, header: hdr[:headerSize-tagSize], prefix: prefix, buf: make([]byte, 0, chunkSize)}, nil
}

func nonceFor(prefix []byte, counter uint64) []byte {
	n := make([]byte, 0, chacha20poly1305.NonceSizeX)
	n = append(n, prefix...)
	return binary.BigEndian.AppendUint64(n, counter)
}

func chunkAAD(header []byte, last bool) []byte {
	ad := append([]byte(nil), header...)
	if last {
		return append(ad, 1)
	}
	return append(ad, 0)
}

func (s *sealWriter) Write(b []byte) (int, error) {
	if s.closed {
		return 0, errors.New("write after close")
	}
	n := 0
	for len(b) > 0 {
		// A full buffer is sealed only when more data follows, so the
		// last chunk is always sealed as last by Close.
		if len(s.buf) == chunkSize {
			if err := s.flush(false); err != nil {
				return n, err
			}
		}
		k := copy(s.buf[len(s.buf):chunkSize], b)
		s.buf = s.buf[:len(s.buf)+k]
		b = b[k:]
		n += k
	}
	return n, nil
}

func (s *sealWriter) flush(last bool) error {
	if s.counter == checkCount-1 {
		return errors.New("archive too large")
	}
	ct := s.aead.Seal(nil, nonceFor(s.prefix, s.counter), s.buf, chunkAAD(s.header, last))
	s.counter++
	s.buf = s.buf[:0]
	if _, err := s.w.Write(ct); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	return nil
}

// Close seals the final chunk (possibly empty).
func (s *sealWriter) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	return s.flush(true)
}

// Archive is an export archive whose header has been read.
type Archive struct {
	r      *bufio.Reader
	params KDFParams
	salt   []byte
	prefix []byte
	header []byte // without the key check
	check  []byte
	aead   cipher.AEAD
}

// importLimits bound the work and the sizes Import accepts.
type importLimits struct {
	maxKDF KDFParams
	maxKey int64
	maxDB  int64
}

var defaultLimits = importLimits{
	maxKDF: KDFParams{Time: 64, MemoryKiB: 4 * 1024 * 1024, Threads: 64},
	maxKey: MaxArchiveKeySize,
	maxDB:  MaxArchiveDBSize,
}

// OpenArchive reads the header of an export archive.
func OpenArchive(r io.Reader) (*Archive, error) {
	return openArchive(r, defaultLimits)
}

func openArchive(r io.Reader, lim importLimits) (*Archive, error) {
	br := bufio.NewReaderSize(r, chunkSize+tagSize+1)
	hdr := make([]byte, headerSize)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, fmt.Errorf("read header: %w", ErrBadArchive)
	}
	if string(hdr[:len(archiveMagic)]) != archiveMagic {
		return nil, fmt.Errorf("bad magic: %w", ErrBadArchive)
	}
	rest := hdr[len(archiveMagic):]
	p := KDFParams{
		Time:      binary.BigEndian.Uint32(rest[0:4]),
		MemoryKiB: binary.BigEndian.Uint32(rest[4:8]),
		Threads:   rest[8],
	}
	if err := p.validate(); err != nil || p.Time > lim.maxKDF.Time || p.MemoryKiB > lim.maxKDF.MemoryKiB || p.Threads > lim.maxKDF.Threads {
		return nil, fmt.Errorf("argon2 parameters out of range: %w", ErrBadArchive)
	}
	rest = rest[9:]
	return &Archive{
		r:      br,
		params: p,
		salt:   rest[:saltSize],
		prefix: rest[saltSize : saltSize+prefixSize],
		header: hdr[:headerSize-tagSize],
		check:  hdr[headerSize-tagSize:],
	}, nil
}

// Unlock derives the archive key from pass; ErrWrongPassphrase if it does
// not open the archive. It may be called again after a wrong passphrase.
func (a *Archive) Unlock(pass []byte) error {
	aead, err := chacha20poly1305.NewX(deriveKey(pass, a.salt, a.params))
	if err != nil {
		return fmt.Errorf("cipher: %w", err)
	}
	if _, err := aead.Open(nil, nonceFor(a.prefix, checkCount), a.check, a.header); err != nil {
		return ErrWrongPassphrase
	}
	a.aead = aead
	return nil
}

// openReader decrypts the chunk stream.
type openReader struct {
	a       *Archive
	buf     []byte // decrypted, not yet read
	counter uint64
	done    bool
	ct      []byte
}

func (o *openReader) Read(b []byte) (int, error) {
	for len(o.buf) == 0 {
		if o.done {
			return 0, io.EOF
		}
		if err := o.next(); err != nil {
			return 0, err
		}
	}
	n := copy(b, o.buf)
	o.buf = o.buf[n:]
	return n, nil
}

func (o *openReader) next() error {
	if o.ct == nil {
		o.ct = make([]byte, chunkSize+tagSize)
	}
	n, err := io.ReadFull(o.a.r, o.ct)
	last := false
	switch {
	case err == nil:
		if _, perr := o.a.r.Peek(1); perr == io.EOF {
			last = true
		} else if perr != nil {
			return fmt.Errorf("read archive: %w", perr)
		}
	case errors.Is(err, io.ErrUnexpectedEOF):
		last = true
	case errors.Is(err, io.EOF):
		return fmt.Errorf("truncated: %w", ErrBadArchive)
	default:
		return fmt.Errorf("read archive: %w", err)
	}
	if n < tagSize || o.counter == checkCount-1 {
		return fmt.Errorf("truncated: %w", ErrBadArchive)
	}
	pt, err := o.a.aead.Open(o.ct[:0:0], nonceFor(o.a.prefix, o.counter), o.ct[:n], chunkAAD(o.a.header, last))
	if err != nil {
		return fmt.Errorf("chunk %d: %w", o.counter, ErrBadArchive)
	}
	o.counter++
	o.buf = pt
	o.done = last
	return nil
}

// Import unpacks the archive r into dataDir (created 0700 if missing),
// sealed with pass, and returns the imported peer ID. It refuses a data
// dir that already holds an identity or a database. Nothing is left
// behind on error: files appear only after the whole archive checked out.
func Import(r io.Reader, dataDir string, pass []byte) (peer.ID, error) {
	return importLim(r, dataDir, pass, defaultLimits)
}

func importLim(r io.Reader, dataDir string, pass []byte, lim importLimits) (peer.ID, error) {
	a, err := openArchive(r, lim)
	if err != nil {
		return "", err
	}
	if err := a.Unlock(pass); err != nil {
		return "", err
	}
	return a.extract(dataDir, lim)
}

// Extract writes the unlocked archive into dataDir; see Import.
func (a *Archive) Extract(dataDir string) (peer.ID, error) {
	return a.extract(dataDir, defaultLimits)
}

func (a *Archive) extract(dataDir string, lim importLimits) (id peer.ID, err error) {
	if a.aead == nil {
		return "", errors.New("archive is locked")
	}
	if err := refuseExisting(dataDir); err != nil {
		return "", err
	}
	created := false
	if _, serr := os.Stat(dataDir); errors.Is(serr, os.ErrNotExist) {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return "", fmt.Errorf("create data dir: %w", err)
		}
		created = true
	}
	var written []string // final names, removed on error
	temps := map[string]string{}
	defer func() {
		for _, t := range temps {
			os.Remove(t)
		}
		if err != nil {
			for _, f := range written {
				os.Remove(f)
			}
			if created {
				os.Remove(dataDir)
			}
		}
	}()

	dec := &openReader{a: a}
	tr := tar.NewReader(dec)
	for {
		h, terr := tr.Next()
		if terr == io.EOF {
			break
		}
		if terr != nil {
			if errors.Is(terr, ErrBadArchive) {
				return "", terr
			}
			return "", fmt.Errorf("archive contents: %v: %w", terr, ErrBadArchive)
		}
		var max int64
		switch h.Name {
		case FileName:
			max = lim.maxKey
		case DBFileName:
			max = lim.maxDB
		default:
			return "", fmt.Errorf("unexpected entry %q: %w", h.Name, ErrBadArchive)
		}
		if h.Typeflag != tar.TypeReg {
			return "", fmt.Errorf("entry %q is not a regular file: %w", h.Name, ErrBadArchive)
		}
		if _, dup := temps[h.Name]; dup {
			return "", fmt.Errorf("duplicate entry %q: %w", h.Name, ErrBadArchive)
		}
		if h.Size < 0 || h.Size > max {
			return "", fmt.Errorf("entry %q too large: %w", h.Name, ErrBadArchive)
		}
		tmp, err := writeTemp(dataDir, tr, h.Size)
		if tmp != "" {
			temps[h.Name] = tmp
		}
		if err != nil {
			return "", err
		}
	}
	// The tar may end before the sealed stream: read it to its
	// authenticated end, so a truncated archive is never accepted.
	n, err := io.Copy(io.Discard, io.LimitReader(dec, maxTrailing+1))
	if err != nil {
		return "", err
	}
	if n > maxTrailing {
		return "", fmt.Errorf("trailing data: %w", ErrBadArchive)
	}
	keyTmp, ok := temps[FileName]
	if !ok {
		return "", fmt.Errorf("no identity.key in the archive: %w", ErrBadArchive)
	}
	f, err := readFile(keyTmp)
	if err != nil {
		return "", fmt.Errorf("identity in the archive: %w", err)
	}
	if id, err = peer.Decode(f.PeerID); err != nil {
		return "", fmt.Errorf("identity in the archive: peer id: %w", ErrCorrupt)
	}
	if f.KDF == "argon2id" && (f.Argon2 == nil || f.Argon2.validate() != nil) {
		return "", fmt.Errorf("identity in the archive: %w", ErrCorrupt)
	}
	// The database first, the key last: a data dir holds an identity only
	// once everything is in place. Link refuses to overwrite.
	for _, name := range []string{DBFileName, FileName} {
		tmp, ok := temps[name]
		if !ok {
			continue
		}
		final := filepath.Join(dataDir, name)
		if err := os.Link(tmp, final); err != nil {
			if errors.Is(err, os.ErrExist) {
				if name == FileName {
					return "", fmt.Errorf("%s: %w", final, ErrExists)
				}
				return "", fmt.Errorf("%s already exists; import needs an empty data dir", final)
			}
			return "", fmt.Errorf("import: %w", err)
		}
		written = append(written, final)
	}
	if d, err := os.Open(dataDir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return id, nil
}

func refuseExisting(dataDir string) error {
	if _, err := os.Lstat(Path(dataDir)); err == nil {
		return fmt.Errorf("%s: %w", Path(dataDir), ErrExists)
	}
	for _, n := range []string{DBFileName, DBFileName + "-wal"} {
		if _, err := os.Lstat(filepath.Join(dataDir, n)); err == nil {
			return fmt.Errorf("%s already has a database (%s); import needs an empty data dir", dataDir, n)
		}
	}
	return nil
}

func writeTemp(dir string, r io.Reader, size int64) (string, error) {
	f, err := os.CreateTemp(dir, ".import-*")
	if err != nil {
		return "", fmt.Errorf("import: %w", err)
	}
	name := f.Name()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return name, fmt.Errorf("import: %w", err)
	}
	n, err := io.Copy(f, io.LimitReader(r, size))
	if err == nil && n != size {
		err = fmt.Errorf("short entry: %w", ErrBadArchive)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		if !errors.Is(err, ErrBadArchive) {
			err = fmt.Errorf("import: %w", err)
		}
		return name, err
	}
	return name, nil
}
