// Package identity keeps a node's Ed25519 key on disk, encrypted at rest.
//
// A natter identity is a libp2p Ed25519 key: the peer ID derived from it is
// the user's address, so losing the key means losing the account, and
// leaking it means someone else can be you. The key file therefore holds the
// private key sealed with XChaCha20-Poly1305 under a key derived from the
// user's passphrase with argon2id (memory-hard, so a stolen file resists
// offline guessing). Nodes that must start unattended may store the key
// unencrypted ("kdf": "none"); callers are expected to say so loudly.
//
// File format (JSON, mode 0600):
//
//	{"version":1, "peer_id":"12D3Koo...", "kdf":"argon2id",
//	 "argon2":{"time":3,"memory_kib":65536,"threads":2}, "salt":"...",
//	 "nonce":"...", "sealed":"..."}
//
// The peer ID, version and KDF parameters are bound to the ciphertext as
// associated data, so editing them makes decryption fail rather than
// silently producing a different identity.
package identity

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// FileName is the key file's name inside a data dir.
const FileName = "identity.key"

const formatVersion = 1

var (
	// ErrWrongPassphrase means the passphrase does not open the key file.
	ErrWrongPassphrase = errors.New("wrong passphrase")
	// ErrNotFound means the data dir has no key file.
	ErrNotFound = errors.New("no identity in this data dir")
	// ErrExists means Create would overwrite an existing key file.
	ErrExists = errors.New("an identity already exists in this data dir")
	// ErrCorrupt means the key file cannot be parsed.
	ErrCorrupt = errors.New("identity file is damaged")
)

// KDFParams are the argon2id cost parameters. The defaults take roughly a
// quarter of a second and 64 MiB on a small machine.
type KDFParams struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// DefaultKDFParams returns the parameters new key files are written with.
func DefaultKDFParams() KDFParams {
	return KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 2}
}

// FastKDFParams are deliberately weak parameters for tests.
func FastKDFParams() KDFParams { return KDFParams{Time: 1, MemoryKiB: 64, Threads: 1} }

func (p KDFParams) validate() error {
	// Bounds stop a tampered file from asking for absurd work or memory.
	if p.Time < 1 || p.Time > 64 || p.MemoryKiB < 8 || p.MemoryKiB > 4*1024*1024 || p.Threads < 1 || p.Threads > 64 {
		return fmt.Errorf("argon2 parameters out of range: %w", ErrCorrupt)
	}
	return nil
}

type file struct {
	Version int        `json:"version"`
	PeerID  string     `json:"peer_id"`
	KDF     string     `json:"kdf"` // "argon2id" or "none"
	Argon2  *KDFParams `json:"argon2,omitempty"`
	Salt    string     `json:"salt,omitempty"`
	Nonce   string     `json:"nonce,omitempty"`
	Sealed  string     `json:"sealed,omitempty"` // argon2id: ciphertext
	Key     string     `json:"key,omitempty"`    // none: plaintext key
}

// Options control how a key file is written.
type Options struct {
	// KDF are the argon2id parameters; zero means DefaultKDFParams.
	KDF KDFParams
}

func (o Options) kdf() KDFParams {
	if o.KDF == (KDFParams{}) {
		return DefaultKDFParams()
	}
	return o.KDF
}

// Path returns the key file path inside dataDir.
func Path(dataDir string) string { return filepath.Join(dataDir, FileName) }

// Generate makes a new Ed25519 identity.
func Generate() (crypto.PrivKey, error) {
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return sk, nil
}

// Create writes sk to dataDir, encrypted with passphrase (an empty
// passphrase stores it unencrypted). It refuses to overwrite a key file.
func Create(dataDir string, sk crypto.PrivKey, passphrase []byte, o Options) error {
	p := Path(dataDir)
	if _, err := os.Stat(p); err == nil {
		return fmt.Errorf("%s: %w", p, ErrExists)
	}
	return write(p, sk, passphrase, o)
}

// Load reads and decrypts the key file of dataDir. An unencrypted file
// ignores passphrase.
func Load(dataDir string, passphrase []byte) (crypto.PrivKey, error) {
	f, err := readFile(Path(dataDir))
	if err != nil {
		return nil, err
	}
	return open(f, passphrase)
}

// Encrypted reports whether the key file of dataDir needs a passphrase.
func Encrypted(dataDir string) (bool, error) {
	f, err := readFile(Path(dataDir))
	if err != nil {
		return false, err
	}
	return f.KDF != "none", nil
}

// PeerID returns the peer ID recorded in the key file without decrypting it.
func PeerID(dataDir string) (peer.ID, error) {
	f, err := readFile(Path(dataDir))
	if err != nil {
		return "", err
	}
	id, err := peer.Decode(f.PeerID)
	if err != nil {
		return "", fmt.Errorf("peer id: %w", ErrCorrupt)
	}
	return id, nil
}

// ChangePassphrase re-encrypts the key of dataDir under newPass (empty:
// unencrypted) after checking oldPass. The identity does not change. The new
// file replaces the old one atomically.
func ChangePassphrase(dataDir string, oldPass, newPass []byte, o Options) error {
	sk, err := Load(dataDir, oldPass)
	if err != nil {
		return err
	}
	return write(Path(dataDir), sk, newPass, o)
}

func readFile(p string) (*file, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", p, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", p, ErrCorrupt)
	}
	if f.Version != formatVersion {
		return nil, fmt.Errorf("%s: unsupported version %d: %w", p, f.Version, ErrCorrupt)
	}
	return &f, nil
}

func write(p string, sk crypto.PrivKey, passphrase []byte, o Options) error {
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return fmt.Errorf("derive peer id: %w", err)
	}
	raw, err := crypto.MarshalPrivateKey(sk)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	f := file{Version: formatVersion, PeerID: id.String()}
	if len(passphrase) == 0 {
		f.KDF = "none"
		f.Key = b64(raw)
	} else {
		params := o.kdf()
		salt := make([]byte, 16)
		nonce := make([]byte, chacha20poly1305.NonceSizeX)
		if _, err := rand.Read(salt); err != nil {
			return fmt.Errorf("salt: %w", err)
		}
		if _, err := rand.Read(nonce); err != nil {
			return fmt.Errorf("nonce: %w", err)
		}
		f.KDF, f.Argon2, f.Salt, f.Nonce = "argon2id", &params, b64(salt), b64(nonce)
		aead, err := chacha20poly1305.NewX(deriveKey(passphrase, salt, params))
		if err != nil {
			return fmt.Errorf("cipher: %w", err)
		}
		f.Sealed = b64(aead.Seal(nil, nonce, raw, f.aad()))
	}
	b, err := json.MarshalIndent(&f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode identity: %w", err)
	}
	return writeAtomic(p, append(b, '\n'))
}

func open(f *file, passphrase []byte) (crypto.PrivKey, error) {
	var raw []byte
	switch f.KDF {
	case "none":
		var err error
		if raw, err = unb64(f.Key); err != nil {
			return nil, err
		}
	case "argon2id":
		if f.Argon2 == nil {
			return nil, fmt.Errorf("missing argon2 parameters: %w", ErrCorrupt)
		}
		if err := f.Argon2.validate(); err != nil {
			return nil, err
		}
		salt, err := unb64(f.Salt)
		if err != nil {
			return nil, err
		}
		nonce, err := unb64(f.Nonce)
		if err != nil || len(nonce) != chacha20poly1305.NonceSizeX {
			return nil, fmt.Errorf("nonce: %w", ErrCorrupt)
		}
		sealed, err := unb64(f.Sealed)
		if err != nil {
			return nil, err
		}
		aead, err := chacha20poly1305.NewX(deriveKey(passphrase, salt, *f.Argon2))
		if err != nil {
			return nil, fmt.Errorf("cipher: %w", err)
		}
		if raw, err = aead.Open(nil, nonce, sealed, f.aad()); err != nil {
			return nil, ErrWrongPassphrase
		}
	default:
		return nil, fmt.Errorf("unknown kdf %q: %w", f.KDF, ErrCorrupt)
	}
	sk, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("key: %w", ErrCorrupt)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil || id.String() != f.PeerID {
		return nil, fmt.Errorf("key does not match recorded peer id: %w", ErrCorrupt)
	}
	return sk, nil
}

func (f *file) aad() []byte {
	p := f.Argon2
	return fmt.Appendf(nil, "natter-identity|v%d|%s|%s|%d|%d|%d", f.Version, f.PeerID, f.KDF, p.Time, p.MemoryKiB, p.Threads)
}

func deriveKey(passphrase, salt []byte, p KDFParams) []byte {
	return argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, chacha20poly1305.KeySize)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func unb64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("base64: %w", ErrCorrupt)
	}
	return b, nil
}

// writeAtomic writes b to p through a temporary file, fsync and rename, so
// a crash leaves either the old or the new file, never a torn one.
func writeAtomic(p string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".identity-*")
	if err != nil {
		return fmt.Errorf("write identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write identity: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write identity: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write identity: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("write identity: %w", err)
	}
	if d, err := os.Open(filepath.Dir(p)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
