package api_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/api"
	"github.com/drover/drover/pipelines"
)

func mustHash(tb testing.TB, token string) *pipelines.TokenHash {
	tb.Helper()
	h, err := api.HashToken(token)
	if err != nil {
		tb.Fatal(err)
	}
	return &h
}

func TestHashedTokens(t *testing.T) {
	_, st := newServer(t)
	gin.SetMode(gin.TestMode)
	e := gin.New()
	(&api.Server{Ledger: st, Tokens: []api.Token{
		{Name: "clear", Value: "clear-token"},
		{Name: "reader", Hash: mustHash(t, "reader-token"), Scopes: []string{pipelines.ScopeRead}},
		{Name: "ci-other", Hash: mustHash(t, "other-token"), Pipelines: []string{"other"}},
	}}).Register(e)
	tests := []struct {
		name, method, path, auth string
		status                   int
		contains                 string
	}{
		{"hashed token reads", "GET", "/api/v1/apps/hello/releases", "Bearer reader-token", 200, `"version":1`},
		{"hashed token keeps its scopes", "PATCH", "/api/v1/apps/hello/config", "Bearer reader-token", 403, `token \"reader\" lacks the config scope`},
		{"hashed token keeps its pipelines", "GET", "/api/v1/apps/hello", "Bearer other-token", 403, "forbidden"},
		{"wrong token", "GET", "/api/v1/apps", "Bearer reader-tokem", 401, "invalid bearer token"},
		{"a hash is not a token", "GET", "/api/v1/apps", "Bearer " + mustHash(t, "reader-token").String(), 401, "invalid bearer token"},
		{"clear tokens still work", "GET", "/api/v1/apps", "Bearer clear-token", 200, `"name":"hello"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(e, tt.method, tt.path, tt.auth, "{}")
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.contains) {
				t.Fatalf("%s %s = %d %s", tt.method, tt.path, w.Code, w.Body)
			}
		})
	}
}

func TestHashedTokenChecksAreCachedAndBounded(t *testing.T) {
	gin.SetMode(gin.TestMode)
	auth, probe := api.NewAuthProbe([]api.Token{
		{Name: "a", Hash: mustHash(t, "token-a")},
		{Name: "b", Hash: mustHash(t, "token-b")},
	}, 100*time.Millisecond)
	e := gin.New()
	e.GET("/", auth, func(c *gin.Context) { c.String(http.StatusOK, "ok") })

	// The first call of a good token hashes until it matches; later ones
	// are remembered.
	for i := range 5 {
		if w := do(e, "GET", "/", "Bearer token-b", ""); w.Code != 200 {
			t.Fatalf("call %d with token-b = %d %s", i, w.Code, w.Body)
		}
	}
	if got := probe.Hashes(); got != 2 {
		t.Fatalf("%d hash checks for five calls of token-b, want 2 (a's, then b's, once)", got)
	}
	// Wrong tokens are not remembered: each costs every hash again.
	for range 2 {
		if w := do(e, "GET", "/", "Bearer nope", ""); w.Code != 401 {
			t.Fatalf("wrong token = %d %s", w.Code, w.Body)
		}
	}
	if got := probe.Hashes(); got != 6 {
		t.Fatalf("%d hash checks after two wrong tokens, want 6", got)
	}
	// Oversized tokens are refused without hashing.
	if w := do(e, "GET", "/", "Bearer "+strings.Repeat("x", 100_000), ""); w.Code != 401 || probe.Hashes() != 6 {
		t.Fatalf("oversized token = %d after %d hash checks, want 401 without one", w.Code, probe.Hashes())
	}

	// With every check slot busy, a token that needs hashing waits, then
	// gets 503; a remembered one still gets in.
	release := probe.HoldChecks()
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range codes {
		wg.Go(func() { codes[i] = do(e, "GET", "/", "Bearer token-a", "").Code })
	}
	wg.Wait()
	if w := do(e, "GET", "/", "Bearer token-b", ""); w.Code != 200 {
		t.Errorf("remembered token while checks are busy = %d %s", w.Code, w.Body)
	}
	release()
	for i, code := range codes {
		if code != http.StatusServiceUnavailable {
			t.Errorf("call %d needing a hash while every slot is busy = %d, want 503", i, code)
		}
	}
	if w := do(e, "GET", "/", "Bearer token-a", ""); w.Code != 200 {
		t.Fatalf("token-a once slots are free = %d %s", w.Code, w.Body)
	}
}

func TestHashTokenRoundTrip(t *testing.T) {
	h := mustHash(t, "s3cret")
	parsed, err := pipelines.ParseTokenHash(h.String())
	if err != nil {
		t.Fatalf("parse %s: %v", h, err)
	}
	if !api.VerifyToken(parsed, "s3cret") || api.VerifyToken(parsed, "s3cre") {
		t.Fatalf("%s does not verify s3cret alone", h)
	}
	if other := mustHash(t, "s3cret"); other.String() == h.String() {
		t.Fatal("two hashes of one token are equal: the salt is not random")
	}
}
