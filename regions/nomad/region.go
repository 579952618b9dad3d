// Package nomad is the regions.Region that runs apps on a HashiCorp Nomad
// region through github.com/hashicorp/nomad/api.
//
// Each app is one service job named after the app (see Render), each one-off
// task a batch job "<app>-<task>-v<release>" (see RenderReleaseJob). Every
// job carries drover's meta (MetaRelease, MetaSlug, MetaManagedBy), so the
// region itself says which release runs, and drover refuses to overwrite a
// job it did not make. Config vars are never in a job spec: each job reads
// its release's item of its own Nomad variable (see ConfigVarPath).
//
// Every call names its region and namespace in its own Query- or
// WriteOptions and carries the caller's context: the shared api.Client is
// never re-pointed with SetRegion. Deployments are watched with blocking
// queries; Deploy reports progress at least every PollInterval meanwhile so
// the calling activity can heartbeat.
package nomad

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// Defaults for Options.
const (
	DefaultPollInterval = 2 * time.Second
	DefaultWaitTime     = 30 * time.Second
)

// MaxTaskOutput caps TaskResult.Output; the tail is kept.
const MaxTaskOutput = 1 << 20

// Nomad's job statuses (nomad/structs.JobStatus*; the api package has no
// constants for them).
const (
	jobStatusRunning = "running"
	jobStatusDead    = "dead"
)

// Options configure a Region.
type Options struct {
	// Token is the Nomad ACL token, read from spec.Nomad.TokenEnv by the caller.
	Token  string
	Logger *slog.Logger
	// PollInterval is how often progress is reported during a blocking
	// query, and how long to pause when a query returns without news;
	// default 2s.
	PollInterval time.Duration
	// WaitTime bounds each blocking query; default 30s.
	WaitTime time.Duration
	// Template is the user's job template; see Render.
	Template *api.Job
	// Update tunes health and failure detection; zero fields take
	// DefaultUpdatePolicy's values.
	Update UpdatePolicy
}

// Region runs apps in one Nomad region. It is safe for concurrent use.
type Region struct {
	// mu guards the one-time resolution of the region's name; spec and
	// region do not change once resolved is true.
	mu       sync.Mutex
	resolved bool
	spec     pipelines.RegionSpec
	region   string // Nomad's name for the region
	ns       string
	client   *api.Client
	log      *slog.Logger
	poll     time.Duration
	wait     time.Duration
	tmpl     *api.Job
	update   UpdatePolicy
}

var _ regions.Region = (*Region)(nil)

// New returns a Region for spec. It does not contact Nomad. It returns an
// error matching pipelines.ErrInvalid when spec has no address or its TLS
// files cannot be loaded.
func New(spec pipelines.RegionSpec, opts Options) (*Region, error) {
	n := spec.Nomad
	if n.Address == "" {
		return nil, fmt.Errorf("nomad region %s: address is required: %w", spec.Name, pipelines.ErrInvalid)
	}
	cfg := &api.Config{Address: n.Address, SecretID: opts.Token}
	if n.CAFile != "" || n.CertFile != "" || n.KeyFile != "" {
		cfg.TLSConfig = &api.TLSConfig{CACert: n.CAFile, ClientCert: n.CertFile, ClientKey: n.KeyFile}
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("nomad region %s: client: %v: %w", spec.Name, err, pipelines.ErrInvalid)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.WaitTime <= 0 {
		opts.WaitTime = DefaultWaitTime
	}
	return &Region{
		spec:   spec,
		region: spec.NomadRegion(),
		ns:     n.Namespace,
		client: client,
		log:    opts.Logger.With("region", spec.Name),
		poll:   opts.PollInterval,
		wait:   opts.WaitTime,
		tmpl:   opts.Template,
		update: opts.Update.withDefaults(),
	}, nil
}

// resolve settles Nomad's name for the region, once. With `region:` set,
// that is it. Unset, it is the key in drover.yaml when Nomad knows a region
// by that name, else the cluster's only region (so `nomad agent -dev`, whose
// region is "global", works with no region: line); a cluster with several
// regions and none named after the key is a config error listing them.
func (r *Region) resolve(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.resolved {
		return nil
	}
	if r.spec.Nomad.Region != "" {
		r.resolved = true
		return nil
	}
	// The one call that names no region: it asks which there are.
	var names []string
	if _, err := r.client.Raw().Query("/v1/regions", &names, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return r.wrap(ctx, "list regions", err)
	}
	switch {
	case slices.Contains(names, r.spec.Name):
		r.region = r.spec.Name
	case len(names) == 1:
		r.region = names[0]
		r.log.Info("using the cluster's only region", "nomad_region", r.region)
	default:
		return fmt.Errorf("nomad region %s: Nomad at %s has regions %v and none is %q; set region: in drover.yaml: %w",
			r.spec.Name, r.spec.Nomad.Address, names, r.spec.Name, pipelines.ErrInvalid)
	}
	r.spec.Nomad.Region = r.region
	r.resolved = true
	return nil
}

// Name is the region's key in drover.yaml.
func (r *Region) Name() string { return r.spec.Name }

// RendersJobs says Nomad regions use Deployment.JobTemplate and
// RepoJobTemplate (regions.JobRenderer).
func (r *Region) RendersJobs() {}

// writeOpts and queryOpts name the region and namespace on every call.
func (r *Region) writeOpts(ctx context.Context) *api.WriteOptions {
	return (&api.WriteOptions{Region: r.region, Namespace: r.ns}).WithContext(ctx)
}

func (r *Region) queryOpts(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{Region: r.region, Namespace: r.ns}).WithContext(ctx)
}

// blockingOpts is a blocking query returning once Nomad's index passes index.
func (r *Region) blockingOpts(ctx context.Context, index uint64, wait time.Duration) *api.QueryOptions {
	return (&api.QueryOptions{Region: r.region, Namespace: r.ns, WaitIndex: index, WaitTime: wait}).WithContext(ctx)
}

// jobInfo returns the job with that ID, or nil if there is none.
func (r *Region) jobInfo(ctx context.Context, id string) (*api.Job, error) {
	job, _, err := r.client.Jobs().Info(id, r.queryOpts(ctx))
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, r.wrap(ctx, fmt.Sprintf("read job %q", id), err)
	}
	return job, nil
}

// register registers job, new (index 0) or replacing the version whose
// JobModifyIndex is index; a lost race is an error matching
// pipelines.ErrConflict.
func (r *Region) register(ctx context.Context, job *api.Job, index uint64) (*api.JobRegisterResponse, error) {
	resp, _, err := r.client.Jobs().RegisterOpts(job,
		&api.RegisterOptions{EnforceIndex: true, ModifyIndex: index}, r.writeOpts(ctx))
	if err != nil {
		return nil, r.wrap(ctx, fmt.Sprintf("register job %q", *job.ID), err)
	}
	if resp.Warnings != "" {
		r.log.Warn("nomad job warnings", "job", *job.ID, "warnings", resp.Warnings)
	}
	return resp, nil
}

// managed reports whether drover made job.
func managed(job *api.Job) bool { return job.Meta[MetaManagedBy] == ManagedBy }

func notManaged(r *Region, id string) error {
	return fmt.Errorf("job %q in region %s exists and was not made by drover (meta %s is not %q); rename the app or remove the job: %w",
		id, r.spec.Name, MetaManagedBy, ManagedBy, pipelines.ErrConflict)
}

// Stop deregisters and purges the app's job and its one-off task jobs, and
// deletes their config variables. A job that does not exist is not an
// error.
func (r *Region) Stop(ctx context.Context, app string) error {
	if err := r.resolve(ctx); err != nil {
		return err
	}
	_, _, err := r.client.Jobs().Deregister(app, true, r.writeOpts(ctx))
	if err != nil && !isNotFound(err) {
		return r.wrap(ctx, fmt.Sprintf("stop job %q", app), err)
	}
	// The app's one-off task jobs (<app>-release-v7, ...) go too, so a
	// destroyed app leaves nothing behind. The ID prefix also matches other
	// apps ("hello-" and "hello-staging"), so ownership is read from each
	// job's meta before it is purged.
	q := r.queryOpts(ctx)
	q.Prefix = app + "-"
	stubs, _, err := r.client.Jobs().List(q)
	if err != nil {
		return r.wrap(ctx, fmt.Sprintf("list task jobs of %q", app), err)
	}
	for _, stub := range stubs {
		if !taskJobRE.MatchString(strings.TrimPrefix(stub.ID, app+"-")) {
			continue
		}
		job, err := r.jobInfo(ctx, stub.ID)
		if err != nil || job == nil || !managed(job) || job.Meta[MetaApp] != app {
			continue
		}
		if _, _, err := r.client.Jobs().Deregister(stub.ID, true, r.writeOpts(ctx)); err != nil && !isNotFound(err) {
			return r.wrap(ctx, fmt.Sprintf("purge task job %q", stub.ID), err)
		}
	}
	// Then the config vars of every release, and of the task jobs.
	if err := r.deleteConfig(ctx, app, app); err != nil {
		return err
	}
	return r.deleteTaskConfigs(ctx, app)
}

// taskJobRE matches what TaskJobID appends to the app's name.
var taskJobRE = regexp.MustCompile(`^[a-z0-9_-]+-v[0-9]+$`)

// Status reports the release and slug the app's job carries. An app without
// a job is Status{} with Running false.
func (r *Region) Status(ctx context.Context, app string) (regions.Status, error) {
	if err := r.resolve(ctx); err != nil {
		return regions.Status{}, err
	}
	job, err := r.jobInfo(ctx, app)
	if err != nil || job == nil {
		return regions.Status{}, err
	}
	st := regions.Status{Slug: job.Meta[MetaSlug]}
	st.Release, _ = strconv.Atoi(job.Meta[MetaRelease])
	st.Running = deref(job.Status) == jobStatusRunning && !deref(job.Stop)
	if st.Running && hasWeb(job) {
		st.URL = r.webURL(ctx, app)
	}
	return st, nil
}

// hasWeb reports whether job runs at least one web allocation.
func hasWeb(job *api.Job) bool {
	for _, g := range job.TaskGroups {
		if deref(g.Name) == pipelines.WebProcess && deref(g.Count) > 0 {
			return true
		}
	}
	return false
}

// LiveURL returns where app's web process answers now: a live (promoted)
// registration's address, or "" when there is none (or the service is in
// Consul, which drover does not read).
func (r *Region) LiveURL(ctx context.Context, app string) (string, error) {
	if err := r.resolve(ctx); err != nil {
		return "", err
	}
	return r.webURL(ctx, app), nil
}

// webURL is where web answers, from Nomad's service catalog; "" when the
// service is registered elsewhere (consul) or not at all. A lookup failure
// is logged, not returned: the URL is a courtesy.
func (r *Region) webURL(ctx context.Context, app string) string {
	regs, ok := r.webRegistrations(ctx, app)
	if !ok {
		return ""
	}
	return r.pickURL(ctx, app, regs)
}

// webRegistrations are app's web service registrations in Nomad's
// catalog, in a stable order; false when the service is registered
// elsewhere or cannot be read (which is logged).
func (r *Region) webRegistrations(ctx context.Context, app string) ([]*api.ServiceRegistration, bool) {
	if p := r.spec.Nomad.ServiceProvider; p != "" && p != DefaultServiceProvider {
		return nil, false
	}
	regs, _, err := r.client.Services().Get(WebServiceName(app), r.queryOpts(ctx))
	if err != nil {
		if !isNotFound(err) {
			r.log.Warn("look up web service", "app", app, "err", err)
		}
		return nil, false
	}
	sort.Slice(regs, func(i, j int) bool { return regs[i].ID < regs[j].ID })
	return regs, true
}

// pickURL is the address among regs that webURL returns.
func (r *Region) pickURL(ctx context.Context, app string, regs []*api.ServiceRegistration) string {
	regs, dropped := r.leaving(ctx, app, regs)
	if live := liveAddress(regs, app); live != "" {
		return live
	}
	if dropped {
		// The only live registrations were leaving: the release that
		// replaces them is promoted, but its client has not re-tagged it
		// yet. Its latest deployment, once successful, says which
		// allocations are the app's now.
		if dep, _, err := r.client.Jobs().LatestDeployment(app, r.queryOpts(ctx)); err == nil && dep != nil && dep.Status == api.DeploymentStatusSuccessful {
			if u := r.deploymentAddress(ctx, app, dep, regs); u != "" {
				return u
			}
		}
	}
	// Registrations made before drover tagged them carry no tags.
	return addressOf(regs, app, func(s *api.ServiceRegistration) bool { return len(s.Tags) == 0 })
}

// leaving drops, when app has more than one registration, those of
// allocations Nomad is stopping, and reports whether it dropped any:
// right after a rollout the previous release's allocations stay
// registered, still tagged live, until they have stopped, and an address
// picked among them would soon refuse connections. When the allocations
// cannot be read, regs stand.
func (r *Region) leaving(ctx context.Context, app string, regs []*api.ServiceRegistration) ([]*api.ServiceRegistration, bool) {
	n := 0
	for _, s := range regs {
		if s.JobID == app {
			n++
		}
	}
	if n < 2 {
		return regs, false
	}
	allocs, _, err := r.client.Jobs().Allocations(app, false, r.queryOpts(ctx))
	if err != nil {
		r.log.Warn("read allocations to pick a live address", "app", app, "err", err)
		return regs, false
	}
	stopping := map[string]bool{}
	for _, a := range allocs {
		if a.DesiredStatus != api.AllocDesiredStatusRun || a.ClientStatus != api.AllocClientStatusRunning {
			stopping[a.ID] = true
		}
	}
	kept := make([]*api.ServiceRegistration, 0, len(regs))
	for _, s := range regs {
		if !stopping[s.AllocID] {
			kept = append(kept, s)
		}
	}
	if len(kept) == 0 {
		return regs, false
	}
	return kept, len(kept) < len(regs)
}

// liveAddress is the first live (promoted, not canary) registration of
// app's web service.
func liveAddress(regs []*api.ServiceRegistration, app string) string {
	return addressOf(regs, app, func(s *api.ServiceRegistration) bool { return slices.Contains(s.Tags, TagLive) })
}

// addressOf is the URL of the first of regs that is app's, has an
// address, and is one keep wants; "" when none is.
func addressOf(regs []*api.ServiceRegistration, app string, keep func(*api.ServiceRegistration) bool) string {
	for _, s := range regs {
		if s.JobID == app && s.Address != "" && s.Port != 0 && keep(s) {
			return fmt.Sprintf("http://%s:%d", s.Address, s.Port)
		}
	}
	return ""
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// blocking runs one blocking query, calling beat every interval until it
// returns, so a caller heartbeats while Nomad holds the query open. beat
// runs on the caller's goroutine.
func blocking[T any](every time.Duration, beat func(), call func() (T, *api.QueryMeta, error)) (T, *api.QueryMeta, error) {
	type result struct {
		v   T
		qm  *api.QueryMeta
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, qm, err := call()
		ch <- result{v, qm, err}
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case res := <-ch:
			return res.v, res.qm, res.err
		case <-t.C:
			beat()
		}
	}
}

// heldOpen is how long a blocking query must have taken to count as held
// open by Nomad, rather than answered at once.
const heldOpen = 250 * time.Millisecond

// nextIndex is the WaitIndex after a blocking query answered at last. When
// the index did not move because Nomad held the query open for its wait,
// the next query may go at once: it blocks too. When it did not move and
// the answer came at once (a server that does not block), it pauses one
// poll interval so the loop never spins; when it went back (a new leader,
// a restored snapshot) it starts over, as Nomad advises. (Pausing after a
// held query too made a deployment that succeeded during the pause wait
// for it: up to a poll interval on every rollout.)
func (r *Region) nextIndex(ctx context.Context, prev uint64, qm *api.QueryMeta) (uint64, error) {
	var last uint64
	if qm != nil {
		last = qm.LastIndex
	}
	if last > prev {
		return last, nil
	}
	if last == prev && qm != nil && qm.RequestTime >= heldOpen {
		return prev, nil
	}
	if err := sleep(ctx, r.poll); err != nil {
		return prev, err
	}
	if last < prev {
		return 0, nil
	}
	return prev, nil
}
