package nomad

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

// stderrTail is how much of a failed task's stderr is read to find its last
// words, and stderrTimeout how long that may take: it is a courtesy, so a
// client node drover cannot reach must not hold up the report.
const (
	stderrTail    = 4 << 10
	stderrTimeout = 5 * time.Second
)

// failureSummary says, one line per task group, why allocations failed, in
// the manner of levant's failure inspector: "web: exit code 1: listen tcp:
// address already in use". The detail is the last line the task wrote to
// stderr when it can be read, else the most telling task event.
func (r *Region) failureSummary(ctx context.Context, allocs []*api.AllocationListStub) []string {
	sorted := append([]*api.AllocationListStub(nil), allocs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].TaskGroup != sorted[j].TaskGroup {
			return sorted[i].TaskGroup < sorted[j].TaskGroup
		}
		return sorted[i].CreateIndex > sorted[j].CreateIndex
	})
	var lines []string
	explained := map[string]bool{}
	for _, a := range sorted {
		if explained[a.TaskGroup] || !allocFailed(a) {
			continue
		}
		explained[a.TaskGroup] = true
		lines = append(lines, a.TaskGroup+": "+r.explainAlloc(ctx, a))
	}
	return lines
}

// allocFailed reports whether a counts against its deployment.
func allocFailed(a *api.AllocationListStub) bool {
	if a.ClientStatus == api.AllocClientStatusFailed || a.ClientStatus == api.AllocClientStatusLost {
		return true
	}
	if a.DeploymentStatus != nil && a.DeploymentStatus.Healthy != nil && !*a.DeploymentStatus.Healthy {
		return true
	}
	for _, ts := range a.TaskStates {
		if ts != nil && ts.Failed {
			return true
		}
	}
	return false
}

// explainAlloc describes the first failed task of a, or why a as a whole
// did not become healthy.
func (r *Region) explainAlloc(ctx context.Context, a *api.AllocationListStub) string {
	tasks := make([]string, 0, len(a.TaskStates))
	for name := range a.TaskStates {
		tasks = append(tasks, name)
	}
	sort.Strings(tasks)
	for _, name := range tasks {
		ts := a.TaskStates[name]
		if ts == nil || (!ts.Failed && lastEvent(ts, api.TaskTerminated) == nil) {
			continue
		}
		return r.explainTask(ctx, a, name, ts)
	}
	if a.ClientStatus == api.AllocClientStatusLost {
		return "allocation lost: its node stopped answering"
	}
	if a.DeploymentStatus != nil && a.DeploymentStatus.Healthy != nil && !*a.DeploymentStatus.Healthy {
		msg := "not healthy before the deadline (is it answering HTTP on $PORT?)"
		if a.ClientDescription != "" {
			msg += ": " + a.ClientDescription
		}
		return msg
	}
	if a.ClientDescription != "" {
		return a.ClientDescription
	}
	return "allocation " + a.ClientStatus
}

// explainTask is "exit code N: <detail>", or the failing event alone when
// the task never ran.
func (r *Region) explainTask(ctx context.Context, a *api.AllocationListStub, task string, ts *api.TaskState) string {
	var parts []string
	term := lastEvent(ts, api.TaskTerminated)
	if term != nil {
		switch {
		case term.Details["oom_killed"] == "true":
			parts = append(parts, fmt.Sprintf("exit code %d: out of memory", term.ExitCode))
		case term.Signal != 0 && term.ExitCode == 0:
			parts = append(parts, fmt.Sprintf("killed by signal %d", term.Signal))
		default:
			parts = append(parts, fmt.Sprintf("exit code %d", term.ExitCode))
		}
	}
	detail := ""
	if term != nil {
		detail = r.lastStderrLine(ctx, a, task)
	}
	if detail == "" {
		detail = telling(ts)
	}
	if detail != "" {
		parts = append(parts, detail)
	}
	if len(parts) == 0 {
		return "task " + task + " failed"
	}
	return strings.Join(parts, ": ")
}

// lastEvent returns the last event of type typ, or nil.
func lastEvent(ts *api.TaskState, typ string) *api.TaskEvent {
	for i := len(ts.Events) - 1; i >= 0; i-- {
		if e := ts.Events[i]; e != nil && e.Type == typ {
			return e
		}
	}
	return nil
}

// routine events say nothing about why a task failed.
var routine = map[string]bool{
	api.TaskReceived:             true,
	api.TaskSetup:                true,
	api.TaskStarted:              true,
	api.TaskDownloadingArtifacts: true,
	api.TaskBuildingTaskDir:      true,
	api.TaskRestarting:           true,
	api.TaskKilling:              true,
	api.TaskKilled:               true,
	api.TaskTerminated:           true,
	api.TaskNotRestarting:        true,
}

// telling is the message of the last event that says why the task failed,
// else of the last Terminated or Not Restarting event.
func telling(ts *api.TaskState) string {
	for i := len(ts.Events) - 1; i >= 0; i-- {
		if e := ts.Events[i]; e != nil && !routine[e.Type] {
			if m := eventMessage(e); m != "" {
				return m
			}
		}
	}
	for _, typ := range []string{api.TaskTerminated, api.TaskNotRestarting} {
		if e := lastEvent(ts, typ); e != nil {
			if m := eventMessage(e); m != "" {
				return m
			}
		}
	}
	return ""
}

func eventMessage(e *api.TaskEvent) string {
	for _, m := range []string{e.DisplayMessage, e.Message, e.DriverError, e.DownloadError, e.SetupError, e.ValidationError, e.KillError} {
		if m = strings.TrimSpace(m); m != "" {
			if e.Type != "" && !routine[e.Type] && !strings.HasPrefix(m, e.Type) {
				return e.Type + ": " + m
			}
			return m
		}
	}
	return ""
}

// lastStderrLine is the last non-empty line of task's stderr, or "".
func (r *Region) lastStderrLine(ctx context.Context, a *api.AllocationListStub, task string) string {
	ctx, cancel := context.WithTimeout(ctx, stderrTimeout)
	defer cancel()
	out, err := r.readLog(ctx, &api.Allocation{ID: a.ID, NodeID: a.NodeID, Namespace: a.Namespace}, task, api.FSLogNameStderr, stderrTail)
	if err != nil {
		r.log.Debug("read stderr of failed task", "alloc", a.ID, "task", task, "err", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	const maxLine = 300
	if len(last) > maxLine {
		last = last[:maxLine] + "…"
	}
	return last
}

// readLog returns up to the last max bytes of a task's stdout or stderr. On
// error it returns what it read so far.
func (r *Region) readLog(ctx context.Context, alloc *api.Allocation, task, logType string, max int64) (string, error) {
	cancelCh := make(chan struct{})
	defer close(cancelCh)
	frames, errCh := r.client.AllocFS().Logs(alloc, false, task, logType, api.OriginEnd, max, cancelCh, r.queryOpts(ctx))
	var buf []byte
	keepTail := func() {
		if int64(len(buf)) > max {
			buf = append([]byte(nil), buf[int64(len(buf))-max:]...)
		}
	}
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				keepTail()
				return string(buf), nil
			}
			buf = append(buf, f.Data...)
			if int64(len(buf)) > 2*max {
				keepTail()
			}
		case err := <-errCh:
			keepTail()
			return string(buf), err
		case <-ctx.Done():
			keepTail()
			return string(buf), ctx.Err()
		}
	}
}
