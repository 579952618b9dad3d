package nomad

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// lookupPolls is how many poll intervals Deploy waits for Nomad to create the
// deployment of a registered version before it also looks at allocations:
// Nomad makes no deployment when nothing rolls (every count 0, or the
// registered spec was unchanged).
const lookupPolls = 5

// Deploy registers d's job and watches its Nomad deployment to the end.
// Before registering, it writes d's config vars into the job's variable
// (see writeConfig), which the new version's tasks read.
//
// It is idempotent: when the job already carries d's release and slug and
// that version's deployment succeeded, it returns at once without
// registering; when that deployment is still running, it watches it.
// Registration enforces the job modify index read just before, so two
// drovers cannot overwrite each other unseen: a lost race is retried once,
// then returned as pipelines.ErrConflict.
//
// Errors: a slug without URL, or a job Nomad rejects, matches
// pipelines.ErrInvalid; an unreachable region matches regions.ErrUnavailable;
// a job of that name not made by drover matches pipelines.ErrConflict; a
// deployment that failed or was cancelled is a *regions.DeployError whose
// Reason says why, from the failed allocations' task events and stderr.
func (r *Region) Deploy(ctx context.Context, d regions.Deployment) (regions.Result, error) {
	if err := r.resolve(ctx); err != nil {
		return regions.Result{}, err
	}
	progress := d.Progress
	if progress == nil {
		progress = func(string) {}
	}
	job, err := r.renderJob(ctx, "deploy", d)
	if err != nil {
		return regions.Result{}, err
	}

	var resp *api.JobRegisterResponse
	for attempt := 0; ; attempt++ {
		cur, err := r.jobInfo(ctx, d.App)
		if err != nil {
			return regions.Result{}, err
		}
		if cur != nil && !managed(cur) {
			return regions.Result{}, notManaged(r, d.App)
		}
		if cur != nil && carries(cur, d) {
			dep, err := r.deploymentOf(ctx, d.App, deref(cur.Version))
			if err != nil {
				return regions.Result{}, err
			}
			if dep != nil {
				switch dep.Status {
				case api.DeploymentStatusSuccessful:
					progress(fmt.Sprintf("v%d already runs", d.Release))
					return r.result(ctx, d, dep), nil
				case api.DeploymentStatusFailed, api.DeploymentStatusCancelled:
					// Register again below: Nomad decides whether that
					// changes anything, and the watch reports the outcome.
				default:
					progress(fmt.Sprintf("v%d is already rolling out", d.Release))
					return r.watch(ctx, d, dep, progress)
				}
			}
		}
		var index uint64
		var running int // the release auto_revert returns to
		if cur != nil {
			index = deref(cur.JobModifyIndex)
			running, _ = strconv.Atoi(cur.Meta[MetaRelease])
		}
		// The new version's tasks read their config from the variable,
		// so it is written first.
		if err := r.writeConfig(ctx, d.App, d.App, d.Release, running, d.Env); err != nil {
			return regions.Result{}, err
		}
		progress(fmt.Sprintf("registering v%d", d.Release))
		resp, err = r.register(ctx, job, index)
		if err == nil {
			break
		}
		if errors.Is(err, pipelines.ErrConflict) && attempt == 0 {
			r.log.Info("job changed while registering; reading it again", "app", d.App, "err", err)
			continue
		}
		return regions.Result{}, err
	}

	// Which version did that register make? Nomad keeps the version when
	// the spec did not change, so read it back rather than guess.
	cur, err := r.jobInfo(ctx, d.App)
	if err != nil {
		return regions.Result{}, err
	}
	if cur == nil || !carries(cur, d) || deref(cur.JobModifyIndex) < resp.JobModifyIndex {
		return regions.Result{}, fmt.Errorf("deploy %s v%d in region %s: job changed right after it was registered: %w",
			d.App, d.Release, r.spec.Name, pipelines.ErrConflict)
	}
	return r.awaitRollout(ctx, d, cur, progress)
}

// renderJob renders the job Deploy registers for d, so Plan plans exactly
// that job; verb names the caller in errors. A slug without URL, or a
// template or deployment that does not render, matches pipelines.ErrInvalid.
func (r *Region) renderJob(ctx context.Context, verb string, d regions.Deployment) (*api.Job, error) {
	if d.Slug.URL == "" {
		return nil, fmt.Errorf("%s %s v%d in region %s: slug has no URL; Nomad clients download slugs over HTTP (set slug_url): %w",
			verb, d.App, d.Release, r.spec.Name, pipelines.ErrInvalid)
	}
	tmpl, err := r.jobTemplate(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("%s %s v%d in region %s: %w", verb, d.App, d.Release, r.spec.Name, err)
	}
	job, err := Render(JobInput{Spec: r.spec, Deployment: d, Commit: d.Commit, Template: tmpl, Update: r.update})
	if err != nil {
		return nil, fmt.Errorf("%s %s v%d in region %s: %w", verb, d.App, d.Release, r.spec.Name, err)
	}
	return job, nil
}

// carries reports whether job runs d's release and slug, and is not stopped.
func carries(job *api.Job, d regions.Deployment) bool {
	return job.Meta[MetaRelease] == strconv.Itoa(d.Release) && job.Meta[MetaSlug] == d.Slug.Digest && !deref(job.Stop)
}

// deploymentOf returns the deployment of version of the job, or nil.
func (r *Region) deploymentOf(ctx context.Context, app string, version uint64) (*api.Deployment, error) {
	dep, _, err := r.client.Jobs().LatestDeployment(app, r.queryOpts(ctx))
	if err != nil && !isNotFound(err) {
		return nil, r.wrap(ctx, fmt.Sprintf("read deployment of job %q", app), err)
	}
	return r.pickDeployment(ctx, app, version, dep)
}

// pickDeployment returns latest if it tracks version, or, when a later
// version already superseded it (an auto-revert does that), the deployment
// of version from the job's list.
func (r *Region) pickDeployment(ctx context.Context, app string, version uint64, latest *api.Deployment) (*api.Deployment, error) {
	if latest == nil || latest.JobVersion < version {
		return nil, nil
	}
	if latest.JobVersion == version {
		return latest, nil
	}
	deps, _, err := r.client.Jobs().Deployments(app, false, r.queryOpts(ctx))
	if err != nil {
		return nil, r.wrap(ctx, fmt.Sprintf("list deployments of job %q", app), err)
	}
	for _, dep := range deps {
		if dep.JobVersion == version {
			return dep, nil
		}
	}
	return nil, nil
}

// awaitRollout waits for the deployment of job's version and watches it.
// When Nomad makes none within lookupPolls poll intervals, it also accepts
// the version's allocations all running as success, and a failed one as
// failure.
func (r *Region) awaitRollout(ctx context.Context, d regions.Deployment, job *api.Job, progress func(string)) (regions.Result, error) {
	version := deref(job.Version)
	msg := fmt.Sprintf("waiting for Nomad to schedule v%d (job version %d)", d.Release, version)
	progress(msg)
	beat := func() { progress(msg) }
	lookupUntil := time.Now().Add(lookupPolls * r.poll)
	var index uint64
	for {
		latest, qm, err := blocking(r.poll, beat, func() (*api.Deployment, *api.QueryMeta, error) {
			return r.client.Jobs().LatestDeployment(d.App, r.blockingOpts(ctx, index, r.poll))
		})
		if err != nil && !isNotFound(err) {
			return regions.Result{}, r.wrap(ctx, fmt.Sprintf("read deployment of job %q", d.App), err)
		}
		dep, err := r.pickDeployment(ctx, d.App, version, latest)
		if err != nil {
			return regions.Result{}, err
		}
		if dep != nil {
			return r.watch(ctx, d, dep, progress)
		}
		if time.Now().After(lookupUntil) {
			done, msg2, err := r.allocsSettled(ctx, d, job)
			if err != nil || done {
				if done {
					return r.result(ctx, d, nil), nil
				}
				return regions.Result{}, err
			}
			msg = msg2
			progress(msg)
		}
		if index, err = r.nextIndex(ctx, index, qm); err != nil {
			return regions.Result{}, err
		}
	}
}

// allocsSettled judges a version Nomad made no deployment for by its
// allocations: done when every group runs its count, a *regions.DeployError
// when one failed, else a progress message.
func (r *Region) allocsSettled(ctx context.Context, d regions.Deployment, job *api.Job) (bool, string, error) {
	allocs, _, err := r.client.Jobs().Allocations(d.App, false, r.queryOpts(ctx))
	if err != nil {
		return false, "", r.wrap(ctx, fmt.Sprintf("list allocations of job %q", d.App), err)
	}
	version := deref(job.Version)
	running := map[string]int{}
	var failed []*api.AllocationListStub
	for _, a := range allocs {
		if a.JobVersion != version || a.DesiredStatus != api.AllocDesiredStatusRun {
			continue
		}
		switch a.ClientStatus {
		case api.AllocClientStatusRunning:
			running[a.TaskGroup]++
		case api.AllocClientStatusFailed, api.AllocClientStatusLost:
			failed = append(failed, a)
		}
	}
	if len(failed) > 0 {
		return false, "", r.deployError(d, "allocations failed", r.failureSummary(ctx, failed))
	}
	done := true
	var parts []string
	for _, g := range job.TaskGroups {
		want := deref(g.Count)
		if running[deref(g.Name)] < want {
			done = false
		}
		parts = append(parts, fmt.Sprintf("%s: %d/%d running", deref(g.Name), running[deref(g.Name)], want))
	}
	return done, strings.Join(parts, ", "), nil
}

// failFastWait bounds each wait on a running deployment, so the new
// allocations' task events are read at least this often: a task that
// exits before it is healthy fails the region within seconds, not at the
// progress deadline.
const failFastWait = 3 * time.Second

// watch follows dep with blocking queries until it succeeds, fails or is
// cancelled, reporting each group's healthy count. Between waits it reads
// the deployment's allocations: one whose task exited, or that failed,
// before it was healthy fails the deployment through the API at once (so
// Nomad's restarts and reschedules do not retry it until the deadline),
// and auto_revert takes its canaries away; the old allocations never
// stopped serving.
func (r *Region) watch(ctx context.Context, d regions.Deployment, dep *api.Deployment, progress func(string)) (regions.Result, error) {
	index := dep.ModifyIndex
	checks := checkWatch{}
	for {
		switch dep.Status {
		case api.DeploymentStatusSuccessful:
			progress(deploymentProgress(dep))
			return r.result(ctx, d, dep), nil
		case api.DeploymentStatusFailed, api.DeploymentStatusCancelled:
			return regions.Result{}, r.deploymentFailure(ctx, d, dep)
		}
		allocs, _, err := r.client.Deployments().Allocations(dep.ID, r.queryOpts(ctx))
		if err != nil {
			return regions.Result{}, r.wrap(ctx, fmt.Sprintf("list allocations of deployment %s", shortID(dep.ID)), err)
		}
		if failing := failingAllocs(allocs); len(failing) > 0 {
			return regions.Result{}, r.failDeployment(ctx, d, dep, r.explainAllocs(ctx, failing))
		}
		if lines := r.failingChecks(ctx, allocs, checks); len(lines) > 0 {
			return regions.Result{}, r.failDeployment(ctx, d, dep, lines)
		}
		r.promoteWhenHealthy(ctx, dep, allocs)
		msg := deploymentProgress(dep)
		progress(msg)
		next, qm, err := blocking(r.poll, func() { progress(msg) }, func() (*api.Deployment, *api.QueryMeta, error) {
			return r.client.Deployments().Info(dep.ID, r.blockingOpts(ctx, index, min(r.wait, failFastWait)))
		})
		if err != nil {
			return regions.Result{}, r.wrap(ctx, fmt.Sprintf("watch deployment %s of job %q", shortID(dep.ID), d.App), err)
		}
		if index, err = r.nextIndex(ctx, index, qm); err != nil {
			return regions.Result{}, err
		}
		if next != nil {
			dep = next
		}
	}
}

// failingAllocs returns the allocations of a deployment that are not
// healthy yet and already show a failure: a task that exited with an
// error or a signal (even one Nomad will restart), a failed task, or a
// failed or lost allocation.
func failingAllocs(allocs []*api.AllocationListStub) []*api.AllocationListStub {
	var out []*api.AllocationListStub
	for _, a := range allocs {
		if healthy(a) {
			continue
		}
		if allocFailed(a) || crashed(a) {
			out = append(out, a)
		}
	}
	return out
}

func healthy(a *api.AllocationListStub) bool {
	return a.DeploymentStatus != nil && a.DeploymentStatus.Healthy != nil && *a.DeploymentStatus.Healthy
}

// promoteWhenHealthy promotes dep as soon as every group's canaries are
// healthy, rather than when Nomad's deployment watcher next looks; Nomad
// would auto-promote it too, so a failed call is only logged.
func (r *Region) promoteWhenHealthy(ctx context.Context, dep *api.Deployment, allocs []*api.AllocationListStub) {
	waiting := false
	healthyCanaries := map[string]int{}
	for _, a := range allocs {
		if a.DeploymentStatus != nil && a.DeploymentStatus.Canary && healthy(a) && a.DesiredStatus == api.AllocDesiredStatusRun {
			healthyCanaries[a.TaskGroup]++
		}
	}
	for name, g := range dep.TaskGroups {
		if g.DesiredCanaries == 0 {
			continue
		}
		if g.Promoted {
			return
		}
		waiting = true
		if healthyCanaries[name] < g.DesiredCanaries {
			return
		}
	}
	if !waiting {
		return
	}
	if _, _, err := r.client.Deployments().PromoteAll(dep.ID, r.writeOpts(ctx)); err != nil {
		r.log.Debug("promote deployment", "deployment", dep.ID, "err", err)
	}
}

// crashed reports whether a task of a exited with an error or a signal.
func crashed(a *api.AllocationListStub) bool {
	for _, ts := range a.TaskStates {
		if ts == nil {
			continue
		}
		if e := lastEvent(ts, api.TaskTerminated); e != nil && (e.ExitCode != 0 || e.Signal != 0) {
			return true
		}
	}
	return false
}

// failDeployment fails dep through Nomad's API, so Nomad stops placing and
// restarting its allocations and reverts the job, and says why (lines).
func (r *Region) failDeployment(ctx context.Context, d regions.Deployment, dep *api.Deployment, lines []string) error {
	if _, _, err := r.client.Deployments().Fail(dep.ID, r.writeOpts(ctx)); err != nil {
		r.log.Warn("fail deployment", "deployment", dep.ID, "err", err)
	}
	return r.deployError(d, fmt.Sprintf("v%d failed before it was healthy", d.Release), lines)
}

// explainAllocs says, once per group, why its failing allocation failed,
// from its task events and stderr.
func (r *Region) explainAllocs(ctx context.Context, failing []*api.AllocationListStub) []string {
	var lines []string
	explained := map[string]bool{}
	for _, a := range failing {
		if !explained[a.TaskGroup] {
			explained[a.TaskGroup] = true
			lines = append(lines, a.TaskGroup+": "+r.explainAlloc(ctx, a))
		}
	}
	sort.Strings(lines)
	return lines
}

// checkFailures is how many check results in a row, each an answer with
// an error status, fail a new allocation before its healthy deadline. A
// process that is not listening yet (connection refused) is booting, and
// gets the whole deadline.
const checkFailures = 3

// checkWatch counts, per allocation and check, the failed results in a
// row seen so far.
type checkWatch map[string]*checkRun

type checkRun struct {
	last   int64 // timestamp of the last result counted
	failed int
	status AllocCheck
}

// AllocCheck is the part of a check result a failure reports.
type AllocCheck struct {
	Code   int
	Output string
}

// failingChecks reads the checks of the not-yet-healthy running
// allocations (Nomad's own service checks; Consul's are not read) and
// returns, per group, why one failed checkFailures times in a row.
func (r *Region) failingChecks(ctx context.Context, allocs []*api.AllocationListStub, w checkWatch) []string {
	if p := r.spec.Nomad.ServiceProvider; p != "" && p != DefaultServiceProvider {
		return nil
	}
	var lines []string
	explained := map[string]bool{}
	for _, a := range allocs {
		if healthy(a) || a.ClientStatus != api.AllocClientStatusRunning || a.TaskGroup != pipelines.WebProcess {
			continue
		}
		statuses, err := r.client.Allocations().Checks(a.ID, r.queryOpts(ctx))
		if err != nil {
			r.log.Debug("read checks", "alloc", a.ID, "err", err)
			continue
		}
		for id, st := range statuses {
			run := w[a.ID+"/"+id]
			if run == nil {
				run = &checkRun{}
				w[a.ID+"/"+id] = run
			}
			if st.Timestamp == run.last {
				continue
			}
			run.last = st.Timestamp
			switch {
			case st.Status == "success", st.StatusCode == 0:
				run.failed = 0
			case st.Status == "failure":
				run.failed++
				run.status = AllocCheck{Code: st.StatusCode, Output: strings.TrimSpace(st.Output)}
			}
			if run.failed >= checkFailures && !explained[a.TaskGroup] {
				explained[a.TaskGroup] = true
				msg := fmt.Sprintf("%s: its HTTP check failed %d times in a row: HTTP %d", a.TaskGroup, run.failed, run.status.Code)
				if out := firstLine(run.status.Output); out != "" {
					msg += ": " + out
				}
				lines = append(lines, msg)
			}
		}
	}
	sort.Strings(lines)
	return lines
}

// firstLine is s's first line, cut to a sentence's length.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	if len(line) > 200 {
		line = line[:200] + "…"
	}
	return strings.TrimSpace(line)
}

// deploymentProgress says how far each group is, e.g. "web: 1/2 healthy".
func deploymentProgress(dep *api.Deployment) string {
	groups := make([]string, 0, len(dep.TaskGroups))
	for g := range dep.TaskGroups {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	parts := make([]string, 0, len(groups))
	for _, g := range groups {
		s := dep.TaskGroups[g]
		p := fmt.Sprintf("%s: %d/%d healthy", g, s.HealthyAllocs, s.DesiredTotal)
		if s.UnhealthyAllocs > 0 {
			p += fmt.Sprintf(", %d unhealthy", s.UnhealthyAllocs)
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "deployment " + shortID(dep.ID) + " " + dep.Status
	}
	return strings.Join(parts, ", ")
}

// result is the Result of a successful rollout; dep is nil when Nomad made
// no deployment.
func (r *Region) result(ctx context.Context, d regions.Deployment, dep *api.Deployment) regions.Result {
	msg := fmt.Sprintf("v%d running in %s", d.Release, r.spec.Name)
	if dep != nil {
		msg += fmt.Sprintf(" (deployment %s)", shortID(dep.ID))
	}
	res := regions.Result{Message: msg}
	if d.Formation == nil || d.Formation[pipelines.WebProcess] > 0 {
		if _, ok := d.Procfile.Command(pipelines.WebProcess); ok {
			// Behind the stage's ingress the app answers at its URL;
			// otherwise at a live registration's address.
			res.URL = d.URL
			if res.URL == "" {
				res.URL = r.deployedURL(ctx, d.App, dep)
			}
		}
	}
	return res
}

// deployedURL is where the release dep rolled out answers: a
// registration of one of dep's own running web allocations. Right after
// a blue/green promotion the new allocations can still be registered
// with their canary tags (their client re-registers them a moment
// later) while the previous release's, still tagged live, are stopping:
// picking by tag alone then gave the old address, which refused
// connections seconds later (seen in the contract suite's logs test).
// dep succeeded, so every allocation of it is promoted. Without dep, or
// when its allocations cannot be read, the live registration stands.
func (r *Region) deployedURL(ctx context.Context, app string, dep *api.Deployment) string {
	regs, ok := r.webRegistrations(ctx, app)
	if !ok {
		return ""
	}
	if dep != nil {
		if u := r.deploymentAddress(ctx, app, dep, regs); u != "" {
			return u
		}
	}
	return r.pickURL(ctx, app, regs)
}

// deploymentAddress is the address of the first of regs that belongs to
// one of dep's running web allocations, or "".
func (r *Region) deploymentAddress(ctx context.Context, app string, dep *api.Deployment, regs []*api.ServiceRegistration) string {
	allocs, _, err := r.client.Deployments().Allocations(dep.ID, r.queryOpts(ctx))
	if err != nil {
		r.log.Warn("read the deployment's allocations to pick its address", "app", app, "deployment", dep.ID, "err", err)
		return ""
	}
	ours := map[string]bool{}
	for _, a := range allocs {
		if a.TaskGroup == pipelines.WebProcess && a.DesiredStatus == api.AllocDesiredStatusRun && a.ClientStatus == api.AllocClientStatusRunning {
			ours[a.ID] = true
		}
	}
	return addressOf(regs, app, func(s *api.ServiceRegistration) bool { return ours[s.AllocID] })
}

// deploymentFailure explains a failed or cancelled deployment.
func (r *Region) deploymentFailure(ctx context.Context, d regions.Deployment, dep *api.Deployment) error {
	head := dep.StatusDescription
	if head == "" {
		head = "deployment " + dep.Status
	}
	allocs, _, err := r.client.Deployments().Allocations(dep.ID, r.queryOpts(ctx))
	if err != nil {
		r.log.Warn("list allocations of failed deployment", "deployment", dep.ID, "err", err)
	}
	return r.deployError(d, head, r.failureSummary(ctx, allocs))
}

func (r *Region) deployError(d regions.Deployment, head string, lines []string) *regions.DeployError {
	reason := head
	if len(lines) > 0 {
		reason += ": " + strings.Join(lines, "; ")
	}
	return &regions.DeployError{Region: r.spec.Name, App: d.App, Release: d.Release, Reason: reason}
}

// shortID is the first block of a UUID, as the nomad CLI shows it.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
