package identity

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

var fuzzLimits = importLimits{maxKDF: FastKDFParams(), maxKey: MaxArchiveKeySize, maxDB: 1 << 20}

type tarEntry struct {
	name string
	typ  byte
	body []byte
	size int64 // 0: len(body)
}

// sealTar builds a properly sealed archive around a hand-made tar, to test
// what Import does with contents only an attacker who knows the
// passphrase could produce.
func sealTar(t testing.TB, pass string, entries []tarEntry) []byte {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, e := range entries {
		size := e.size
		if size == 0 {
			size = int64(len(e.body))
		}
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o600, Size: size}
		if e.typ != tar.TypeReg {
			h.Size, h.Linkname = 0, "/etc/passwd"
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			_, _ = tw.Write(e.body)
		}
	}
	_ = tw.Flush() // no Close: a short entry stays short
	if entries == nil || entries[len(entries)-1].size == 0 {
		_ = tw.Close()
	}
	var out bytes.Buffer
	sw, err := newSealWriter(&out, []byte(pass), FastKDFParams())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = sw.Write(tb.Bytes())
	_ = sw.Close()
	return out.Bytes()
}

func keyFile(t testing.TB) []byte {
	t.Helper()
	dir := t.TempDir()
	sk, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := Create(dir, sk, []byte("k"), Options{KDF: FastKDFParams()}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(Path(dir))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Contents an honest exporter never makes are refused, and nothing is
// written.
func TestImportRejectsBadContents(t *testing.T) {
	key := keyFile(t)
	reg := byte(tar.TypeReg)
	for _, tc := range []struct {
		name    string
		entries []tarEntry
	}{
		{"no entries", nil},
		{"db only", []tarEntry{{name: DBFileName, typ: reg, body: []byte("db")}}},
		{"path traversal", []tarEntry{{name: "../identity.key", typ: reg, body: key}}},
		{"absolute path", []tarEntry{{name: "/tmp/identity.key", typ: reg, body: key}}},
		{"subdir", []tarEntry{{name: "x/identity.key", typ: reg, body: key}}},
		{"dot slash", []tarEntry{{name: "./identity.key", typ: reg, body: key}}},
		{"unknown name", []tarEntry{{name: FileName, typ: reg, body: key}, {name: "evil", typ: reg, body: []byte("x")}}},
		{"symlink", []tarEntry{{name: FileName, typ: tar.TypeSymlink}}},
		{"hard link", []tarEntry{{name: DBFileName, typ: tar.TypeLink}, {name: FileName, typ: reg, body: key}}},
		{"duplicate", []tarEntry{{name: FileName, typ: reg, body: key}, {name: FileName, typ: reg, body: key}}},
		{"key too large", []tarEntry{{name: FileName, typ: reg, body: make([]byte, MaxArchiveKeySize+1)}}},
		{"db too large", []tarEntry{{name: DBFileName, typ: reg, body: make([]byte, fuzzLimits.maxDB+1)}, {name: FileName, typ: reg, body: key}}},
		{"short entry", []tarEntry{{name: FileName, typ: reg, body: key[:10], size: int64(len(key))}}},
		{"garbage key", []tarEntry{{name: FileName, typ: reg, body: []byte("{}")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			arch := sealTar(t, "p", tc.entries)
			dst := filepath.Join(t.TempDir(), "dst")
			_, err := importLim(bytes.NewReader(arch), dst, []byte("p"), fuzzLimits)
			require.Error(t, err)
			_, serr := os.Stat(dst)
			require.ErrorIs(t, serr, os.ErrNotExist)
			require.NoFileExists(t, filepath.Join(filepath.Dir(dst), FileName))
		})
	}

	// The same construction with good contents imports.
	arch := sealTar(t, "p", []tarEntry{{name: FileName, typ: reg, body: key}, {name: DBFileName, typ: reg, body: []byte("db")}})
	dst := filepath.Join(t.TempDir(), "dst")
	_, err := importLim(bytes.NewReader(arch), dst, []byte("p"), fuzzLimits)
	require.NoError(t, err)
}

func FuzzImport(f *testing.F) {
	key := keyFile(f)
	reg := byte(tar.TypeReg)
	f.Add(sealTar(f, "p", []tarEntry{{name: FileName, typ: reg, body: key}, {name: DBFileName, typ: reg, body: []byte("db")}}))
	f.Add(sealTar(f, "p", []tarEntry{{name: "../x", typ: reg, body: key}}))
	f.Add(sealTar(f, "p", nil))
	f.Add([]byte("NATTEREXP1"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dst := filepath.Join(t.TempDir(), "dst")
		id, err := importLim(bytes.NewReader(data), dst, []byte("p"), fuzzLimits)
		if err != nil {
			if _, serr := os.Stat(dst); serr == nil {
				t.Fatalf("failed import left %s behind: %v", dst, err)
			}
			return
		}
		got, err := PeerID(dst)
		if err != nil || got != id {
			t.Fatalf("imported identity unreadable: %v", err)
		}
		entries, _ := os.ReadDir(dst)
		for _, e := range entries {
			if e.Name() != FileName && e.Name() != DBFileName {
				t.Fatalf("unexpected file %s", e.Name())
			}
		}
	})
}

// FuzzImportContents seals the fuzzer's bytes as the payload, so the tar
// handling behind the authentication is fuzzed too.
func FuzzImportContents(f *testing.F) {
	key := keyFile(f)
	reg := byte(tar.TypeReg)
	plain := func(entries []tarEntry) []byte {
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		for _, e := range entries {
			_ = tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o600, Size: int64(len(e.body))})
			_, _ = tw.Write(e.body)
		}
		_ = tw.Close()
		return tb.Bytes()
	}
	f.Add(plain([]tarEntry{{name: FileName, typ: reg, body: key}, {name: DBFileName, typ: reg, body: []byte("db")}}))
	f.Add(plain([]tarEntry{{name: "../" + FileName, typ: reg, body: key}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		var arch bytes.Buffer
		sw, err := newSealWriter(&arch, []byte("p"), FastKDFParams())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = sw.Write(payload)
		_ = sw.Close()
		dst := filepath.Join(t.TempDir(), "dst")
		id, err := importLim(&arch, dst, []byte("p"), fuzzLimits)
		if err != nil {
			if _, serr := os.Stat(dst); serr == nil {
				t.Fatalf("failed import left %s behind: %v", dst, err)
			}
			return
		}
		if got, err := PeerID(dst); err != nil || got != id {
			t.Fatalf("imported identity unreadable: %v", err)
		}
	})
}
