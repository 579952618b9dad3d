package workflows

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drover/drover/regions"
)

// ProcessesInput names an app and the regions to ask about it.
type ProcessesInput struct {
	App     string
	Regions []string
}

// RegionProcesses is what one region says runs for an app, or why it
// could not say.
type RegionProcesses struct {
	Region    string            `json:"region"`
	Processes []regions.Process `json:"processes"`
	Error     string            `json:"error,omitempty"`
}

// RegionProcessesInput names an app in one region.
type RegionProcessesInput struct {
	App    string
	Region string
}

// psPickup is how long `drover ps` waits for a region's worker: a region
// nobody serves is named in the answer, not waited for.
const psPickup = 5 * time.Second

// ProcessesWorkflow asks every region, at once, what runs for the app
// (`drover ps`). It is a workflow because a local region's processes are
// known only to the worker that serves it, which may be another machine;
// each region answers on its own task queue, and one that is down or
// unserved is reported with why while the others answer.
func ProcessesWorkflow(ctx workflow.Context, in ProcessesInput) ([]RegionProcesses, error) {
	procs, errs := askRegions[[]regions.Process](ctx, in.Regions, workflow.ActivityOptions{
		ScheduleToStartTimeout: psPickup,
		StartToCloseTimeout:    10 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 2},
	}, a.RegionProcesses, func(region string) any { return RegionProcessesInput{App: in.App, Region: region} })
	out := make([]RegionProcesses, len(in.Regions))
	for i, region := range in.Regions {
		out[i] = RegionProcesses{Region: region, Processes: procs[i], Error: errs[i]}
		if out[i].Processes == nil {
			out[i].Processes = []regions.Process{}
		}
	}
	return out, nil
}

// RegionProcesses lists what runs for the app in one region.
func (a *Activities) RegionProcesses(ctx context.Context, in RegionProcessesInput) ([]regions.Process, error) {
	region, err := a.Regions.Region(in.Region)
	if err != nil {
		return nil, permanent(err)
	}
	lister, ok := region.(regions.ProcessLister)
	if !ok {
		return nil, refuse("region %s cannot list processes", in.Region)
	}
	ps, err := lister.Processes(ctx, in.App)
	if err != nil {
		return nil, fmt.Errorf("processes of %s in %s: %w", in.App, in.Region, err)
	}
	return ps, nil
}

// Processes asks app's regions what runs for it, through
// ProcessesWorkflow; id names that one-off workflow.
func (s *Starter) Processes(ctx context.Context, id, app string, regionNames []string) ([]RegionProcesses, error) {
	return runOneOff[[]RegionProcesses](ctx, s.Client, client.StartWorkflowOptions{ID: id, TaskQueue: TaskQueue, WorkflowExecutionTimeout: time.Minute},
		"ask the regions of "+app, ProcessesWorkflow, ProcessesInput{App: app, Regions: regionNames})
}
