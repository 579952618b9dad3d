package nomad

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// RunTask runs t as the batch job TaskJobID(t.App, t.Name, t.Release) and
// waits for its one allocation to finish. A task that ran and exited
// non-zero is a TaskResult, not an error.
//
// It is idempotent: the job ID names the task and release, so a retry finds
// the job a previous attempt registered and waits for it, or takes the
// result of a job that already finished. A task that never ran (its slug
// could not be fetched, the driver failed, its node was lost) is an error;
// its job is purged first so that a retry runs it afresh.
//
// Output is the task's stdout then stderr, keeping the last MaxTaskOutput
// bytes; logs that cannot be read leave it short, not the call failed.
//
// t.Env goes into the job's own variable, ConfigVarPath(job ID), written
// before the job and deleted once its allocation finished.
func (r *Region) RunTask(ctx context.Context, t regions.Task) (regions.TaskResult, error) {
	if err := r.resolve(ctx); err != nil {
		return regions.TaskResult{}, err
	}
	in := JobInput{
		Spec:       r.spec,
		Deployment: regions.Deployment{App: t.App, Release: t.Release, Slug: t.Slug, Env: t.Env},
		Template:   r.tmpl,
		Update:     r.update,
	}
	job, err := renderTaskJob(in, t.Name, t.Command)
	if err != nil {
		return regions.TaskResult{}, fmt.Errorf("run task %s of %s v%d in region %s: %w", t.Name, t.App, t.Release, r.spec.Name, err)
	}
	id := *job.ID
	for attempt := 0; ; attempt++ {
		cur, err := r.jobInfo(ctx, id)
		if err != nil {
			return regions.TaskResult{}, err
		}
		if cur != nil {
			if !managed(cur) {
				return regions.TaskResult{}, notManaged(r, id)
			}
			break // a previous attempt registered it: wait for its result
		}
		if err := r.writeConfig(ctx, id, t.App, t.Release, 0, t.Env); err != nil {
			return regions.TaskResult{}, err
		}
		_, err = r.register(ctx, job, 0)
		if err == nil {
			break
		}
		if !errors.Is(err, pipelines.ErrConflict) || attempt > 0 {
			return regions.TaskResult{}, err
		}
	}

	var live chan *liveLogs
	if t.Output != nil {
		live = make(chan *liveLogs, 1)
		go func() {
			// The task's output as Nomad streams it, once it has an
			// allocation, for whoever follows the task.
			a, err := r.awaitFirstAlloc(ctx, id)
			if err != nil {
				live <- nil
				return
			}
			live <- r.followLogs(ctx, a, t.Name, t.Output)
		}()
	}
	alloc, err := r.awaitTaskAlloc(ctx, id)
	if live != nil {
		if l := <-live; l != nil {
			if err == nil {
				r.drainLogs(ctx, l, alloc, t.Name, buildLogDrain)
			} else {
				l.stop()
			}
		}
	}
	if err != nil {
		return regions.TaskResult{}, err
	}
	// The task ran once and will not run again (no restarts, no
	// reschedules; a retry of a task that never ran writes it anew), so
	// its config vars need not stay in the cluster.
	if err := r.deleteConfig(ctx, id, t.App); err != nil {
		r.log.Warn("delete task config variable", "job", id, "err", err)
	}
	ts := alloc.TaskStates[t.Name]
	var term *api.TaskEvent
	if ts != nil {
		term = lastEvent(ts, api.TaskTerminated)
	}
	if term == nil || alloc.ClientStatus == api.AllocClientStatusLost {
		why := alloc.ClientDescription
		if ts != nil {
			if m := telling(ts); m != "" {
				why = m
			}
		}
		if why == "" {
			why = "allocation " + alloc.ClientStatus
		}
		if _, _, err := r.client.Jobs().Deregister(id, true, r.writeOpts(ctx)); err != nil && !isNotFound(err) {
			r.log.Warn("purge task job that did not run", "job", id, "err", err)
		}
		return regions.TaskResult{}, fmt.Errorf("run task %s of %s v%d in region %s: task did not run: %s", t.Name, t.App, t.Release, r.spec.Name, why)
	}
	return regions.TaskResult{ExitCode: term.ExitCode, Output: r.taskOutput(ctx, alloc, t.Name)}, nil
}

// awaitFirstAlloc waits for the batch job id to have an allocation whose
// task has started (its log exists), and returns it in full.
func (r *Region) awaitFirstAlloc(ctx context.Context, id string) (*api.Allocation, error) {
	return r.awaitAlloc(ctx, id, func(a *api.AllocationListStub) (bool, error) { return taskStarted(a), nil })
}

func taskStarted(a *api.AllocationListStub) bool {
	for _, ts := range a.TaskStates {
		if ts != nil && (ts.State == "running" || ts.State == "dead") {
			return true
		}
	}
	return false
}

// awaitTaskAlloc waits for the newest allocation of the batch job id to
// reach a terminal client status, and returns it in full.
func (r *Region) awaitTaskAlloc(ctx context.Context, id string) (*api.Allocation, error) {
	return r.awaitAlloc(ctx, id, func(a *api.AllocationListStub) (bool, error) { return terminal(a.ClientStatus), nil })
}

// awaitAlloc waits with blocking queries until ready accepts the job's
// newest allocation (or fails it), and returns that allocation in full.
func (r *Region) awaitAlloc(ctx context.Context, id string, ready func(*api.AllocationListStub) (bool, error)) (*api.Allocation, error) {
	var index uint64
	for {
		allocs, qm, err := r.client.Jobs().Allocations(id, false, r.blockingOpts(ctx, index, r.wait))
		if err != nil {
			return nil, r.wrap(ctx, fmt.Sprintf("list allocations of job %q", id), err)
		}
		// Allocations come newest first.
		if len(allocs) > 0 {
			ok, err := ready(allocs[0])
			if err != nil {
				return nil, err
			}
			if ok {
				alloc, _, err := r.client.Allocations().Info(allocs[0].ID, r.queryOpts(ctx))
				if err != nil {
					return nil, r.wrap(ctx, fmt.Sprintf("read allocation %s of job %q", shortID(allocs[0].ID), id), err)
				}
				return alloc, nil
			}
		}
		if index, err = r.nextIndex(ctx, index, qm); err != nil {
			return nil, err
		}
	}
}

func terminal(clientStatus string) bool {
	switch clientStatus {
	case api.AllocClientStatusComplete, api.AllocClientStatusFailed, api.AllocClientStatusLost:
		return true
	}
	return false
}

// taskOutput is stdout then stderr, tail-capped at MaxTaskOutput.
func (r *Region) taskOutput(ctx context.Context, alloc *api.Allocation, task string) string {
	var out []byte
	for _, typ := range []string{api.FSLogNameStdout, api.FSLogNameStderr} {
		s, err := r.readLog(ctx, alloc, task, typ, MaxTaskOutput)
		if err != nil {
			r.log.Warn("read task log", "alloc", alloc.ID, "task", task, "log", typ, "err", err)
		}
		out = append(out, s...)
	}
	if len(out) > MaxTaskOutput {
		out = out[len(out)-MaxTaskOutput:]
	}
	return string(out)
}
