package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// Reconcile is called once at start-up with the release each app should run
// (from the ledger). For each app it adopts that release's processes if all
// of them outlived an earlier drover (even one killed with SIGKILL), and
// starts the release again otherwise. It stops every other process this
// region recorded: other releases, and apps not in want. Afterwards each app
// in want runs exactly once. Apps are reconciled in parallel; the error
// joins those of the apps that could not be started.
func (r *Region) Reconcile(ctx context.Context, want []regions.Deployment) error {
	byApp := map[string]regions.Deployment{}
	var errs []error
	for _, d := range want {
		if err := checkApp(d.App); err != nil {
			errs = append(errs, fmt.Errorf("reconcile: %w", err))
			continue
		}
		if prev, dup := byApp[d.App]; dup {
			r.log.Warn("app listed twice; using the later release", "app", d.App, "releases", []int{prev.Release, d.Release})
		}
		byApp[d.App] = d
	}
	names := r.appNamesOnDisk()
	for n := range byApp {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	appErrs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			d, wanted := byApp[name]
			appErrs[i] = r.reconcileApp(ctx, name, d, wanted)
		})
	}
	wg.Wait()
	return errors.Join(append(errs, appErrs...)...)
}

func (r *Region) reconcileApp(ctx context.Context, name string, d regions.Deployment, wanted bool) error {
	a, unlock, err := r.lockApp(ctx, name)
	if err != nil {
		return fmt.Errorf("reconcile %s: %w", name, err)
	}
	defer unlock()
	ctx, cancel := r.opContext(ctx)
	defer cancel()
	if err := r.load(a); err != nil {
		return fmt.Errorf("reconcile %s: %w", name, err)
	}
	recs, err := r.readRecords(name)
	if err != nil {
		// Unreadable records cannot be adopted; the ones we can read are
		// still handled below.
		r.log.Warn("read process records", "app", name, "error", err)
	}
	log := r.log.With("app", name)
	if !wanted {
		for _, rec := range recs {
			log.Info("stopping release that should not run", "release", rec.Version)
			r.stopRelease(rec)
		}
		if a.cur != nil {
			r.stopRelease(a.cur)
			a.cur = nil
		}
		if a.proxy != nil {
			a.proxy.close()
			a.proxy = nil
		}
		if a.state.Release == 0 {
			return nil
		}
		// Keep the port, so the app gets its URL back if it returns.
		a.state.Release, a.state.Slug = 0, ""
		if err := r.writeAppState(a); err != nil {
			return fmt.Errorf("reconcile %s: %w", name, err)
		}
		return nil
	}

	var adopt *release
	for _, rec := range recs {
		if rec.Version == d.Release && rec.Slug == d.Slug.Digest && runsFormation(rec, d) && allAlive(rec) {
			adopt = rec
		}
	}
	if adopt != nil && !r.answering(ctx, adopt) {
		log.Info("release is alive but web does not answer; restarting it", "release", adopt.Version)
		adopt = nil
	}
	if adopt != nil && a.cur != nil && a.cur.Version == adopt.Version {
		adopt = a.cur // the copy this run started knows when its processes exit
	}
	for _, rec := range recs {
		if adopt == nil || rec.Version != adopt.Version {
			log.Info("stopping release that should not run", "release", rec.Version)
			r.stopRelease(rec)
		}
	}
	if adopt == nil {
		if a.cur != nil {
			r.stopRelease(a.cur)
		}
		a.cur = nil
		if _, err := r.deploy(ctx, a, d); err != nil {
			return fmt.Errorf("restore %s v%d: %w", name, d.Release, err)
		}
		return nil
	}
	a.cur = adopt
	a.state.Release, a.state.Slug = adopt.Version, adopt.Slug
	if err := r.serve(a, adopt); err != nil {
		return fmt.Errorf("reconcile %s v%d: %w", name, d.Release, err)
	}
	msg := fmt.Sprintf("adopted v%d, still running from an earlier drover", d.Release)
	log.Info(msg, "release", d.Release, "url", r.result(a, adopt).URL)
	if d.Progress != nil {
		d.Progress(msg)
	}
	return nil
}

// answering reports whether every web process of rel, alive as far as the
// kernel says, also answers HTTP. The pid we track is `sh -c`'s, which may
// outlive the app for a moment or wrap an app that hangs; adopting either
// would leave the URL broken until the next deploy.
func (r *Region) answering(ctx context.Context, rel *release) bool {
	deadline := time.Now().Add(min(3*time.Second, r.healthTimeout))
	for _, p := range rel.Procs {
		if p.Type != pipelines.WebProcess {
			continue
		}
		for {
			if !allAlive(rel) || ctx.Err() != nil {
				return false
			}
			if _, ok := r.answers(ctx, p.Port); ok {
				break
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return allAlive(rel)
}

// runsFormation reports whether rec runs exactly the processes d asks for.
func runsFormation(rec *release, d regions.Deployment) bool {
	counts := map[string]int{}
	for _, p := range rec.Procs {
		counts[p.Type]++
	}
	for typ, n := range d.Formation {
		if counts[typ] != max(n, 0) {
			return false
		}
		delete(counts, typ)
	}
	return len(counts) == 0
}

// removeAppDir deletes app's dir once no log pump writes into it: the
// pumps of its processes go first, and none steps while it is removed.
func (r *Region) removeAppDir(app string) error {
	dir := r.appDir(app)
	r.pumpMu.Lock()
	defer r.pumpMu.Unlock()
	for out := range r.pumps {
		if strings.HasPrefix(out, dir+string(filepath.Separator)) {
			delete(r.pumps, out)
		}
	}
	return os.RemoveAll(dir)
}

// Stop stops every process of app, closes its proxy (its port refuses
// connections afterwards) and deletes its state. Stopping an app this
// region does not know is not an error.
func (r *Region) Stop(ctx context.Context, app string) error {
	if err := checkApp(app); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	a, unlock, err := r.lockApp(ctx, app)
	if err != nil {
		return fmt.Errorf("stop %s: %w", app, err)
	}
	defer unlock()
	if err := r.load(a); err != nil {
		r.log.Warn("stop: read state", "app", app, "error", err)
	}
	if a.cur != nil {
		r.stopRelease(a.cur)
		a.cur = nil
	}
	r.stopOthers(a, nil)
	if a.proxy != nil {
		a.proxy.close()
		a.proxy = nil
	}
	a.state = appState{}
	a.loaded = true
	if err := r.removeAppDir(app); err != nil {
		return fmt.Errorf("stop %s: remove state: %w", app, err)
	}
	r.log.Info("app stopped", "app", app)
	return nil
}

// Status reports the app's current release and whether all of its
// processes are alive. An app this region does not run has a zero Status.
// It waits for a Deploy of the same app in progress.
func (r *Region) Status(ctx context.Context, app string) (regions.Status, error) {
	if err := checkApp(app); err != nil {
		return regions.Status{}, fmt.Errorf("status: %w", err)
	}
	a, unlock, err := r.lockApp(ctx, app)
	if err != nil {
		return regions.Status{}, fmt.Errorf("status of %s: %w", app, err)
	}
	defer unlock()
	if err := r.load(a); err != nil {
		return regions.Status{}, fmt.Errorf("status of %s: %w", app, err)
	}
	st := regions.Status{Release: a.state.Release, Slug: a.state.Slug}
	if a.cur != nil {
		st.Running = len(a.cur.Procs) > 0 && allAlive(a.cur)
		if a.proxy != nil && a.cur.webCount() > 0 {
			st.URL = a.proxy.url
		}
	}
	return st, nil
}

// Processes says what runs for app, process by process: up while its
// process lives, crashed once it has died without being stopped (with its
// exit code when this drover started it and saw it end). The local driver
// restarts nothing on its own, so Restarts is always 0.
func (r *Region) Processes(ctx context.Context, app string) ([]regions.Process, error) {
	if err := checkApp(app); err != nil {
		return nil, fmt.Errorf("processes: %w", err)
	}
	a, unlock, err := r.lockApp(ctx, app)
	if err != nil {
		return nil, fmt.Errorf("processes of %s: %w", app, err)
	}
	defer unlock()
	if err := r.load(a); err != nil {
		return nil, fmt.Errorf("processes of %s: %w", app, err)
	}
	out := []regions.Process{}
	if a.cur == nil {
		return out, nil
	}
	for _, p := range a.cur.Procs {
		ps := regions.Process{Dyno: p.name(), Type: p.Type, Release: a.cur.Version, State: regions.ProcessUp, Since: p.Started}
		if !alive(p) {
			ps.State = regions.ProcessCrashed
			if p.stopping.Load() {
				ps.State = regions.ProcessStopped
			}
			// exit and exitAt are set before done closes; an adopted
			// process (no done), or one seen dead in /proc but not reaped
			// yet, has neither, and keeps its start as Since.
			if reaped(p) {
				ps.Since = p.exitAt
				code, signalled := exitCode(p.exit)
				if signalled {
					ps.Message = "killed by signal " + syscall.Signal(code-128).String()
				}
				ps.ExitCode = &code
			}
		}
		out = append(out, ps)
	}
	return out, nil
}

// reaped reports whether p is a child of this Region that has been waited
// for, so its exit and exitAt are set.
func reaped(p *proc) bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}
