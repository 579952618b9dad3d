package slugs

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// epoch is every entry's mtime: time stamps are what would otherwise make
// two builds of one commit differ.
var epoch = time.Unix(0, 0).UTC()

// Pack writes dir as a deterministic tar.gz: entries sorted by path, mtimes
// fixed, owners blank, modes reduced to 0755 or 0644, and a gzip header with
// no name or time. The same tree always gives the same bytes.
func Pack(ctx context.Context, dir string, w io.Writer) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	sort.Strings(paths)
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("pack %s: %w", p, err)
		}
		rel, _ := filepath.Rel(dir, p)
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case info.IsDir():
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("pack %s: %w", p, err)
			}
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, target, 0o777
		case info.Mode().IsRegular():
			hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, info.Size(), 0o644
			if info.Mode()&0o111 != 0 {
				hdr.Mode = 0o755
			}
		default:
			continue // sockets, devices and pipes have no place in a slug
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("pack %s: %w", p, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return fmt.Errorf("pack %s: %w", p, err)
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("pack %s: %w", p, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// Unpack extracts the slug at slugPath into dest. It refuses entries that
// would land outside dest (absolute paths, "..", symlinks pointing out), so
// a slug can never write anywhere else.
func Unpack(ctx context.Context, slugPath, dest string) error {
	f, err := os.Open(slugPath)
	if err != nil {
		return fmt.Errorf("unpack slug: %w", err)
	}
	defer f.Close()
	if err := unpack(ctx, f, dest); err != nil {
		return fmt.Errorf("unpack slug %s: %w", filepath.Base(slugPath), err)
	}
	return nil
}

func unpack(ctx context.Context, r io.Reader, dest string) error {
	dest, err := filepath.Abs(dest)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	inside := func(p string) bool {
		return p == dest || strings.HasPrefix(p, dest+string(filepath.Separator))
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.FromSlash(hdr.Name)
		if filepath.IsAbs(name) || hasDotDot(hdr.Name) {
			return fmt.Errorf("entry %q escapes the slug", hdr.Name)
		}
		target := filepath.Join(dest, name)
		if !inside(target) {
			return fmt.Errorf("entry %q escapes the slug", hdr.Name)
		}
		// A symlink in an earlier entry must not carry a later file out.
		if parent, err := filepath.EvalSymlinks(filepath.Dir(target)); err == nil && !inside(parent) {
			return fmt.Errorf("entry %q is under a symlink out of the slug", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if hdr.Mode&0o111 != 0 {
				mode = 0o755
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			link := hdr.Linkname
			resolved := link
			if !filepath.IsAbs(link) {
				resolved = filepath.Join(filepath.Dir(target), link)
			}
			if filepath.IsAbs(link) || !inside(filepath.Clean(resolved)) {
				return fmt.Errorf("symlink %q -> %q points out of the slug", hdr.Name, link)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			os.Remove(target)
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q has unsupported type %q", hdr.Name, hdr.Typeflag)
		}
	}
}

func hasDotDot(name string) bool {
	for _, part := range strings.Split(strings.ReplaceAll(name, "\\", "/"), "/") {
		if part == ".." {
			return true
		}
	}
	return false
}
