// Package local is the regions.Region that runs apps as processes on this
// machine, like `heroku local`. `drover dev` and the end-to-end tests use it
// where production uses Nomad.
//
// Each process runs `sh -c <command>` in its release's unpacked slug, in its
// own process group and detached from drover's life, so a crashed or
// restarted drover can adopt it again (see Reconcile). What runs is recorded
// under Options.Dir:
//
//	apps/<app>/app.json              proxy port, current release, slug digest
//	apps/<app>/v<N>/slug/            the unpacked slug
//	apps/<app>/v<N>/slug.digest      written last: the slug is complete
//	apps/<app>/v<N>/procs.json       the release's live processes
//	apps/<app>/v<N>/<type>.<i>.out   each process's stdout and stderr
//	apps/<app>/v<N>/<type>.<i>.log*  the same as stamped, rotated lines
//	apps/<app>/drover.log*           drover's own lines about the app
//	tasks/                           scratch dirs of one-off tasks
//
// With Options.SlugCache, the local regions of a host unpack each slug
// once into that shared dir, and a release dir gets a copy.
//
// Every app with a web process gets a reverse proxy on a port that stays the
// same across deploys and restarts, so its URL is stable while releases are
// swapped behind it (blue/green).
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/drover/drover/applog"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
	"github.com/drover/drover/sandbox"
)

// Defaults for Options.
const (
	DefaultHost          = "127.0.0.1"
	DefaultHealthTimeout = 30 * time.Second
)

// stopGrace is how long a process has between SIGTERM and SIGKILL, as on
// Heroku (which gives 30 s; development wants it shorter).
const stopGrace = 5 * time.Second

// ErrClosed is returned by every method of a closed Region. It matches
// regions.ErrUnavailable, so callers retry elsewhere or later.
var ErrClosed = fmt.Errorf("local region closed: %w", regions.ErrUnavailable)

// Options configure a Region.
type Options struct {
	// Name is the region's name, e.g. "local-a".
	Name string
	// Dir is the state dir this region owns, e.g. <data>/regions/local-a.
	Dir string
	// Host is the address app ports and proxies bind on; default 127.0.0.1.
	Host string
	// HealthTimeout is how long web has to answer HTTP; default 30s.
	HealthTimeout time.Duration
	Logger        *slog.Logger
	// Unpack extracts a slug (tar.gz at slugPath) into dir. Injected so this
	// package does not depend on the artifact store.
	Unpack func(ctx context.Context, slugPath, dir string) error
	// Sandbox runs app processes and tasks; nil runs them directly.
	Sandbox *sandbox.Sandbox
	// SlugCache, when set, is a dir the local regions of this host share
	// to unpack each slug once (see cachedSlug); "" unpacks per release.
	SlugCache string
}

// Region runs apps on this machine. It is safe for concurrent use: calls for
// one app are serialised, calls for different apps run in parallel.
type Region struct {
	name          string
	dir           string
	host          string // what processes and proxies bind
	dialHost      string // what URLs and health checks use
	healthTimeout time.Duration
	log           *slog.Logger
	unpack        func(ctx context.Context, slugPath, dir string) error
	sandbox       *sandbox.Sandbox
	slugCache     string

	lockFile  *os.File        // flock on <dir>/lock: one drover per dir
	closing   context.Context // done once Close starts
	closeOps  context.CancelCauseFunc
	transport *http.Transport // proxies → apps
	health    *http.Client    // health checks → apps
	tasks     sync.WaitGroup  // running RunTask calls

	// pumpMu guards pumps, the processes' output being turned into
	// stamped log lines, and the writing of drover's own log lines.
	pumpMu sync.Mutex
	pumps  map[string]*applog.Pump

	mu     sync.Mutex
	closed bool
	apps   map[string]*app
	ports  map[int]time.Time // app ports handed out recently
}

var _ regions.Region = (*Region)(nil)

// app is what the region knows about one app. sem is a mutex that a waiter
// can give up on when its context ends; it guards every other field.
type app struct {
	name   string
	sem    chan struct{}
	loaded bool
	state  appState
	cur    *release // the release the proxy points at, nil if none runs
	proxy  *proxy   // nil unless the current release has a web process
}

// New returns a Region keeping its state in opts.Dir. It fails if another
// Region (in this or another drover process) holds the same Dir. Call
// Reconcile next to bring back the apps that should run.
func New(opts Options) (*Region, error) {
	switch {
	case opts.Name == "":
		return nil, fmt.Errorf("local region: name is required: %w", pipelines.ErrInvalid)
	case opts.Dir == "":
		return nil, fmt.Errorf("local region %s: dir is required: %w", opts.Name, pipelines.ErrInvalid)
	case opts.Unpack == nil:
		return nil, fmt.Errorf("local region %s: unpack is required: %w", opts.Name, pipelines.ErrInvalid)
	}
	if opts.Host == "" {
		opts.Host = DefaultHost
	}
	if opts.HealthTimeout <= 0 {
		opts.HealthTimeout = DefaultHealthTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	for _, d := range []string{filepath.Join(opts.Dir, "apps"), filepath.Join(opts.Dir, "tasks")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("local region %s: %w", opts.Name, err)
		}
	}
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("local region %s: %w", opts.Name, err)
	}
	r := &Region{
		name:          opts.Name,
		dir:           opts.Dir,
		host:          opts.Host,
		dialHost:      dialHost(opts.Host),
		healthTimeout: opts.HealthTimeout,
		log:           opts.Logger,
		unpack:        opts.Unpack,
		sandbox:       opts.Sandbox,
		slugCache:     opts.SlugCache,
		lockFile:      lock,
		apps:          map[string]*app{},
		ports:         map[int]time.Time{},
		pumps:         map[string]*applog.Pump{},
	}
	r.closing, r.closeOps = context.WithCancelCause(context.Background())
	// Never the environment's HTTP proxy: every request goes to this machine.
	r.transport = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     30 * time.Second,
	}
	r.health = &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: (&net.Dialer{Timeout: time.Second}).DialContext},
		// A redirect is an answer: the app is up.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	r.cleanTasks()
	go r.pumpLogs()
	return r, nil
}

// lockDir takes an exclusive flock on <dir>/lock. The kernel drops it when
// the process dies, so a crashed drover never leaves the dir locked.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock state dir: %w", err)
	}
	// A drover that just stopped may hold the lock a moment longer, and so
	// may a child of this process forked while it was open and not yet
	// exec'd (which closes it): a lock that stays taken for lockWait is
	// another drover's.
	deadline := time.Now().Add(lockWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock state dir %s: %w", dir, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("state dir %s is in use by another drover", dir)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lockWait is how long lockDir waits for a lock another process holds.
const lockWait = 2 * time.Second

// dialHost is where to reach a listener bound on host: an unspecified
// address accepts connections but is no place to send them.
func dialHost(host string) string {
	ip := net.ParseIP(host)
	switch {
	case ip == nil || !ip.IsUnspecified():
		return host
	case ip.To4() != nil:
		return "127.0.0.1"
	default:
		return "::1"
	}
}

// cleanTasks removes scratch dirs a killed drover left behind; it is only
// safe while holding the dir lock, since tasks of a live drover use them.
func (r *Region) cleanTasks() {
	dir := filepath.Join(r.dir, "tasks")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		// A task's dir is how a retry after a restart finds how it ended
		// (or adopts it still running): kept for a day, unless it runs.
		st := taskState{dir: filepath.Join(dir, e.Name())}
		if pid, started, ok := st.process(); ok && st.alive(pid, started) {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) < keepTaskDirs {
			continue
		}
		if err := os.RemoveAll(st.dir); err != nil {
			r.log.Warn("remove stale task dir", "dir", e.Name(), "error", err)
		}
	}
}

// keepTaskDirs is how long a finished task's dir is kept: longer than
// any activity retry that could ask for its result.
const keepTaskDirs = 24 * time.Hour

// Name returns the region's name.
func (r *Region) Name() string { return r.name }

// lockApp returns app's state, locked. It returns ErrClosed once Close has
// started, or ctx's error if ctx ends while another call holds the app.
func (r *Region) lockApp(ctx context.Context, name string) (*app, func(), error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, nil, ErrClosed
	}
	a := r.apps[name]
	if a == nil {
		a = &app{name: name, sem: make(chan struct{}, 1)}
		r.apps[name] = a
	}
	r.mu.Unlock()
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("wait for app %s: %w", name, context.Cause(ctx))
	case <-r.closing.Done():
		return nil, nil, ErrClosed
	}
	if r.closing.Err() != nil {
		<-a.sem
		return nil, nil, ErrClosed
	}
	return a, func() { <-a.sem }, nil
}

// opContext is ctx, also cancelled when Close starts, so Close never waits
// out a 30 s health check.
func (r *Region) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(r.closing, func() { cancel(ErrClosed) })
	return ctx, func() { stop(); cancel(context.Canceled) }
}

// Close stops every proxy and, when stopApps is true, every app process, so
// a clean shutdown of drover dev leaves nothing running; the apps come back
// through Reconcile on the next start. With stopApps false the processes
// keep running to be adopted by the next Region on this Dir. In-flight calls
// are cancelled. Calling Close again does nothing.
func (r *Region) Close(stopApps bool) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	names := map[string]*app{}
	for n, a := range r.apps {
		names[n] = a
	}
	r.mu.Unlock()
	r.closeOps(ErrClosed)

	if stopApps {
		// Apps this run never touched may still have processes on disk.
		for _, n := range r.appNamesOnDisk() {
			if names[n] == nil {
				names[n] = &app{name: n, sem: make(chan struct{}, 1)}
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	for _, a := range names {
		wg.Go(func() {
			a.sem <- struct{}{} // in-flight calls were cancelled above and end soon
			defer func() { <-a.sem }()
			if a.proxy != nil {
				a.proxy.close()
				a.proxy = nil
			}
			if !stopApps {
				return
			}
			if a.cur != nil {
				r.stopRelease(a.cur)
				a.cur = nil
			}
			recs, err := r.readRecords(a.name)
			if err != nil {
				errs <- err
			}
			for _, rec := range recs {
				r.stopRelease(rec)
			}
		})
	}
	wg.Wait()
	r.tasks.Wait()
	// What the processes wrote last is in their logs for the next drover.
	r.pumpOnce(true)
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	r.transport.CloseIdleConnections()
	if err := r.lockFile.Close(); err != nil { // also drops the flock
		all = append(all, fmt.Errorf("unlock state dir: %w", err))
	}
	if err := errors.Join(all...); err != nil {
		return fmt.Errorf("close local region %s: %w", r.name, err)
	}
	return nil
}

// checkApp rejects names that are not drover app names before they become
// paths under Dir.
func checkApp(name string) error {
	if !pipelines.ValidName(name) {
		return fmt.Errorf("app name %q: %w", name, pipelines.ErrInvalid)
	}
	return nil
}
