package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/api"
	"github.com/drover/drover/deployments/slugs"
)

func TestUploads(t *testing.T) {
	dir := t.TempDir()
	store, err := slugs.NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	grants := slugs.NewGrants([]byte("config key"))
	now := time.Unix(1_800_000_000, 0)
	gin.SetMode(gin.TestMode)
	e := gin.New()
	(&api.Uploads{Store: store, Grants: grants, MaxSize: 100, Now: func() time.Time { return now }}).Register(e)

	const id = "0123456789abcdef"
	good := grants.Sign(slugs.GrantUpload, id, now.Add(time.Minute))
	body := "a slug's bytes"
	sum := sha256.Sum256([]byte(body))
	digest := hex.EncodeToString(sum[:])
	for _, tc := range []struct {
		name, id, auth, body string
		status               int
	}{
		{"no grant", id, "", body, http.StatusUnauthorized},
		{"grant for another upload", id, "Bearer " + grants.Sign(slugs.GrantUpload, "fedcba9876543210", now.Add(time.Minute)), body, http.StatusForbidden},
		{"download grant", id, "Bearer " + grants.Sign(slugs.GrantDownload, id, now.Add(time.Minute)), body, http.StatusForbidden},
		{"expired grant", id, "Bearer " + grants.Sign(slugs.GrantUpload, id, now.Add(-time.Second)), body, http.StatusForbidden},
		{"grant from another key", id, "Bearer " + slugs.NewGrants([]byte("other")).Sign(slugs.GrantUpload, id, now.Add(time.Minute)), body, http.StatusForbidden},
		{"too large", id, "Bearer " + good, strings.Repeat("x", 101), http.StatusRequestEntityTooLarge},
		{"bad upload ID", "../../etc", "Bearer " + good, body, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPut, "/slugs/uploads/"+tc.id, strings.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("refused upload left %d files in the store", len(entries))
			}
		})
	}
	t.Run("too large without a length", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPut, "/slugs/uploads/"+id, struct{ *strings.Reader }{strings.NewReader(strings.Repeat("x", 101))})
		req.ContentLength = -1
		req.Header.Set("Authorization", "Bearer "+good)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status = %d, want 413: %s", rec.Code, rec.Body)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("refused upload left %d files in the store", len(entries))
		}
	})

	req := httptest.NewRequest(http.MethodPut, "/slugs/uploads/"+id, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+good)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("status = %d, want 201: %s", rec.Code, rec.Body)
	}
	var up slugs.Uploaded
	if err := json.Unmarshal(rec.Body.Bytes(), &up); err != nil {
		t.Fatal(err)
	}
	if up.Digest != digest || up.Size != int64(len(body)) || !store.Has(digest) {
		t.Fatalf("answer %+v; want digest %s, size %d, stored", up, digest, len(body))
	}
	if err := grants.CheckReceipt(id, digest, up.Receipt, now); err != nil {
		t.Fatalf("receipt does not verify: %v", err)
	}
	if err := grants.CheckReceipt("fedcba9876543210", digest, up.Receipt, now); err == nil {
		t.Fatal("receipt verifies for another upload")
	}
}

// TestUploader is the build job's side against the route.
func TestUploader(t *testing.T) {
	store, err := slugs.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	grants := slugs.NewGrants([]byte("config key"))
	e := gin.New()
	(&api.Uploads{Store: store, Grants: grants}).Register(e)
	srv := httptest.NewServer(e)
	defer srv.Close()
	const id = "upload-1234"
	u := &slugs.Uploader{URL: srv.URL + slugs.UploadPath(id), Grant: grants.Sign(slugs.GrantUpload, id, time.Now().Add(time.Minute))}
	digest, err := u.Put(context.Background(), strings.NewReader("slug"))
	if err != nil || !store.Has(digest) {
		t.Fatalf("Put = %q, %v; stored %v", digest, err, store.Has(digest))
	}
	if err := grants.CheckReceipt(id, digest, u.Last.Receipt, time.Now()); err != nil {
		t.Fatalf("receipt: %v", err)
	}
	u.Grant = grants.Sign(slugs.GrantUpload, "other-upload", time.Now().Add(time.Minute))
	if _, err := u.Put(context.Background(), strings.NewReader("slug 2")); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("Put with another upload's grant = %v, want a 403", err)
	}
}
