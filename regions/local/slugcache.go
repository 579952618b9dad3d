package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A slug cache is a dir shared by the local regions of one host
// (Options.SlugCache): each slug is unpacked there once, and a release
// dir gets a copy of it, which costs a fraction of unpacking (no gzip,
// and the kernel copies the bytes). Five regions of one host taking a
// release unpack it once, not five times at once.

// slugCacheKeep is how many unpacked slugs the cache keeps; older ones
// go once they have not been used for slugCacheIdle.
const (
	slugCacheKeep = 8
	slugCacheIdle = 10 * time.Minute
)

// slugCacheLocks serialises unpacking into one cache dir across the
// regions of this process (a cache dir belongs to one drover).
var slugCacheLocks sync.Map // cache dir → *sync.Mutex

// cachedSlug returns the dir holding the slug unpacked, unpacking it into
// the cache first if it is not there.
func (r *Region) cachedSlug(ctx context.Context, slugPath, digest string) (string, error) {
	name := strings.TrimPrefix(digest, "sha256:")
	if name == "" || strings.ContainsAny(name, `/\.`) {
		return "", fmt.Errorf("slug digest %q cannot name a cache entry", digest)
	}
	dir := filepath.Join(r.slugCache, name)
	marker := dir + ".done"
	lk, _ := slugCacheLocks.LoadOrStore(r.slugCache, &sync.Mutex{})
	mu := lk.(*sync.Mutex)
	mu.Lock()
	defer mu.Unlock()
	now := time.Now()
	if _, err := os.Stat(marker); err == nil {
		os.Chtimes(marker, now, now)
		return dir, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("slug cache: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("slug cache: %w", err)
	}
	if err := r.unpack(ctx, slugPath, dir); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	if err := writeFileAtomic(marker, []byte(digest)); err != nil {
		return "", fmt.Errorf("slug cache: %w", err)
	}
	r.evictSlugs(name)
	return dir, nil
}

// evictSlugs removes the cache's oldest unpacked slugs beyond
// slugCacheKeep, sparing keep and any used in the last slugCacheIdle.
func (r *Region) evictSlugs(keep string) {
	markers, _ := filepath.Glob(filepath.Join(r.slugCache, "*.done"))
	if len(markers) <= slugCacheKeep {
		return
	}
	type entry struct {
		name string
		used time.Time
	}
	var entries []entry
	for _, m := range markers {
		if info, err := os.Stat(m); err == nil {
			entries = append(entries, entry{strings.TrimSuffix(filepath.Base(m), ".done"), info.ModTime()})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return b.used.Compare(a.used) })
	for _, e := range entries[min(slugCacheKeep, len(entries)):] {
		if e.name == keep || time.Since(e.used) < slugCacheIdle {
			continue
		}
		os.Remove(filepath.Join(r.slugCache, e.name+".done"))
		if err := os.RemoveAll(filepath.Join(r.slugCache, e.name)); err != nil {
			r.log.Warn("evict unpacked slug", "slug", e.name, "error", err)
		}
	}
}

// copyTree copies the unpacked slug at src into dst: dirs, regular files
// and symlinks, with their modes. No fork may hold an executable open
// for writing while it is written, or exec'ing it fails with "text file
// busy"; the copies are made under syscall.ForkLock, as slugs.Unpack
// makes its files.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			return copyFile(path, target, info.Mode().Perm())
		}
		return fmt.Errorf("copy slug: %s is neither a file, a dir nor a link", rel)
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in) // copy_file_range: the kernel copies
	return errors.Join(err, out.Close())
}
