package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/api"
	"github.com/drover/drover/deployments/slugs"
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
	gin.SetMode(gin.TestMode)
	e := gin.New()
	api.RegisterSlugs(e, store)
	tests := []struct {
		name, method, path string
		status             int
		body               string
	}{
		{"slug, no login", "GET", api.SlugPath(digest), http.StatusOK, "slug"},
		{"head", "HEAD", api.SlugPath(digest), http.StatusOK, ""},
		{"unknown digest", "GET", api.SlugPath(strings.Repeat("0", 64)), http.StatusNotFound, "no such slug"},
		{"path escape", "GET", "/slugs/..%2f..%2fetc%2fpasswd.tar.gz", http.StatusNotFound, ""},
		{"not a digest", "GET", "/slugs/abc.tar.gz", http.StatusNotFound, "no such slug"},
		{"no suffix", "GET", "/slugs/" + digest, http.StatusNotFound, "no such slug"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(e, tt.method, tt.path, "", "")
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.body) {
				t.Fatalf("%s %s = %d %q", tt.method, tt.path, w.Code, w.Body)
			}
			if tt.status == http.StatusOK && w.Header().Get("Content-Type") != "application/gzip" {
				t.Fatalf("content type %q", w.Header().Get("Content-Type"))
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
	api.RegisterSlugs(e, corruptSlugs{})
	w := do(e, "GET", api.SlugPath(strings.Repeat("a", 64)), "", "")
	if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), "does not match its digest") {
		t.Fatalf("GET a corrupt slug = %d %q", w.Code, w.Body)
	}
}
