package workflows

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// PlanInput is a release that does not exist yet (what a promotion or
// rollback would make: App, Version, Slug, Commit, ConfigVersion,
// Formation, Procfile) and the regions to plan it in.
type PlanInput struct {
	Release pipelines.Release
	Regions []string
}

// RegionPlan is what one region's scheduler says the release would do
// there, or why it could not say.
type RegionPlan struct {
	Region string        `json:"region"`
	Plan   *regions.Plan `json:"plan,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// PlanRegionInput is the release to plan in one region.
type PlanRegionInput struct {
	Release pipelines.Release
	Region  string
}

// planPickup is how long a plan waits for a region's worker: a preview
// names a region nobody serves rather than wait for it.
const planPickup = 5 * time.Second

// PlanWorkflow asks every region, at once, what the release would do
// there (the promotion and rollback previews). It is a workflow, like
// ProcessesWorkflow, because the deployment a region plans is built on a
// worker that serves it (the slug, the job templates, the signed slug
// URL), each region on its own task queue; one that is down, unserved or
// cannot plan is reported with why while the others answer.
func PlanWorkflow(ctx workflow.Context, in PlanInput) ([]RegionPlan, error) {
	plans, errs := askRegions[regions.Plan](ctx, in.Regions, workflow.ActivityOptions{
		ScheduleToStartTimeout: planPickup,
		StartToCloseTimeout:    30 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 2},
	}, a.PlanRegion, func(region string) any { return PlanRegionInput{Release: in.Release, Region: region} })
	out := make([]RegionPlan, len(in.Regions))
	for i, region := range in.Regions {
		out[i] = RegionPlan{Region: region, Error: errs[i]}
		if errs[i] == "" {
			out[i].Plan = &plans[i]
		}
	}
	return out, nil
}

// PlanRegion asks one region's scheduler what the release would do there,
// for the deployment DeployRegion would make of it. A region whose driver
// cannot plan (local) is refused: callers show what it would start and
// stop instead.
func (a *Activities) PlanRegion(ctx context.Context, in PlanRegionInput) (regions.Plan, error) {
	region, err := a.Regions.Region(in.Region)
	if err != nil {
		return regions.Plan{}, permanent(err)
	}
	planner, ok := region.(regions.Planner)
	if !ok {
		return regions.Plan{}, refuse("region %s cannot plan", in.Region)
	}
	rel := in.Release
	d, err := a.deployment(ctx, rel, in.Region)
	if err != nil {
		return regions.Plan{}, fmt.Errorf("plan %s %s in %s: %w", rel.App, rel.Name(), in.Region, err)
	}
	p, err := planner.Plan(ctx, d)
	if err != nil {
		return regions.Plan{}, permanentConflict(fmt.Errorf("plan %s %s in %s: %w", rel.App, rel.Name(), in.Region, err))
	}
	return p, nil
}

// Plan asks regionNames' schedulers what rel would do there, through
// PlanWorkflow; id names that one-off workflow (PlanWorkflowID).
func (s *Starter) Plan(ctx context.Context, id string, rel pipelines.Release, regionNames []string) ([]RegionPlan, error) {
	return runOneOff[[]RegionPlan](ctx, s.Client, client.StartWorkflowOptions{ID: id, TaskQueue: TaskQueue, WorkflowExecutionTimeout: 2 * time.Minute},
		fmt.Sprintf("plan %s %s", rel.App, rel.Name()), PlanWorkflow, PlanInput{Release: rel, Regions: regionNames})
}

// PlanWorkflowID is the ID of one plan of a release of app (a preview).
func PlanWorkflowID(app, nonce string) string { return "plan/" + app + "/" + nonce }

// ParsePlanWorkflowID returns the app of a PlanWorkflowID.
func ParsePlanWorkflowID(id string) (app string, ok bool) {
	rest, ok := strings.CutPrefix(id, "plan/")
	app, nonce, _ := strings.Cut(rest, "/")
	return app, ok && app != "" && nonce != "" && !strings.Contains(nonce, "/")
}
