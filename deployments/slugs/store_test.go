package slugs_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/pipelines"
)

func mustStore(tb testing.TB) (*slugs.Store, string) {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "slugs")
	s, err := slugs.NewStore(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return s, dir
}

func TestStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, dir := mustStore(t)
	d1, err := s.Put(ctx, strings.NewReader("slug bytes"))
	if err != nil || !slugs.ValidDigest(d1) {
		t.Fatalf("Put = %q, %v", d1, err)
	}
	if sum := sha256.Sum256([]byte("slug bytes")); d1 != hex.EncodeToString(sum[:]) {
		t.Fatalf("digest %s is not the sha256 of the content", d1)
	}
	d2, err := s.Put(ctx, strings.NewReader("slug bytes"))
	if err != nil || d2 != d1 {
		t.Fatalf("same bytes gave %q then %q (%v)", d1, d2, err)
	}
	p, err := s.Path(d1)
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(dir, d1+".tar.gz") {
		t.Fatalf("Path = %s", p)
	}
	if !s.Has(d1) {
		t.Fatal("Has = false after Put")
	}
	f, err := s.Open(d1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "slug bytes" {
		t.Fatalf("stored %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("%d files in the store, want 1 (no leftover temp files)", len(entries))
	}

	d3, err := s.Put(ctx, strings.NewReader("other bytes"))
	if err != nil || d3 == d1 {
		t.Fatalf("other bytes gave %q (%v)", d3, err)
	}
}

func TestStoreMissingSlug(t *testing.T) {
	s, _ := mustStore(t)
	missing := strings.Repeat("0", 64)
	if _, err := s.Path(missing); !errors.Is(err, pipelines.ErrNotFound) {
		t.Fatalf("Path: %v, want ErrNotFound", err)
	}
	if _, err := s.Open(missing); !errors.Is(err, pipelines.ErrNotFound) {
		t.Fatalf("Open: %v, want ErrNotFound", err)
	}
	if s.Has(missing) {
		t.Fatal("Has = true for a slug never stored")
	}
}

func TestStoreRejectsBadDigests(t *testing.T) {
	s, dir := mustStore(t)
	good, err := s.Put(context.Background(), strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	// A file beside the store that a path trick could reach.
	os.WriteFile(filepath.Join(filepath.Dir(dir), "secret.tar.gz"), []byte("s"), 0o644)
	tests := []struct{ name, digest string }{
		{"empty", ""},
		{"short", "abc"},
		{"uppercase", strings.ToUpper(good)},
		{"too long", good + "0"},
		{"63 and a slash", good[:63] + "/"},
		{"parent dir", "../secret"},
		{"parent dir padded", "../" + good[3:]},
		{"with extension", good + ".tar.gz"},
		{"non-hex", strings.Repeat("g", 64)},
		{"trailing newline", good[:63] + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if slugs.ValidDigest(tt.digest) {
				t.Fatal("ValidDigest = true")
			}
			if _, err := s.Path(tt.digest); !errors.Is(err, pipelines.ErrInvalid) {
				t.Errorf("Path: %v, want ErrInvalid", err)
			}
			if f, err := s.Open(tt.digest); !errors.Is(err, pipelines.ErrInvalid) {
				if f != nil {
					f.Close()
				}
				t.Errorf("Open: %v, want ErrInvalid", err)
			}
			if s.Has(tt.digest) {
				t.Error("Has = true")
			}
		})
	}
}

func TestStorePutCancelled(t *testing.T) {
	s, dir := mustStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put = %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left %v behind", entries)
	}
}
