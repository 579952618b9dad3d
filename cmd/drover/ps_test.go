package main

import (
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/api"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
	"github.com/drover/drover/workflows"
)

// TestPrintProcesses: drover ps prints a section per region, a line per
// process, and names a region that cannot say or runs nothing.
func TestPrintProcesses(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	exit1 := 1
	ps := api.Processes{App: "hello", Regions: []workflows.RegionProcesses{
		{Region: "us-east", Processes: []regions.Process{
			{Dyno: "web.1", Type: "web", Release: 12, State: regions.ProcessUp, Since: now.Add(-3 * time.Hour), Restarts: 2},
			{Dyno: "worker.1", Type: "worker", Release: 12, State: regions.ProcessCrashed, Since: now.Add(-2 * time.Minute), ExitCode: &exit1},
		}},
		{Region: "eu-west", Processes: []regions.Process{}},
		{Region: "ap-south", Error: "no drover worker serving region ap-south answered within 5s"},
	}, Runs: []pipelines.Run{
		{App: "hello", Number: 4, Command: "rails console", By: "admin", Region: "us-east", Release: 12, StartedAt: now.Add(-90 * time.Second)},
		{App: "hello", Number: 3, Command: "rake cleanup", By: "ci", Region: "us-east", Release: 11, StartedAt: now.Add(-time.Hour), EndedAt: new(now.Add(-50 * time.Minute)), ExitCode: &exit1},
	}}
	var b strings.Builder
	printProcesses(&b, ps, now)
	want := `=== us-east
web.1: up 3h ago (v12), 2 restarts
worker.1: crashed 2m ago (v12): exit 1
=== eu-west: nothing runs
=== ap-south: cannot say: no drover worker serving region ap-south answered within 5s
=== one-off runs
run.4: up 1m ago (v12, us-east, by admin): ` + "`rails console`" + `
run.3: exited 1 50m ago (v11, us-east, by ci): ` + "`rake cleanup`" + `
`
	if b.String() != want {
		t.Fatalf("printed:\n%s\nwant:\n%s", b.String(), want)
	}
}
