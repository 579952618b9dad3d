package local

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drover/drover/applog"
	"github.com/drover/drover/regions"
)

// Logs: each process writes its stdout and stderr, in append mode through
// a descriptor of its own, to <type>.<i>.out in its release dir, so it
// keeps running while drover restarts. The region's pump turns that into
// stamped lines in <type>.<i>.log (rotated: at most applog.DefaultKeep
// files of applog.DefaultMaxSize each) and frees what it has read of the
// .out file. drover's own lines about the app (a process started, became
// up, crashed with its code, was stopped; a release deployed) go to
// apps/<app>/drover.log, rotated the same way.

// pumpEvery is how often the pump reads processes' output: the most a
// line waits before `drover logs --tail` can see it, on top of the
// reader's own poll.
const pumpEvery = 50 * time.Millisecond

// logPollEvery is how often a following reader looks for new lines, and
// (every tenth time) for processes that started since.
const logPollEvery = 50 * time.Millisecond

// outName is the raw output file of a process; logName its stamped log.
func outName(dir, typ string, index int) string {
	return filepath.Join(dir, typ+"."+strconv.Itoa(index)+".out")
}

// pumpLogs runs the pump until the region closes.
func (r *Region) pumpLogs() {
	tick := time.NewTicker(pumpEvery)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-r.closing.Done():
			return
		case <-tick.C:
		}
		r.pumpOnce(n%20 == 0)
	}
}

// pumpOnce steps every known process's pump; with rescan it first looks
// on disk for processes it does not know (adopted after a restart) and
// forgets those whose release dir is gone.
func (r *Region) pumpOnce(rescan bool) {
	r.pumpMu.Lock()
	defer r.pumpMu.Unlock()
	if rescan {
		outs, _ := filepath.Glob(filepath.Join(r.dir, "apps", "*", "v*", "*.out"))
		runs, _ := filepath.Glob(filepath.Join(r.dir, "apps", "*", "runs", "*.out"))
		outs = append(outs, runs...)
		for _, out := range outs {
			r.addPumpLocked(out)
		}
		for out := range r.pumps {
			if _, err := os.Stat(out); err != nil {
				delete(r.pumps, out)
			}
		}
	}
	now := time.Now()
	for out, p := range r.pumps {
		if _, err := p.Step(now); err != nil {
			r.log.Warn("pump process output", "output", out, "error", err)
		}
	}
}

// addPump makes the pump read a process's output from now on.
func (r *Region) addPump(out string) {
	r.pumpMu.Lock()
	defer r.pumpMu.Unlock()
	r.addPumpLocked(out)
}

func (r *Region) addPumpLocked(out string) {
	if r.pumps[out] != nil {
		return
	}
	dyno := strings.TrimSuffix(filepath.Base(out), ".out")
	r.pumps[out] = &applog.Pump{Raw: out, Out: applog.File{Path: strings.TrimSuffix(out, ".out") + ".log"}, Source: applog.SourceApp, Dyno: dyno}
}

// droverLog writes one of drover's own lines about app.
func (r *Region) droverLog(app, dyno, format string, args ...any) {
	l := applog.Line{Time: time.Now(), Source: applog.SourceDrover, Dyno: dyno, Message: fmt.Sprintf(format, args...)}
	r.pumpMu.Lock()
	defer r.pumpMu.Unlock()
	if err := os.MkdirAll(r.appDir(app), 0o755); err == nil {
		err = applog.File{Path: filepath.Join(r.appDir(app), "drover.log")}.Append(l)
		if err != nil {
			r.log.Warn("write drover log line", "app", app, "error", err)
		}
	}
}

var _ regions.LogReader = (*Region)(nil)

// Logs writes app's newest q.Num lines, oldest first, to emit, and with
// q.Tail goes on with new lines, of new processes too (a deploy's), until
// ctx ends. Lines of the app's kept release dirs count, so the lines of a
// release just replaced are still there.
func (r *Region) Logs(ctx context.Context, app string, q applog.Query, sink applog.Sink) error {
	if err := checkApp(app); err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	if err := q.Validate(); err != nil {
		return fmt.Errorf("logs of %s: %w", app, err)
	}
	// Lines written before now are in the files; a last pump puts the
	// newest there.
	r.pumpOnce(false)
	followers := map[string]*applog.Follower{}
	defer func() {
		for _, f := range followers {
			f.Close()
		}
	}()
	var backlog [][]applog.Line
	for _, path := range r.logPaths(app, q) {
		f, end, err := applog.Follow(path)
		if err != nil {
			return fmt.Errorf("logs of %s: %w", app, err)
		}
		followers[path] = f
		lines, err := applog.File{Path: path}.ReadLast(q.Num, end, q)
		if err != nil {
			return fmt.Errorf("logs of %s: %w", app, err)
		}
		backlog = append(backlog, lines)
	}
	lines := applog.Merge(q.Num, backlog...)
	for i := range lines {
		lines[i].Region = r.name
	}
	if err := sink.Backlog(lines); err != nil {
		return err
	}
	if !q.Tail {
		return nil
	}
	tick := time.NewTicker(logPollEvery)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-r.closing.Done():
			return ErrClosed
		case <-tick.C:
		}
		if n%10 == 0 {
			for _, path := range r.logPaths(app, q) {
				if followers[path] == nil {
					// A process that started since: all of its lines.
					f, _, err := applog.Follow(path)
					if err != nil {
						return fmt.Errorf("logs of %s: %w", app, err)
					}
					f.Rewind()
					followers[path] = f
				}
			}
		}
		var batch []applog.Line
		for _, path := range slices.Sorted(maps.Keys(followers)) {
			lines, err := followers[path].Poll()
			if err != nil {
				return fmt.Errorf("logs of %s: %w", app, err)
			}
			for _, l := range lines {
				if q.Match(l) {
					batch = append(batch, l)
				}
			}
		}
		applog.Sort(batch)
		for _, l := range batch {
			l.Region = r.name
			if err := sink.Live(l); err != nil {
				return err
			}
		}
	}
}

// logPaths are the stamped logs of app that q may want: each kept
// release's process logs and drover.log.
func (r *Region) logPaths(app string, q applog.Query) []string {
	var out []string
	if q.Source != applog.SourceApp {
		out = append(out, filepath.Join(r.appDir(app), "drover.log"))
	}
	if q.Source == applog.SourceDrover {
		return out
	}
	logs, _ := filepath.Glob(filepath.Join(r.appDir(app), "v*", "*.log"))
	runs, _ := filepath.Glob(filepath.Join(r.appDir(app), "runs", "*.log"))
	logs = append(logs, runs...)
	for _, l := range logs {
		if q.MatchDyno(strings.TrimSuffix(filepath.Base(l), ".log")) {
			out = append(out, l)
		}
	}
	return out
}
