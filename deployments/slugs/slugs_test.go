package slugs_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/pipelines"
)

func TestStore(t *testing.T) {
	ctx := context.Background()
	s, err := slugs.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d1, err := s.Put(ctx, strings.NewReader("slug bytes"))
	if err != nil || !slugs.ValidDigest(d1) {
		t.Fatalf("Put = %q, %v", d1, err)
	}
	d2, err := s.Put(ctx, strings.NewReader("slug bytes"))
	if err != nil || d2 != d1 {
		t.Fatalf("same bytes gave %q then %q", d1, d2)
	}
	p, err := s.Path(d1)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "slug bytes" || !s.Has(d1) {
		t.Fatalf("stored %q", b)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Fatalf("%d files in the store, want 1", len(entries))
	}
	if _, err := s.Path(strings.Repeat("0", 64)); !errors.Is(err, pipelines.ErrNotFound) {
		t.Fatalf("missing slug: %v", err)
	}
	for _, bad := range []string{"", "abc", "../" + d1[3:], strings.ToUpper(d1), d1 + "0", d1[:63] + "/"} {
		if _, err := s.Path(bad); !errors.Is(err, pipelines.ErrInvalid) {
			t.Errorf("Path(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

type entry struct {
	name, link string
	typ        byte
	body       string
}

func mustTarGz(tb testing.TB, entries []entry) string {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			tb.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	zw.Close()
	path := filepath.Join(tb.TempDir(), "slug.tar.gz")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestUnpackRefusesEscapes(t *testing.T) {
	tests := []struct {
		name    string
		entries []entry
	}{
		{"dot dot", []entry{{name: "../evil", typ: tar.TypeReg, body: "x"}}},
		{"nested dot dot", []entry{{name: "a/../../evil", typ: tar.TypeReg, body: "x"}}},
		{"absolute", []entry{{name: "/tmp/evil", typ: tar.TypeReg, body: "x"}}},
		{"symlink out", []entry{{name: "link", typ: tar.TypeSymlink, link: "../../etc"}}},
		{"absolute symlink", []entry{{name: "link", typ: tar.TypeSymlink, link: "/etc"}}},
		{"through a symlink", []entry{{name: "d", typ: tar.TypeDir}, {name: "d/l", typ: tar.TypeSymlink, link: "."}, {name: "d/l/../../evil", typ: tar.TypeReg}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dest := filepath.Join(root, "dest")
			err := slugs.Unpack(context.Background(), mustTarGz(t, tt.entries), dest)
			if err == nil {
				t.Fatal("unpacked; want refusal")
			}
			if _, err := os.Stat(filepath.Join(root, "evil")); err == nil {
				t.Fatal("a file was written outside the destination")
			}
		})
	}
	// An inner symlink that stays inside is fine.
	dest := t.TempDir()
	ok := mustTarGz(t, []entry{{name: "bin/app", typ: tar.TypeReg, body: "x"}, {name: "app", typ: tar.TypeSymlink, link: "bin/app"}})
	if err := slugs.Unpack(context.Background(), ok, dest); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "app")); err != nil || string(b) != "x" {
		t.Fatalf("inner symlink: %q %v", b, err)
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		files   []string
		want    string
		wantErr bool
	}{
		{[]string{"go.mod", "Procfile"}, slugs.BuildpackGo, false},
		{[]string{"package.json"}, slugs.BuildpackNode, false},
		{[]string{"Procfile", "app.sh"}, slugs.BuildpackProcfile, false},
		{[]string{"README.md"}, "", true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.files, "+"), func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.files {
				os.WriteFile(filepath.Join(dir, f), []byte("{}"), 0o644)
			}
			got, err := slugs.Detect(dir)
			if tt.wantErr {
				if !errors.Is(err, pipelines.ErrInvalid) || !strings.Contains(err.Error(), "Procfile") {
					t.Fatalf("err = %v, want ErrInvalid naming the Procfile", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// repo is a real git repository for builds.
type repo struct {
	t   *testing.T
	dir string
}

func newRepo(t *testing.T) *repo {
	r := &repo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *repo) git(args ...string) string {
	r.t.Helper()
	out, err := exec.Command("git", append([]string{"-C", r.dir, "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"}, args...)...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (r *repo) commit(files map[string]string) string {
	r.t.Helper()
	for name, body := range files {
		p := filepath.Join(r.dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.git("add", "-A")
	r.git("commit", "-q", "-m", "c")
	return r.git("rev-parse", "HEAD")
}

const goMain = `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, %q) })
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`

func newBuilder(t *testing.T) (*slugs.Builder, *slugs.Store) {
	t.Helper()
	st, err := slugs.NewStore(filepath.Join(t.TempDir(), "slugs"))
	if err != nil {
		t.Fatal(err)
	}
	return &slugs.Builder{Store: st, WorkDir: filepath.Join(t.TempDir(), "builds")}, st
}

func slugFiles(t *testing.T, st *slugs.Store, digest string) map[string]bool {
	t.Helper()
	p, err := st.Path(digest)
	if err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	if err := slugs.Unpack(context.Background(), p, dest); err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	filepath.Walk(dest, func(p string, info os.FileInfo, err error) error {
		rel, _ := filepath.Rel(dest, p)
		files[rel] = info.Mode()&0o111 != 0
		return nil
	})
	return files
}

func TestBuildGoAppIsReproducible(t *testing.T) {
	r := newRepo(t)
	c1 := r.commit(map[string]string{"go.mod": "module example.com/hello\n\ngo 1.22\n", "main.go": strings.Replace(goMain, "%q", `"one"`, 1)})
	ctx := context.Background()
	b, st := newBuilder(t)
	var out bytes.Buffer
	res, err := b.Build(ctx, slugs.BuildInput{CloneURL: "file://" + r.dir, Commit: c1}, &out)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out.String())
	}
	if res.Buildpack != slugs.BuildpackGo || !slugs.ValidDigest(res.Digest) || res.Procfile.String() != "web: bin/hello\n" {
		t.Fatalf("result = %+v", res)
	}
	files := slugFiles(t, st, res.Digest)
	if exec, ok := files["bin/hello"]; !ok || !exec {
		t.Fatalf("slug files = %v; want an executable bin/hello", files)
	}
	if !files["Procfile"] && !strings.Contains(out.String(), "Go app detected") {
		t.Fatalf("output: %s", out.String())
	}
	if _, ok := files["Procfile"]; !ok {
		t.Fatal("the default Procfile is not in the slug")
	}
	if _, ok := files[".git"]; ok {
		t.Fatal(".git is in the slug")
	}

	// A fresh builder with a fresh work dir: same commit, same digest.
	b2, _ := newBuilder(t)
	b2.Store = st
	again, err := b2.Build(ctx, slugs.BuildInput{CloneURL: "file://" + r.dir, Commit: c1}, &bytes.Buffer{})
	if err != nil || again.Digest != res.Digest {
		t.Fatalf("rebuild digest %s, want %s (%v)", again.Digest, res.Digest, err)
	}
	c2 := r.commit(map[string]string{"main.go": strings.Replace(goMain, "%q", `"two"`, 1), "Procfile": "web: bin/hello\nrelease: bin/hello migrate\n"})
	next, err := b.Build(ctx, slugs.BuildInput{CloneURL: "file://" + r.dir, Commit: c2}, &bytes.Buffer{})
	if err != nil || next.Digest == res.Digest {
		t.Fatalf("second commit digest %s (%v), want a new one", next.Digest, err)
	}
	if _, ok := next.Procfile.Command("release"); !ok {
		t.Fatalf("Procfile = %v, want the repository's", next.Procfile)
	}
}

func TestBuildFailures(t *testing.T) {
	r := newRepo(t)
	broken := r.commit(map[string]string{"Procfile": "web npm start\n", "app.sh": "echo"})
	os.Remove(filepath.Join(r.dir, "Procfile"))
	noProcfile := r.commit(map[string]string{"x": "1"})
	badGo := r.commit(map[string]string{"go.mod": "module example.com/bad\n\ngo 1.22\n", "main.go": "package main\n\nfunc main() { undefinedThing() }\n"})
	tests := []struct {
		name, commit, url, want string
		invalid                 bool
	}{
		{"broken Procfile", broken, "file://" + r.dir, "Procfile line 1", true},
		{"no Procfile", noProcfile, "file://" + r.dir, "a Procfile at the repository root", true},
		{"compile error", badGo, "file://" + r.dir, "undefined: undefinedThing", true},
		{"unknown commit", strings.Repeat("a", 40), "file://" + r.dir, "commit aaaaaaaaaaaa not found", true},
		{"not a sha", "main", "file://" + r.dir, "40-hex", true},
		{"unreachable repo", broken, "file://" + filepath.Join(t.TempDir(), "nope"), "fetch", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := newBuilder(t)
			var out bytes.Buffer
			_, err := b.Build(context.Background(), slugs.BuildInput{CloneURL: tt.url, Commit: tt.commit}, &out)
			if err == nil {
				t.Fatalf("built; want failure\n%s", out.String())
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if tt.invalid != errors.Is(err, pipelines.ErrInvalid) {
				t.Fatalf("errors.Is(err, ErrInvalid) = %v, want %v: %v", !tt.invalid, tt.invalid, err)
			}
			entries, _ := os.ReadDir(b.WorkDir)
			if len(entries) != 0 {
				t.Fatalf("work dir not cleaned: %v", entries)
			}
		})
	}
}

func TestBuildNodeApp(t *testing.T) {
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm is not installed; the Node buildpack needs it")
	}
	r := newRepo(t)
	c := r.commit(map[string]string{"package.json": `{"name":"n","version":"1.0.0","scripts":{"build":"node -e \"require('fs').writeFileSync('built.txt','ok')\"","start":"node index.js"}}`, "index.js": "console.log('hi')"})
	b, st := newBuilder(t)
	var out bytes.Buffer
	res, err := b.Build(context.Background(), slugs.BuildInput{CloneURL: "file://" + r.dir, Commit: c}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if res.Buildpack != slugs.BuildpackNode || res.Procfile.String() != "web: npm start\n" {
		t.Fatalf("result = %+v", res)
	}
	if _, ok := slugFiles(t, st, res.Digest)["built.txt"]; !ok {
		t.Fatal("npm run build did not run")
	}
}

func TestPackIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "b"), []byte("b"), 0o600)
	os.WriteFile(filepath.Join(dir, "a"), []byte("a"), 0o755)
	var one, two bytes.Buffer
	if err := slugs.Pack(context.Background(), dir, &one); err != nil {
		t.Fatal(err)
	}
	// Touching files and changing their owner-only bits changes nothing.
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(dir, "b"), later, later)
	os.Chmod(filepath.Join(dir, "b"), 0o644)
	if err := slugs.Pack(context.Background(), dir, &two); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one.Bytes(), two.Bytes()) {
		t.Fatal("packing the same tree twice gave different bytes")
	}
}
