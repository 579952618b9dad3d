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

// TestPrintApprovals: drover approvals prints each waiting release with
// who queued it, how long it has waited, when it fails, and the command
// that decides it.
func TestPrintApprovals(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	var b strings.Builder
	if err := printApprovals(&b, []api.PendingApproval{{Operation: "promote/hello/4f2a", App: "hello", Release: 8, Commit: strings.Repeat("c", 40),
		RequestedBy: "ci", Description: "promote v3 of hello-staging by ci", CreatedAt: now.Add(-90 * time.Second), Deadline: now.Add(29 * time.Minute)}}, now); err != nil {
		t.Fatal(err)
	}
	want := "APP    RELEASE  COMMIT        REQUESTED BY  WAITING  DEADLINE  DESCRIPTION                        DECIDE\n" +
		"hello  v8       cccccccccccc  ci            1m30s    in 29m0s  promote v3 of hello-staging by ci  drover approve promote/hello/4f2a\n"
	if b.String() != want {
		t.Fatalf("printed:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	printApprovals(&b, nil, now)
	if b.String() != "no release waits for approval\n" {
		t.Fatalf("nothing waiting printed %q", b.String())
	}
}
