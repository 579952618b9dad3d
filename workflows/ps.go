package workflows

import (
	"context"
	"errors"
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
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		ScheduleToStartTimeout: psPickup,
		StartToCloseTimeout:    10 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 2},
	})
	futures := make([]workflow.Future, len(in.Regions))
	for i, region := range in.Regions {
		futures[i] = workflow.ExecuteActivity(inRegion(actx, region), a.RegionProcesses, RegionProcessesInput{App: in.App, Region: region})
	}
	out := make([]RegionProcesses, len(in.Regions))
	for i, f := range futures {
		out[i].Region = in.Regions[i]
		if err := f.Get(ctx, &out[i].Processes); err != nil {
			out[i].Error = reason(err)
			if notPickedUp(err) {
				out[i].Error = fmt.Sprintf("no drover worker serving region %s answered within %s", in.Regions[i], psPickup)
			}
		}
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
	run, err := s.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: TaskQueue,
		WorkflowExecutionTimeout: time.Minute}, ProcessesWorkflow, ProcessesInput{App: app, Regions: regionNames})
	if err != nil {
		return nil, fmt.Errorf("ask the regions of %s: %w", app, err)
	}
	var out []RegionProcesses
	if err := run.Get(ctx, &out); err != nil {
		var te *temporal.TimeoutError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("ask the regions of %s: no drover worker answered: %w", app, err)
		}
		return nil, fmt.Errorf("ask the regions of %s: %w", app, err)
	}
	return out, nil
}
