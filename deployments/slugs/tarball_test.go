package slugs_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/pipelines"
)

// entry is one tar entry of a hand-made, possibly malicious, slug.
type entry struct {
	name string
	typ  byte
	link string
	body string
	mode int64
}

func tarGz(tb testing.TB, entries []entry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			tb.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func mustSlugFile(tb testing.TB, data []byte) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "slug.tar.gz")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// outsideFiles lists what exists under root but outside dest, other than
// dest's own parents.
func outsideFiles(tb testing.TB, root, dest string) []string {
	tb.Helper()
	var found []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if p == dest {
			return filepath.SkipDir
		}
		if p != root && !strings.HasPrefix(dest, p+string(filepath.Separator)) {
			found = append(found, p)
		}
		return nil
	})
	return found
}

func TestUnpackRefusesEscapes(t *testing.T) {
	tests := []struct {
		name    string
		entries []entry
	}{
		{"dot dot", []entry{{name: "../evil", typ: tar.TypeReg, body: "x"}}},
		{"nested dot dot", []entry{{name: "a/../../evil", typ: tar.TypeReg, body: "x"}}},
		{"dot dot that stays inside", []entry{{name: "a/../evil", typ: tar.TypeReg, body: "x"}}},
		{"absolute", []entry{{name: "/tmp/evil", typ: tar.TypeReg, body: "x"}}},
		{"symlink out", []entry{{name: "link", typ: tar.TypeSymlink, link: "../../etc"}}},
		{"absolute symlink", []entry{{name: "link", typ: tar.TypeSymlink, link: "/etc"}}},
		{"file under a symlink out", []entry{
			{name: "d", typ: tar.TypeDir},
			{name: "d/l", typ: tar.TypeSymlink, link: ".."},
			{name: "d/l/x", typ: tar.TypeSymlink, link: ".."},
			{name: "d/l/x/evil", typ: tar.TypeReg, body: "x"},
		}},
		// Lexically d/l/../../evil is inside; through l (-> ..) it is not.
		{"symlink chain read lexically", []entry{
			{name: "d", typ: tar.TypeDir},
			{name: "d/l", typ: tar.TypeSymlink, link: ".."},
			{name: "y", typ: tar.TypeSymlink, link: "d/l/../../evil"},
			{name: "y", typ: tar.TypeReg, body: "pwned"},
		}},
		// a is harmless while b/c does not exist; b/c completes it.
		{"dangling link completed later", []entry{
			{name: "a", typ: tar.TypeSymlink, link: "b/c/../.."},
			{name: "b", typ: tar.TypeDir},
			{name: "b/c", typ: tar.TypeSymlink, link: "../b"},
		}},
		{"file replacing a symlink", []entry{
			{name: "y", typ: tar.TypeSymlink, link: "z"},
			{name: "y", typ: tar.TypeReg, body: "x"},
		}},
		{"hard link", []entry{
			{name: "a", typ: tar.TypeReg, body: "x"},
			{name: "b", typ: tar.TypeLink, link: "a"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dest := filepath.Join(root, "a", "dest")
			err := slugs.Unpack(context.Background(), mustSlugFile(t, tarGz(t, tt.entries)), dest)
			if err == nil {
				t.Fatal("unpacked; want refusal")
			}
			if found := outsideFiles(t, root, dest); len(found) != 0 {
				t.Fatalf("wrote outside the destination: %v (err %v)", found, err)
			}
		})
	}
}

func TestUnpackKeepsTree(t *testing.T) {
	data := tarGz(t, []entry{
		{name: "./", typ: tar.TypeDir},
		{name: "./bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "./bin/app", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o755},
		{name: "./web", typ: tar.TypeSymlink, link: "bin/app"},
		{name: "./lib/x/y.txt", typ: tar.TypeReg, body: "y"}, // parents not listed
		{name: "./lib/up", typ: tar.TypeSymlink, link: "../bin"},
		{name: "./Procfile", typ: tar.TypeReg, body: "web: bin/app\n", mode: 0o600},
	})
	dest := filepath.Join(t.TempDir(), "dest")
	if err := slugs.Unpack(context.Background(), mustSlugFile(t, data), dest); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		mode fs.FileMode
		link string
	}{
		{"bin", fs.ModeDir | 0o755, ""},
		{"bin/app", 0o755, ""},
		{"web", fs.ModeSymlink, "bin/app"},
		{"lib/x/y.txt", 0o644, ""},
		{"lib/up", fs.ModeSymlink, "../bin"},
		{"Procfile", 0o644, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			info, err := os.Lstat(filepath.Join(dest, tt.path))
			if err != nil {
				t.Fatal(err)
			}
			if tt.mode&fs.ModeSymlink != 0 {
				got, _ := os.Readlink(filepath.Join(dest, tt.path))
				if info.Mode()&fs.ModeSymlink == 0 || got != tt.link {
					t.Fatalf("mode %v -> %q, want a symlink to %q", info.Mode(), got, tt.link)
				}
				return
			}
			if info.Mode() != tt.mode {
				t.Fatalf("mode = %v, want %v", info.Mode(), tt.mode)
			}
		})
	}
}

// mustTree writes files (name -> body; a body starting "->" makes a
// symlink, a name ending "*" an executable).
func mustTree(tb testing.TB, dir string, files map[string]string) {
	tb.Helper()
	for name, body := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, "*") {
			name, mode = strings.TrimSuffix(name, "*"), 0o755
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(body, "->"); ok {
			err = os.Symlink(target, p)
		} else {
			err = os.WriteFile(p, []byte(body), mode)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
}

func TestPackUnpackRoundTrip(t *testing.T) {
	src := t.TempDir()
	mustTree(t, src, map[string]string{
		"bin/app*":          "binary",
		"Procfile":          "web: bin/app\n",
		"current":           "->bin/app",
		"node_modules/.bin": "->../bin",
		"a/b/c/d.txt":       "deep",
	})
	var buf bytes.Buffer
	if err := slugs.Pack(context.Background(), src, &buf); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	if err := slugs.Unpack(context.Background(), mustSlugFile(t, buf.Bytes()), dest); err != nil {
		t.Fatal(err)
	}
	if got, want := treeListing(t, dest), treeListing(t, src); got != want {
		t.Fatalf("unpacked tree:\n%s\nwant:\n%s", got, want)
	}
}

// treeListing renders a tree as sorted "path mode [-> target | body]" lines.
func treeListing(tb testing.TB, dir string) string {
	tb.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, _ := d.Info()
		b.WriteString(rel + " " + info.Mode().String())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			b.WriteString(" -> " + l)
		case info.Mode().IsRegular():
			body, _ := os.ReadFile(p)
			b.WriteString(" " + string(body))
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

func TestPackIsDeterministic(t *testing.T) {
	files := map[string]string{"b": "b", "a*": "a", "d/e": "e", "l": "->a"}
	one, two := t.TempDir(), t.TempDir()
	mustTree(t, one, files)
	mustTree(t, two, files)
	// Times, owner-only bits and the directory's own path change nothing.
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(two, "b"), later, later)
	os.Chmod(filepath.Join(two, "b"), 0o600)
	os.Chmod(filepath.Join(two, "d"), 0o700)
	var packed [2]bytes.Buffer
	for i, dir := range []string{one, two} {
		if err := slugs.Pack(context.Background(), dir, &packed[i]); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(packed[0].Bytes(), packed[1].Bytes()) {
		t.Fatal("packing the same tree twice gave different bytes")
	}
	zr, err := gzip.NewReader(bytes.NewReader(packed[0].Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Fatalf("gzip header name %q time %v, want neither", zr.Name, zr.ModTime)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, hdr.Name)
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" || hdr.ModTime.Unix() != 0 {
			t.Errorf("%s: uid %d gid %d %q %q mtime %v", hdr.Name, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname, hdr.ModTime)
		}
	}
	if got, want := strings.Join(names, " "), "a b d/ d/e l"; got != want {
		t.Fatalf("entries %q, want %q", got, want)
	}
}

// FuzzUnpack checks that no slug, however built, writes outside its
// destination or leaves a symlink there that leads out.
func FuzzUnpack(f *testing.F) {
	f.Add(tarGz(f, []entry{{name: "../evil", typ: tar.TypeReg, body: "x"}}))
	f.Add(tarGz(f, []entry{{name: "d", typ: tar.TypeDir}, {name: "d/l", typ: tar.TypeSymlink, link: ".."}, {name: "y", typ: tar.TypeSymlink, link: "d/l/../../evil"}, {name: "y", typ: tar.TypeReg, body: "x"}}))
	f.Add(tarGz(f, []entry{{name: "bin/app", typ: tar.TypeReg, body: "x", mode: 0o755}, {name: "app", typ: tar.TypeSymlink, link: "bin/app"}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		dest := filepath.Join(root, "a", "dest")
		err := slugs.Unpack(context.Background(), mustSlugFile(t, data), dest)
		if found := outsideFiles(t, root, dest); len(found) != 0 {
			t.Fatalf("wrote outside the destination: %v", found)
		}
		if err != nil {
			return
		}
		realDest, err := filepath.EvalSymlinks(dest)
		if err != nil {
			t.Fatal(err)
		}
		filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type()&fs.ModeSymlink != 0 {
				real, err := filepath.EvalSymlinks(p)
				if err == nil && real != realDest && !strings.HasPrefix(real, realDest+string(filepath.Separator)) {
					t.Fatalf("symlink %s leads to %s", p, real)
				}
			}
			return nil
		})
	})
}

// TestUnpackWithinLimits: a slug that unpacks past its limits (a small
// gzip of gigabytes of zeros, a tree of countless files) is refused with
// the limit named, before the oversized entry writes a byte.
func TestUnpackWithinLimits(t *testing.T) {
	bomb := strings.Repeat("\x00", 32<<20)
	many := make([]entry, 0, 11)
	for i := range 11 {
		many = append(many, entry{name: fmt.Sprintf("f%02d", i), typ: tar.TypeReg, body: "x"})
	}
	limits := slugs.Limits{Bytes: 16 << 20, Entries: 10}
	tests := []struct {
		name    string
		entries []entry
		want    string
	}{
		{"gzip bomb", []entry{{name: "small", typ: tar.TypeReg, body: "ok"}, {name: "zeros", typ: tar.TypeReg, body: bomb}}, "slug unpacks to more than 16 MiB, the limit"},
		{"too many entries", many, "slug has more than 10 entries, the limit"},
		{"within", many[:10], ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tarGz(t, tt.entries)
			dest := t.TempDir()
			err := slugs.UnpackWithin(context.Background(), mustSlugFile(t, data), dest, limits)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, pipelines.ErrInvalid) {
				t.Fatalf("UnpackWithin = %v; want %q", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dest, "zeros")); err == nil {
				t.Fatal("the oversized entry was written")
			}
		})
	}
	if len(tarGz(t, tests[0].entries)) > 1<<20 {
		t.Fatal("the bomb is not small")
	}
}
