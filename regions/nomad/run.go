package nomad

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

var _ regions.Runner = (*Region)(nil)

// RunTaskName is the group and task of a one-off's job.
const RunTaskName = "run"

// RunJobID is the batch job of one-off run.N of app.
func RunJobID(app string, number int) string {
	return app + "-run-" + strconv.Itoa(number)
}

// runHold is how long the task of an attached one-off waits for the
// command drover runs in it through exec: the most a one-off whose
// drover died lingers before Nomad ends it.
const runHold = 12 * time.Hour

// renderRunJob renders one-off o as a batch job: the slug as its
// artifact, restart and reschedule attempts 0, the release's config from
// the job's own variable. A detached one-off's task runs the command; an
// attached one's waits, and the command runs in it through exec, with
// the caller's stdio.
func renderRunJob(in JobInput, o regions.OneOff, attached bool) (*api.Job, error) {
	if err := checkInput(in); err != nil {
		return nil, err
	}
	if o.Number < 1 || o.Command == "" {
		return nil, fmt.Errorf("render run job for %q: a one-off needs a number and a command: %w", o.App, pipelines.ErrInvalid)
	}
	command := o.Command
	if attached {
		command = "exec sleep " + strconv.Itoa(int(runHold.Seconds()))
	}
	job := taskJob(in, RunTaskName, command)
	id := RunJobID(o.App, o.Number)
	job.ID, job.Name = new(id), new(id)
	job.Meta[MetaTask] = RunTaskName
	job.Meta[MetaRun] = strconv.Itoa(o.Number)
	// taskJob named the config variable after the task job's ID.
	job.TaskGroups[0].Tasks[0] = appTask(in, id, RunTaskName, command, map[string]string{"DYNO": o.Dyno()})
	if err := mergeTemplate(job, in.Template); err != nil {
		return nil, err
	}
	return job, nil
}

// MetaRun is the job meta key holding a one-off job's run number.
const MetaRun = "drover.run"

// StartRun runs one-off o as the batch job RunJobID(o.App, o.Number).
// Detached, the task runs the command and its exit code is the task's,
// from its Terminated event. Attached, the command runs in the waiting
// task through the allocation exec API (Allocations().Exec) with stdio,
// and its exit code is exec's; ending ctx ends the exec. Either way the
// job is purged, and its config variable deleted, once the run ends.
func (r *Region) StartRun(ctx context.Context, o regions.OneOff, stdio *regions.Stdio) (func() (int, error), error) {
	if err := r.resolve(ctx); err != nil {
		return nil, err
	}
	env := maps.Clone(o.Env)
	if env == nil {
		env = map[string]string{}
	}
	env["DYNO"] = o.Dyno()
	in := JobInput{Spec: r.spec, Deployment: regions.Deployment{App: o.App, Release: o.Release, Slug: o.Slug, Env: env}, Template: r.tmpl, Update: r.update}
	job, err := renderRunJob(in, o, stdio != nil)
	wrap := func(err error) error {
		return fmt.Errorf("run %s of %s v%d in region %s: %w", o.Dyno(), o.App, o.Release, r.spec.Name, err)
	}
	if err != nil {
		return nil, wrap(err)
	}
	id := *job.ID
	if err := r.writeConfig(ctx, id, o.App, o.Release, 0, env); err != nil {
		return nil, wrap(err)
	}
	if _, err := r.register(ctx, job, 0); err != nil {
		r.deleteConfig(context.WithoutCancel(ctx), id, o.App)
		return nil, wrap(err)
	}
	// Cleaning up must happen even when the caller has gone.
	bg := context.WithoutCancel(ctx)
	purge := func() {
		if _, _, err := r.client.Jobs().Deregister(id, true, r.writeOpts(bg)); err != nil && !isNotFound(err) {
			r.log.Warn("purge one-off job", "job", id, "err", err)
		}
		if err := r.deleteConfig(bg, id, o.App); err != nil {
			r.log.Warn("delete one-off config variable", "job", id, "err", err)
		}
	}
	if stdio == nil {
		return func() (int, error) {
			defer purge()
			alloc, err := r.awaitTaskAlloc(bg, id)
			if err != nil {
				return -1, wrap(err)
			}
			return runExitCode(alloc)
		}, nil
	}
	alloc, err := r.awaitRunAlloc(ctx, id)
	if err != nil {
		purge()
		return nil, wrap(err)
	}
	done := make(chan struct{})
	var code int
	var runErr error
	go func() {
		defer close(done)
		defer purge()
		// The slug's dir, as the task's own processes see it.
		args := pipelines.DynoArgs(`"$NOMAD_TASK_DIR/app"`, o.Command)
		var sizes chan api.TerminalSize
		if stdio.TTY {
			sizes = make(chan api.TerminalSize, 1)
			if stdio.Size.Rows > 0 {
				sizes <- api.TerminalSize{Height: int(stdio.Size.Rows), Width: int(stdio.Size.Cols)}
			}
			if stdio.Resize != nil {
				go func() {
					for sz := range stdio.Resize {
						select {
						case sizes <- api.TerminalSize{Height: int(sz.Rows), Width: int(sz.Cols)}:
						case <-ctx.Done():
							return
						}
					}
				}()
			}
		}
		code, runErr = r.client.Allocations().Exec(ctx, alloc, RunTaskName, stdio.TTY, args, stdio.Stdin, stdio.Stdout, stdio.Stderr, sizes, r.queryOpts(ctx))
		if runErr != nil && ctx.Err() != nil {
			code, runErr = 137, nil // the caller went away: the run was stopped
		}
	}()
	return func() (int, error) {
		<-done
		if runErr != nil {
			return -1, wrap(fmt.Errorf("exec: %w", runErr))
		}
		return code, nil
	}, nil
}

// runExitCode is how a detached one-off's task ended, from its
// Terminated event; a task that never ran is an error saying why.
func runExitCode(alloc *api.Allocation) (int, error) {
	ts := alloc.TaskStates[RunTaskName]
	if ts != nil {
		if term := lastEvent(ts, api.TaskTerminated); term != nil {
			return term.ExitCode, nil
		}
		if m := telling(ts); m != "" {
			return -1, fmt.Errorf("the one-off did not run: %s", m)
		}
	}
	return -1, fmt.Errorf("the one-off did not run: allocation %s %s", alloc.ClientStatus, alloc.ClientDescription)
}

// awaitRunAlloc waits for the one-off job's allocation to run its task,
// and returns it in full; one that ends or fails first is an error.
func (r *Region) awaitRunAlloc(ctx context.Context, id string) (*api.Allocation, error) {
	return r.awaitAlloc(ctx, id, func(a *api.AllocationListStub) (bool, error) {
		ts := a.TaskStates[RunTaskName]
		if a.ClientStatus == api.AllocClientStatusRunning && ts != nil && ts.State == "running" {
			return true, nil
		}
		if terminal(a.ClientStatus) {
			why := a.ClientDescription
			if ts != nil {
				if m := telling(ts); m != "" {
					why = m
				}
			}
			return false, fmt.Errorf("the one-off's task did not start: %s", why)
		}
		return false, nil
	})
}
