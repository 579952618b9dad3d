package contract_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
	"github.com/drover/drover/regions/nomad"
)

// TestPlanFits: Nomad's own plan of a new app's job says its web group is
// added with one placement per formation count and no failure, and the
// plan registers nothing: no job, no config variable.
func TestPlanFits(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	app := fmt.Sprintf("drover-plan-fits-%d", time.Now().Unix()%100000)
	t.Cleanup(func() { e.region.Stop(context.Background(), app) })
	d := e.deployment(app, 1, map[string]string{"GREETING": "planned"})
	d.Formation = pipelines.Formation{"web": 2}

	plan, err := e.region.Plan(ctx, d)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	t.Logf("plan: %+v", plan)
	if !plan.Placeable() {
		t.Fatalf("failures = %+v; want a job that fits", plan.Failures)
	}
	if len(plan.Groups) != 1 {
		t.Fatalf("groups = %+v, want web alone", plan.Groups)
	}
	g := plan.Groups[0]
	if g.Group != "web" || g.Change != regions.ChangeAdded || g.Create != 2 || g.Destroy != 0 || g.InPlace != 0 || g.Destructive != 0 {
		t.Errorf("web = %+v; want it added with 2 placements", g)
	}
	if len(g.Tasks) != 1 || g.Tasks[0].Task != "web" || g.Tasks[0].Change != regions.ChangeAdded {
		t.Errorf("web's tasks = %+v", g.Tasks)
	}
	assertNothingRegistered(t, e, app)
}

// TestPlanCannotBePlaced: a job whose resources no node has (a template
// asking 10 TB of memory for web) is a placement failure in Nomad's plan,
// which says how many allocations and which resource, before anything
// is registered: the job does not exist afterwards.
func TestPlanCannotBePlaced(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	app := fmt.Sprintf("drover-plan-huge-%d", time.Now().Unix()%100000)
	t.Cleanup(func() { e.region.Stop(context.Background(), app) })
	d := e.deployment(app, 1, nil)
	d.Formation = pipelines.Formation{"web": 2}
	d.JobTemplate = []byte(`{"TaskGroups": [{"Name": "web", "Tasks": [{"Name": "web", "Resources": {"MemoryMB": 10000000}}]}]}`)

	plan, err := e.region.Plan(ctx, d)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if plan.Placeable() || len(plan.Failures) != 1 {
		t.Fatalf("plan = %+v; want web's placement to fail", plan)
	}
	f := plan.Failures[0]
	t.Logf("placement failure: %s", f.Reason)
	if f.Group != "web" || f.Allocations != 2 || f.Exhausted["memory"] == 0 ||
		!strings.HasPrefix(f.Reason, "2 allocations cannot be placed: ") || !strings.Contains(f.Reason, "memory") {
		t.Errorf("failure = %+v; want 2 web allocations that memory keeps off every node", f)
	}
	assertNothingRegistered(t, e, app)
}

// assertNothingRegistered fails t when the agent has app's job or config
// variable.
func assertNothingRegistered(t *testing.T, e *env, app string) {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: e.addr, SecretID: os.Getenv("NOMAD_TOKEN"), Region: e.nomadRegion})
	if err != nil {
		t.Fatal(err)
	}
	if job, _, err := c.Jobs().Info(app, nil); err == nil {
		t.Errorf("the plan registered job %s (version %d)", app, *job.Version)
	} else if !strings.Contains(err.Error(), "404") {
		t.Errorf("read job %s: %v", app, err)
	}
	if v, _, err := c.Variables().Read(nomad.ConfigVarPath(app), nil); err == nil {
		t.Errorf("the plan wrote variable %s (%d items)", v.Path, len(v.Items))
	} else if !strings.Contains(err.Error(), "404") && !strings.Contains(err.Error(), "not found") {
		t.Errorf("read variable of %s: %v", app, err)
	}
}
