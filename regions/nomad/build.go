package nomad

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// BuildTask names the task group and task of a build job.
const BuildTask = "build"

// Build jobs' limits.
const (
	// buildKillTimeout is how long a build's processes get to stop once
	// drover gives up on it; a build holds nothing worth a clean exit.
	buildKillTimeout = 5 * time.Second
	// buildLogDrain is how long the live log streams may take to deliver
	// the last of a finished build's output.
	buildLogDrain = 5 * time.Second
	// buildCleanupTimeout bounds the purge of a build job, which runs even
	// when the caller's context is done.
	buildCleanupTimeout = 30 * time.Second
)

// BuildJob is one build to run as a Nomad batch job. What the job runs
// (drover's build-slug) and the environment it reads are the caller's: this
// package only places, watches and removes it.
type BuildJob struct {
	Spec pipelines.BuildsSpec
	// ID is unique per build (BuildJobID), so two builds never share a job
	// and a retried build never reads another's result.
	ID     string
	App    string
	Commit string
	// Args follow the command (the image's drover, or Spec.Command).
	Args []string
	Env  map[string]string
	// Secrets become files of the task's secrets directory, secrets/<key>,
	// through a Nomad Variable at nomad/jobs/<ID> that only this job's
	// tasks may read, so they are not in the job spec for anyone who may
	// read jobs. The variable goes with the job. Keys are lowercase
	// letters, digits and '_'.
	Secrets map[string]string
}

// BuildJobResult is what a build job that exited 0 printed.
type BuildJobResult struct {
	// Stdout is the tail of the task's stdout, at most MaxTaskOutput bytes.
	Stdout string
}

var secretKeyRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// BuildJobID is "build-<app>-<commit12>-<nonce>", or without the app when
// there is none.
func BuildJobID(app, commit, nonce string) string {
	c := commit
	if len(c) > 12 {
		c = c[:12]
	}
	if app == "" {
		return "build-" + c + "-" + nonce
	}
	return "build-" + app + "-" + c + "-" + nonce
}

// buildVarPath is where a build job's secrets live: Nomad lets a job's
// tasks read nomad/jobs/<job ID> with their workload identity, and nothing
// else of drover's.
func buildVarPath(id string) string { return "nomad/jobs/" + id }

// RenderBuildJob renders b as the batch job that region spec runs: on the
// build node pool and datacenters, one attempt (a failed build is the
// commit's, not the node's), never rescheduled.
func RenderBuildJob(spec pipelines.RegionSpec, b BuildJob) (*api.Job, error) {
	if !pipelines.ValidName(b.ID) {
		return nil, fmt.Errorf("render build job %q: want an ID of lowercase letters, digits and '-': %w", b.ID, pipelines.ErrInvalid)
	}
	s := b.Spec
	task := &api.Task{
		Name:        BuildTask,
		Driver:      s.BuildDriver(),
		Env:         b.Env,
		KillTimeout: new(buildKillTimeout),
		Resources: &api.Resources{
			CPU:      new(cmp.Or(s.Resources.CPU, pipelines.DefaultBuildCPU)),
			MemoryMB: new(cmp.Or(s.Resources.Memory, pipelines.DefaultBuildMemory)),
		},
	}
	args := append([]string(nil), b.Args...)
	switch task.Driver {
	case pipelines.BuildDriverDocker:
		task.Config = map[string]any{"image": s.Image, "command": "drover", "args": args}
	default:
		task.Config = map[string]any{"command": s.Command, "args": args}
	}
	keys := make([]string, 0, len(b.Secrets))
	for k := range b.Secrets {
		if !secretKeyRE.MatchString(k) {
			return nil, fmt.Errorf("render build job %q: secret %q: want lowercase letters, digits and '_': %w", b.ID, k, pipelines.ErrInvalid)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		task.Templates = append(task.Templates, &api.Template{
			EmbeddedTmpl: new(fmt.Sprintf(`{{ with nomadVar %q }}{{ .%s }}{{ end }}`, buildVarPath(b.ID), k)),
			DestPath:     new("secrets/" + k),
			ChangeMode:   new("noop"),
			Perms:        new("0600"),
		})
	}
	dcs := slices.Clone(s.Datacenters)
	if len(dcs) == 0 {
		dcs = []string{"*"}
	}
	job := &api.Job{
		ID:          new(b.ID),
		Name:        new(b.ID),
		Type:        new(api.JobTypeBatch),
		Region:      new(spec.NomadRegion()),
		Datacenters: dcs,
		Meta: map[string]string{
			MetaTask:      BuildTask,
			MetaCommit:    b.Commit,
			MetaManagedBy: ManagedBy,
		},
		TaskGroups: []*api.TaskGroup{{
			Name:  new(BuildTask),
			Count: new(1),
			Tasks: []*api.Task{task},
			RestartPolicy: &api.RestartPolicy{
				Attempts: new(0),
				Mode:     new("fail"),
			},
			ReschedulePolicy: &api.ReschedulePolicy{
				Attempts:  new(0),
				Unlimited: new(false),
			},
		}},
	}
	if b.App != "" {
		job.Meta[MetaApp] = b.App
	}
	if ns := spec.Nomad.Namespace; ns != "" {
		job.Namespace = new(ns)
	}
	if pool := cmp.Or(s.NodePool, spec.Nomad.NodePool); pool != "" {
		job.NodePool = new(pool)
	}
	return job, nil
}

// RunBuild runs b as a batch job and waits for it, streaming its stdout and
// stderr into out as they are written. It returns the job's stdout when the
// build exited 0, and otherwise an error saying why, from the allocation:
// the exit code and the last line of stderr, out of memory, a driver that
// failed, or no node of the pool able to run it (which fails at once rather
// than waiting for capacity). A build that failed by its own doing matches
// pipelines.ErrInvalid.
//
// The job and its secrets are purged when RunBuild returns, also when ctx
// ends first: a cancelled or timed-out build stops on its node.
func (r *Region) RunBuild(ctx context.Context, b BuildJob, out io.Writer) (BuildJobResult, error) {
	if err := r.resolve(ctx); err != nil {
		return BuildJobResult{}, err
	}
	job, err := RenderBuildJob(r.spec, b)
	if err != nil {
		return BuildJobResult{}, err
	}
	fail := func(err error) (BuildJobResult, error) {
		if ctx.Err() != nil {
			// The job is purged on the way out, which stops the build.
			return BuildJobResult{}, fmt.Errorf("build %s in region %s: build job %q stopped: %w", b.Commit, r.spec.Name, b.ID, context.Cause(ctx))
		}
		return BuildJobResult{}, fmt.Errorf("build %s in region %s: %w", b.Commit, r.spec.Name, err)
	}
	defer r.purgeBuild(ctx, b)
	if len(b.Secrets) > 0 {
		v := &api.Variable{Path: buildVarPath(b.ID), Namespace: r.ns, Items: b.Secrets}
		if _, _, err := r.client.Variables().Create(v, r.writeOpts(ctx)); err != nil {
			return fail(r.wrap(ctx, fmt.Sprintf("write the secrets of build job %q", b.ID), err))
		}
	}
	if _, err := r.register(ctx, job, 0); err != nil {
		return fail(err)
	}
	start := time.Now()
	alloc, err := r.awaitBuildStart(ctx, b.ID)
	if err != nil {
		return fail(err)
	}
	r.log.Debug("build job started", "job", b.ID, "alloc", alloc.ID, "node", alloc.NodeID, "after", time.Since(start))
	logs := r.followLogs(ctx, alloc, BuildTask, out)
	alloc, err = r.awaitAllocDone(ctx, alloc.ID)
	if err != nil {
		logs.stop()
		return fail(err)
	}
	r.log.Debug("build job ended", "job", b.ID, "status", alloc.ClientStatus, "after", time.Since(start))
	r.drainLogs(ctx, logs, alloc, BuildTask, buildLogDrain)
	r.log.Debug("build log drained", "job", b.ID, "after", time.Since(start))

	ts := alloc.TaskStates[BuildTask]
	var term *api.TaskEvent
	if ts != nil {
		term = lastEvent(ts, api.TaskTerminated)
	}
	if alloc.ClientStatus == api.AllocClientStatusComplete && term != nil && term.ExitCode == 0 {
		stdout, err := r.readLog(ctx, alloc, BuildTask, api.FSLogNameStdout, MaxTaskOutput)
		if err != nil {
			return fail(r.wrap(ctx, fmt.Sprintf("read the output of build job %q", b.ID), err))
		}
		return BuildJobResult{Stdout: stdout}, nil
	}
	why := r.explainAlloc(ctx, alloc.Stub())
	switch {
	case alloc.ClientStatus == api.AllocClientStatusLost:
		return fail(fmt.Errorf("build job %q: %s: %w", b.ID, why, regions.ErrUnavailable))
	case term != nil:
		// The build ran and failed: the commit's doing, retrying will not help.
		return fail(fmt.Errorf("build job %q failed: %s: %w", b.ID, why, pipelines.ErrInvalid))
	}
	return fail(fmt.Errorf("build job %q did not run: %s", b.ID, why))
}

// purgeBuild deregisters and purges the build job and deletes its secrets,
// with a context of its own: it runs when the caller's has ended, too.
func (r *Region) purgeBuild(ctx context.Context, b BuildJob) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), buildCleanupTimeout)
	defer cancel()
	if _, _, err := r.client.Jobs().Deregister(b.ID, true, r.writeOpts(ctx)); err != nil && !isNotFound(err) {
		r.log.Warn("purge build job", "job", b.ID, "err", err)
	}
	if len(b.Secrets) > 0 {
		if _, err := r.client.Variables().Delete(buildVarPath(b.ID), r.writeOpts(ctx)); err != nil && !isNotFound(err) {
			r.log.Warn("delete the secrets of build job", "job", b.ID, "path", buildVarPath(b.ID), "err", err)
		}
	}
}

// awaitBuildStart waits for the build job's allocation to leave pending
// (its task started, or failed before starting). A job Nomad cannot place
// fails here at once, naming why, instead of waiting for a node to join.
func (r *Region) awaitBuildStart(ctx context.Context, id string) (*api.Allocation, error) {
	var index uint64
	for {
		// Placement failures do not touch the allocations Nomad blocks on,
		// so the wait is short until an allocation exists.
		allocs, qm, err := r.client.Jobs().Allocations(id, false, r.blockingOpts(ctx, index, r.poll))
		if err != nil {
			return nil, r.wrap(ctx, fmt.Sprintf("list allocations of build job %q", id), err)
		}
		if len(allocs) > 0 {
			a := allocs[0]
			if a.ClientStatus != api.AllocClientStatusPending {
				alloc, _, err := r.client.Allocations().Info(a.ID, r.queryOpts(ctx))
				if err != nil {
					return nil, r.wrap(ctx, fmt.Sprintf("read allocation %s of build job %q", shortID(a.ID), id), err)
				}
				return alloc, nil
			}
		} else if why, err := r.placementFailure(ctx, id); err != nil {
			return nil, err
		} else if why != "" {
			return nil, fmt.Errorf("no node can run build job %q: %s: %w", id, why, pipelines.ErrInvalid)
		}
		if index, err = r.nextIndex(ctx, index, qm); err != nil {
			return nil, err
		}
	}
}

// placementFailure says why Nomad could not place job id, from its
// evaluations' failed allocation metrics; "" while none failed.
func (r *Region) placementFailure(ctx context.Context, id string) (string, error) {
	evals, _, err := r.client.Jobs().Evaluations(id, r.queryOpts(ctx))
	if err != nil {
		return "", r.wrap(ctx, fmt.Sprintf("list evaluations of build job %q", id), err)
	}
	for _, ev := range evals {
		for _, m := range ev.FailedTGAllocs {
			if m != nil {
				return placementSummary(m), nil
			}
		}
	}
	return "", nil
}

// placementSummary is the gist of a failed placement, in the words of
// `nomad job status`: how many nodes were looked at and what ruled them out.
func placementSummary(m *api.AllocationMetric) string {
	if m.NodesEvaluated == 0 {
		return "no ready node in the build node pool and datacenters (check builds.node_pool and builds.datacenters, and that the build nodes are up)"
	}
	parts := []string{fmt.Sprintf("%d of %d nodes filtered out", m.NodesFiltered, m.NodesEvaluated)}
	add := func(what string, counts map[string]int) {
		keys := make([]string, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %q filtered %d", what, k, counts[k]))
		}
	}
	add("class", m.ClassFiltered)
	add("constraint", m.ConstraintFiltered)
	if m.NodesExhausted > 0 {
		parts = append(parts, fmt.Sprintf("%d nodes exhausted", m.NodesExhausted))
		add("dimension", m.DimensionExhausted)
	}
	return strings.Join(parts, "; ")
}

// awaitAllocDone waits with blocking queries for allocation id to reach a
// terminal client status.
func (r *Region) awaitAllocDone(ctx context.Context, id string) (*api.Allocation, error) {
	var index uint64
	for {
		alloc, qm, err := r.client.Allocations().Info(id, r.blockingOpts(ctx, index, r.wait))
		if err != nil {
			return nil, r.wrap(ctx, fmt.Sprintf("read allocation %s", shortID(id)), err)
		}
		if terminal(alloc.ClientStatus) {
			return alloc, nil
		}
		if index, err = r.nextIndex(ctx, index, qm); err != nil {
			return nil, err
		}
	}
}

// liveLogs is the following of a task's stdout and stderr into one writer.
type liveLogs struct {
	cancel chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	mu     sync.Mutex
	got    map[string]int64 // bytes delivered, by log type
}

func (l *liveLogs) stop() {
	l.once.Do(func() { close(l.cancel) })
	l.wg.Wait()
}

func (l *liveLogs) delivered(typ string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.got[typ]
}

// drain lets the streams of a finished task deliver the rest of its logs,
// then stops them: Nomad keeps a followed log open after its task ends, so
// drain waits until as many bytes arrived as the task's log files hold, or
// for d at most.
func (r *Region) drainLogs(ctx context.Context, l *liveLogs, alloc *api.Allocation, task string, d time.Duration) {
	defer l.stop()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	files, _, err := r.client.AllocFS().List(alloc, "alloc/logs", r.queryOpts(ctx))
	if err != nil {
		r.log.Debug("list build logs", "alloc", alloc.ID, "err", err)
		return
	}
	want := map[string]int64{}
	for _, f := range files {
		for _, typ := range []string{api.FSLogNameStdout, api.FSLogNameStderr} {
			if strings.HasPrefix(f.Name, task+"."+typ+".") {
				want[typ] += f.Size
			}
		}
	}
	for {
		if l.delivered(api.FSLogNameStdout) >= want[api.FSLogNameStdout] && l.delivered(api.FSLogNameStderr) >= want[api.FSLogNameStderr] {
			return
		}
		if sleep(ctx, 50*time.Millisecond) != nil {
			r.log.Debug("build log streams did not catch up", "alloc", alloc.ID)
			return
		}
	}
}

// followLogs copies the build task's stdout and stderr into out as Nomad
// streams them. Output that cannot be streamed is missed, not an error:
// the build's result does not depend on it.
func (r *Region) followLogs(ctx context.Context, alloc *api.Allocation, task string, out io.Writer) *liveLogs {
	l := &liveLogs{cancel: make(chan struct{}), got: map[string]int64{}}
	for _, typ := range []string{api.FSLogNameStdout, api.FSLogNameStderr} {
		frames, errCh := r.client.AllocFS().Logs(alloc, true, task, typ, api.OriginStart, 0, l.cancel, r.queryOpts(ctx))
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case f, ok := <-frames:
					if !ok {
						return
					}
					if len(f.Data) > 0 {
						l.mu.Lock()
						out.Write(f.Data)
						l.got[typ] += int64(len(f.Data))
						l.mu.Unlock()
					}
				case err := <-errCh:
					if err != nil && !errors.Is(err, context.Canceled) {
						r.log.Debug("follow build log", "alloc", alloc.ID, "log", typ, "err", err)
					}
					return
				case <-l.cancel:
					return
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	return l
}
