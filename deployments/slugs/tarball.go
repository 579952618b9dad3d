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
	"syscall"
	"time"

	"github.com/drover/drover/pipelines"
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

// Unpack extracts the slug at slugPath into dest, which should be empty or
// absent. It handles directories, regular files (keeping the exec bit) and
// symlinks, and refuses anything that could reach outside dest: absolute
// names, "..", entries under a symlink that leads out, symlinks whose target
// resolves outside (checked again once everything is on disk, since a later
// entry can complete a dangling link), duplicate entries, and other entry
// types. On error dest may hold part of the slug; callers remove it.
func Unpack(ctx context.Context, slugPath, dest string) error {
	return UnpackWithin(ctx, slugPath, dest, DefaultLimits)
}

// Limits bound what a slug may unpack to: a few hundred KiB of gzip can
// hold gigabytes of zeros, and a slug holds whatever a repository put in.
type Limits struct {
	// Bytes bounds the total size of its files.
	Bytes int64
	// Entries bounds its files, directories and symlinks.
	Entries int
}

// DefaultLimits are Unpack's: 2 GiB in 200,000 entries, well above
// Heroku's 500 MB slug limit even for a tree that compresses well.
var DefaultLimits = Limits{Bytes: 2 << 30, Entries: 200_000}

// UnpackWithin is Unpack within limits; a slug past them is refused with
// an error naming the limit and matching pipelines.ErrInvalid.
func UnpackWithin(ctx context.Context, slugPath, dest string, limits Limits) error {
	f, err := os.Open(slugPath)
	if err != nil {
		return fmt.Errorf("unpack slug: %w", err)
	}
	defer f.Close()
	if err := unpack(ctx, f, dest, limits); err != nil {
		return fmt.Errorf("unpack slug %s: %w", filepath.Base(slugPath), err)
	}
	return nil
}

// errEscape is what every refusal wraps, so the messages stay uniform.
var errEscape = errors.New("leads out of the slug")

func unpack(ctx context.Context, r io.Reader, dest string, limits Limits) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	// Compare against the real path: that is what the kernel resolves to.
	root, err := filepath.EvalSymlinks(dest)
	if err != nil {
		return err
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return err
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	var size int64
	entries := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		// The header's size is what the entry will write: checked before
		// a byte of it is.
		entries++
		if hdr.Typeflag == tar.TypeReg {
			size += hdr.Size
		}
		if entries > limits.Entries {
			return fmt.Errorf("slug has more than %d entries, the limit: %w", limits.Entries, pipelines.ErrInvalid)
		}
		if hdr.Size < 0 || size > limits.Bytes {
			return fmt.Errorf("slug unpacks to more than %s, the limit: %w", byteSize(limits.Bytes), pipelines.ErrInvalid)
		}
		if err := unpackEntry(root, hdr, tr); err != nil {
			return err
		}
	}
	// A symlink that was dangling when written can be completed by a later
	// entry into one that leads out; only the finished tree can tell.
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		if _, err := resolve(root, filepath.Dir(p), filepath.Base(p)); err != nil {
			rel, _ := filepath.Rel(root, p)
			return fmt.Errorf("symlink %q: %w", filepath.ToSlash(rel), err)
		}
		return nil
	})
}

func unpackEntry(root string, hdr *tar.Header, body io.Reader) error {
	rel, err := entryName(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "." {
		return nil // the slug's own root, e.g. "./"
	}
	// Every write happens in a directory found by walking the tree as it
	// is on disk, so a symlink from an earlier entry cannot carry it out.
	dir, err := resolve(root, root, filepath.Dir(rel))
	if err != nil {
		return fmt.Errorf("entry %q: %w", hdr.Name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	target := filepath.Join(dir, filepath.Base(rel))
	existing, err := os.Lstat(target)
	if err == nil && !(hdr.Typeflag == tar.TypeDir && existing.IsDir()) {
		// Replacing an entry could re-point symlinks already checked.
		return fmt.Errorf("entry %q: duplicate entry", hdr.Name)
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	case tar.TypeReg:
		mode := os.FileMode(0o644)
		if hdr.Mode&0o111 != 0 {
			mode = 0o755
		}
		if err := writeEntry(target, mode, body); err != nil {
			return err
		}
	case tar.TypeSymlink:
		link := hdr.Linkname
		if link == "" || filepath.IsAbs(link) {
			return fmt.Errorf("symlink %q -> %q: %w", hdr.Name, link, errEscape)
		}
		if _, err := resolve(root, dir, link); err != nil {
			return fmt.Errorf("symlink %q -> %q: %w", hdr.Name, link, err)
		}
		if err := os.Symlink(link, target); err != nil {
			return err
		}
	default:
		return fmt.Errorf("entry %q has unsupported type %q", hdr.Name, hdr.Typeflag)
	}
	return nil
}

// writeEntry writes one regular file of a slug. An executable is written
// holding syscall.ForkLock for reading, which every fork takes for
// writing: a process drover starts meanwhile (another app, another
// region's release phase) would otherwise hold the open file between its
// fork and exec, and exec'ing the new file would fail with "text file
// busy" until it let go.
func writeEntry(target string, mode os.FileMode, body io.Reader) error {
	if mode&0o111 != 0 {
		syscall.ForkLock.RLock()
		defer syscall.ForkLock.RUnlock()
	}
	// O_EXCL never follows a symlink at target.
	out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, body)
	if err == nil {
		err = out.Chmod(mode) // the umask must not eat the exec bit
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// entryName turns a tar entry name into a clean relative path, refusing
// absolute names and any "..", which no slug we pack ever has.
func entryName(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || filepath.IsAbs(name) {
		return "", fmt.Errorf("entry %q: %w", name, errEscape)
	}
	for _, part := range strings.Split(strings.ReplaceAll(name, "\\", "/"), "/") {
		if part == ".." {
			return "", fmt.Errorf("entry %q: %w", name, errEscape)
		}
	}
	return filepath.Clean(filepath.FromSlash(name)), nil
}

// maxLinkHops is the kernel's own limit (MAXSYMLINKS on Linux).
const maxLinkHops = 40

// resolve walks rel from dir, a real directory inside root, the way the
// kernel would: symlinks already on disk are followed, ".." goes to the real
// parent. It returns the real path rel names and fails if any step leaves
// root. Components that do not exist yet are taken as they are. Lexical
// cleaning is not enough: "l/.." is not "." when l is a symlink.
func resolve(root, dir, rel string) (string, error) {
	cur := dir
	pending := strings.Split(filepath.ToSlash(rel), "/")
	hops := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if cur == root {
				return "", errEscape
			}
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		fi, err := os.Lstat(next)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			cur = next
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink != 0:
			if hops++; hops > maxLinkHops {
				return "", errors.New("too many levels of symlinks")
			}
			link, err := os.Readlink(next)
			if err != nil {
				return "", err
			}
			if filepath.IsAbs(link) {
				return "", errEscape
			}
			pending = append(strings.Split(filepath.ToSlash(link), "/"), pending...)
		default:
			cur = next
		}
	}
	return cur, nil
}

// ReadFile returns one regular file at the root of the slug at slugPath,
// such as the repository's job template, without unpacking the rest. It
// returns an error wrapping pipelines.ErrNotFound when the slug has none,
// and reads at most max bytes of it.
func ReadFile(ctx context.Context, slugPath, name string, max int64) ([]byte, error) {
	f, err := os.Open(slugPath)
	if err != nil {
		return nil, fmt.Errorf("read %s from slug: %w", name, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("read %s from slug: %w", name, err)
	}
	tr := tar.NewReader(zr)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s in slug: %w", name, pipelines.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s from slug: %w", name, err)
		}
		if hdr.Typeflag == tar.TypeReg && strings.TrimPrefix(hdr.Name, "./") == name {
			b, err := io.ReadAll(io.LimitReader(tr, max+1))
			if err != nil {
				return nil, fmt.Errorf("read %s from slug: %w", name, err)
			}
			if int64(len(b)) > max {
				return nil, fmt.Errorf("%s in slug is larger than %d bytes: %w", name, max, pipelines.ErrInvalid)
			}
			return b, nil
		}
	}
}

// byteSize prints n as people read sizes: 2 GiB, 500 MiB, 64 KiB.
func byteSize(n int64) string {
	for _, u := range []struct {
		unit string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.unit)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
