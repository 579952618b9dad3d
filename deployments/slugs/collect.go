package slugs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// Stored is one slug a store holds, for collection.
type Stored struct {
	Digest string
	// Modified is when it was stored; a slug younger than a grace period
	// may belong to a build whose release does not exist yet.
	Modified time.Time
}

// List returns every slug in the store.
func (s *Store) List(ctx context.Context) ([]Stored, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list slugs in %s: %w", s.dir, err)
	}
	var out []Stored
	for _, e := range entries {
		digest, ok := strings.CutSuffix(e.Name(), ".tar.gz")
		if !ok || !ValidDigest(digest) || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, Stored{Digest: digest, Modified: info.ModTime()})
	}
	return out, ctx.Err()
}

// Delete removes a slug; one that is not there is already deleted.
func (s *Store) Delete(ctx context.Context, digest string) error {
	path, err := s.file(digest)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete slug %s: %w", digest, err)
	}
	return nil
}

// List returns every slug in the bucket under the store's prefix.
func (s *S3Store) List(ctx context.Context) ([]Stored, error) {
	var out []Stored
	for obj := range s.client.ListObjects(ctx, s.spec.Bucket, minio.ListObjectsOptions{Prefix: s.spec.Prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("list slugs in %s: %w", s.where(), obj.Err)
		}
		digest, ok := strings.CutSuffix(strings.TrimPrefix(obj.Key, s.spec.Prefix), ".tar.gz")
		if ok && ValidDigest(digest) {
			out = append(out, Stored{Digest: digest, Modified: obj.LastModified})
		}
	}
	return out, nil
}

// Delete removes a slug from the bucket and this replica's cache; one
// that is not there is already deleted. Other replicas' caches keep their
// copy until they are cleared, which serves nobody once no release names
// it.
func (s *S3Store) Delete(ctx context.Context, digest string) error {
	path, err := s.cached(digest)
	if err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.spec.Bucket, s.key(digest), minio.RemoveObjectOptions{}); err != nil && !isNoSuchKey(err) {
		return fmt.Errorf("delete slug %s from %s: %w", digest, s.where(), err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete cached slug %s: %w", digest, err)
	}
	return nil
}
