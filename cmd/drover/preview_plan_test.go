package main

import (
	"strings"
	"testing"

	"github.com/drover/drover/api"
	"github.com/drover/drover/regions"
)

// TestPrintPreviewPlan: a promotion preview prints, under each Nomad
// region, Nomad's plan: per group +create -destroy ~in-place and what else
// changes, the tasks that change by field, a placement failure on a line
// that stands out, and the preview's warnings last; a region that could
// not plan says why, and a local region prints its line alone.
func TestPrintPreviewPlan(t *testing.T) {
	p := api.PromotionPreview{
		From: api.PreviewRelease{App: "hello-staging", Version: 4}, To: api.PreviewRelease{App: "hello"},
		Regions: []api.RegionPreview{
			{Region: "local-a", Driver: "local", Start: []string{"web.1 (the new release)"}},
			{Region: "eu", Driver: "nomad", Start: []string{"web.1 (the new release)"}, Plan: &regions.Plan{
				Groups: []regions.GroupPlan{
					{Group: "web", Change: regions.ChangeEdited, Fields: []string{"Count"}, Create: 1, Destructive: 2, Canary: 2,
						Tasks: []regions.TaskChange{{Task: "web", Change: regions.ChangeEdited, Fields: []string{"Artifact.GetterSource", "Env"}, Annotations: []string{"forces create/destroy update"}}}},
					{Group: "clock", Change: regions.ChangeDeleted, Destroy: 1, Tasks: []regions.TaskChange{{Task: "clock", Change: regions.ChangeDeleted}}},
				},
				Failures: []regions.PlacementFailure{{Group: "web", Allocations: 2, Reason: "2 allocations cannot be placed: resources exhausted on 1 node (memory)"}},
			}},
			{Region: "us", Driver: "nomad", Error: "could not plan: no drover worker answered"},
		},
		Warnings: []string{"region eu: web: 2 allocations cannot be placed: resources exhausted on 1 node (memory)"},
	}
	var out strings.Builder
	printPreview(&out, p)
	got := out.String()
	_, regionLines, _ := strings.Cut(got, "local-a (local)")
	want := ": start web.1 (the new release); stop nothing\n" +
		"eu (nomad): start web.1 (the new release); stop nothing\n" +
		"  Nomad plan:\n" +
		"    web (edited): +1 -0 ~0, 2 replaced, 2 canaries; changes Count\n" +
		"      task web edited: Artifact.GetterSource, Env (forces create/destroy update)\n" +
		"    clock (deleted): +0 -1 ~0\n" +
		"      task clock deleted\n" +
		"  !! CANNOT PLACE web: 2 allocations cannot be placed: resources exhausted on 1 node (memory)\n" +
		"us (nomad): start ; stop nothing\n" +
		"  Nomad plan: none: could not plan: no drover worker answered\n" +
		"WARNING: region eu: web: 2 allocations cannot be placed: resources exhausted on 1 node (memory)\n"
	if regionLines != want {
		t.Fatalf("regions printed:\n%s\nwant:\n%s", regionLines, want)
	}
}
