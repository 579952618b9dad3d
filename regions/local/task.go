package local

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/drover/drover/regions"
	"github.com/drover/drover/sandbox"
)

// maxTaskOutput bounds what RunTask keeps of a task's output: the tail,
// where the error usually is.
const maxTaskOutput = 1 << 20

// DefaultTaskTimeout is how long a task runs when Task.Timeout is 0: less
// than the release phase activity's 30 minutes, so a task that hangs ends
// with its output and says why.
const DefaultTaskTimeout = 25 * time.Minute

var errTaskTimeout = errors.New("task time limit")

// RunTask unpacks t's slug into a scratch dir, runs t.Command there (in the
// region's sandbox) with the app's config vars, and returns its exit code and combined output (the
// last 1 MiB). A non-zero exit is a result, not an error. Cancelling ctx
// kills the task and everything it started; RunTask then returns the output
// so far and an error wrapping the context's cause. A task past its time
// limit is killed the same way and is a result: the signal's exit code,
// and a last line of output saying so.
func (r *Region) RunTask(ctx context.Context, t regions.Task) (regions.TaskResult, error) {
	if err := checkApp(t.App); err != nil {
		return regions.TaskResult{}, fmt.Errorf("run task: %w", err)
	}
	name := t.Name
	if name == "" {
		name = "run"
	}
	wrap := func(err error) error {
		return fmt.Errorf("run task %s of %s v%d in region %s: %w", name, t.App, t.Release, r.name, err)
	}
	// Tasks do not take the app's lock: a long task must not hold up a
	// deploy or a status call, and tasks share nothing with running releases.
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return regions.TaskResult{}, wrap(ErrClosed)
	}
	r.tasks.Add(1)
	r.mu.Unlock()
	defer r.tasks.Done()
	ctx, cancel := r.opContext(ctx)
	defer cancel()

	dir, err := os.MkdirTemp(filepath.Join(r.dir, "tasks"), fmt.Sprintf("%s-v%d-", t.App, t.Release))
	if err != nil {
		return regions.TaskResult{}, wrap(err)
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil {
			r.log.Warn("remove task dir", "dir", dir, "error", err)
		}
	}()
	if t.Slug.Path == "" {
		return regions.TaskResult{}, wrap(fmt.Errorf("slug %s has no local path", t.Slug.Digest))
	}
	if err := r.unpack(ctx, t.Slug.Path, dir); err != nil {
		return regions.TaskResult{}, wrap(fmt.Errorf("unpack slug %s: %w", t.Slug.Digest, err))
	}

	limit := cmp.Or(t.Timeout, DefaultTaskTimeout)
	runCtx, stop := context.WithTimeoutCause(ctx, limit, errTaskTimeout)
	defer stop()
	out := &tailBuffer{max: maxTaskOutput}
	cmd, err := r.sandbox.Command(runCtx, sandbox.Spec{
		Args: []string{"sh", "-c", t.Command}, Dir: dir,
		Env: processEnv(t.Env, "DYNO="+name+".1"),
		// Release phases migrate databases elsewhere.
		Network: true,
	})
	if err != nil {
		return regions.TaskResult{}, wrap(err)
	}
	cmd.Stdout = out
	cmd.Stderr = out
	// A background child holding the output open must not keep us waiting.
	cmd.WaitDelay = 2 * time.Second

	log := r.log.With("app", t.App, "release", t.Release, "task", name)
	log.Info("running task")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return regions.TaskResult{}, wrap(err)
	}
	pid := cmd.Process.Pid
	waitErr := cmd.Wait()
	// As on a one-off dyno, nothing outlives the command. The group's
	// number stays reserved while any member is left, so this cannot hit
	// another program's group.
	syscall.Kill(-pid, syscall.SIGKILL)

	if ctx.Err() == nil && errors.Is(context.Cause(runCtx), errTaskTimeout) {
		fmt.Fprintf(out, "\n[drover: task stopped after %s, its time limit]\n", limit)
	}
	res := regions.TaskResult{Output: out.String()}
	if ctx.Err() != nil {
		return res, wrap(context.Cause(ctx))
	}
	ps := cmd.ProcessState
	if ps == nil {
		return res, wrap(waitErr)
	}
	res.ExitCode = exitCode(ps)
	if waitErr != nil && !errors.Is(waitErr, exec.ErrWaitDelay) && !isExitError(waitErr) {
		return res, wrap(waitErr)
	}
	log.Info("task finished", "exit_code", res.ExitCode, "took", time.Since(start).Round(time.Millisecond))
	return res, nil
}

// exitCode is the exit status, or 128+signal for a killed process, as a
// shell reports it.
func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

func isExitError(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}
