package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// Deploy makes d the running release of d.App: it unpacks the slug, starts
// d.Formation, waits until every web process answers HTTP, points the app's
// proxy at the new release and then stops the previous one. It returns a
// *regions.DeployError, with the previous release still serving, when the
// new one fails to start or answer; other errors (unpacking, the state dir)
// may pass on retry. Deploying the release that already runs returns at
// once; deploying an older release rolls back to it.
func (r *Region) Deploy(ctx context.Context, d regions.Deployment) (regions.Result, error) {
	if err := checkApp(d.App); err != nil {
		return regions.Result{}, fmt.Errorf("deploy: %w", err)
	}
	if d.Release < 1 {
		return regions.Result{}, fmt.Errorf("deploy %s: release %d: %w", d.App, d.Release, pipelines.ErrInvalid)
	}
	a, unlock, err := r.lockApp(ctx, d.App)
	if err != nil {
		return regions.Result{}, fmt.Errorf("deploy %s v%d: %w", d.App, d.Release, err)
	}
	handedOff := false
	defer func() {
		if !handedOff {
			unlock()
		}
	}()
	ctx, cancel := r.opContext(ctx)
	defer cancel()
	if err := r.load(a); err != nil {
		return regions.Result{}, fmt.Errorf("deploy %s v%d: %w", d.App, d.Release, err)
	}
	res, settle, err := r.deployOnly(ctx, a, d)
	if settle != nil {
		// The new release serves: the old one stops after Deploy
		// returns, still under the app's lock, so the next call on the
		// app (a deploy, a stop, Close) waits for it to be gone, and no
		// region's rollout waits for its old processes' SIGTERM and
		// teardown.
		handedOff = true
		go func() {
			defer unlock()
			settle()
		}()
	}
	return res, err
}

// deploy is Deploy with a locked and loaded, the previous release
// stopped before it returns.
func (r *Region) deploy(ctx context.Context, a *app, d regions.Deployment) (regions.Result, error) {
	res, settle, err := r.deployOnly(ctx, a, d)
	if settle != nil {
		settle()
	}
	return res, err
}

// deployOnly is deploy, but once the new release serves it returns
// settle, which stops the previous release and whatever else of the app
// should not run, and prunes its old dirs; the caller runs it holding
// a's lock. settle is nil when there is nothing to do after.
func (r *Region) deployOnly(ctx context.Context, a *app, d regions.Deployment) (regions.Result, func(), error) {
	log := r.log.With("app", d.App, "release", d.Release)
	progress := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		log.Info(msg)
		if d.Progress != nil {
			d.Progress(msg)
		}
	}
	fail := func(reason string) error {
		return &regions.DeployError{Region: r.name, App: d.App, Release: d.Release, Reason: reason}
	}
	wrap := func(err error) error {
		return fmt.Errorf("deploy %s v%d in region %s: %w", d.App, d.Release, r.name, err)
	}

	if cur := a.cur; cur != nil && cur.Version == d.Release && cur.Slug == d.Slug.Digest && allAlive(cur) {
		if err := r.serve(a, cur); err != nil {
			return regions.Result{}, nil, wrap(err)
		}
		progress("v%d is already running", d.Release)
		return r.result(a, cur), nil, nil
	}
	specs, reason := plan(d)
	if reason != "" {
		return regions.Result{}, nil, fail(reason)
	}
	if cur := a.cur; cur != nil && cur.Version == d.Release {
		// Redeploying the running release (some of it died, or its slug
		// changed): old and new would share one dir and one record, so the
		// old processes go first. It was not serving properly anyway.
		progress("stopping what is left of v%d", cur.Version)
		r.stopRelease(cur)
		a.cur = nil
		if a.proxy != nil {
			a.proxy.setTargets(r.dialHost, nil)
		}
	}
	dir := r.releaseDir(d.App, d.Release)
	// Processes recorded for this release but not current were left by a
	// drover that died mid-deploy; overwriting the record would orphan them.
	if stale, err := readRecord(dir); err != nil {
		return regions.Result{}, nil, wrap(err)
	} else if stale != nil {
		r.stopRelease(stale)
	}
	progress("unpacking slug")
	slugDir, err := r.unpackOnce(ctx, d.Slug, dir)
	if err != nil {
		return regions.Result{}, nil, wrap(err)
	}

	rel := &release{App: d.App, Version: d.Release, Slug: d.Slug.Digest, dir: dir}
	abort := func() { r.stopRelease(rel) }
	for _, s := range specs {
		port, err := r.freePort()
		if err != nil {
			abort()
			return regions.Result{}, nil, wrap(err)
		}
		s.dir, s.port = slugDir, port
		s.logPath = outName(dir, s.typ, s.index)
		s.env = processEnv(d.Env, "PORT="+strconv.Itoa(port), "DYNO="+s.typ+"."+strconv.Itoa(s.index))
		progress("starting %s.%d on port %d", s.typ, s.index, port)
		p, err := r.startProc(s)
		if err != nil {
			abort()
			return regions.Result{}, nil, wrap(err)
		}
		rel.Procs = append(rel.Procs, p)
		// Recorded after each start, so a crash of drover right here still
		// leaves every process findable.
		if err := writeRecord(rel); err != nil {
			abort()
			return regions.Result{}, nil, wrap(err)
		}
	}
	if err := r.waitHealthy(ctx, rel, progress); err != nil {
		abort()
		var de *regions.DeployError
		if errors.As(err, &de) {
			de.Region, de.App, de.Release = r.name, d.App, d.Release
			log.Warn("release failed", "reason", de.Reason)
			return regions.Result{}, nil, de
		}
		return regions.Result{}, nil, wrap(err)
	}

	for _, p := range rel.Procs {
		r.droverLog(d.App, p.name(), "State changed from starting to up (v%d)", d.Release)
	}
	// Healthy: make it current, on disk first so a crash from here on
	// restores the new release, then in the proxy.
	prev := a.state
	a.state.Release, a.state.Slug = d.Release, d.Slug.Digest
	if err := r.serve(a, rel); err != nil {
		a.state = prev
		abort()
		return regions.Result{}, nil, wrap(err)
	}
	old := a.cur
	a.cur = rel
	progress("v%d is running", d.Release)
	settle := func() {
		if old != nil {
			log.Info(fmt.Sprintf("stopping v%d", old.Version))
			r.stopRelease(old)
		}
		r.stopOthers(a, rel)
		r.pruneReleases(d.App, d.Release)
	}
	return r.result(a, rel), settle, nil
}

// plan lists the processes d runs, or says why it cannot run.
func plan(d regions.Deployment) ([]startSpec, string) {
	var specs []startSpec
	for _, typ := range d.Formation.Types() {
		n := d.Formation[typ]
		if n < 0 {
			return nil, fmt.Sprintf("formation has %d %s processes", n, typ)
		}
		if n == 0 {
			continue
		}
		cmd, ok := d.Procfile.Command(typ)
		if !ok {
			return nil, fmt.Sprintf("formation runs process type %q, which the Procfile does not define", typ)
		}
		for i := 1; i <= n; i++ {
			specs = append(specs, startSpec{app: d.App, version: d.Release, typ: typ, index: i, command: cmd})
		}
	}
	return specs, ""
}

// unpackSlug puts its own copy of slug's tree into dir (which need not
// exist): copied from the host's slug cache when the region has one, so
// a slug is unpacked once per host however many releases, release phases
// and one-off runs use it, else unpacked from the slug itself.
func (r *Region) unpackSlug(ctx context.Context, slug regions.Slug, dir string) error {
	if r.slugCache != "" && slug.Digest != "" {
		cached, err := r.cachedSlug(ctx, slug.Path, slug.Digest)
		if err != nil {
			return fmt.Errorf("unpack slug %s: %w", slug.Digest, err)
		}
		if err := copyTree(cached, dir); err != nil {
			return fmt.Errorf("copy slug %s: %w", slug.Digest, err)
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("unpack slug: %w", err)
	}
	if err := r.unpack(ctx, slug.Path, dir); err != nil {
		return fmt.Errorf("unpack slug %s: %w", slug.Digest, err)
	}
	return nil
}

// unpackOnce unpacks the slug into <dir>/slug unless a complete unpacking
// of the same slug is already there: the marker is written last, so a
// half-unpacked slug is never used.
func (r *Region) unpackOnce(ctx context.Context, slug regions.Slug, dir string) (string, error) {
	slugDir := filepath.Join(dir, "slug")
	marker := filepath.Join(dir, "slug.digest")
	want := slug.Digest
	if want == "" {
		want = "unknown"
	}
	if b, err := os.ReadFile(marker); err == nil && string(b) == want {
		return slugDir, nil
	}
	if slug.Path == "" {
		return "", fmt.Errorf("slug %s has no local path", slug.Digest)
	}
	if err := os.Remove(marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("unpack slug: %w", err)
	}
	if err := os.RemoveAll(slugDir); err != nil {
		return "", fmt.Errorf("unpack slug: %w", err)
	}
	if err := r.unpackSlug(ctx, slug, slugDir); err != nil {
		return "", err
	}
	if err := writeFileAtomic(marker, []byte(want)); err != nil {
		return "", fmt.Errorf("unpack slug: %w", err)
	}
	return slugDir, nil
}

// waitHealthy returns once every web process answers HTTP. It returns a
// *regions.DeployError as soon as any process exits, or when web has not
// answered within the health timeout; a release without web only has to
// stay up for a moment, which catches a command that is not found.
func (r *Region) waitHealthy(ctx context.Context, rel *release, progress func(string, ...any)) error {
	var pending []*proc
	for _, p := range rel.Procs {
		if p.Type == pipelines.WebProcess {
			pending = append(pending, p)
		}
	}
	hasWeb := len(pending) > 0
	wait := r.healthTimeout
	if !hasWeb {
		wait = min(time.Second, r.healthTimeout)
	}
	started := time.Now()
	deadline := started.Add(wait)
	// Most apps answer within milliseconds of starting: look every
	// healthFirst, then less and less often, up to healthEvery.
	delay := healthDelay(0)
	for {
		for _, p := range rel.Procs {
			if !alive(p) {
				return &regions.DeployError{Reason: exitReason(p)}
			}
		}
		pending = slices.DeleteFunc(pending, func(p *proc) bool {
			code, ok := r.answers(ctx, p.Port)
			if ok {
				progress("%s answered HTTP %d", p.name(), code)
			}
			return ok
		})
		expired := !time.Now().Before(deadline)
		switch {
		case len(rel.Procs) == 0, hasWeb && len(pending) == 0, !hasWeb && expired:
			return nil
		case expired:
			p := pending[0]
			return &regions.DeployError{Reason: withTail(
				fmt.Sprintf("%s did not answer HTTP on port %d within %s", p.name(), p.Port, wait), p)}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for v%d to start: %w", rel.Version, context.Cause(ctx))
		case <-time.After(delay):
		}
		delay = healthDelay(time.Since(started))
	}
}

// healthFirst and healthEvery bound how often waitHealthy looks at a
// starting release: every healthFirst at first, then every eighth of the
// time it has waited, up to healthEvery. A look at a port nobody listens
// on yet is a refused connect: cheap enough to make often.
const (
	healthFirst = 2 * time.Millisecond
	healthEvery = 100 * time.Millisecond
)

// healthDelay is how long to wait before the next look at a release that
// has been starting for waited: an eighth of it, so a start is seen at
// most 12% late. Doubling the wait instead made an app that took 25 ms
// to start (five regions starting at once on a small machine) wait 48.
func healthDelay(waited time.Duration) time.Duration {
	return min(max(healthFirst, waited/8), healthEvery)
}

// answers reports whether something answers HTTP on port; any status will do.
func (r *Region) answers(ctx context.Context, port int) (int, bool) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	u := "http://" + net.JoinHostPort(r.dialHost, strconv.Itoa(port)) + "/"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, false
	}
	resp, err := r.health.Do(req)
	if err != nil {
		return 0, false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, true
}

func (rel *release) webCount() int {
	n := 0
	for _, p := range rel.Procs {
		if p.Type == pipelines.WebProcess {
			n++
		}
	}
	return n
}

func (rel *release) webPorts() []int {
	var ports []int
	for _, p := range rel.Procs {
		if p.Type == pipelines.WebProcess {
			ports = append(ports, p.Port)
		}
	}
	return ports
}

// serve makes rel the release a's proxy forwards to, starting the proxy on
// the app's port (or closing it when rel has no web), and saves a.state.
func (r *Region) serve(a *app, rel *release) error {
	if rel.webCount() == 0 {
		if a.proxy != nil {
			a.proxy.close()
			a.proxy = nil
		}
		return r.writeAppState(a)
	}
	if a.proxy == nil {
		p, err := r.startProxy(a.name, a.state.Port)
		if err != nil {
			return err
		}
		a.proxy = p
	}
	// The port is kept even while no web runs, so the URL survives.
	a.state.Port = a.proxy.port
	if err := r.writeAppState(a); err != nil {
		return err
	}
	a.proxy.setTargets(r.dialHost, rel.webPorts())
	return nil
}

// stopOthers stops every recorded release of a but keep: leftovers of
// deploys interrupted by a crash, which nothing else would ever stop.
func (r *Region) stopOthers(a *app, keep *release) {
	recs, err := r.readRecords(a.name)
	if err != nil {
		r.log.Warn("list releases to stop", "app", a.name, "error", err)
	}
	for _, rec := range recs {
		if keep == nil || rec.Version != keep.Version {
			r.log.Info("stopping stale release", "app", a.name, "release", rec.Version)
			r.stopRelease(rec)
		}
	}
}

func (r *Region) result(a *app, rel *release) regions.Result {
	res := regions.Result{Message: fmt.Sprintf("v%d running in %s", rel.Version, r.name)}
	counts := map[string]int{}
	for _, p := range rel.Procs {
		counts[p.Type]++
	}
	if len(counts) > 0 {
		var parts []string
		for _, t := range pipelines.Formation(counts).Types() {
			parts = append(parts, t+"="+strconv.Itoa(counts[t]))
		}
		res.Message += " (" + strings.Join(parts, ", ") + ")"
	}
	if a.proxy != nil && rel.webCount() > 0 {
		res.URL = a.proxy.url
	}
	return res
}
