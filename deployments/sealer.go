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

// ErrPlaintext means a store that seals its config vars found a row kept
// in clear, from before sealing was turned on.
var ErrPlaintext = errors.New("config vars are stored in clear")

// KeyRing seals with its current key and opens with it or a previous one,
// picked by the key ID sealed data carries, so the config key can be
// rotated: processes given the new key as current and the old one as
// previous read every row while drover keys rotate re-seals them.
type KeyRing struct {
	current Sealer
	// keys holds current first, then the previous keys in order, once each.
	keys []Sealer
}

// NewKeyRing returns a ring sealing with current and also opening what
// previous sealed. A previous key equal to current, or repeated, is kept
// once.
func NewKeyRing(current Sealer, previous ...Sealer) *KeyRing {
	if r, ok := current.(*KeyRing); ok && len(previous) == 0 {
		return r
	}
	r := &KeyRing{current: current, keys: []Sealer{current}}
	for _, p := range previous {
		if _, ok := r.Key(p.KeyID()); !ok {
			r.keys = append(r.keys, p)
		}
	}
	return r
}

// Seal seals with the current key.
func (r *KeyRing) Seal(plain, aad []byte) ([]byte, error) { return r.current.Seal(plain, aad) }

// Open opens with the current key only; OpenAny and Key reach the others.
func (r *KeyRing) Open(sealed, aad []byte) ([]byte, error) { return r.current.Open(sealed, aad) }

// KeyID names the current key.
func (r *KeyRing) KeyID() string { return r.current.KeyID() }

// Key returns the ring's key with id, current or previous.
func (r *KeyRing) Key(id string) (Sealer, bool) {
	for _, k := range r.keys {
		if k.KeyID() == id {
			return k, true
		}
	}
	return nil, false
}

// KeyIDs names the ring's keys, current first.
func (r *KeyRing) KeyIDs() []string {
	ids := make([]string, len(r.keys))
	for i, k := range r.keys {
		ids[i] = k.KeyID()
	}
	return ids
}

// OpenAny opens data that does not say which key sealed it (rows from
// before key IDs) with each key in turn, current first.
func (r *KeyRing) OpenAny(sealed, aad []byte) ([]byte, error) {
	for _, k := range r.keys {
		if plain, err := k.Open(sealed, aad); err == nil {
			return plain, nil
		}
	}
	return nil, ErrUnseal
}

// OpenKeyRing returns a ring of AES-256-GCM keys: current seals, and it
// and previous open.
func OpenKeyRing(current []byte, previous ...[]byte) (*KeyRing, error) {
	cur, err := NewAESGCM(current)
	if err != nil {
		return nil, err
	}
	prev := make([]Sealer, 0, len(previous))
	for i, k := range previous {
		s, err := NewAESGCM(k)
		if err != nil {
			return nil, fmt.Errorf("previous config key %d: %w", i+1, err)
		}
		prev = append(prev, s)
	}
	return NewKeyRing(cur, prev...), nil
}

// LoadPreviousKeys reads the previous config keys from the environment
// variable env: comma-separated base64 keys, none when it is unset. An
// entry that is not a key is an error naming its position.
func LoadPreviousKeys(env string, getenv func(string) string) ([][]byte, error) {
	v := strings.TrimSpace(getenv(env))
	if v == "" {
		return nil, nil
	}
	var keys [][]byte
	for i, part := range strings.Split(v, ",") {
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(part))
		if err != nil || len(k) != KeySize {
			return nil, fmt.Errorf("$%s entry %d: want the base64 of %d random bytes, comma-separated", env, i+1, KeySize)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
