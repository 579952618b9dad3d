package slugs

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/sandbox"
)

// Buildpacks drover detects.
const (
	BuildpackGo       = "go"
	BuildpackNode     = "node"
	BuildpackPython   = "python"
	BuildpackProcfile = "procfile"
)

// BuildInput names the commit to build.
type BuildInput struct {
	CloneURL string
	// Commit is the full 40-hex SHA.
	Commit string
	// Token, when set, authenticates https fetches; it is never printed.
	Token string
	// App is the app the build is for, to name the work where it runs; it
	// does not change the slug.
	App string
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
// Builds are reproducible, so a commit always yields the same digest and
// building it again (a retried activity, a second worker) adds nothing to
// the store:
//   - git gives the same tree for a commit, and .git (whose pack files and
//     index differ from clone to clone) is removed before packing;
//   - Go compiles with -trimpath, which drops the build directory (a fresh
//     temporary one per build) and GOROOT from file names and debug info,
//     and -buildvcs=false, which stops the toolchain stamping VCS state it
//     might find in a directory above the work dir; the build ID is a hash
//     of the inputs, so the same toolchain (GOTOOLCHAIN=local pins it to the
//     worker's) makes the same bytes;
//   - Pack writes entries in sorted order with fixed times, no owners and
//     modes reduced to 0755/0644, behind a gzip header with no name or time.
//
// Node builds are as reproducible as npm makes them: npm ci from a lockfile
// usually is, a build script that stamps the date is not.
type Builder struct {
	// Store keeps the slugs it builds: the local Store or a bucket.
	Store interface {
		Put(ctx context.Context, r io.Reader) (string, error)
	}
	// WorkDir holds one scratch dir per build, removed afterwards;
	// os.TempDir() if empty.
	WorkDir string
	// Logger gets one line per build; nil logs nothing.
	Logger *slog.Logger
	// Env is added to the environment of build commands, e.g. GOCACHE.
	// It is also where a build reads the settings Heroku takes from an
	// app's config vars, since builds see no app config:
	// DISABLE_COLLECTSTATIC=1 skips Django's collectstatic.
	Env []string
	// MaxSlugSize bounds a compressed slug; DefaultMaxSlugSize when 0.
	MaxSlugSize int64
	// Timeout bounds a whole build, fetch included; DefaultBuildTimeout
	// when 0. A build past it is stopped, and fails saying so.
	Timeout time.Duration
	// Sandbox runs the build steps (never the fetch, which is drover's own
	// git); nil runs them directly, as sandbox.ModeNone.
	Sandbox *sandbox.Sandbox
	// CacheDir holds the Go, npm and pip caches of sandboxed builds, which
	// write them as the sandbox's user: never the caches of drover's own
	// user, which a build could poison. Default: "build-cache" beside
	// WorkDir. Unsandboxed builds use the caches of the user drover runs as.
	CacheDir string
}

// Build fetches, compiles and packs in.Commit, writing progress lines to
// out. Broken code, a broken Procfile or an unknown commit give an error
// matching pipelines.ErrInvalid (retrying will not help); a repository that
// cannot be reached gives a plain error. A Procfile that does not parse is
// returned as the *pipelines.ProcfileError naming its line.
func (b *Builder) Build(ctx context.Context, in BuildInput, out io.Writer) (BuildResult, error) {
	if !pipelines.ValidCommit(in.Commit) {
		return BuildResult{}, fmt.Errorf("commit %q: want a full 40-hex SHA: %w", in.Commit, pipelines.ErrInvalid)
	}
	// No repository URL starts with "-"; refusing one means git can never
	// read it as an option, "--" or not.
	if in.CloneURL == "" || strings.HasPrefix(in.CloneURL, "-") {
		return BuildResult{}, fmt.Errorf("clone URL %q: %w", redact(in.CloneURL), pipelines.ErrInvalid)
	}
	if b.Store == nil {
		return BuildResult{}, errors.New("build: builder has no slug store")
	}
	workDir := b.WorkDir
	if workDir == "" {
		workDir = os.TempDir()
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return BuildResult{}, fmt.Errorf("build dir: %w", err)
	}
	limit := cmp.Or(b.Timeout, DefaultBuildTimeout)
	ctx, cancel := context.WithTimeoutCause(ctx, limit, errBuildTimeout)
	defer cancel()
	res, err := b.build(ctx, in, out, workDir)
	if errors.Is(context.Cause(ctx), errBuildTimeout) {
		return BuildResult{}, fmt.Errorf("build of %s stopped after %s, the build time limit: %w", in.Commit[:12], limit, pipelines.ErrInvalid)
	}
	return res, err
}

// DefaultBuildTimeout is how long a build may take.
const DefaultBuildTimeout = 20 * time.Minute

var errBuildTimeout = errors.New("build time limit")

func (b *Builder) build(ctx context.Context, in BuildInput, out io.Writer, workDir string) (BuildResult, error) {
	log := b.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("commit", in.Commit, "url", redact(in.CloneURL))
	start := time.Now()
	work, err := os.MkdirTemp(workDir, in.Commit[:12]+"-")
	if err != nil {
		return BuildResult{}, fmt.Errorf("build dir: %w", err)
	}
	defer os.RemoveAll(work)
	src := filepath.Join(work, "app")

	fmt.Fprintf(out, "-----> Fetching %s at %s\n", redact(in.CloneURL), in.Commit[:12])
	if err := b.fetch(ctx, log, in, src); err != nil {
		return BuildResult{}, err
	}
	if err := withinLimits(src, "the checkout"); err != nil {
		return BuildResult{}, err
	}
	pack, err := Detect(src)
	if err != nil {
		return BuildResult{}, err
	}
	// A broken Procfile fails before a compile that could take minutes.
	procfile, err := readProcfile(src)
	if err != nil {
		return BuildResult{}, err
	}
	defaultProcfile, err := b.compile(ctx, pack, src, out)
	if err != nil {
		return BuildResult{}, err
	}
	if procfile == nil {
		if defaultProcfile == "" {
			return BuildResult{}, fmt.Errorf("no Procfile at the repository root; add one with a line like `web: ./server`: %w", pipelines.ErrInvalid)
		}
		fmt.Fprintf(out, "-----> No Procfile; using %q\n", defaultProcfile)
		if procfile, err = pipelines.ParseProcfile(strings.NewReader(defaultProcfile)); err != nil {
			return BuildResult{}, err
		}
	}
	// The slug carries the effective Procfile, so a defaulted one travels
	// with it to every region.
	if err := os.Remove(filepath.Join(src, "Procfile")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return BuildResult{}, fmt.Errorf("write Procfile: %w", err)
	}
	if err := os.WriteFile(filepath.Join(src, "Procfile"), []byte(procfile.String()), 0o644); err != nil {
		return BuildResult{}, fmt.Errorf("write Procfile: %w", err)
	}
	fmt.Fprintf(out, "-----> Procfile declares types -> %s\n", procTypes(procfile))

	// Every slug built must unpack in every region.
	if err := withinLimits(src, "the built app"); err != nil {
		return BuildResult{}, err
	}
	fmt.Fprintln(out, "-----> Compressing slug")
	digest, size, err := b.store(ctx, src)
	if err != nil {
		return BuildResult{}, err
	}
	fmt.Fprintf(out, "-----> Slug sha256:%s (%.1f MB)\n", digest, float64(size)/1e6)
	log.Info("built slug", "buildpack", pack, "digest", digest, "size", size, "duration", time.Since(start))
	return BuildResult{Digest: digest, Procfile: procfile, Buildpack: pack, Size: size}, nil
}

// store packs src straight into the store, without a second copy on disk.
func (b *Builder) store(ctx context.Context, src string) (string, int64, error) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(Pack(ctx, src, pw))
	}()
	cr := &countingReader{r: pr, max: cmp.Or(b.MaxSlugSize, DefaultMaxSlugSize)}
	digest, err := b.Store.Put(ctx, cr)
	pr.Close() // unblocks Pack if Put gave up early
	<-done     // Pack must be done reading src before the caller removes it
	if err != nil {
		return "", 0, fmt.Errorf("pack slug: %w", err)
	}
	return digest, cr.n, nil
}

// DefaultMaxSlugSize is Heroku's limit on a compressed slug.
const DefaultMaxSlugSize = 500 << 20

// countingReader counts what it reads, and fails past max bytes.
type countingReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.max > 0 && c.n > c.max {
		return n, fmt.Errorf("the slug is over %s compressed, the limit; leave build output and dependencies you do not run out of it (.slugignore is not read yet; delete them in a build step): %w", byteSize(c.max), pipelines.ErrInvalid)
	}
	return n, err
}

// withinLimits refuses a tree past what a slug may unpack to
// (DefaultLimits), naming what and the limit.
func withinLimits(dir, what string) error {
	var size int64
	entries := 0
	errOver := errors.New("over")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		entries++
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				size += info.Size()
			}
		}
		if entries > DefaultLimits.Entries || size > DefaultLimits.Bytes {
			return errOver
		}
		return nil
	})
	switch {
	case errors.Is(err, errOver) && entries > DefaultLimits.Entries:
		return fmt.Errorf("%s has more than %d files, the limit: %w", what, DefaultLimits.Entries, pipelines.ErrInvalid)
	case errors.Is(err, errOver):
		return fmt.Errorf("%s is over %s, the limit: %w", what, byteSize(DefaultLimits.Bytes), pipelines.ErrInvalid)
	}
	return err
}

// fetch checks out in.Commit into dir, without its .git.
func (b *Builder) fetch(ctx context.Context, log *slog.Logger, in BuildInput, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	home, err := buildHome(dir)
	if err != nil {
		return err
	}
	env := append(b.baseEnv(), "HOME="+home,
		"GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=true", "GIT_CONFIG_NOSYSTEM=1",
		// ext:: and fd:: would run commands named by the URL.
		"GIT_ALLOW_PROTOCOL=https:http:ssh:git:file",
	)
	if in.Token != "" && strings.HasPrefix(in.CloneURL, "https://") {
		// Through the environment, not -c: argv is readable by every user
		// of the machine, a process's environment only by its owner.
		cred := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + in.Token))
		env = append(env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader", "GIT_CONFIG_VALUE_0=Authorization: Basic "+cred)
	}
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
		cmd.Env = env
		// git fetches through helpers (git-remote-http) of its own; a
		// cancelled build stops them with it, not only git.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			// git prints the URL, never the header, so the token stays out.
			return "", fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
		}
		return strings.TrimSpace(stdout.String()), nil
	}
	if _, err := git("init", "-q"); err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	// Fetching the one commit by SHA is the cheap path, and protocol v2
	// lets file:// and GitHub serve an unadvertised commit. Servers that
	// refuse get a full fetch of every ref, pull request heads included.
	if _, err := git("-c", "protocol.version=2", "fetch", "-q", "--depth", "1", "--", in.CloneURL, in.Commit); err != nil {
		log.Debug("fetch by SHA failed; fetching every ref", "error", err)
		if _, err2 := git("fetch", "-q", "--", in.CloneURL, "+refs/*:refs/remotes/origin/*"); err2 != nil {
			return fmt.Errorf("fetch %s: %w", redact(in.CloneURL), err2)
		}
	}
	if _, err := git("-c", "advice.detachedHead=false", "checkout", "-q", "--detach", in.Commit); err != nil {
		return fmt.Errorf("commit %s not found in %s: %w: %w", in.Commit[:12], redact(in.CloneURL), err, pipelines.ErrInvalid)
	}
	head, err := git("rev-parse", "HEAD")
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	if head != in.Commit {
		return fmt.Errorf("checked out %s, want %s", head, in.Commit)
	}
	// History is not part of the app, and would make slugs of one tree differ.
	if err := os.RemoveAll(filepath.Join(dir, ".git")); err != nil {
		return fmt.Errorf("remove .git: %w", err)
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
	case slices.ContainsFunc(pythonFiles, exists):
		return BuildpackPython, nil
	case exists("Procfile"):
		return BuildpackProcfile, nil
	}
	return "", fmt.Errorf("no buildpack fits: want go.mod (Go), package.json (Node), requirements.txt or a Python lock file (Python) or a Procfile at the repository root: %w", pipelines.ErrInvalid)
}

// compile runs the buildpack and returns its default Procfile, used when
// the repository has none ("" if it has no default).
func (b *Builder) compile(ctx context.Context, pack, dir string, out io.Writer) (string, error) {
	switch pack {
	case BuildpackGo:
		fmt.Fprintln(out, "-----> Go app detected")
		goMod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err != nil {
			return "", fmt.Errorf("read go.mod: %w", err)
		}
		have := goVersion()
		plan, err := planGoBuild(goMod, have)
		if err != nil {
			return "", err
		}
		if plan.Version != "" {
			fmt.Fprintf(out, "-----> Go %s (%s), built with %s\n", plan.Version, plan.From, cmp.Or(have, "the builder's go"))
		}
		env := []string{"CGO_ENABLED=0", "GOTOOLCHAIN=local"}
		if _, err := os.Stat(filepath.Join(dir, "vendor")); err != nil {
			env = append(env, "GOFLAGS=-mod=mod")
		}
		before := dirNames(filepath.Join(dir, "bin"))
		if err := b.run(ctx, dir, out, env, goRoot(), "go", append([]string{"build", "-trimpath", "-buildvcs=false", "-o", "bin/"}, plan.Install...)...); err != nil {
			return "", err
		}
		// Only binaries this build made: a committed bin/ script is not one.
		var built []string
		for _, name := range dirNames(filepath.Join(dir, "bin")) {
			if !slices.Contains(before, name) {
				built = append(built, name)
			}
		}
		if len(built) == 1 {
			return "web: bin/" + built[0], nil
		}
		return "", nil
	case BuildpackNode:
		fmt.Fprintln(out, "-----> Node.js app detected")
		pkg, err := os.ReadFile(filepath.Join(dir, "package.json"))
		if err != nil {
			return "", fmt.Errorf("read package.json: %w", err)
		}
		has := func(name string) bool { _, err := os.Lstat(filepath.Join(dir, name)); return err == nil }
		have := nodeVersion()
		plan, err := planNodeBuild(pkg, has, have)
		if err != nil {
			return "", err
		}
		if _, err := exec.LookPath(plan.Manager); err != nil {
			return "", fmt.Errorf("the app's lock file calls for %s, which this builder does not have: install %s on drover's builder, or commit a package-lock.json instead: %w",
				plan.Manager, plan.Manager, pipelines.ErrInvalid)
		}
		if plan.Engines != "" {
			fmt.Fprintf(out, "-----> Node %s (package.json's engines.node %q), %s\n", cmp.Or(have, "of the builder"), plan.Engines, plan.Manager)
		}
		env := []string{"npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false"}
		if err := b.run(ctx, dir, out, env, nil, plan.Install[0], plan.Install[1:]...); err != nil {
			return "", err
		}
		if hasNpmScript(dir, "build") {
			if err := b.run(ctx, dir, out, env, nil, plan.Manager, "run", "build"); err != nil {
				return "", err
			}
		}
		// NODE_ENV is production at run time unless the app's config sets
		// it, as on Heroku; the slug's .profile.d says so (see
		// pipelines.DynoScript).
		if err := writeIntoSlug(dir, nodeProfileName, []byte(nodeProfile)); err != nil {
			return "", err
		}
		return "web: " + plan.Manager + " start", nil
	case BuildpackPython:
		return b.compilePython(ctx, dir, out)
	}
	fmt.Fprintln(out, "-----> Procfile app detected")
	return "", nil
}

// readProcfile parses the repository's Procfile; nil if it has none.
func readProcfile(dir string) (pipelines.Procfile, error) {
	path := filepath.Join(dir, "Procfile")
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read Procfile: %w", err)
	}
	// A symlink could point at any file on the build machine, and parse
	// errors quote the line they fail on into the build output.
	if !info.Mode().IsRegular() {
		return nil, &pipelines.ProcfileError{Msg: "must be a regular file, not a symlink or directory"}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read Procfile: %w", err)
	}
	defer f.Close()
	return pipelines.ParseProcfile(f)
}

func dirNames(dir string) []string {
	entries, _ := os.ReadDir(dir)
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

// run runs one build command in the sandbox, streaming its output, and
// turns a failure into an ErrInvalid naming the step with the output's
// last lines. readOnly lists host dirs the step needs to read (a toolchain
// outside /usr).
func (b *Builder) run(ctx context.Context, dir string, out io.Writer, env, readOnly []string, name string, args ...string) error {
	step := strings.Join(append([]string{name}, args...), " ")
	fmt.Fprintf(out, "       $ %s\n", step)
	home, err := buildHome(dir)
	if err != nil {
		return err
	}
	spec := sandbox.Spec{
		Args: append([]string{name}, args...), Dir: dir, Home: home, ReadOnly: readOnly,
		// Registries: the Go module proxy, npm.
		Network: true,
	}
	if b.Sandbox.Enabled() {
		cache := cmp.Or(b.CacheDir, filepath.Join(filepath.Dir(filepath.Clean(cmp.Or(b.WorkDir, os.TempDir()))), "build-cache"))
		spec.Caches = []sandbox.Cache{
			{Env: "GOCACHE", Dir: filepath.Join(cache, "go-build")},
			{Env: "GOMODCACHE", Dir: filepath.Join(cache, "go-mod")},
			{Env: "npm_config_cache", Dir: filepath.Join(cache, "npm")},
			{Env: "PIP_CACHE_DIR", Dir: filepath.Join(cache, "pip")},
		}
		spec.Env = append(append(b.baseEnv(), b.Env...), env...)
	} else {
		spec.Env = append(append(append(b.baseEnv(), langCaches()...), b.Env...), env...)
	}
	var tail bytes.Buffer
	cmd, err := b.Sandbox.Command(ctx, spec)
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	w := io.MultiWriter(out, &tail)
	cmd.Stdout, cmd.Stderr = w, w
	// Each step is its own process group (the sandbox's, under bwrap),
	// killed whole when the build is cancelled or the step ends: a
	// background child a script left behind (holding stdout open) cannot
	// keep the build, or the worker, busy. WaitDelay stops waiting for
	// such a child's output.
	cmd.WaitDelay = stepWaitDelay
	err = cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if errors.Is(err, exec.ErrWaitDelay) {
		fmt.Fprintf(out, "       (a background process of %s was stopped when the step ended)\n", name)
		err = nil
	}
	if err != nil {
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

// stepWaitDelay is how long a finished step's leftover children may keep
// its output open before drover stops reading it and kills them.
const stepWaitDelay = 2 * time.Second

// baseEnv is all a build command sees of drover's environment, with the
// HOME of its own beside the checkout (buildHome) and the caches: a PATH,
// the locale and the registries. Never drover's variables: its keys,
// tokens and database URL stay out of code the repository runs (npm
// scripts, go generate in a build step).
func (b *Builder) baseEnv() []string {
	env := []string{"PATH=" + cmp.Or(os.Getenv("PATH"), "/usr/local/bin:/usr/bin:/bin")}
	// The locale, the registries and the machine's CA and proxy settings
	// (a GitHub Enterprise behind a private CA) are the operator's
	// infrastructure, not its secrets.
	for _, k := range []string{"LANG", "LC_ALL", "TZ", "GOPROXY", "GONOSUMDB", "GOFLAGS", "GOTOOLCHAIN", "npm_config_registry",
		// pip's index and its settings (files pipSettings shows a
		// sandboxed step): the operator's mirror, never a host of ours.
		"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_FIND_LINKS", "PIP_CONFIG_FILE", "PIP_CERT",
		"GIT_SSL_CAINFO", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// buildHome is the build's HOME, beside its checkout dir.
func buildHome(dir string) (string, error) {
	home := filepath.Join(filepath.Dir(dir), "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return "", fmt.Errorf("build home: %w", err)
	}
	return home, nil
}

// goRoot lists the Go toolchain's root for the sandbox to show the build
// read-only; nil when it is under /usr (already there) or there is no go.
var goRoot = sync.OnceValue(func() []string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if root := strings.TrimSpace(string(out)); err == nil && filepath.IsAbs(root) {
		return []string{root}
	}
	return nil
})

// writeIntoSlug writes drover's own file rel (one dir deep) into the
// build's tree dir, which the repository and its build steps wrote: a
// symlink where the dir or the file should be is refused, never followed
// out of the tree.
func writeIntoSlug(dir, rel string, data []byte) error {
	sub := filepath.Join(dir, filepath.Dir(rel))
	if fi, err := os.Lstat(sub); err == nil && !fi.IsDir() {
		return fmt.Errorf("write %s: the app's %s is not a directory: %w", rel, filepath.Dir(rel), pipelines.ErrInvalid)
	} else if err != nil {
		if err := os.Mkdir(sub, 0o755); err != nil {
			return fmt.Errorf("write %s: %w", rel, err)
		}
	}
	path := filepath.Join(dir, rel)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", rel, err)
	}
	return f.Close()
}

// nodeVersion is the builder's Node ("v20.11.0"); "" when it cannot say.
var nodeVersion = sync.OnceValue(func() string {
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
})

// goVersion is the builder's Go ("go1.25.3"); "" when it cannot say.
var goVersion = sync.OnceValue(func() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
})

// langCaches names the Go, npm and pip caches where the process that runs
// builds has them, so an unsandboxed build's own HOME does not start them
// cold.
var langCaches = sync.OnceValue(func() []string {
	var out []string
	userCache, _ := os.UserCacheDir()
	userHome, _ := os.UserHomeDir()
	gopath := cmp.Or(os.Getenv("GOPATH"), filepath.Join(userHome, "go"))
	for _, kv := range [][2]string{
		{"GOCACHE", cmp.Or(os.Getenv("GOCACHE"), filepath.Join(userCache, "go-build"))},
		{"GOMODCACHE", cmp.Or(os.Getenv("GOMODCACHE"), filepath.Join(gopath, "pkg", "mod"))},
		{"GOPATH", gopath},
		{"npm_config_cache", cmp.Or(os.Getenv("npm_config_cache"), filepath.Join(userHome, ".npm"))},
		{"PIP_CACHE_DIR", cmp.Or(os.Getenv("PIP_CACHE_DIR"), filepath.Join(userCache, "pip"))},
	} {
		if kv[1] != "" {
			out = append(out, kv[0]+"="+kv[1])
		}
	}
	return out
})

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
	return "(" + strings.Join(p.Types(), ", ") + ")"
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
