package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/api"
	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/pipelines"
)

func TestServeSlugs(t *testing.T) {
	store, err := slugs.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	digest, err := store.Put(context.Background(), strings.NewReader("slug"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("slug"))
	if digest != hex.EncodeToString(sum[:]) {
		t.Fatal("digest is not the content's sha256")
	}
	grants := slugs.NewGrants([]byte("shared config key"))
	gin.SetMode(gin.TestMode)
	e := gin.New()
	api.RegisterSlugs(e, store, api.SlugAccess{Grants: grants, Tokens: []api.Token{
		{Name: "reader", Value: "read-token", Scopes: []string{pipelines.ScopeRead}},
		{Name: "deployer", Value: "deploy-token", Scopes: []string{pipelines.ScopeDeploy}},
		{Name: "ci-hello", Value: "hello-token", Pipelines: []string{"hello"}},
	}})
	unknown := strings.Repeat("0", 64)
	hour := time.Now().Add(time.Hour)
	grant := func(digest string, expires time.Time) string {
		return "?grant=" + url.QueryEscape(grants.Sign(slugs.GrantDownload, digest, expires))
	}
	forged := slugs.NewGrants([]byte("another key")).Sign(slugs.GrantDownload, digest, hour)
	tests := []struct {
		name, method, path, auth string
		status                   int
		body                     string
	}{
		{"no grant", "GET", api.SlugPath(digest), "", http.StatusUnauthorized, "signed ?grant="},
		{"no grant, unknown digest: the same answer", "GET", api.SlugPath(unknown), "", http.StatusUnauthorized, "signed ?grant="},
		{"grant for another digest", "GET", api.SlugPath(digest) + grant(unknown, hour), "", http.StatusForbidden, "slug grant refused: bad signature"},
		{"expired grant", "GET", api.SlugPath(digest) + grant(digest, time.Now().Add(-time.Minute)), "", http.StatusForbidden, "slug grant refused: expired"},
		{"forged grant", "GET", api.SlugPath(digest) + "?grant=" + forged, "", http.StatusForbidden, "bad signature"},
		{"empty grant", "GET", api.SlugPath(digest) + "?grant=", "", http.StatusForbidden, "no grant"},
		{"upload grant", "GET", api.SlugPath(digest) + "?grant=" + url.QueryEscape(grants.Sign(slugs.GrantUpload, digest, hour)), "", http.StatusForbidden, "bad signature"},
		{"good grant", "GET", api.SlugPath(digest) + grant(digest, hour), "", http.StatusOK, "slug"},
		{"head with a good grant", "HEAD", api.SlugPath(digest) + grant(digest, hour), "", http.StatusOK, ""},
		{"the URL drover hands Nomad", "GET", strings.TrimPrefix(api.SlugURL("http://drover.internal/", grants, digest, hour), "http://drover.internal"), "", http.StatusOK, "slug"},
		{"good grant, unknown digest", "GET", api.SlugPath(unknown) + grant(unknown, hour), "", http.StatusNotFound, "no such slug"},
		{"read token", "GET", api.SlugPath(digest), "Bearer read-token", http.StatusOK, "slug"},
		{"wrong token", "GET", api.SlugPath(digest), "Bearer nope", http.StatusUnauthorized, "invalid bearer token"},
		{"wrong token, unknown digest: the same answer", "GET", api.SlugPath(unknown), "Bearer nope", http.StatusUnauthorized, "invalid bearer token"},
		{"token without read", "GET", api.SlugPath(digest), "Bearer deploy-token", http.StatusForbidden, "lacks the read scope"},
		{"token for some pipelines", "GET", api.SlugPath(digest), "Bearer hello-token", http.StatusForbidden, "limited to some pipelines"},
		{"path escape", "GET", "/slugs/..%2f..%2fetc%2fpasswd.tar.gz", "Bearer read-token", http.StatusNotFound, ""},
		{"not a digest", "GET", "/slugs/abc.tar.gz", "Bearer read-token", http.StatusNotFound, "no such slug"},
		{"no suffix", "GET", "/slugs/" + digest, "Bearer read-token", http.StatusNotFound, "no such slug"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(e, tt.method, tt.path, tt.auth, "")
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.body) {
				t.Fatalf("%s %s = %d %q", tt.method, tt.path, w.Code, w.Body)
			}
			if tt.status == http.StatusOK && w.Header().Get("Content-Type") != "application/gzip" {
				t.Fatalf("content type %q", w.Header().Get("Content-Type"))
			}
		})
	}
}

func TestSlugGrantExpiry(t *testing.T) {
	now := time.Date(2026, 3, 4, 15, 30, 0, 0, time.UTC)
	tests := []struct {
		name string
		ttl  time.Duration
		want time.Time
	}{
		{"30 days, rounded up to the next day", 30 * 24 * time.Hour, time.Date(2026, 4, 4, 0, 0, 0, 0, time.UTC)},
		{"10 hours, rounded up to the next hour", 10 * time.Hour, time.Date(2026, 3, 5, 2, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := api.SlugGrantExpiry(now, tt.ttl)
			if !got.Equal(tt.want) {
				t.Fatalf("expiry = %s, want %s", got, tt.want)
			}
			// Deploys later the same step sign the same URL.
			if later := api.SlugGrantExpiry(now.Add(tt.ttl/100), tt.ttl); !later.Equal(got) {
				t.Fatalf("expiry a little later = %s, want %s", later, got)
			}
		})
	}
}

// corruptSlugs has a slug whose stored bytes fail their digest.
type corruptSlugs struct{}

func (corruptSlugs) Open(digest string) (*os.File, error) {
	return nil, fmt.Errorf("slug %s: content has another sha256: refusing it: %w", digest, slugs.ErrCorrupt)
}

func TestCorruptSlugIsNotServed(t *testing.T) {
	gin.SetMode(gin.TestMode)
	e := gin.New()
	api.RegisterSlugs(e, corruptSlugs{}, api.SlugAccess{Tokens: []api.Token{{Name: "admin", Value: token}}})
	w := do(e, "GET", api.SlugPath(strings.Repeat("a", 64)), "Bearer "+token, "")
	if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), "does not match its digest") {
		t.Fatalf("GET a corrupt slug = %d %q", w.Code, w.Body)
	}
}
