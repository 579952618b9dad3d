package slugs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/pipelines"
)

// testS3 is the server .ci/start-s3 started.
type testS3 struct {
	endpoint, access, secret, region string
	client                           *minio.Client
}

// mustS3 returns the test server, or skips the test when there is none.
// It puts the server's keys in the AWS_* variables for this test only,
// where OpenStore looks for them.
func mustS3(t *testing.T) *testS3 {
	t.Helper()
	s := &testS3{
		endpoint: os.Getenv("DROVER_TEST_S3_ENDPOINT"),
		access:   os.Getenv("DROVER_TEST_S3_ACCESS_KEY"),
		secret:   os.Getenv("DROVER_TEST_S3_SECRET_KEY"),
		region:   os.Getenv("DROVER_TEST_S3_REGION"),
	}
	if s.endpoint == "" {
		t.Skip("DROVER_TEST_S3_ENDPOINT is not set: no S3 server to test against (source .ci/start-s3 to start one)")
	}
	if s.region == "" {
		s.region = "us-east-1"
	}
	t.Setenv("AWS_ACCESS_KEY_ID", s.access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.secret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	client, err := minio.New(strings.TrimPrefix(s.endpoint, "http://"), &minio.Options{
		Creds:        credentials.NewStaticV4(s.access, s.secret, ""),
		Region:       s.region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.client = client
	return s
}

// mustBucket makes a bucket of its own for one test and removes it, and
// everything in it, afterwards.
func (s *testS3) mustBucket(t *testing.T) string {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	bucket := "drover-test-" + hex.EncodeToString(b[:])
	ctx := context.Background()
	if err := s.client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: s.region}); err != nil {
		t.Fatalf("make bucket %s: %v", bucket, err)
	}
	t.Cleanup(func() {
		for obj := range s.client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
			if obj.Err == nil {
				s.client.RemoveObject(ctx, bucket, obj.Key, minio.RemoveObjectOptions{})
			}
		}
		if err := s.client.RemoveBucket(ctx, bucket); err != nil {
			t.Errorf("remove bucket %s: %v", bucket, err)
		}
	})
	return bucket
}

func (s *testS3) spec(bucket, prefix string) string {
	spec := fmt.Sprintf("s3://%s?endpoint=%s&region=%s", bucket, s.endpoint, s.region)
	if prefix != "" {
		spec += "&prefix=" + prefix
	}
	return spec
}

// replica is one drover process: a store over the shared bucket with a
// cache directory of its own.
type replica struct {
	slugs.Artifacts
	cache string
}

func (s *testS3) mustReplica(t *testing.T, bucket, prefix string) replica {
	t.Helper()
	return s.mustReplicaIn(t, bucket, prefix, filepath.Join(t.TempDir(), "cache"))
}

func (s *testS3) mustReplicaIn(t *testing.T, bucket, prefix, cache string) replica {
	t.Helper()
	st, err := slugs.OpenStore(context.Background(), s.spec(bucket, prefix), cache)
	if err != nil {
		t.Fatal(err)
	}
	return replica{st, cache}
}

// files lists what is in a cache directory, temporary files included.
func files(tb testing.TB, dir string) []string {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func mustRead(tb testing.TB, st slugs.Artifacts, digest string) []byte {
	tb.Helper()
	f, err := st.Open(digest)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestS3PutOnOneReplicaReadOnAnother(t *testing.T) {
	s3 := mustS3(t)
	tests := []struct {
		name, prefix string
		body         []byte
	}{
		{"no prefix", "", []byte("a slug")},
		{"prefix", "slugs/v1/", []byte("another slug")},
		{"empty slug", "", nil},
		{"above one part", "", bytes.Repeat([]byte("0123456789abcdef"), 17<<20/16)}, // multipart upload
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			bucket := s3.mustBucket(t)
			one := s3.mustReplica(t, bucket, tt.prefix)
			two := s3.mustReplica(t, bucket, tt.prefix)

			digest, err := one.Put(ctx, bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if digest != sha(tt.body) {
				t.Fatalf("digest %s, want the sha256 %s", digest, sha(tt.body))
			}
			info, err := s3.client.StatObject(ctx, bucket, tt.prefix+digest+".tar.gz", minio.StatObjectOptions{})
			if err != nil || info.Size != int64(len(tt.body)) {
				t.Fatalf("object %s%s.tar.gz: size %d, %v; want %d bytes", tt.prefix, digest, info.Size, err, len(tt.body))
			}
			if got := files(t, one.cache); len(got) != 1 || got[0] != digest+".tar.gz" {
				t.Fatalf("putting replica's cache holds %v, want just the slug", got)
			}

			if got := files(t, two.cache); len(got) != 0 {
				t.Fatalf("second replica's cache starts with %v", got)
			}
			if !two.Has(digest) {
				t.Fatal("Has = false on the second replica")
			}
			p, err := two.Path(digest)
			if err != nil {
				t.Fatal(err)
			}
			if p != filepath.Join(two.cache, digest+".tar.gz") {
				t.Fatalf("Path = %s, want a file in the second replica's cache", p)
			}
			if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, tt.body) {
				t.Fatalf("file at Path holds %d bytes (%v), want the %d put", len(b), err, len(tt.body))
			}
			if b := mustRead(t, two, digest); !bytes.Equal(b, tt.body) {
				t.Fatalf("Open read %d bytes, want the %d put", len(b), len(tt.body))
			}
			if got := files(t, two.cache); len(got) != 1 {
				t.Fatalf("second replica's cache holds %v, want just the slug", got)
			}
		})
	}
}

// TestS3PutSkipsStoredSlug puts the same bytes from two replicas: the
// second finds the object and does not upload it again.
func TestS3PutSkipsStoredSlug(t *testing.T) {
	s3 := mustS3(t)
	ctx := context.Background()
	bucket := s3.mustBucket(t)
	body := []byte("built twice")
	d1, err := s3.mustReplica(t, bucket, "").Put(ctx, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	before, err := s3.client.StatObject(ctx, bucket, d1+".tar.gz", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // Last-Modified counts seconds
	two := s3.mustReplica(t, bucket, "")
	d2, err := two.Put(ctx, bytes.NewReader(body))
	if err != nil || d2 != d1 {
		t.Fatalf("second Put = %s, %v; want %s", d2, err, d1)
	}
	after, err := s3.client.StatObject(ctx, bucket, d1+".tar.gz", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !after.LastModified.Equal(before.LastModified) {
		t.Fatalf("object rewritten at %v (first at %v)", after.LastModified, before.LastModified)
	}
	if got := files(t, two.cache); len(got) != 1 {
		t.Fatalf("second replica's cache holds %v, want the slug", got)
	}
}

func TestS3RefusesTamperedSlug(t *testing.T) {
	s3 := mustS3(t)
	good := []byte("the slug a release names")
	digest := sha(good)
	tests := []struct {
		name   string
		stored []byte
	}{
		{"other bytes", []byte("a slug someone swapped in")},
		{"truncated", good[:10]},
		{"longer", append(append([]byte{}, good...), '!')},
		{"empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			bucket := s3.mustBucket(t)
			// The builder stored the real slug; then the object changed.
			if _, err := s3.mustReplica(t, bucket, "").Put(ctx, bytes.NewReader(good)); err != nil {
				t.Fatal(err)
			}
			if _, err := s3.client.PutObject(ctx, bucket, digest+".tar.gz", bytes.NewReader(tt.stored), int64(len(tt.stored)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			fresh := s3.mustReplica(t, bucket, "")
			_, err := fresh.Path(digest)
			if !errors.Is(err, slugs.ErrCorrupt) {
				t.Fatalf("Path = %v, want ErrCorrupt", err)
			}
			t.Log(err)
			for _, s := range []string{digest, "s3://" + bucket, sha(tt.stored), "refusing"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			f, err := fresh.Open(digest)
			if !errors.Is(err, slugs.ErrCorrupt) || f != nil {
				t.Fatalf("Open = %v, %v; want ErrCorrupt and no file", f, err)
			}
			if got := files(t, fresh.cache); len(got) != 0 {
				t.Fatalf("left %v in the cache", got)
			}
		})
	}
}

func TestS3MissingAndInvalidDigests(t *testing.T) {
	s3 := mustS3(t)
	bucket := s3.mustBucket(t)
	st := s3.mustReplica(t, bucket, "")
	tests := []struct {
		name, digest string
		want         error
	}{
		{"missing", strings.Repeat("0", 64), pipelines.ErrNotFound},
		{"empty", "", pipelines.ErrInvalid},
		{"uppercase", strings.Repeat("A", 64), pipelines.ErrInvalid},
		{"path", "../" + strings.Repeat("0", 61), pipelines.ErrInvalid},
		{"key with a prefix", "x/" + strings.Repeat("0", 62), pipelines.ErrInvalid},
		{"with extension", strings.Repeat("0", 64) + ".tar.gz", pipelines.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := st.Path(tt.digest); !errors.Is(err, tt.want) {
				t.Errorf("Path = %v, want %v", err, tt.want)
			}
			if f, err := st.Open(tt.digest); !errors.Is(err, tt.want) || f != nil {
				t.Errorf("Open = %v, %v; want %v", f, err, tt.want)
			}
			if st.Has(tt.digest) {
				t.Error("Has = true")
			}
		})
	}
	if got := files(t, st.cache); len(got) != 0 {
		t.Fatalf("left %v in the cache", got)
	}
}

// randomSlug reads n pseudo-random bytes made on the fly, the same for the
// same seed, so a large slug never sits in the test's memory either.
type randomSlug struct {
	src  *mrand.ChaCha8
	left int64
}

func newRandomSlug(seed byte, n int64) *randomSlug {
	return &randomSlug{src: mrand.NewChaCha8([32]byte{seed}), left: n}
}

func (r *randomSlug) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, _ := r.src.Read(p)
	r.left -= int64(n)
	return n, nil
}

// heapPeak samples the heap in use until stop is called, and returns its
// highest value.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(done); <-finished; return peak.Load() }
}

// TestS3LargeSlugStreams puts a 64 MiB slug through one replica and reads
// it through another, checking that neither holds it in memory.
func TestS3LargeSlugStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 128 MiB through the S3 server")
	}
	s3 := mustS3(t)
	const size = 64 << 20
	want := sha256.New()
	io.Copy(want, newRandomSlug(7, size))
	wantDigest := hex.EncodeToString(want.Sum(nil))

	ctx := context.Background()
	bucket := s3.mustBucket(t)
	one := s3.mustReplica(t, bucket, "")
	two := s3.mustReplica(t, bucket, "")

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	stop := heapPeak()
	start := time.Now()
	digest, err := one.Put(ctx, newRandomSlug(7, size))
	if err != nil {
		t.Fatal(err)
	}
	put := time.Since(start)
	p, err := two.Path(digest)
	if err != nil {
		t.Fatal(err)
	}
	fetched := time.Since(start) - put
	peak := stop()
	runtime.ReadMemStats(&after)

	if digest != wantDigest {
		t.Fatalf("digest %s, want %s", digest, wantDigest)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, f)
	f.Close()
	if err != nil || n != size || hex.EncodeToString(got.Sum(nil)) != wantDigest {
		t.Fatalf("second replica's file: %d bytes, sha256 %x (%v); want %d bytes, %s", n, got.Sum(nil), err, size, wantDigest)
	}

	allocated := after.TotalAlloc - before.TotalAlloc
	grew := int64(peak) - int64(before.HeapInuse)
	t.Logf("put %v, fetch %v; allocated %.1f MiB in all, heap in use peaked %.1f MiB above the %.1f MiB at start",
		put.Round(time.Millisecond), fetched.Round(time.Millisecond), float64(allocated)/(1<<20), float64(grew)/(1<<20), float64(before.HeapInuse)/(1<<20))
	// Streaming costs a few buffers; holding the slug would cost its size
	// at least once, for the upload or the download.
	const bound = size / 4
	if allocated > bound {
		t.Errorf("allocated %d bytes moving a %d-byte slug, want under %d: something buffers it", allocated, size, bound)
	}
	if grew > bound {
		t.Errorf("heap in use grew by %d bytes moving a %d-byte slug, want under %d: something buffers it", grew, size, bound)
	}
}

func TestS3ConcurrentFetches(t *testing.T) {
	s3 := mustS3(t)
	ctx := context.Background()
	bucket := s3.mustBucket(t)
	body := bytes.Repeat([]byte("concurrent "), 300_000) // ~3 MiB: downloads overlap
	digest, err := s3.mustReplica(t, bucket, "").Put(ctx, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	sharedCache := filepath.Join(t.TempDir(), "cache")
	// A proxy in front of the server counts the downloads of one replica.
	var gets atomic.Int32
	target, _ := url.Parse(s3.endpoint)
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // the request is signed for the proxy's host
		if r.In.Method == http.MethodGet && strings.HasSuffix(r.In.URL.Path, digest+".tar.gz") {
			gets.Add(1)
		}
	}})
	defer proxy.Close()
	proxied := *s3
	proxied.endpoint = proxy.URL
	tests := []struct {
		name      string
		stores    func(t *testing.T) []replica
		downloads int32 // through the proxy; -1 for not counted
	}{
		{"one replica", func(t *testing.T) []replica {
			r := proxied.mustReplica(t, bucket, "")
			return []replica{r, r, r, r, r, r, r, r}
		}, 1},
		// Two processes on one host with one cache directory.
		{"two stores sharing a cache", func(t *testing.T) []replica {
			return []replica{s3.mustReplicaIn(t, bucket, "", sharedCache), s3.mustReplicaIn(t, bucket, "", sharedCache)}
		}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stores := tt.stores(t)
			var wg sync.WaitGroup
			errs := make([]error, len(stores))
			start := make(chan struct{})
			for i, st := range stores {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					f, err := st.Open(digest)
					if err != nil {
						errs[i] = err
						return
					}
					defer f.Close()
					b, err := io.ReadAll(f)
					if err == nil && !bytes.Equal(b, body) {
						err = fmt.Errorf("read %d bytes, want the %d put", len(b), len(body))
					}
					errs[i] = err
				}()
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("reader %d: %v", i, err)
				}
			}
			if got := files(t, stores[0].cache); len(got) != 1 {
				t.Fatalf("cache holds %v, want just the slug", got)
			}
			if tt.downloads >= 0 && gets.Load() != tt.downloads {
				t.Fatalf("%d downloads for %d readers, want %d", gets.Load(), len(stores), tt.downloads)
			}
		})
	}
}

func TestS3OpenStoreChecksBucket(t *testing.T) {
	s3 := mustS3(t)
	tests := []struct {
		name   string
		setup  func(t *testing.T) string // returns the bucket
		says   []string
		hidden []string
	}{
		{"missing bucket", func(t *testing.T) string { return "drover-no-such-bucket" },
			[]string{`"drover-no-such-bucket"`, s3.endpoint, "does not exist", "drover never creates buckets"}, nil},
		{"wrong secret", func(t *testing.T) string {
			t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-at-all")
			return s3.mustBucket(t)
		}, []string{s3.endpoint}, []string{"not-the-secret-at-all", s3.secret}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bucket := tt.setup(t)
			cache := filepath.Join(t.TempDir(), "cache")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			st, err := slugs.OpenStore(ctx, s3.spec(bucket, ""), cache)
			if err == nil {
				t.Fatalf("opened %v; want a refusal", st)
			}
			t.Log(err)
			for _, s := range append(tt.says, bucket) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			for _, s := range tt.hidden {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q shows the secret %q", err, s)
				}
			}
		})
	}
}

func TestS3CheckAndBanner(t *testing.T) {
	s3 := mustS3(t)
	bucket := s3.mustBucket(t)
	st := s3.mustReplica(t, bucket, "slugs/")
	if err := st.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	want := fmt.Sprintf("s3://%s/slugs/ at %s (region %s, path-style, cache %s)", bucket, s3.endpoint, s3.region, st.cache)
	if got := st.String(); got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	if strings.Contains(st.String(), s3.secret) {
		t.Fatalf("String() = %q shows the secret key", st.String())
	}
}
