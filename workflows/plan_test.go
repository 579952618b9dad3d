package workflows_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
	"github.com/drover/drover/workflows"
)

// plannerRegion is a fakeRegion whose scheduler plans: it records the
// deployment it was asked about and says the web group cannot be placed.
type plannerRegion struct {
	*fakeRegion
	mu      sync.Mutex
	planned []regions.Deployment
}

func (r *plannerRegion) Plan(ctx context.Context, d regions.Deployment) (regions.Plan, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.planned = append(r.planned, d)
	return regions.Plan{
		Groups:   []regions.GroupPlan{{Group: "web", Change: regions.ChangeEdited, Tasks: []regions.TaskChange{}, Create: 1, Destructive: d.Formation["web"] - 1}},
		Failures: []regions.PlacementFailure{{Group: "web", Allocations: 1, Reason: "1 allocation cannot be placed: resources exhausted on 1 node (memory)"}},
		Warnings: []string{},
	}, nil
}

// anyRegions finds regions of any kind by name.
type anyRegions map[string]regions.Region

func (m anyRegions) Region(name string) (regions.Region, error) {
	if r, ok := m[name]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("region %q: %w", name, pipelines.ErrNotFound)
}

// TestPlanAsksEveryRegion: a plan asks each region's scheduler, on its
// own, about the deployment the release would be (its slug, formation and
// DROVER_ metadata, as DeployRegion builds it), deploys nothing, and names
// a region that cannot plan or does not exist while the others answer.
func TestPlanAsksEveryRegion(t *testing.T) {
	f := newFixture(t)
	if _, err := f.deploy(t, "c1"); err != nil {
		t.Fatal(err)
	}
	nomadA := &plannerRegion{fakeRegion: f.regions["a"]}
	f.acts.Regions = anyRegions{"a": nomadA, "b": f.regions["b"]}
	rel := pipelines.Release{App: app, Version: 2, Slug: digest("c1"), Commit: "c1", Formation: pipelines.Formation{"web": 3},
		Procfile: pipelines.Procfile{{Type: "web", Command: "bin/web"}}}
	env := f.env()
	env.ExecuteWorkflow(workflows.PlanWorkflow, workflows.PlanInput{Release: rel, Regions: []string{"a", "b", "gone"}})
	var out []workflows.RegionPlan
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 {
		t.Fatalf("plans = %+v", out)
	}
	a := out[0]
	if a.Region != "a" || a.Error != "" || a.Plan == nil || len(a.Plan.Failures) != 1 || a.Plan.Groups[0].Destructive != 2 {
		t.Fatalf("region a = %+v", a)
	}
	if len(nomadA.planned) != 1 {
		t.Fatalf("region a planned %d times", len(nomadA.planned))
	}
	d := nomadA.planned[0]
	if d.App != app || d.Release != 2 || d.Slug.Digest != digest("c1") || d.Formation["web"] != 3 || d.Env["DROVER_RELEASE"] != "v2" {
		t.Errorf("planned deployment = %s v%d slug %s formation %v release env %q", d.App, d.Release, d.Slug.Digest, d.Formation, d.Env["DROVER_RELEASE"])
	}
	if out[1].Region != "b" || out[1].Plan != nil || !strings.Contains(out[1].Error, "region b cannot plan") {
		t.Errorf("region b = %+v; want it named as one that cannot plan", out[1])
	}
	if out[2].Region != "gone" || out[2].Plan != nil || !strings.Contains(out[2].Error, `region "gone"`) {
		t.Errorf("region gone = %+v", out[2])
	}
	// Planning deployed nothing beyond the first deploy.
	if got := fmt.Sprint(f.regions["a"].deploys, f.regions["b"].deploys); got != "[1] [1]" {
		t.Errorf("deploys = %s, want only the first release's", got)
	}
}

func TestPlanWorkflowID(t *testing.T) {
	if a, ok := workflows.ParsePlanWorkflowID(workflows.PlanWorkflowID("hello", "n1")); !ok || a != "hello" {
		t.Fatalf("ParsePlanWorkflowID = %q, %v", a, ok)
	}
	for _, bad := range []string{"plan/hello", "plan//n1", "ps/hello/n1", "plan/hello/n1/x"} {
		if _, ok := workflows.ParsePlanWorkflowID(bad); ok {
			t.Errorf("ParsePlanWorkflowID(%q) ok", bad)
		}
	}
}
