package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"golang.org/x/mod/sumdb/note"
)

// Files the ledger keeps in its directory.
const (
	// KeyFile holds the checkpoint signing key, in the note signer key
	// format ("PRIVATE+KEY+<origin>+<hash>+<key>"), readable by its owner
	// only.
	KeyFile = "ledger-key"
	// PublicKeyFile holds the matching verifier key, for the operator to
	// publish: verifiers pin it with `writ ledger verify --key`.
	PublicKeyFile = "ledger-key.pub"
	// DatabaseFile is the SQLite database of entries, tree nodes and
	// signed checkpoints.
	DatabaseFile = "ledger.db"
)

// DefaultOrigin derives a log origin from the public URL of the server:
// its host and path without the scheme, followed by "/ledger", as the
// C2SP checkpoint format recommends a schema-less URL.
func DefaultOrigin(publicURL string) string {
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" {
		return "writ/ledger"
	}
	return u.Host + strings.TrimSuffix(u.Path, "/") + "/ledger"
}

// validOrigin reports whether s can name a note key and head a checkpoint.
func validOrigin(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '+' })
}

// LocalKey returns the signing key kept in dir, "" when there is none.
func LocalKey(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("ledger: key: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// GenerateKey returns a new signing key named origin, in the note signer
// key format.
func GenerateKey(origin string) (string, error) {
	if !validOrigin(origin) {
		return "", fmt.Errorf("ledger: origin %q: want a name without spaces or '+', such as writ.isp.example/ledger", origin)
	}
	skey, _, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return "", fmt.Errorf("ledger: generate key: %w", err)
	}
	return skey, nil
}

// loadOrCreateKey returns the signer of shared when it is set, or else
// reads the signing key in dir, creating one named origin (or fallback
// when origin is empty) at first start. A key whose name differs from a
// configured origin is an error: the log's name cannot change under the
// checkpoints already published.
func loadOrCreateKey(dir, origin, fallback, shared string) (note.Signer, string, bool, error) {
	path := filepath.Join(dir, KeyFile)
	skey, source, created := shared, "the key the store's nodes share", false
	if skey == "" {
		var err error
		if skey, err = LocalKey(dir); err != nil {
			return nil, "", false, err
		}
		source = path
	}
	if skey == "" {
		name := origin
		if name == "" {
			name = fallback
		}
		var err error
		if skey, err = GenerateKey(name); err != nil {
			return nil, "", false, err
		}
		if err := writeNew(path, []byte(skey+"\n"), 0o600); err != nil {
			return nil, "", false, fmt.Errorf("ledger: key: %w", err)
		}
		created = true
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", false, fmt.Errorf("ledger: signing key (%s): %w", source, err)
	}
	if origin != "" && origin != s.Name() {
		return nil, "", false, fmt.Errorf("ledger: the configured origin %q differs from the name %q of %s, which signed every checkpoint so far; set ledger.origin to %q or leave it empty", origin, s.Name(), source, s.Name())
	}
	vkey, err := verifierKey(skey)
	if err != nil {
		return nil, "", false, fmt.Errorf("ledger: signing key (%s): %w", source, err)
	}
	if err := os.WriteFile(filepath.Join(dir, PublicKeyFile), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, "", false, fmt.Errorf("ledger: public key: %w", err)
	}
	return s, vkey, created, nil
}

// verifierKey derives the verifier key of a note signer key.
func verifierKey(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return "", errors.New("not a signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("not an Ed25519 signer key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}

// writeNew creates path with data and syncs it and its directory, so that
// a key, once used to sign, is not lost to a crash.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Sync(); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Close(); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
