// Package slugs owns slugs: the immutable, content-addressed tar.gz of a
// built app, the store that keeps them by sha256 digest, and the builder
// that makes one from a commit.
package slugs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/drover/drover/pipelines"
)

// digestRE is the only shape a digest may have: it becomes a file name and
// a URL path, so nothing else gets near either.
var digestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidDigest reports whether d is a lowercase hex sha256.
func ValidDigest(d string) bool { return digestRE.MatchString(d) }

// Store keeps slugs as <dir>/<digest>.tar.gz.
type Store struct {
	dir string
}

// NewStore opens (creating) a slug store in dir.
func NewStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create slug store %s: %w", dir, err)
	}
	return &Store{dir: dir}, nil
}

func (s *Store) file(digest string) (string, error) {
	if !ValidDigest(digest) {
		return "", fmt.Errorf("slug digest %q: want 64 lowercase hex digits: %w", digest, pipelines.ErrInvalid)
	}
	return filepath.Join(s.dir, digest+".tar.gz"), nil
}

// Put stores the slug read from r and returns its sha256 digest. It writes
// to a temporary file in the store's own directory, so the final rename is
// atomic and nobody ever sees half a slug under a digest. Storing the same
// bytes twice keeps one file; two concurrent Puts of the same bytes rename
// identical files over each other, which is harmless.
func (s *Store) Put(ctx context.Context, r io.Reader) (string, error) {
	tmp, err := os.CreateTemp(s.dir, ".put-*")
	if err != nil {
		return "", fmt.Errorf("store slug: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), readerCtx{ctx, r}); err != nil {
		return "", fmt.Errorf("store slug: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return "", fmt.Errorf("store slug: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("store slug: %w", err)
	}
	digest := hex.EncodeToString(h.Sum(nil))
	dst, _ := s.file(digest)
	if _, err := os.Stat(dst); err == nil {
		return digest, nil
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", fmt.Errorf("store slug: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", fmt.Errorf("store slug %s: %w", digest, err)
	}
	// The rename is only durable once the directory is; a slug that
	// vanished after a crash would break every release that names it.
	if d, err := os.Open(s.dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return "", fmt.Errorf("store slug %s: %w", digest, err)
		}
	}
	return digest, nil
}

// Path returns the file of a slug; an error wrapping pipelines.ErrNotFound
// if the store does not have it, and one wrapping pipelines.ErrInvalid if
// digest is not 64 lowercase hex digits (it becomes a path and a URL).
func (s *Store) Path(digest string) (string, error) {
	p, err := s.file(digest)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("slug %s: %w", digest, pipelines.ErrNotFound)
		}
		return "", fmt.Errorf("slug %s: %w", digest, err)
	}
	return p, nil
}

// Has reports whether the store has the slug.
func (s *Store) Has(digest string) bool {
	_, err := s.Path(digest)
	return err == nil
}

// Open opens a slug for reading; an error wrapping pipelines.ErrNotFound if
// the store does not have it.
func (s *Store) Open(digest string) (*os.File, error) {
	p, err := s.file(digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("slug %s: %w", digest, pipelines.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open slug %s: %w", digest, err)
	}
	return f, nil
}

type readerCtx struct {
	ctx context.Context
	r   io.Reader
}

func (r readerCtx) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// Check returns an error if the store's directory is gone or is not a
// directory, for a readiness probe.
func (s *Store) Check(ctx context.Context) error {
	fi, err := os.Stat(s.dir)
	if err != nil {
		return fmt.Errorf("slug store %s: %w", s.dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("slug store %s: not a directory", s.dir)
	}
	return nil
}

// String says where the store keeps slugs, e.g. "file:///var/lib/drover/slugs".
func (s *Store) String() string { return StoreSpec{Dir: s.dir}.String() }
