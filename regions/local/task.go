package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/drover/drover/regions"
)

// maxTaskOutput bounds what RunTask keeps of a task's output: the tail,
// where the error usually is.
const maxTaskOutput = 1 << 20

// RunTask unpacks t's slug into a scratch dir, runs t.Command there with the
// app's config vars, and returns its exit code and combined output (the
// last 1 MiB). A non-zero exit is a result, not an error. Cancelling ctx
// kills the task and everything it started; RunTask then returns the output
// so far and an error wrapping the context's cause.
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

	out := &tailBuffer{max: maxTaskOutput}
	cmd := exec.CommandContext(ctx, "sh", "-c", t.Command)
	cmd.Dir = dir
	cmd.Env = processEnv(t.Env, "DYNO="+name+".1")
	cmd.Stdout = out
	cmd.Stderr = out
	// Its own group, so cancelling kills what the command started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
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
