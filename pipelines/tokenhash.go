package pipelines

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// TokenHash is an API token stored as an argon2id hash in PHC string
// form, "$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>" with
// unpadded base64, so drover.yaml need not hold the token itself. The
// hashing is the API's; this is the format and its limits.
type TokenHash struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
	Salt    []byte
	Key     []byte
}

// Limits of a token hash drover accepts: enough salt and output to mean
// something, and a cost that cannot make one check take seconds or a
// gigabyte.
const (
	tokenHashMinSalt   = 8
	tokenHashMinKey    = 16
	tokenHashMaxMemory = 256 * 1024 // KiB
	tokenHashMaxTime   = 16
)

// ParseTokenHash reads a PHC-format argon2id string; its error says which
// part is wrong.
func ParseTokenHash(s string) (TokenHash, error) {
	var h TokenHash
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return h, errors.New("want $argon2id$v=19$m=...,t=...,p=...$salt$hash (drover tokens hash makes one)")
	}
	if parts[1] != "argon2id" {
		return h, fmt.Errorf("algorithm %q: only argon2id is supported", parts[1])
	}
	if parts[2] != "v=19" {
		return h, fmt.Errorf("version %q: want v=19", parts[2])
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || seen[k] {
			return h, fmt.Errorf("parameter %q: want m=, t= and p= once each, with whole numbers", kv)
		}
		seen[k] = true
		switch k {
		case "m":
			h.Memory = uint32(n)
		case "t":
			h.Time = uint32(n)
		case "p":
			if n > 255 {
				return h, fmt.Errorf("p=%d: at most 255", n)
			}
			h.Threads = uint8(n)
		default:
			return h, fmt.Errorf("unknown parameter %q; want m, t and p", k)
		}
	}
	switch {
	case len(seen) != 3:
		return h, fmt.Errorf("parameters %q: want m, t and p", parts[3])
	case h.Time < 1 || h.Time > tokenHashMaxTime:
		return h, fmt.Errorf("t=%d: want 1 to %d passes", h.Time, tokenHashMaxTime)
	case h.Threads < 1:
		return h, errors.New("p=0: want at least one lane")
	case h.Memory < 8*uint32(h.Threads) || h.Memory > tokenHashMaxMemory:
		return h, fmt.Errorf("m=%d: want %d to %d KiB", h.Memory, 8*uint32(h.Threads), tokenHashMaxMemory)
	}
	var err error
	if h.Salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(h.Salt) < tokenHashMinSalt {
		return h, fmt.Errorf("salt: want unpadded base64 of at least %d bytes", tokenHashMinSalt)
	}
	if h.Key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(h.Key) < tokenHashMinKey {
		return h, fmt.Errorf("hash: want unpadded base64 of at least %d bytes", tokenHashMinKey)
	}
	return h, nil
}

// String is h in PHC string form, as ParseTokenHash reads it.
func (h TokenHash) String() string {
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", h.Memory, h.Time, h.Threads,
		base64.RawStdEncoding.EncodeToString(h.Salt), base64.RawStdEncoding.EncodeToString(h.Key))
}
