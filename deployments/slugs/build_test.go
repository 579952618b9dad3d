package slugs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/sandbox"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		want  string
	}{
		{"go.mod", []string{"go.mod", "main.go"}, slugs.BuildpackGo},
		{"go.mod wins over package.json", []string{"go.mod", "package.json", "Procfile"}, slugs.BuildpackGo},
		{"package.json", []string{"package.json"}, slugs.BuildpackNode},
		{"requirements.txt", []string{"requirements.txt", "Procfile"}, slugs.BuildpackPython},
		{"a Python lock file", []string{"uv.lock", "pyproject.toml"}, slugs.BuildpackPython},
		{"setup.py alone, which the build refuses naming what to add", []string{"setup.py"}, slugs.BuildpackPython},
		{"package.json wins over requirements.txt", []string{"package.json", "requirements.txt"}, slugs.BuildpackNode},
		{"go.mod wins over Pipfile.lock", []string{"go.mod", "Pipfile.lock"}, slugs.BuildpackGo},
		{"Procfile only", []string{"Procfile", "app.sh"}, slugs.BuildpackProcfile},
		{"nothing", []string{"README.md"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("{}"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := slugs.Detect(dir)
			if tt.want == "" {
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

// repo is a real git repository to build from.
type repo struct {
	t   *testing.T
	dir string
}

func newRepo(t *testing.T) *repo {
	t.Helper()
	r := &repo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *repo) url() string { return "file://" + r.dir }

func (r *repo) git(args ...string) string {
	r.t.Helper()
	base := []string{"-C", r.dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}
	out, err := exec.Command("git", append(base, args...)...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files as mustTree does, removes those named in rm, and
// commits, returning the new commit's SHA.
func (r *repo) commit(files map[string]string, rm ...string) string {
	r.t.Helper()
	for _, name := range rm {
		if err := os.Remove(filepath.Join(r.dir, name)); err != nil {
			r.t.Fatal(err)
		}
	}
	mustTree(r.t, r.dir, files)
	r.git("add", "-A")
	r.git("commit", "-q", "--allow-empty", "-m", "change")
	return r.git("rev-parse", "HEAD")
}

const goMain = `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, GREETING) })
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`

// dirNamesOf lists dir's entries, space-separated.
func dirNamesOf(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

func goApp(greeting string) map[string]string {
	return map[string]string{
		"go.mod":  "module example.com/hello\n\ngo 1.22\n",
		"main.go": strings.Replace(goMain, "GREETING", `"`+greeting+`"`, 1),
	}
}

func newBuilder(t *testing.T, st *slugs.Store) *slugs.Builder {
	t.Helper()
	if st == nil {
		st, _ = mustStore(t)
	}
	return &slugs.Builder{
		Store:   st,
		WorkDir: filepath.Join(t.TempDir(), "builds"),
		Logger:  slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
}

// unpacked unpacks a stored slug and returns where.
func unpacked(t *testing.T, st *slugs.Store, digest string) string {
	t.Helper()
	p, err := st.Path(digest)
	if err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	if err := slugs.Unpack(context.Background(), p, dest); err != nil {
		t.Fatal(err)
	}
	return dest
}

func assertWorkDirClean(t *testing.T, b *slugs.Builder) {
	t.Helper()
	if entries, _ := os.ReadDir(b.WorkDir); len(entries) != 0 {
		t.Fatalf("work dir not cleaned: %v", entries)
	}
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestBuildGoApp(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	c1 := r.commit(goApp("one"))
	b := newBuilder(t, nil)
	var out bytes.Buffer
	res, err := b.Build(ctx, slugs.BuildInput{CloneURL: r.url(), Commit: c1}, &out)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out.String())
	}
	if !hex64.MatchString(res.Digest) || res.Buildpack != slugs.BuildpackGo || res.Procfile.String() != "web: bin/hello\n" {
		t.Fatalf("result = %+v", res)
	}
	for _, line := range []string{"-----> Fetching " + r.url() + " at " + c1[:12], "-----> Go app detected", "go build -trimpath", `using "web: bin/hello"`, "-----> Compressing slug"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, out.String())
		}
	}
	p, _ := b.Store.(*slugs.Store).Path(res.Digest)
	if info, err := os.Stat(p); err != nil || info.Size() != res.Size {
		t.Errorf("Size = %d, file %v (%v)", res.Size, info, err)
	}
	assertWorkDirClean(t, b)

	dir := unpacked(t, b.Store.(*slugs.Store), res.Digest)
	if info, err := os.Stat(filepath.Join(dir, "bin", "hello")); err != nil || info.Mode()&0o111 == 0 {
		t.Fatalf("bin/hello: %v %v; want an executable", info, err)
	}
	if procfile, _ := os.ReadFile(filepath.Join(dir, "Procfile")); string(procfile) != "web: bin/hello\n" {
		t.Fatalf("slug's Procfile = %q, want the default", procfile)
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		t.Fatal(".git is in the slug")
	}

	t.Run("same commit, fresh work dir, same digest", func(t *testing.T) {
		again, err := newBuilder(t, b.Store.(*slugs.Store)).Build(ctx, slugs.BuildInput{CloneURL: r.url(), Commit: c1}, &bytes.Buffer{})
		if err != nil || again.Digest != res.Digest {
			t.Fatalf("rebuild digest %s, want %s (%v)", again.Digest, res.Digest, err)
		}
		if entries, _ := os.ReadDir(filepath.Dir(p)); len(entries) != 1 {
			t.Fatalf("%d files in the store after a rebuild, want 1", len(entries))
		}
	})

	t.Run("heroku install picks the packages", func(t *testing.T) {
		files := goApp("three")
		// Two commands; go.mod's // +heroku install builds only web, and
		// the Procfile names it bare, as on Heroku (bin/ is on PATH).
		files["go.mod"] = "module example.com/hello\n// +heroku install ./cmd/web\n// +heroku goVersion 1.21\ngo 1.22\n"
		files["cmd/web/main.go"] = files["main.go"]
		files["cmd/tool/main.go"] = files["main.go"]
		delete(files, "main.go")
		files["Procfile"] = "web: web\n"
		c3 := r.commit(files, "main.go")
		var out bytes.Buffer
		res, err := b.Build(ctx, slugs.BuildInput{CloneURL: r.url(), Commit: c3}, &out)
		if err != nil {
			t.Fatalf("build: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "-----> Go go1.21 (go.mod's // +heroku goVersion), built with go1.") || !strings.Contains(out.String(), "-o bin/ ./cmd/web") {
			t.Fatalf("output:\n%s", out.String())
		}
		dir := unpacked(t, b.Store.(*slugs.Store), res.Digest)
		if names := dirNamesOf(t, filepath.Join(dir, "bin")); names != "web" {
			t.Fatalf("bin/ holds %s, want web alone", names)
		}
	})

	t.Run("next commit, new digest and the repository's Procfile", func(t *testing.T) {
		files := goApp("two")
		files["Procfile"] = "web: bin/hello\nrelease: bin/hello migrate\n"
		c2 := r.commit(files)
		next, err := b.Build(ctx, slugs.BuildInput{CloneURL: r.url(), Commit: c2}, &bytes.Buffer{})
		if err != nil || next.Digest == res.Digest {
			t.Fatalf("second commit digest %s (%v), want one other than %s", next.Digest, err, res.Digest)
		}
		if cmd, ok := next.Procfile.Command(pipelines.ReleaseProcess); !ok || cmd != "bin/hello migrate" {
			t.Fatalf("Procfile = %v, want the repository's", next.Procfile)
		}
	})
}

func TestBuildFailures(t *testing.T) {
	r := newRepo(t)
	broken := r.commit(map[string]string{"Procfile": "web npm start\n", "app.sh*": "echo"})
	noProcfile := r.commit(nil, "Procfile")
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("hunter2 is the password\n"), 0o644)
	linked := r.commit(map[string]string{"Procfile": "->" + secret})
	badGo := r.commit(map[string]string{
		"go.mod":  "module example.com/bad\n\ngo 1.22\n",
		"main.go": "package main\n\nfunc main() { undefinedThing() }\n",
	}, "Procfile")
	futureGo := r.commit(map[string]string{
		"go.mod":  "module example.com/future\n\ngo 1.99\n",
		"main.go": "package main\n\nfunc main() {}\n",
	})

	tests := []struct {
		name, commit, url string
		wantErr, wantOut  string
		invalid           bool
		procfileLine      int
	}{
		{name: "broken Procfile", commit: broken, url: r.url(), wantErr: "line 1", invalid: true, procfileLine: 1},
		{name: "no Procfile", commit: noProcfile, url: r.url(), wantErr: "Procfile at the repository root", invalid: true},
		{name: "Procfile symlink", commit: linked, url: r.url(), wantErr: "regular file", invalid: true},
		{name: "compile error", commit: badGo, url: r.url(), wantErr: "go build", wantOut: "undefined: undefinedThing", invalid: true},
		{name: "Go newer than the builder's", commit: futureGo, url: r.url(), wantErr: "go.mod's go directive asks for go1.99, newer than this builder's go1.", invalid: true},
		{name: "unknown commit", commit: strings.Repeat("a", 40), url: r.url(), wantErr: "commit aaaaaaaaaaaa not found", invalid: true},
		{name: "not a full SHA", commit: broken[:12], url: r.url(), wantErr: "40-hex", invalid: true},
		{name: "URL read as an option", commit: broken, url: "--upload-pack=touch /tmp/pwned", wantErr: "clone URL", invalid: true},
		{name: "unreachable repository", commit: broken, url: "file://" + filepath.Join(t.TempDir(), "nope"), wantErr: "fetch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuilder(t, nil)
			var out bytes.Buffer
			_, err := b.Build(context.Background(), slugs.BuildInput{CloneURL: tt.url, Commit: tt.commit}, &out)
			if err == nil {
				t.Fatalf("built; want failure\n%s", out.String())
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, out.String())
			}
			if got := errors.Is(err, pipelines.ErrInvalid); got != tt.invalid {
				t.Errorf("errors.Is(err, ErrInvalid) = %v, want %v: %v", got, tt.invalid, err)
			}
			var pe *pipelines.ProcfileError
			if tt.procfileLine != 0 && (!errors.As(err, &pe) || pe.Line != tt.procfileLine) {
				t.Errorf("err = %v, want a ProcfileError on line %d", err, tt.procfileLine)
			}
			if strings.Contains(err.Error()+out.String(), "hunter2") {
				t.Error("a file outside the repository leaked into the build")
			}
			assertWorkDirClean(t, b)
		})
	}
}

// TestBuildWithToken serves a repository over https with git http-backend
// behind a check of the header GitHub wants, so the token really reaches
// git, and never the output.
func TestBuildWithToken(t *testing.T) {
	backend := filepath.Join(strings.TrimSpace(mustOutput(t, "git", "--exec-path")), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Skipf("git-http-backend not installed: %v", err)
	}
	const token = "ghs_s3cr3tt0k3n"
	cred := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + token))
	r := newRepo(t)
	commit := r.commit(map[string]string{"Procfile": "web: ./app.sh\n", "app.sh*": "echo hi\n"})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") != "Basic "+cred {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h := &cgi.Handler{Path: backend, Env: []string{
			"GIT_PROJECT_ROOT=" + filepath.Dir(r.dir),
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_PROTOCOL=" + req.Header.Get("Git-Protocol"),
		}}
		h.ServeHTTP(w, req)
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	t.Setenv("GIT_SSL_CAINFO", ca)
	url := srv.URL + "/" + filepath.Base(r.dir)

	tests := []struct {
		name, token string
		wantErr     bool
	}{
		{"right token", token, false},
		{"wrong token", "ghs_wrong", true},
		{"no token", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuilder(t, nil)
			var out bytes.Buffer
			res, err := b.Build(context.Background(), slugs.BuildInput{CloneURL: url, Commit: commit, Token: tt.token}, &out)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v\n%s", err, tt.wantErr, out.String())
			}
			if err != nil && errors.Is(err, pipelines.ErrInvalid) {
				t.Errorf("a refused fetch is ErrInvalid, but credentials can be fixed: %v", err)
			}
			if err == nil && res.Buildpack != slugs.BuildpackProcfile {
				t.Errorf("buildpack %q", res.Buildpack)
			}
			all := out.String()
			if err != nil {
				all += err.Error()
			}
			if tt.token != "" && (strings.Contains(all, tt.token) || strings.Contains(all, cred)) {
				t.Fatalf("the token was printed:\n%s", all)
			}
		})
	}
}

func mustOutput(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		tb.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out)
}

// nodeApp commits a Node app with no dependencies (so npm install needs
// no network) and the given package.json scripts, skipping the test where
// there is no npm.
func nodeApp(t *testing.T, scripts string) (*repo, string) {
	t.Helper()
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm is not on PATH; the Node buildpack test needs it")
	}
	r := newRepo(t)
	return r, r.commit(map[string]string{
		"package.json": `{"name":"n","version":"1.0.0","scripts":{` + scripts + `,"start":"node index.js"}}`,
		"index.js":     "console.log('hi')\n",
	})
}

func TestBuildNodeApp(t *testing.T) {
	r, c := nodeApp(t, `"build":"node -e \"require('fs').writeFileSync('built.txt','ok')\""`)
	b := newBuilder(t, nil)
	var out bytes.Buffer
	res, err := b.Build(context.Background(), slugs.BuildInput{CloneURL: r.url(), Commit: c}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if res.Buildpack != slugs.BuildpackNode || res.Procfile.String() != "web: npm start\n" {
		t.Fatalf("result = %+v", res)
	}
	if !strings.Contains(out.String(), "Node.js app detected") {
		t.Errorf("output:\n%s", out.String())
	}
	dir := unpacked(t, b.Store.(*slugs.Store), res.Digest)
	if body, err := os.ReadFile(filepath.Join(dir, "built.txt")); err != nil || string(body) != "ok" {
		t.Fatalf("built.txt = %q, %v; npm run build did not run", body, err)
	}
	if procfile, _ := os.ReadFile(filepath.Join(dir, "Procfile")); string(procfile) != "web: npm start\n" {
		t.Fatalf("slug's Procfile = %q", procfile)
	}
	// NODE_ENV is production at run time unless config says otherwise.
	if profile, err := os.ReadFile(filepath.Join(dir, ".profile.d", "000-drover-nodejs.sh")); err != nil || !strings.Contains(string(profile), `NODE_ENV="${NODE_ENV:-production}"`) {
		t.Fatalf(".profile.d script = %q, %v", profile, err)
	}

	t.Run("a symlinked .profile.d is not followed", func(t *testing.T) {
		outside := t.TempDir()
		files := map[string]string{".profile.d": "->" + outside}
		c := r.commit(files)
		_, err := b.Build(context.Background(), slugs.BuildInput{CloneURL: r.url(), Commit: c}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "the app's .profile.d is not a directory") {
			t.Fatalf("err = %v", err)
		}
		if entries, _ := os.ReadDir(outside); len(entries) != 0 {
			t.Fatalf("drover wrote %v outside the build", entries)
		}
	})
}

// TestBuildSeesNoneOfDroversEnvironment: a repository's build script (an
// npm postinstall hook) that dumps its environment into the slug finds
// none of drover's variables, only a PATH, its own HOME and the caches.
func TestBuildSeesNoneOfDroversEnvironment(t *testing.T) {
	t.Setenv("DROVER_CONFIG_KEY", "config-key-the-build-must-not-see")
	t.Setenv("DATABASE_URL", "postgres://drover:hunter2@db/drover")
	t.Setenv("DROVER_E2E_GH_TOKEN", "ghp_secret")
	r, c := nodeApp(t, `"postinstall":"env > env.txt"`)
	b := newBuilder(t, nil)
	var out bytes.Buffer
	res, err := b.Build(context.Background(), slugs.BuildInput{CloneURL: r.url(), Commit: c}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	env, err := os.ReadFile(filepath.Join(unpacked(t, b.Store.(*slugs.Store), res.Digest), "env.txt"))
	if err != nil {
		t.Fatalf("the postinstall hook did not run: %v\n%s", err, out.String())
	}
	for _, secret := range []string{"config-key-the-build-must-not-see", "hunter2", "ghp_secret", "DROVER_"} {
		if strings.Contains(string(env), secret) {
			t.Fatalf("the build saw %q:\n%s", secret, env)
		}
	}
	if !strings.Contains(string(env), "HOME=") || strings.Contains(string(env), "HOME="+os.Getenv("HOME")+"\n") {
		t.Fatalf("the build's HOME is drover's own:\n%s", env)
	}
}

// TestBuildStepsCannotOutliveTheBuild: a script that leaves a background
// child holding its output open does not keep the build waiting, and the
// child is killed; a build past its time limit is stopped and says so.
func TestBuildStepsCannotOutliveTheBuild(t *testing.T) {
	tests := []struct {
		name, postinstall string
		timeout           time.Duration
		err               string
		max               time.Duration
	}{
		{"a background child is left behind", "sleep 317 & echo started", time.Minute, "", 30 * time.Second},
		{"a step runs past the time limit", "sleep 317", 3 * time.Second, "stopped after 3s, the build time limit", 30 * time.Second},
	}
	for _, tt := range tests {
		for _, boxed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, sandboxed %v", tt.name, boxed), func(t *testing.T) {
				r, c := nodeApp(t, `"postinstall":"`+tt.postinstall+`"`)
				b := newBuilder(t, nil)
				if boxed {
					b, _ = bwrapBuilder(t, nil)
				}
				b.Timeout = tt.timeout
				start := time.Now()
				var out bytes.Buffer
				_, err := b.Build(context.Background(), slugs.BuildInput{CloneURL: r.url(), Commit: c}, &out)
				took := time.Since(start)
				if (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
					t.Fatalf("err = %v, want %q\n%s", err, tt.err, out.String())
				}
				if took > tt.max {
					t.Fatalf("the build took %v", took)
				}
				// No sleep of the build's is left running (317 s: no other
				// package's test, which may run meanwhile, sleeps that long).
				if _, err := exec.LookPath("pgrep"); err == nil {
					if out, _ := exec.Command("pgrep", "-f", "^sleep 317$").Output(); len(bytes.TrimSpace(out)) > 0 {
						t.Fatalf("a build's child outlived it: pids %s", out)
					}
				}
			})
		}
	}
}

// bwrapBuilder is newBuilder with its work dir inside a data dir holding a
// config key, and its steps in a bubblewrap sandbox hiding that data dir;
// the test is skipped where bubblewrap is not installed.
func bwrapBuilder(t *testing.T, st *slugs.Store) (*slugs.Builder, string) {
	t.Helper()
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "config-key"), []byte("config-key-the-build-must-not-read"), 0o600); err != nil {
		t.Fatal(err)
	}
	sb, err := sandbox.New(sandbox.Options{Mode: sandbox.ModeBwrap, Hide: []string{data}})
	if errors.Is(err, sandbox.ErrNoBwrap) {
		t.Skip("bubblewrap (bwrap) is not installed; the sandboxed build tests need it (apt-get install bubblewrap)")
	}
	if err != nil {
		t.Fatal(err)
	}
	b := newBuilder(t, st)
	b.WorkDir, b.Sandbox = filepath.Join(data, "builds"), sb
	return b, data
}

// TestSandboxedBuildCannotReadTheDataDir: a build script (npm postinstall)
// that tries to read drover's data dir and its config key finds no such
// dir, and runs as nobody when drover runs as root.
func TestSandboxedBuildCannotReadTheDataDir(t *testing.T) {
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm is not on PATH; the Node buildpack test needs it")
	}
	b, data := bwrapBuilder(t, nil)
	r, c := nodeApp(t, `"postinstall":"cat `+data+`/config-key > leak.txt 2>&1; ls `+data+` >> leak.txt 2>&1; id -u > uid.txt; pwd >> uid.txt"`)
	var out bytes.Buffer
	res, err := b.Build(context.Background(), slugs.BuildInput{CloneURL: r.url(), Commit: c}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	dir := unpacked(t, b.Store.(*slugs.Store), res.Digest)
	leak, err := os.ReadFile(filepath.Join(dir, "leak.txt"))
	if err != nil {
		t.Fatalf("the postinstall hook did not run: %v\n%s", err, out.String())
	}
	if strings.Contains(string(leak), "must-not-read") || strings.Contains(string(leak), "\nbuilds") || strings.Count(string(leak), "No such file or directory") != 2 {
		t.Fatalf("the build saw the data dir:\n%s", leak)
	}
	uid, _ := os.ReadFile(filepath.Join(dir, "uid.txt"))
	if want := "/app\n"; !strings.HasSuffix(string(uid), want) {
		t.Errorf("the build ran in %q, want %s", uid, sandbox.AppDir)
	}
	if os.Geteuid() == 0 && !strings.HasPrefix(string(uid), "65534\n") {
		t.Fatalf("drover runs as root and the build ran as uid %q, want nobody", uid)
	}
	assertWorkDirClean(t, b)
}

// TestSandboxedBuildIsReproducible: the same commit makes the same slug in
// the sandbox and out of it, with cold caches and warm.
func TestSandboxedBuildIsReproducible(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	c := r.commit(goApp("same"))
	b, _ := bwrapBuilder(t, nil)
	var out bytes.Buffer
	boxed, err := b.Build(ctx, slugs.BuildInput{CloneURL: r.url(), Commit: c}, &out)
	if err != nil {
		t.Fatalf("sandboxed build: %v\n%s", err, out.String())
	}
	again, err := b.Build(ctx, slugs.BuildInput{CloneURL: r.url(), Commit: c}, &out)
	if err != nil || again.Digest != boxed.Digest {
		t.Fatalf("second sandboxed build: digest %s, want %s (%v)", again.Digest, boxed.Digest, err)
	}
	plain, err := newBuilder(t, b.Store.(*slugs.Store)).Build(ctx, slugs.BuildInput{CloneURL: r.url(), Commit: c}, &out)
	if err != nil || plain.Digest != boxed.Digest {
		t.Fatalf("unsandboxed build: digest %s, want the sandboxed %s (%v)", plain.Digest, boxed.Digest, err)
	}
}

// TestCancelledFetchStopsGitsHelpers cancels a build whose fetch hangs:
// git's transport helper (git-remote-http), not only git, must stop.
func TestCancelledFetchStopsGitsHelpers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	connected, hungUp := make(chan struct{}), make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		close(connected)
		io.Copy(io.Discard, c)
		close(hungUp)
	}()
	st, err := slugs.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := newBuilder(t, st).Build(ctx, slugs.BuildInput{CloneURL: "http://" + ln.Addr().String() + "/app.git", Commit: strings.Repeat("a", 40)}, io.Discard)
		done <- err
	}()
	select {
	case <-connected:
	case <-time.After(30 * time.Second):
		t.Fatal("git never connected")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled build has not returned after 10s: its fetch is still running")
	}
	select {
	case <-hungUp:
	case <-time.After(5 * time.Second):
		t.Fatal("the fetch's connection is still open 5s after the build was cancelled")
	}
}

// TestBuildRefusesOversizedSlug: a build whose slug is past the limit
// fails naming it, and stores nothing.
func TestBuildRefusesOversizedSlug(t *testing.T) {
	r := newRepo(t)
	noise := make([]byte, 300<<10)
	rand.Read(noise)
	c := r.commit(map[string]string{"Procfile": "web: ./server\n", "server": "#!/bin/sh\n", "blob.bin": string(noise)})
	st, dir := mustStore(t)
	b := newBuilder(t, st)
	b.MaxSlugSize = 100 << 10
	_, err := b.Build(context.Background(), slugs.BuildInput{CloneURL: r.url(), Commit: c}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "the slug is over 100 KiB compressed, the limit") || !errors.Is(err, pipelines.ErrInvalid) {
		t.Fatalf("Build = %v; want the slug limit named", err)
	}
	if list, _ := st.List(context.Background()); len(list) != 0 {
		t.Fatalf("stored %v in %s", list, dir)
	}
}
