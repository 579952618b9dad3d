package deployments

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Sealer encrypts what the store keeps at rest, such as config vars. The
// associated data (aad) names what was sealed, e.g. the app and version
// of a config: sealed data opens only with the same aad, so a row copied
// to another app's config does not decrypt there.
type Sealer interface {
	Seal(plain, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
	// KeyID names the key without revealing it, so sealed data says which
	// key sealed it and a rotated key is told apart from a wrong one.
	KeyID() string
}

// KeySize is the AES-256 key length AESGCM wants.
const KeySize = 32

// AESGCM seals with AES-256-GCM and a random nonce per message.
type AESGCM struct {
	aead cipher.AEAD
	id   string
}

// NewAESGCM returns a sealer for a 32-byte key.
func NewAESGCM(key []byte) (*AESGCM, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("config key: want %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("config key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("config key: %w", err)
	}
	sum := sha256.Sum256(append([]byte("drover config key id\x00"), key...))
	return &AESGCM{aead: aead, id: hex.EncodeToString(sum[:4])}, nil
}

// KeyID is the first 8 hex digits of a hash of the key.
func (s *AESGCM) KeyID() string { return s.id }

// Seal returns nonce || ciphertext, authenticated with aad.
func (s *AESGCM) Seal(plain, aad []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return s.aead.Seal(nonce, nonce, plain, aad), nil
}

// ErrUnseal means sealed data could not be opened: the wrong key, or data
// that was changed.
var ErrUnseal = errors.New("cannot decrypt: wrong config key or altered data")

// Open reverses Seal; aad must be what Seal was given.
func (s *AESGCM) Open(sealed, aad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, ErrUnseal
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, ErrUnseal
	}
	return plain, nil
}

// LoadKey reads the config key: from the environment variable env when it
// is set (base64 of 32 bytes), else from file, which is created with a new
// random key, readable by its owner only, when it does not exist.
func LoadKey(env, file string, getenv func(string) string) ([]byte, error) {
	if v := strings.TrimSpace(getenv(env)); v != "" {
		key, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(key) != KeySize {
			return nil, fmt.Errorf("$%s: want the base64 of %d random bytes (e.g. openssl rand -base64 32)", env, KeySize)
		}
		return key, nil
	}
	if b, err := os.ReadFile(file); err == nil {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(key) != KeySize {
			return nil, fmt.Errorf("config key file %s: want the base64 of %d bytes", file, KeySize)
		}
		return key, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("config key file: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.WriteFile(file, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write config key file: %w", err)
	}
	return key, nil
}
