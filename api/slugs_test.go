package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
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
