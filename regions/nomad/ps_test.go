package nomad_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
)

// TestProcesses: ps lists the app job's allocations Nomad wants running,
// each as a dyno (group web, index 0: web.1), with its state from the
// client's, since when, the release of the job version it runs, its
// task's restarts and last exit code; allocations being stopped are left
// out, and an app with no job lists nothing.
func TestProcesses(t *testing.T) {
	f := newFakeNomad(t)
	r := MustRegion(t, f.srv.URL)
	started := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	finished := started.Add(time.Hour)
	v := func(n uint64, release string) *api.Job {
		return &api.Job{ID: new("hello"), Version: new(n), Meta: map[string]string{"drover.release": release}}
	}
	f.jobs["hello"] = v(1, "7")
	f.jobVersions = map[string][]*api.Job{"hello": {v(1, "7"), v(0, "6")}}
	terminated := func(code string) []*api.TaskEvent {
		return []*api.TaskEvent{{Type: api.TaskStarted}, {Type: api.TaskTerminated, Details: map[string]string{"exit_code": code}}, {Type: api.TaskRestarting}, {Type: api.TaskStarted}}
	}
	f.jobAllocs["hello"] = [][]*api.AllocationListStub{{
		{Name: "hello.web[1]", TaskGroup: "web", JobVersion: 1, DesiredStatus: "run", ClientStatus: "pending",
			TaskStates: map[string]*api.TaskState{"web": {State: "pending"}}, ModifyTime: finished.UnixNano()},
		{Name: "hello.web[0]", TaskGroup: "web", JobVersion: 1, DesiredStatus: "run", ClientStatus: "running",
			TaskStates: map[string]*api.TaskState{"web": {State: "running", Restarts: 2, StartedAt: started, Events: terminated("137")}}},
		{Name: "hello.worker[0]", TaskGroup: "worker", JobVersion: 0, DesiredStatus: "run", ClientStatus: "failed", ClientDescription: "Failed tasks",
			TaskStates: map[string]*api.TaskState{"worker": {State: "dead", Failed: true, StartedAt: started, FinishedAt: finished,
				Events: []*api.TaskEvent{{Type: api.TaskTerminated, ExitCode: 1, Details: map[string]string{"exit_code": "1"}}}}}},
		{Name: "hello.web[0]", TaskGroup: "web", JobVersion: 0, DesiredStatus: "stop", ClientStatus: "complete"},
	}}
	ps, err := r.Processes(ctx(t), "hello")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		s := fmt.Sprintf("%s %s v%d since %s restarts %d", p.Dyno, p.State, p.Release, p.Since.Format("15:04"), p.Restarts)
		if p.ExitCode != nil {
			s += fmt.Sprintf(" exit %d", *p.ExitCode)
		}
		got = append(got, s)
	}
	want := []string{
		"web.1 up v7 since 09:00 restarts 2 exit 137",
		"web.2 starting v7 since 10:00 restarts 0",
		"worker.1 crashed v6 since 10:00 restarts 0 exit 1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("processes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	none, err := r.Processes(ctx(t), "nothing")
	if err != nil || len(none) != 0 {
		t.Fatalf("an app without a job: %v, %v", none, err)
	}
}
