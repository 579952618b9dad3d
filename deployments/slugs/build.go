package slugs

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/drover/drover/pipelines"
)

// Buildpacks drover detects.
const (
	BuildpackGo       = "go"
	BuildpackNode     = "node"
	BuildpackProcfile = "procfile"
)

// BuildInput names the commit to build.
type BuildInput struct {
	CloneURL string
	// Commit is the full 40-hex SHA.
	Commit string
	// Token, when set, authenticates https fetches; it is never printed.
	Token string
}

// BuildResult is the slug a build made.
type BuildResult struct {
	Digest    string
	Procfile  pipelines.Procfile
	Buildpack string
	Size      int64
}

// Builder turns commits into slugs, like Heroku's slug compiler.
//
// Builds are reproducible, so a commit always yields the same digest: git
// gives the same tree, Go compiles with -trimpath -buildvcs=false (no paths
// of the build dir, no VCS stamp, and the same toolchain gives the same
// bytes), and Pack writes a tarball with no time stamps or owners.
type Builder struct {
	Store *Store
	// WorkDir holds one scratch dir per build, removed afterwards.
	WorkDir string
	Logger  *slog.Logger
	// Env is added to the environment of build commands, e.g. GOCACHE.
	Env []string
}

var shaRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Build fetches, compiles and packs in.Commit, writing progress lines to
// out. Broken code, a broken Procfile or an unknown commit give an error
// matching pipelines.ErrInvalid (retrying will not help); a repository that
// cannot be reached gives a plain error.
func (b *Builder) Build(ctx context.Context, in BuildInput, out io.Writer) (BuildResult, error) {
	if !shaRE.MatchString(in.Commit) {
		return BuildResult{}, fmt.Errorf("commit %q: want a full 40-hex SHA: %w", in.Commit, pipelines.ErrInvalid)
	}
	if err := os.MkdirAll(b.WorkDir, 0o755); err != nil {
		return BuildResult{}, fmt.Errorf("build dir: %w", err)
	}
	work, err := os.MkdirTemp(b.WorkDir, in.Commit[:12]+"-")
	if err != nil {
		return BuildResult{}, fmt.Errorf("build dir: %w", err)
	}
	defer os.RemoveAll(work)
	src := filepath.Join(work, "app")

	fmt.Fprintf(out, "-----> Fetching %s at %s\n", redact(in.CloneURL), in.Commit[:12])
	if err := b.fetch(ctx, in, src, out); err != nil {
		return BuildResult{}, err
	}
	pack, err := Detect(src)
	if err != nil {
		return BuildResult{}, err
	}
	procfile, err := b.compile(ctx, pack, src, out)
	if err != nil {
		return BuildResult{}, err
	}
	if err := os.WriteFile(filepath.Join(src, "Procfile"), []byte(procfile.String()), 0o644); err != nil {
		return BuildResult{}, fmt.Errorf("write Procfile: %w", err)
	}
	fmt.Fprintf(out, "-----> Procfile declares types -> %s\n", procTypes(procfile))

	fmt.Fprintln(out, "-----> Compressing slug")
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(Pack(ctx, src, pw)) }()
	digest, err := b.Store.Put(ctx, pr)
	pr.Close()
	if err != nil {
		return BuildResult{}, fmt.Errorf("pack slug: %w", err)
	}
	var size int64
	if p, err := b.Store.Path(digest); err == nil {
		if st, err := os.Stat(p); err == nil {
			size = st.Size()
		}
	}
	fmt.Fprintf(out, "-----> Slug sha256:%s (%.1f MB)\n", digest, float64(size)/1e6)
	return BuildResult{Digest: digest, Procfile: procfile, Buildpack: pack, Size: size}, nil
}

func (b *Builder) fetch(ctx context.Context, in BuildInput, dir string, out io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var auth []string
	if in.Token != "" && strings.HasPrefix(in.CloneURL, "https://") {
		cred := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + in.Token))
		auth = []string{"-c", "http.extraHeader=Authorization: Basic " + cred}
	}
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", append(append([]string{"-C", dir}, auth...), args...)...)
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=true")
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		err := cmd.Run()
		if err != nil {
			// git prints the URL, never the header; the token stays out.
			return fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(buf.String()))
		}
		return nil
	}
	if err := git("init", "-q"); err != nil {
		return err
	}
	// Fetching one commit by SHA is the cheap path; servers that refuse
	// unadvertised objects get a full fetch instead.
	if err := git("fetch", "-q", "--depth", "1", in.CloneURL, in.Commit); err != nil {
		if err2 := git("fetch", "-q", in.CloneURL, "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"); err2 != nil {
			return fmt.Errorf("fetch %s: %w", redact(in.CloneURL), err2)
		}
	}
	if err := git("checkout", "-q", "--detach", in.Commit); err != nil {
		return fmt.Errorf("commit %s not found in %s: %w: %w", in.Commit[:12], redact(in.CloneURL), err, pipelines.ErrInvalid)
	}
	if err := os.RemoveAll(filepath.Join(dir, ".git")); err != nil {
		return err
	}
	return nil
}

// Detect names the buildpack for the source tree in dir.
func Detect(dir string) (string, error) {
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	switch {
	case exists("go.mod"):
		return BuildpackGo, nil
	case exists("package.json"):
		return BuildpackNode, nil
	case exists("Procfile"):
		return BuildpackProcfile, nil
	}
	return "", fmt.Errorf("no buildpack fits: want go.mod (Go), package.json (Node) or a Procfile at the repository root: %w", pipelines.ErrInvalid)
}

// compile runs the buildpack and returns the effective Procfile: the
// repository's, or the buildpack's default when it has none.
func (b *Builder) compile(ctx context.Context, pack, dir string, out io.Writer) (pipelines.Procfile, error) {
	var defaultProcfile string
	switch pack {
	case BuildpackGo:
		fmt.Fprintln(out, "-----> Go app detected")
		env := []string{"CGO_ENABLED=0", "GOTOOLCHAIN=local"}
		if _, err := os.Stat(filepath.Join(dir, "vendor")); err != nil {
			env = append(env, "GOFLAGS=-mod=mod")
		}
		if err := b.run(ctx, dir, out, env, "go", "build", "-trimpath", "-buildvcs=false", "-o", "bin/", "./..."); err != nil {
			return nil, err
		}
		bins, _ := os.ReadDir(filepath.Join(dir, "bin"))
		if len(bins) == 1 {
			defaultProcfile = "web: bin/" + bins[0].Name()
		}
	case BuildpackNode:
		fmt.Fprintln(out, "-----> Node.js app detected")
		install := []string{"npm", "ci"}
		if _, err := os.Stat(filepath.Join(dir, "package-lock.json")); err != nil {
			install = []string{"npm", "install"}
		}
		env := []string{"npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false"}
		if err := b.run(ctx, dir, out, env, install[0], install[1:]...); err != nil {
			return nil, err
		}
		if hasNpmScript(dir, "build") {
			if err := b.run(ctx, dir, out, env, "npm", "run", "build"); err != nil {
				return nil, err
			}
		}
		defaultProcfile = "web: npm start"
	case BuildpackProcfile:
		fmt.Fprintln(out, "-----> Procfile app detected")
	}

	f, err := os.Open(filepath.Join(dir, "Procfile"))
	switch {
	case err == nil:
		defer f.Close()
		return pipelines.ParseProcfile(f)
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("read Procfile: %w", err)
	case defaultProcfile != "":
		fmt.Fprintf(out, "-----> No Procfile; using %q\n", defaultProcfile)
		return pipelines.ParseProcfile(strings.NewReader(defaultProcfile))
	}
	return nil, fmt.Errorf("no Procfile at the repository root; add one with a line like `web: ./server`: %w", pipelines.ErrInvalid)
}

// run runs one build command, streaming its output, and turns a failure
// into an ErrInvalid naming the step with the output's last lines.
func (b *Builder) run(ctx context.Context, dir string, out io.Writer, env []string, name string, args ...string) error {
	step := strings.Join(append([]string{name}, args...), " ")
	fmt.Fprintf(out, "       $ %s\n", step)
	var tail bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), b.Env...), env...)
	w := io.MultiWriter(out, &tail)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("%s failed (exit %d): %s: %w", step, exit.ExitCode(), lastLines(tail.String(), 20), pipelines.ErrInvalid)
		}
		return fmt.Errorf("%s: %w", step, err)
	}
	return nil
}

func hasNpmScript(dir, name string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return false
	}
	var pkg struct {
		Scripts map[string]string `json:"scripts"`
	}
	if json.Unmarshal(b, &pkg) != nil {
		return false
	}
	_, ok := pkg.Scripts[name]
	return ok
}

func procTypes(p pipelines.Procfile) string {
	types := make([]string, len(p))
	for i, proc := range p {
		types[i] = proc.Type
	}
	return "(" + strings.Join(types, ", ") + ")"
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// redact drops credentials from a URL before it is printed.
func redact(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if j := strings.Index(u[i+3:], "@"); j >= 0 && !strings.Contains(u[i+3:i+3+j], "/") {
			return u[:i+3] + "***@" + u[i+3+j+1:]
		}
	}
	return u
}
