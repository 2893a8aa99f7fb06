package atomicfile_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/cmd/internal/atomicfile"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	write := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	require.NoError(t, atomicfile.Write(p, false, write("one")))
	st, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	err = atomicfile.Write(p, false, write("two"))
	require.ErrorContains(t, err, "already exists; pass --force")
	b, _ := os.ReadFile(p)
	require.Equal(t, "one", string(b), "never replaced without force")

	require.NoError(t, atomicfile.Write(p, true, write("three")))
	b, _ = os.ReadFile(p)
	require.Equal(t, "three", string(b))

	// A failed write leaves the old file and no temporary one.
	boom := errors.New("boom")
	require.ErrorIs(t, atomicfile.Write(p, true, func(io.Writer) error { return boom }), boom)
	b, _ = os.ReadFile(p)
	require.Equal(t, "three", string(b))
	ents, _ := os.ReadDir(dir)
	require.Len(t, ents, 1)
}
