package local

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drover/drover/pipelines"
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

// RunTask unpacks t's slug into the task's own dir, runs t.Command there
// (in the region's sandbox) with the app's config vars, and returns its
// exit code and combined output (the last 1 MiB). A non-zero exit is a
// result, not an error.
//
// A task runs at most once, across drover's restarts: it is detached from
// drover, writes its output and exit code into its dir (tasks/<app>-v<N>-
// <name or ID>), and records its process there. A retry (an activity
// retried after drover was killed) finds that record: it takes the exit
// code of a task that finished, waits for one still running, and for one
// that died without finishing (stopped with drover, or killed) reports an
// interrupted run rather than starting it again.
//
// Cancelling ctx kills the task and everything it started; RunTask then
// returns the output so far and an error wrapping the context's cause. A
// task past its time limit is killed the same way and is a result: the
// signal's exit code, and a last line of output saying so.
func (r *Region) RunTask(ctx context.Context, t regions.Task) (regions.TaskResult, error) {
	if err := checkApp(t.App); err != nil {
		return regions.TaskResult{}, fmt.Errorf("run task: %w", err)
	}
	name := cmp.Or(t.Name, "run")
	key := cmp.Or(t.ID, name)
	if !taskKeyRE.MatchString(key) {
		return regions.TaskResult{}, fmt.Errorf("run task %q: want lowercase letters, digits, '-' and '_': %w", key, pipelines.ErrInvalid)
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

	st := taskState{dir: filepath.Join(r.dir, "tasks", fmt.Sprintf("%s-v%d-%s", t.App, t.Release, key))}
	limit := cmp.Or(t.Timeout, DefaultTaskTimeout)
	log := r.log.With("app", t.App, "release", t.Release, "task", name)
	if res, found, err := st.result(); found || err != nil {
		log.Info("task had finished before drover restarted; taking its result", "exit_code", res.ExitCode)
		return res, err
	}
	if pid, started, ok := st.process(); ok {
		if !st.alive(pid, started) {
			log.Warn("task was interrupted before it finished; not running it again")
			return st.interrupted(), nil
		}
		log.Info("adopting a task that outlived an earlier drover", "pid", pid)
		return st.wait(ctx, pid, started, limit, t.Output, wrap)
	}

	if err := os.RemoveAll(st.dir); err != nil {
		return regions.TaskResult{}, wrap(err)
	}
	if t.Slug.Path == "" {
		return regions.TaskResult{}, wrap(fmt.Errorf("slug %s has no local path", t.Slug.Digest))
	}
	if err := r.unpackSlug(ctx, t.Slug, st.app()); err != nil {
		return regions.TaskResult{}, wrap(err)
	}
	out, err := os.Create(st.output())
	if err != nil {
		return regions.TaskResult{}, wrap(err)
	}
	defer out.Close()
	// The wrapper shell records the command's exit code in the task's own
	// dir (its working dir, whatever the command cds to), so a drover
	// started later can read how a task it did not start ended. The
	// command starts as a dyno does (pipelines.DynoScript).
	cmd, err := r.sandbox.Command(ctx, sandbox.Spec{
		Args: []string{"sh", "-c", `sh -c "$1" sh "$2"; echo $? > ` + exitFile, "sh", pipelines.DynoScript("."), t.Command}, Dir: st.app(),
		Env: processEnv(t.Env, "DYNO="+name+".1"),
		// Release phases migrate databases elsewhere.
		Network: true,
		// It outlives a drover killed mid-task, to be adopted.
		Detach: true,
	})
	if err != nil {
		return regions.TaskResult{}, wrap(err)
	}
	// Only RunTask stops the task: on cancel, on its limit, or when done.
	cmd.Cancel = func() error { return nil }
	cmd.Stdout, cmd.Stderr = out, out
	log.Info("running task")
	if err := cmd.Start(); err != nil {
		return regions.TaskResult{}, wrap(err)
	}
	pid := cmd.Process.Pid
	stat, _ := readProcStat(pid)
	if err := st.record(pid, stat.start); err != nil {
		syscall.Kill(-pid, syscall.SIGKILL)
		cmd.Wait()
		return regions.TaskResult{}, wrap(err)
	}
	// Reap it as our child; the state in its dir is what says how it ended.
	go cmd.Wait()
	return st.wait(ctx, pid, stat.start, limit, t.Output, wrap)
}

// taskKeyRE is what a task's name or ID may be: it names a directory.
var taskKeyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// exitFile is where a task's wrapper writes its command's exit code,
// relative to the task's working dir.
const exitFile = ".drover-task-exit"

// taskState is one task's dir: the unpacked slug it runs in (app), its
// output, its process and, once it ended, its exit code.
type taskState struct{ dir string }

func (s taskState) app() string      { return filepath.Join(s.dir, "app") }
func (s taskState) output() string   { return filepath.Join(s.dir, "output") }
func (s taskState) procFile() string { return filepath.Join(s.dir, "process") }

// record notes the task's process (pid and kernel start time, so a reused
// pid is not taken for it).
func (s taskState) record(pid int, started uint64) error {
	return writeFileAtomic(s.procFile(), fmt.Appendf(nil, "%d %d\n", pid, started))
}

// process reads the recorded process, if the task was started.
func (s taskState) process() (pid int, started uint64, ok bool) {
	b, err := os.ReadFile(s.procFile())
	if err != nil {
		return 0, 0, false
	}
	if _, err := fmt.Sscanf(string(b), "%d %d", &pid, &started); err != nil || pid <= 0 {
		return 0, 0, false
	}
	return pid, started, true
}

// alive reports whether the recorded process still runs, as itself.
func (s taskState) alive(pid int, started uint64) bool {
	st, err := readProcStat(pid)
	return err == nil && st.state != 'Z' && (started == 0 || st.start == started)
}

// result reads how the task ended, if its exit code was written.
func (s taskState) result() (regions.TaskResult, bool, error) {
	b, err := os.ReadFile(filepath.Join(s.app(), exitFile))
	if errors.Is(err, fs.ErrNotExist) {
		return regions.TaskResult{}, false, nil
	}
	if err != nil {
		return regions.TaskResult{}, false, err
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return regions.TaskResult{}, false, nil // being written
	}
	return regions.TaskResult{ExitCode: code, Output: s.tail("")}, true, nil
}

// interrupted is the result of a task that died without finishing.
func (s taskState) interrupted() regions.TaskResult {
	return regions.TaskResult{ExitCode: 137, Output: s.tail("\n[drover: the task was interrupted before it finished (drover stopped while it ran); it is not run twice: run the operation again]\n")}
}

// tail is the last maxTaskOutput bytes of the task's output, then note.
func (s taskState) tail(note string) string {
	f, err := os.Open(s.output())
	if err != nil {
		return note
	}
	defer f.Close()
	prefix := ""
	if info, err := f.Stat(); err == nil && info.Size() > maxTaskOutput {
		f.Seek(info.Size()-maxTaskOutput, io.SeekStart)
		prefix = fmt.Sprintf("[drover: output truncated to its last %d bytes]\n", maxTaskOutput)
	}
	b, _ := io.ReadAll(io.LimitReader(f, maxTaskOutput))
	return prefix + string(b) + note
}

// wait waits for the task's process to end (then kills what it left in
// its group), killing the group on ctx's end or once limit has passed
// since it started, and returns its result.
func (s taskState) wait(ctx context.Context, pid int, started uint64, limit time.Duration, live io.Writer, wrap func(error) error) (regions.TaskResult, error) {
	deadline := time.Now().Add(limit)
	if info, err := os.Stat(s.procFile()); err == nil {
		deadline = info.ModTime().Add(limit)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	// The output as it is written, for whoever follows the task; the
	// task writes its file itself, so it keeps going if drover restarts.
	var sent int64
	copyLive := func() {
		if live == nil {
			return
		}
		f, err := os.Open(s.output())
		if err != nil {
			return
		}
		defer f.Close()
		n, _ := io.Copy(live, io.NewSectionReader(f, sent, 1<<62))
		sent += n
	}
	defer copyLive()
	for {
		copyLive()
		if !s.alive(pid, started) {
			// As on a one-off dyno, nothing outlives the command.
			syscall.Kill(-pid, syscall.SIGKILL)
			if res, found, err := s.result(); found || err != nil {
				return res, err
			}
			return s.interrupted(), nil
		}
		select {
		case <-ctx.Done():
			syscall.Kill(-pid, syscall.SIGKILL)
			return regions.TaskResult{Output: s.tail("")}, wrap(context.Cause(ctx))
		case now := <-tick.C:
			if now.After(deadline) {
				syscall.Kill(-pid, syscall.SIGKILL)
				for groupAlive(pid) {
					time.Sleep(20 * time.Millisecond)
				}
				return regions.TaskResult{ExitCode: 137, Output: s.tail(fmt.Sprintf("\n[drover: task stopped after %s, its time limit]\n", limit))}, nil
			}
		}
	}
}
