package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/crypto/argon2"

	"github.com/drover/drover/pipelines"
)

// Token hash costs drover tokens hash uses: argon2id with 19 MiB, two
// passes and one lane, OWASP's recommended minimum, about 20-40 ms here.
const (
	tokenHashMemory  = 19 * 1024
	tokenHashTime    = 2
	tokenHashThreads = 1
)

// HashToken returns token's argon2id hash under a new random salt, for
// api.tokens[].token_hash.
func HashToken(token string) (pipelines.TokenHash, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return pipelines.TokenHash{}, fmt.Errorf("token hash salt: %w", err)
	}
	h := pipelines.TokenHash{Memory: tokenHashMemory, Time: tokenHashTime, Threads: tokenHashThreads, Salt: salt}
	h.Key = argon2.IDKey([]byte(token), salt, h.Time, h.Memory, h.Threads, 32)
	return h, nil
}

// VerifyToken reports, in constant time, whether token hashes to h.
func VerifyToken(h pipelines.TokenHash, token string) bool {
	got := argon2.IDKey([]byte(token), h.Salt, h.Time, h.Memory, h.Threads, uint32(len(h.Key)))
	return subtle.ConstantTimeCompare(got, h.Key) == 1
}

// Bounds on hashed-token checks. Each is tens of milliseconds of CPU and
// megabytes of memory, and anyone can present a token, so at most
// maxHashChecks run at once (others wait up to hashCheckWait, then get
// 503), and a token that verified is remembered, by its SHA-256, so its
// later calls cost a map lookup.
const (
	maxHashChecks   = 2
	hashCheckWait   = 5 * time.Second
	maxVerified     = 1024
	maxTokenLength  = 512
	verifiedMissing = -1
)

// authenticator finds the token a request bears among the configured
// ones: compared in clear in constant time, or against their hashes.
type authenticator struct {
	tokens []Token
	hashed bool
	checks chan struct{}
	wait   time.Duration
	// hashes counts argon2id runs, so tests see what the cache saves.
	hashes atomic.Int64

	mu sync.Mutex
	// verified maps the SHA-256 of presented tokens that matched a hash
	// to the index of that token.
	verified map[[sha256.Size]byte]int
}

func newAuthenticator(tokens []Token) *authenticator {
	a := &authenticator{tokens: tokens, checks: make(chan struct{}, maxHashChecks), wait: hashCheckWait, verified: map[[sha256.Size]byte]int{}}
	for _, t := range tokens {
		a.hashed = a.hashed || t.Hash != nil
	}
	return a
}

// authenticate returns the token c bears, or answers 401 (none, or an
// unknown one) or 503 (too many hash checks waiting) and returns false.
func (a *authenticator) authenticate(c *gin.Context) (Token, bool) {
	presented, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok || presented == "" {
		fail(c, http.StatusUnauthorized, "unauthorized", "missing bearer token; set DROVER_TOKEN")
		return Token{}, false
	}
	// Every clear token is compared, in constant time, so the answer's
	// timing says nothing about which one came close.
	found := verifiedMissing
	for i, t := range a.tokens {
		if t.Value != "" && subtle.ConstantTimeCompare([]byte(t.Value), []byte(presented)) == 1 && found == verifiedMissing {
			found = i
		}
	}
	if found == verifiedMissing && a.hashed && len(presented) <= maxTokenLength {
		var err error
		if found, err = a.checkHashes(c.Request.Context(), presented); err != nil {
			fail(c, http.StatusServiceUnavailable, "busy", "too many token checks at once; retry shortly")
			return Token{}, false
		}
	}
	if found == verifiedMissing {
		fail(c, http.StatusUnauthorized, "unauthorized", "invalid bearer token")
		return Token{}, false
	}
	return a.tokens[found], true
}

// checkHashes returns the index of the hashed token presented verifies
// against, or verifiedMissing; an error means no check slot came free.
func (a *authenticator) checkHashes(ctx context.Context, presented string) (int, error) {
	sum := sha256.Sum256([]byte(presented))
	a.mu.Lock()
	i, ok := a.verified[sum]
	a.mu.Unlock()
	if ok {
		return i, nil
	}
	wait := time.NewTimer(a.wait)
	defer wait.Stop()
	select {
	case a.checks <- struct{}{}:
	case <-ctx.Done():
		return verifiedMissing, ctx.Err()
	case <-wait.C:
		return verifiedMissing, fmt.Errorf("no token check slot free after %s", a.wait)
	}
	defer func() { <-a.checks }()
	for i, t := range a.tokens {
		if t.Hash == nil {
			continue
		}
		a.hashes.Add(1)
		if VerifyToken(*t.Hash, presented) {
			a.mu.Lock()
			if len(a.verified) >= maxVerified {
				// Forget them all rather than track age: a full cache
				// means many live tokens or churn, and each is one hash
				// away from coming back.
				clear(a.verified)
			}
			a.verified[sum] = i
			a.mu.Unlock()
			return i, nil
		}
	}
	return verifiedMissing, nil
}
