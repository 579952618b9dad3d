package nomad

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/regions"
)

// allocIndexRE reads the instance number from an allocation's name,
// "<job>.<group>[<index>]".
var allocIndexRE = regexp.MustCompile(`\[(\d+)\]$`)

// Processes says what runs for app, allocation by allocation: the app
// job's allocations that Nomad wants running (each a dyno, web.1 for
// index 0 of group web), their state from the client's (running: up, or
// starting while a task is still pending; pending: starting; failed or
// lost: crashed; complete: stopped), since when, their release (read from
// the job version they run), the task's restarts and its last exit code.
func (r *Region) Processes(ctx context.Context, app string) ([]regions.Process, error) {
	if err := r.resolve(ctx); err != nil {
		return nil, err
	}
	allocs, _, err := r.client.Jobs().Allocations(app, false, r.queryOpts(ctx))
	if isNotFound(err) {
		return []regions.Process{}, nil
	}
	if err != nil {
		return nil, r.wrap(ctx, fmt.Sprintf("list allocations of %q", app), err)
	}
	releases, err := r.releasesByVersion(ctx, app)
	if err != nil {
		return nil, err
	}
	out := []regions.Process{}
	for _, a := range allocs {
		if a.DesiredStatus != api.AllocDesiredStatusRun {
			continue
		}
		out = append(out, allocProcess(a, releases[a.JobVersion]))
	}
	slices.SortFunc(out, func(x, y regions.Process) int {
		return cmp.Or(cmp.Compare(x.Type, y.Type), cmp.Compare(dynoNumber(x.Dyno), dynoNumber(y.Dyno)))
	})
	return out, nil
}

// dynoNumber is the 2 of web.2.
func dynoNumber(dyno string) int {
	n, _ := strconv.Atoi(dyno[strings.LastIndexByte(dyno, '.')+1:])
	return n
}

// releasesByVersion maps the app job's versions to the releases they
// carry (MetaRelease).
func (r *Region) releasesByVersion(ctx context.Context, app string) (map[uint64]int, error) {
	versions, _, _, err := r.client.Jobs().Versions(app, false, r.queryOpts(ctx))
	if err != nil && !isNotFound(err) {
		return nil, r.wrap(ctx, fmt.Sprintf("read versions of job %q", app), err)
	}
	out := make(map[uint64]int, len(versions))
	for _, v := range versions {
		if v.Version != nil {
			out[*v.Version], _ = strconv.Atoi(v.Meta[MetaRelease])
		}
	}
	return out, nil
}

func allocProcess(a *api.AllocationListStub, release int) regions.Process {
	p := regions.Process{Dyno: allocDyno(a), Type: a.TaskGroup, Release: release}
	// drover's groups run one task, named for the process type.
	ts := a.TaskStates[a.TaskGroup]
	if ts == nil {
		for _, s := range a.TaskStates {
			ts = s
		}
	}
	switch a.ClientStatus {
	case api.AllocClientStatusRunning:
		p.State = regions.ProcessUp
		if ts != nil && ts.State == "pending" {
			p.State = regions.ProcessStarting
		}
	case api.AllocClientStatusPending:
		p.State = regions.ProcessStarting
	case api.AllocClientStatusComplete:
		p.State = regions.ProcessStopped
	default: // failed, lost, unknown
		p.State = regions.ProcessCrashed
		p.Message = a.ClientDescription
	}
	if ts == nil {
		p.Since = time.Unix(0, a.ModifyTime).UTC()
		return p
	}
	p.Restarts = int(ts.Restarts)
	switch {
	case p.State == regions.ProcessUp && !ts.StartedAt.IsZero():
		p.Since = ts.StartedAt
	case !ts.FinishedAt.IsZero():
		p.Since = ts.FinishedAt
	default:
		p.Since = time.Unix(0, a.ModifyTime).UTC()
	}
	// The last exit, from the newest Terminated event.
	for i := len(ts.Events) - 1; i >= 0; i-- {
		ev := ts.Events[i]
		if ev == nil || ev.Type != api.TaskTerminated {
			continue
		}
		code := ev.ExitCode
		if s, ok := ev.Details["exit_code"]; ok {
			code, _ = strconv.Atoi(s)
		}
		p.ExitCode = &code
		break
	}
	return p
}
