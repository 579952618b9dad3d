package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
	"github.com/drover/drover/sandbox"
)

var _ regions.Runner = (*Region)(nil)

// StartRun runs a one-off in its own unpacked copy of the release's slug
// (apps/<app>/runs/<N>/slug, removed when it ends), in the region's
// sandbox, in its own process group, with the release's config vars,
// DYNO=run.N and a PORT of its own. Attached, its stdin, stdout and stderr
// are the caller's, and ending ctx kills its whole group. Detached, it
// writes apps/<app>/runs/run.N.out, which the log pump turns into run.N's
// lines, and it outlives drover.
func (r *Region) StartRun(ctx context.Context, o regions.OneOff, stdio *regions.Stdio) (func() (int, error), error) {
	if err := checkApp(o.App); err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	if o.Number < 1 || o.Command == "" {
		return nil, fmt.Errorf("run %s: a one-off needs a number and a command: %w", o.App, pipelines.ErrInvalid)
	}
	wrap := func(err error) error {
		return fmt.Errorf("run %s of %s v%d in region %s: %w", o.Dyno(), o.App, o.Release, r.name, err)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, wrap(ErrClosed)
	}
	// Close waits for attached runs, which it kills; detached ones are
	// not its to wait for.
	attached := stdio != nil
	if attached {
		r.tasks.Add(1)
	}
	r.mu.Unlock()
	ended := func() {
		if attached {
			r.tasks.Done()
		}
	}
	dir := filepath.Join(r.appDir(o.App), "runs", strconv.Itoa(o.Number))
	fail := func(err error) (func() (int, error), error) {
		os.RemoveAll(dir)
		ended()
		return nil, wrap(err)
	}
	if o.Slug.Path == "" {
		return fail(fmt.Errorf("slug %s has no local path", o.Slug.Digest))
	}
	slugDir := filepath.Join(dir, "slug")
	if err := r.unpackSlug(ctx, o.Slug, slugDir); err != nil {
		return fail(err)
	}
	port, err := r.freePort()
	if err != nil {
		return fail(err)
	}
	cmd, err := r.sandbox.Command(context.Background(), sandbox.Spec{
		Args: pipelines.DynoArgs(".", o.Command), Dir: slugDir,
		Env:     processEnv(o.Env, "PORT="+strconv.Itoa(port), "DYNO="+o.Dyno()),
		Network: true,
		// Detached runs outlive drover; attached ones end with it.
		Detach: stdio == nil,
	})
	if err != nil {
		return fail(err)
	}
	var out, stdinW, ptmx *os.File
	switch {
	case stdio != nil && stdio.TTY:
		// A terminal of its own: the run's session leader has it as its
		// controlling terminal, so a shell's job control and ^C work.
		var tty *os.File
		if ptmx, tty, err = pty.Open(); err != nil {
			return fail(fmt.Errorf("open a terminal: %w", err))
		}
		defer tty.Close()
		if stdio.Size.Rows > 0 {
			pty.Setsize(ptmx, &pty.Winsize{Rows: stdio.Size.Rows, Cols: stdio.Size.Cols})
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, 0
	case stdio != nil:
		cmd.Stdout, cmd.Stderr = stdio.Stdout, stdio.Stderr
		// Stdin through a pipe of our own: exec would wait for a copy from
		// the caller's reader, which blocks in a read nothing can cut
		// short, after the process is gone.
		if stdio.Stdin != nil {
			rd, wr, err := os.Pipe()
			if err != nil {
				return fail(err)
			}
			defer rd.Close()
			cmd.Stdin, stdinW = rd, wr
		}
		cmd.WaitDelay = time.Second
	default:
		raw := outName(filepath.Join(r.appDir(o.App), "runs"), "run", o.Number)
		if out, err = os.OpenFile(raw, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
			return fail(err)
		}
		defer out.Close()
		cmd.Stdout, cmd.Stderr = out, out
		r.addPump(raw)
	}
	r.droverLog(o.App, o.Dyno(), "Starting process with command `%s` (v%d)", o.Command, o.Release)
	if err := cmd.Start(); err != nil {
		if stdinW != nil {
			stdinW.Close()
		}
		if ptmx != nil {
			ptmx.Close()
		}
		return fail(err)
	}
	pid := cmd.Process.Pid
	var ttyOut sync.WaitGroup
	if ptmx != nil {
		ttyOut.Go(func() { io.Copy(stdio.Stdout, ptmx) }) // ends when the terminal closes (EIO)
		go io.Copy(ptmx, stdio.Stdin)
		if stdio.Resize != nil {
			go func() {
				for sz := range stdio.Resize {
					pty.Setsize(ptmx, &pty.Winsize{Rows: sz.Rows, Cols: sz.Cols})
				}
			}()
		}
	}
	if stdinW != nil {
		go func() {
			io.Copy(stdinW, stdio.Stdin)
			stdinW.Close()
		}()
	}
	done := make(chan struct{})
	var code int
	go func() {
		defer ended()
		defer close(done)
		err := cmd.Wait()
		// Whatever it left running in its group goes with it.
		syscall.Kill(-pid, syscall.SIGKILL)
		if stdinW != nil {
			stdinW.Close() // a copy still running ends at its next write
		}
		if ptmx != nil {
			// What it wrote last, then the terminal goes.
			waitCopy(&ttyOut, time.Second)
			ptmx.Close()
		}
		code, _ = exitCode(cmd.ProcessState)
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) && !errors.Is(err, exec.ErrWaitDelay) {
			r.log.Warn("one-off run", "app", o.App, "dyno", o.Dyno(), "error", err)
		}
		r.droverLog(o.App, o.Dyno(), "Process exited with status %d", code)
		os.RemoveAll(dir)
	}()
	if stdio != nil {
		// The caller went away (or drover is closing): the run goes too.
		go func() {
			select {
			case <-ctx.Done():
			case <-r.closing.Done():
			case <-done:
				return
			}
			r.droverLog(o.App, o.Dyno(), "Stopping process with SIGKILL: its caller disconnected")
			syscall.Kill(-pid, syscall.SIGKILL)
		}()
	}
	return func() (int, error) {
		<-done
		return code, nil
	}, nil
}

// waitCopy waits for wg, at most d: a terminal whose last writer left
// something running keeps its output open.
func waitCopy(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}
