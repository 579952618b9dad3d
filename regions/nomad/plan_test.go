package nomad_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// TestPlan: Plan sends Nomad the job Deploy would register, asks for the
// diff, and turns Nomad's answer (bodies shaped as the plan endpoint's
// documented sample) into drover's Plan: groups by name with what
// changes in each and its allocation counts, placement failures in one
// sentence, and Nomad's warnings; the plan's golden files under
// testdata/golden (go test -update rewrites them) show every field.
func TestPlan(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		// existing is a job drover made that the region runs already.
		existing bool
		// placeable is what Plan.Placeable says.
		placeable bool
	}{
		{name: "plan-new-unplaceable", body: "new-unplaceable.json"},
		{name: "plan-update", body: "update.json", existing: true, placeable: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNomad(t)
			body, err := os.ReadFile(filepath.Join("testdata", "plan", tt.body))
			if err != nil {
				t.Fatal(err)
			}
			f.planBody = string(body)
			if tt.existing {
				f.jobs["hello"] = &api.Job{ID: new("hello"), Meta: map[string]string{"drover.managed-by": "drover", "drover.release": "6"}}
			}
			r := MustRegion(t, f.srv.URL)
			d := deployment(pipelines.Formation{"web": 2, "worker": 1})
			plan, err := r.Plan(ctx(t), d)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.plans) != 1 {
				t.Fatalf("plan requests = %d, want 1", len(f.plans))
			}
			req := f.plans[0]
			if req["Diff"] != true {
				t.Errorf("plan request Diff = %v, want true", req["Diff"])
			}
			job, _ := req["Job"].(map[string]any)
			if job["ID"] != "hello" || job["Region"] != "europe" || job["Namespace"] != "apps" {
				t.Errorf("planned job = %v/%v/%v", job["ID"], job["Region"], job["Namespace"])
			}
			// The job planned is the one Deploy registers.
			if got := jobGroups(job); got != "web,worker" {
				t.Errorf("planned groups = %s", got)
			}
			if plan.Placeable() != tt.placeable {
				t.Errorf("Placeable = %v, want %v", plan.Placeable(), tt.placeable)
			}
			out, err := json.MarshalIndent(plan, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			// Values are never shown: config vars and signed slug URLs.
			if strings.Contains(string(out), "secret") {
				t.Fatalf("the plan shows a value: %s", out)
			}
			golden(t, filepath.Join("testdata", "golden", tt.name+".json"), append(out, '\n'))
		})
	}
}

func jobGroups(job map[string]any) string {
	groups, _ := job["TaskGroups"].([]any)
	var names []string
	for _, g := range groups {
		if m, ok := g.(map[string]any); ok {
			names = append(names, m["Name"].(string))
		}
	}
	return strings.Join(names, ",")
}

// TestPlanWritesNothing: a plan reads and plans, and nothing else: no job
// is registered or stopped and no config variable written, whether the
// job is new or runs already.
func TestPlanWritesNothing(t *testing.T) {
	for _, existing := range []bool{false, true} {
		f := newFakeNomad(t)
		body, err := os.ReadFile(filepath.Join("testdata", "plan", "update.json"))
		if err != nil {
			t.Fatal(err)
		}
		f.planBody = string(body)
		if existing {
			f.jobs["hello"] = &api.Job{ID: new("hello"), Meta: map[string]string{"drover.managed-by": "drover", "drover.release": "6"}}
		}
		r := MustRegion(t, f.srv.URL)
		if _, err := r.Plan(ctx(t), deployment(pipelines.Formation{"web": 2})); err != nil {
			t.Fatal(err)
		}
		regs, _, deletes := f.snapshot()
		if len(regs) != 0 || len(deletes) != 0 || len(f.vars) != 0 {
			t.Fatalf("a plan wrote: registers %v, deletes %v, vars %v", regs, deletes, f.vars)
		}
		for _, req := range f.requests {
			method, uri, _ := strings.Cut(req, " ")
			if method != http.MethodGet && !strings.HasPrefix(uri, "/v1/job/hello/plan?") {
				t.Errorf("a plan sent %s", req)
			}
		}
	}
}

// TestPlanErrors: a plan fails as Deploy does: a region that does not
// answer is regions.ErrUnavailable, a job Nomad rejects pipelines.ErrInvalid,
// a job drover did not make pipelines.ErrConflict (and is not planned
// over), a slug without URL pipelines.ErrInvalid before Nomad is asked.
func TestPlanErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(f *fakeNomad, d *regions.Deployment)
		want  error
		plans int
	}{
		{"unavailable", func(f *fakeNomad, d *regions.Deployment) { f.planBody = "" }, regions.ErrUnavailable, 1},
		{"not managed", func(f *fakeNomad, d *regions.Deployment) {
			f.jobs["hello"] = &api.Job{ID: new("hello"), Meta: map[string]string{"owner": "someone else"}}
		}, pipelines.ErrConflict, 0},
		{"no slug URL", func(f *fakeNomad, d *regions.Deployment) { d.Slug.URL = "" }, pipelines.ErrInvalid, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeNomad(t)
			f.planBody = "{}"
			d := deployment(pipelines.Formation{"web": 1})
			tt.setup(f, &d)
			_, err := MustRegion(t, f.srv.URL).Plan(ctx(t), d)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), "hello") {
				t.Errorf("err %q does not name the app", err)
			}
			if len(f.plans) != tt.plans {
				t.Errorf("plan requests = %d, want %d", len(f.plans), tt.plans)
			}
		})
	}
	// A validation error Nomad answers to the plan.
	f := newFakeNomad(t)
	srv := f.srv.Config.Handler
	f.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/plan") {
			http.Error(w, "1 error occurred:\n\t* Task group web validation failed", http.StatusInternalServerError)
			return
		}
		srv.ServeHTTP(w, r)
	})
	if _, err := MustRegion(t, f.srv.URL).Plan(ctx(t), deployment(pipelines.Formation{"web": 1})); !errors.Is(err, pipelines.ErrInvalid) {
		t.Fatalf("a job Nomad rejects: %v, want ErrInvalid", err)
	}
}
