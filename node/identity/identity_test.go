package identity_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/identity"
)

var fast = identity.Options{KDF: identity.FastKDFParams()}

func TestEncryptedRoundTrip(t *testing.T) {
	dir := t.TempDir()
	sk, err := identity.Generate()
	require.NoError(t, err)
	require.NoError(t, identity.Create(dir, sk, []byte("correct horse"), fast))

	enc, err := identity.Encrypted(dir)
	require.NoError(t, err)
	require.True(t, enc)

	got, err := identity.Load(dir, []byte("correct horse"))
	require.NoError(t, err)
	require.True(t, got.Equals(sk))

	_, err = identity.Load(dir, []byte("wrong"))
	require.ErrorIs(t, err, identity.ErrWrongPassphrase)

	want, _ := peer.IDFromPrivateKey(sk)
	id, err := identity.PeerID(dir)
	require.NoError(t, err)
	require.Equal(t, want, id)

	fi, err := os.Stat(identity.Path(dir))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	raw, err := os.ReadFile(identity.Path(dir))
	require.NoError(t, err)
	require.NotContains(t, string(raw), `"key"`, "encrypted file must not hold the plain key")
}

func TestCreateRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	sk, _ := identity.Generate()
	require.NoError(t, identity.Create(dir, sk, nil, fast))
	require.ErrorIs(t, identity.Create(dir, sk, nil, fast), identity.ErrExists)
}

func TestChangePassphraseKeepsIdentity(t *testing.T) {
	dir := t.TempDir()
	sk, _ := identity.Generate()
	require.NoError(t, identity.Create(dir, sk, []byte("old"), fast))
	require.ErrorIs(t, identity.ChangePassphrase(dir, []byte("nope"), []byte("new"), fast), identity.ErrWrongPassphrase)
	require.NoError(t, identity.ChangePassphrase(dir, []byte("old"), []byte("new"), fast))
	_, err := identity.Load(dir, []byte("old"))
	require.ErrorIs(t, err, identity.ErrWrongPassphrase)
	got, err := identity.Load(dir, []byte("new"))
	require.NoError(t, err)
	require.True(t, got.Equals(sk))

	// And back to unencrypted.
	require.NoError(t, identity.ChangePassphrase(dir, []byte("new"), nil, fast))
	enc, err := identity.Encrypted(dir)
	require.NoError(t, err)
	require.False(t, enc)
	got, err = identity.Load(dir, nil)
	require.NoError(t, err)
	require.True(t, got.Equals(sk))
}

func TestTamperedFile(t *testing.T) {
	edits := map[string]func(m map[string]any){
		"peer id swapped": func(m map[string]any) {
			other, _ := identity.Generate()
			id, _ := peer.IDFromPrivateKey(other)
			m["peer_id"] = id.String()
		},
		"kdf weakened":  func(m map[string]any) { m["argon2"].(map[string]any)["time"] = 2 },
		"absurd memory": func(m map[string]any) { m["argon2"].(map[string]any)["memory_kib"] = 1 << 40 },
		"sealed cut":    func(m map[string]any) { m["sealed"] = m["sealed"].(string)[:8] },
		"bad base64":    func(m map[string]any) { m["salt"] = "%%%" },
		"unknown kdf":   func(m map[string]any) { m["kdf"] = "rot13" },
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			sk, _ := identity.Generate()
			require.NoError(t, identity.Create(dir, sk, []byte("pw"), fast))
			raw, _ := os.ReadFile(identity.Path(dir))
			var m map[string]any
			require.NoError(t, json.Unmarshal(raw, &m))
			edit(m)
			raw, _ = json.Marshal(m)
			require.NoError(t, os.WriteFile(identity.Path(dir), raw, 0o600))
			_, err := identity.Load(dir, []byte("pw"))
			require.Error(t, err)
		})
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(identity.Path(dir), []byte("not json"), 0o600))
	_, err := identity.Load(dir, nil)
	require.ErrorIs(t, err, identity.ErrCorrupt)
	_, err = identity.Load(t.TempDir(), nil)
	require.ErrorIs(t, err, identity.ErrNotFound)
}
