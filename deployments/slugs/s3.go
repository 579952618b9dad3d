package slugs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/drover/drover/pipelines"
)

// ErrCorrupt means a stored slug's bytes do not hash to the digest it is
// stored under. Such a slug is never served: a release names its slug by
// digest, and running other bytes under that name is worse than failing.
var ErrCorrupt = errors.New("corrupt slug")

// fetchTimeout bounds one download: Path and Open take no context, and a
// server that stops sending mid-object must not hang a deploy for ever.
const fetchTimeout = 15 * time.Minute

// statTimeout bounds the existence checks of Has and Put.
const statTimeout = 30 * time.Second

// S3Store keeps slugs in an S3-compatible bucket as
// <prefix><digest>.tar.gz, shared by every replica, and a verified local
// copy of each slug it has stored or fetched in its cache directory, since
// callers open slugs by path. Every method is safe for concurrent use, and
// several stores (processes) may share one cache directory: files appear
// there only by an atomic rename of bytes whose sha256 was checked.
type S3Store struct {
	spec   StoreSpec
	cache  string
	client *minio.Client

	mu       sync.Mutex
	fetching map[string]*fetchCall // digest → the download under way
}

// fetchCall is one download that concurrent callers for the same digest
// wait on, so a slug is fetched once however many ask for it.
type fetchCall struct {
	done chan struct{}
	path string
	err  error
}

// newS3Store makes the store spec describes, with its cache in cacheDir.
// It talks to no server; OpenStore checks the bucket.
func newS3Store(spec StoreSpec, cacheDir string) (*S3Store, error) {
	if cacheDir == "" {
		return nil, fmt.Errorf("slug store %s: no cache directory", spec)
	}
	cacheDir, err := filepath.Abs(cacheDir)
	if err != nil {
		return nil, fmt.Errorf("slug cache %s: %w", cacheDir, err)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("create slug cache %s: %w", cacheDir, err)
	}
	// The environment first, then the shared credentials file. Not the
	// EC2/ECS metadata service: off AWS it is an address that never
	// answers, and every request would wait on it first.
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{},
	})
	if v, _ := creds.GetWithContext(nil); v.SignerType.IsAnonymous() {
		return nil, fmt.Errorf("slug store %s: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), or AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE", spec)
	}
	secure := strings.HasPrefix(spec.Endpoint, "https://")
	lookup := minio.BucketLookupDNS
	if spec.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(strings.TrimPrefix(strings.TrimPrefix(spec.Endpoint, "https://"), "http://"), &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Region:       spec.Region,
		BucketLookup: lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("slug store %s: %w", spec, err)
	}
	return &S3Store{
		spec:     spec,
		cache:    cacheDir,
		client:   client,
		fetching: map[string]*fetchCall{},
	}, nil
}

// String says where slugs live, e.g. "s3://drover-slugs at
// https://s3.internal (region us-east-1, path-style, cache /var/cache/drover)".
func (s *S3Store) String() string {
	d := s.spec.String()
	return strings.TrimSuffix(d, ")") + ", cache " + s.cache + ")"
}

// where names the bucket and prefix in errors.
func (s *S3Store) where() string {
	if s.spec.Prefix == "" {
		return "s3://" + s.spec.Bucket
	}
	return "s3://" + s.spec.Bucket + "/" + s.spec.Prefix
}

// log is looked up at each use, so a default logger set after the store
// was opened still gets its lines.
func (s *S3Store) log() *slog.Logger { return slog.Default().With("slug_store", s.where()) }

func (s *S3Store) key(digest string) string { return s.spec.Prefix + digest + ".tar.gz" }

// cached returns the cache file of a digest, refusing any digest that is
// not 64 lowercase hex digits with an error wrapping pipelines.ErrInvalid:
// it becomes an object key and a path.
func (s *S3Store) cached(digest string) (string, error) {
	if !ValidDigest(digest) {
		return "", fmt.Errorf("slug digest %q: want 64 lowercase hex digits: %w", digest, pipelines.ErrInvalid)
	}
	return filepath.Join(s.cache, digest+".tar.gz"), nil
}

// Check returns an error naming the bucket and endpoint unless the bucket
// exists and answers with these credentials, for a readiness probe and the
// check at start.
func (s *S3Store) Check(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.spec.Bucket)
	if err != nil {
		return fmt.Errorf("slug bucket %q at %s: %w", s.spec.Bucket, s.spec.Endpoint, err)
	}
	if !ok {
		return fmt.Errorf("slug bucket %q at %s does not exist: create it (drover never creates buckets) or fix %s", s.spec.Bucket, s.spec.Endpoint, SpecVar)
	}
	return nil
}

// Put stores the slug read from r and returns its sha256 digest. It
// streams r to a temporary file in the cache while hashing it, uploads the
// file unless the bucket already holds an object of that size under the
// digest, and only then keeps the file in the cache: a slug is never in a
// cache without being in the bucket. It returns an error if r, the disk or
// the upload fails, and nothing is kept then.
func (s *S3Store) Put(ctx context.Context, r io.Reader) (string, error) {
	tmp, err := os.CreateTemp(s.cache, ".put-*")
	if err != nil {
		return "", fmt.Errorf("store slug: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(tmp, h), readerCtx{ctx, r})
	if err != nil {
		return "", fmt.Errorf("store slug: %w", err)
	}
	digest := hex.EncodeToString(h.Sum(nil))
	if err := s.upload(ctx, digest, tmp, size); err != nil {
		return "", err
	}
	dst, _ := s.cached(digest)
	if err := keep(tmp, dst); err != nil {
		return "", fmt.Errorf("cache slug %s: %w", digest, err)
	}
	return digest, nil
}

// upload puts f (size bytes) under digest unless an object of that size is
// already there: the same digest means the same bytes, and a slug stored
// twice (a retried build) need not cross the network twice.
func (s *S3Store) upload(ctx context.Context, digest string, f *os.File, size int64) error {
	key := s.key(digest)
	sctx, cancel := context.WithTimeout(ctx, statTimeout)
	info, err := s.client.StatObject(sctx, s.spec.Bucket, key, minio.StatObjectOptions{})
	cancel()
	switch {
	case err == nil && info.Size == size:
		return nil
	case err != nil && !isNoSuchKey(err):
		// A credential may be allowed to write a slug but not to look;
		// the upload says whether it really cannot.
		s.log().Debug("stat slug before upload", "digest", digest, "err", err)
	}
	// f is streamed (small slugs) or read in sections through ReadAt
	// (multipart), so nothing holds the whole slug in memory.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("upload slug %s: %w", digest, err)
	}
	if _, err := s.client.PutObject(ctx, s.spec.Bucket, key, f, size, minio.PutObjectOptions{
		ContentType: "application/gzip",
	}); err != nil {
		return fmt.Errorf("upload slug %s to %s: %w", digest, s.where(), err)
	}
	return nil
}

// Path returns a local file holding the slug, downloading it into the
// cache first if need be. It returns an error wrapping pipelines.ErrNotFound
// if the bucket has no such slug, one wrapping ErrCorrupt if the object's
// bytes do not hash to digest (nothing is kept then), and one wrapping
// pipelines.ErrInvalid if digest is not 64 lowercase hex digits.
func (s *S3Store) Path(digest string) (string, error) {
	dst, err := s.cached(digest)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	s.mu.Lock()
	if call, ok := s.fetching[digest]; ok {
		s.mu.Unlock()
		<-call.done
		return call.path, call.err
	}
	// Re-checked under the lock: a download may have finished since.
	if _, err := os.Stat(dst); err == nil {
		s.mu.Unlock()
		return dst, nil
	}
	call := &fetchCall{done: make(chan struct{})}
	s.fetching[digest] = call
	s.mu.Unlock()

	call.err = s.fetch(digest, dst)
	if call.err == nil {
		call.path = dst
	}
	s.mu.Lock()
	delete(s.fetching, digest)
	s.mu.Unlock()
	close(call.done)
	return call.path, call.err
}

// fetch downloads the object of digest to a temporary file in the cache
// while hashing it, and renames it to dst only if the hash is the digest.
func (s *S3Store) fetch(digest, dst string) error {
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	obj, err := s.client.GetObject(ctx, s.spec.Bucket, s.key(digest), minio.GetObjectOptions{})
	if err != nil {
		return s.fetchError(digest, err)
	}
	defer obj.Close()
	tmp, err := os.CreateTemp(s.cache, ".fetch-*")
	if err != nil {
		return fmt.Errorf("fetch slug %s: %w", digest, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), obj); err != nil {
		return s.fetchError(digest, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != digest {
		s.log().Error("refusing a slug whose content does not match its digest", "digest", digest, "sha256", sum, "key", s.key(digest))
		return fmt.Errorf("slug %s in %s: content has sha256 %s, not its name: refusing it: %w", digest, s.where(), sum, ErrCorrupt)
	}
	if err := keep(tmp, dst); err != nil {
		return fmt.Errorf("cache slug %s: %w", digest, err)
	}
	return nil
}

func (s *S3Store) fetchError(digest string, err error) error {
	if isNoSuchKey(err) {
		return fmt.Errorf("slug %s in %s: %w", digest, s.where(), pipelines.ErrNotFound)
	}
	return fmt.Errorf("fetch slug %s from %s: %w", digest, s.where(), err)
}

// Has reports whether the slug is in the cache or the bucket. A bucket that
// does not answer counts as not having it, and is logged.
func (s *S3Store) Has(digest string) bool {
	dst, err := s.cached(digest)
	if err != nil {
		return false
	}
	if _, err := os.Stat(dst); err == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), statTimeout)
	defer cancel()
	_, err = s.client.StatObject(ctx, s.spec.Bucket, s.key(digest), minio.StatObjectOptions{})
	if err != nil && !isNoSuchKey(err) {
		s.log().Warn("check slug in bucket", "digest", digest, "err", err)
	}
	return err == nil
}

// Open opens the slug for reading, downloading it into the cache first if
// need be, with the errors of Path.
func (s *S3Store) Open(digest string) (*os.File, error) {
	p, err := s.Path(digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open slug %s: %w", digest, err)
	}
	return f, nil
}

func isNoSuchKey(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.Code == minio.NoSuchKey || (r.StatusCode == http.StatusNotFound && r.Code != minio.NoSuchBucket)
}

// keep makes tmp, a complete file, the cache file dst: synced, readable,
// then renamed, so no reader ever sees part of a slug. Renaming over a file
// another download put there is harmless: both hold the same checked bytes.
func keep(tmp *os.File, dst string) error {
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		err = d.Sync()
		d.Close()
		return err
	}
	return nil
}
