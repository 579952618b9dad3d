package workflows_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/drover/drover/gh"
	"github.com/drover/drover/workflows"
)

// fakeCI answers with verdicts in turn, repeating the last.
type fakeCI struct {
	mu       sync.Mutex
	verdicts []gh.Verdict
	calls    int
}

func (f *fakeCI) CIState(ctx context.Context, repo, sha string, required []string) (gh.Verdict, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.verdicts[min(f.calls, len(f.verdicts)-1)]
	f.calls++
	return v, nil
}

var (
	pending = gh.Verdict{State: gh.CIPending, Waiting: []string{"test"}}
	green   = gh.Verdict{State: gh.CISuccess}
	red     = gh.Verdict{State: gh.CIFailure, Failing: "test (failure)", FailingURL: "https://github.com/o/r/runs/1"}
	none    = gh.Verdict{State: gh.CISuccess, None: true}
)

func TestWaitForCI(t *testing.T) {
	tests := []struct {
		name     string
		verdicts []gh.Verdict
		signalAt time.Duration // 0: no webhook arrives
		ok       bool
		err      string
		maxTime  time.Duration // the deploy must end by then (workflow time)
		calls    int
	}{
		{"green", []gh.Verdict{green}, 0, true, "", time.Minute, 1},
		{"red", []gh.Verdict{red}, 0, false, "CI failed for c1: test (failure) https://github.com/o/r/runs/1", time.Minute, 1},
		{"pending then green by webhook", []gh.Verdict{pending, green}, 30 * time.Second, true, "", 10 * time.Minute, 2},
		{"pending then green, webhook lost: the poll finds it", []gh.Verdict{pending, green}, 0, true, "", 3 * time.Hour, 2},
		{"never finishes", []gh.Verdict{pending}, 0, false, "did not finish within 2h0m0s; still waiting on test", 3 * time.Hour, 3},
		{"no checks at all: passes after the grace period", []gh.Verdict{none}, 0, true, "", 3 * time.Hour, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			ci := &fakeCI{verdicts: tt.verdicts}
			f.acts.CI = ci
			env := f.env()
			env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "deploy/hello-staging/c1"})
			if tt.signalAt > 0 {
				env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.SignalCI, nil) }, tt.signalAt)
			}
			start := env.Now()
			env.ExecuteWorkflow(workflows.DeployWorkflow, workflows.DeployInput{App: app, DeployRequest: workflows.DeployRequest{
				Repo: "octo-org/hello", CloneURL: "file:///r", Commit: "c1", Regions: []string{"a"},
				CI: &workflows.CIPolicy{Timeout: 2 * time.Hour, Poll: time.Hour, Grace: 30 * time.Minute}}})
			err := env.GetWorkflowError()
			if (err == nil) != tt.ok || (tt.err != "" && !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("err = %v, want ok=%v %q", err, tt.ok, tt.err)
			}
			if took := env.Now().Sub(start); took > tt.maxTime {
				t.Fatalf("took %v of workflow time, want at most %v", took, tt.maxTime)
			}
			if ci.calls != tt.calls {
				t.Fatalf("CI read %d times, want %d", ci.calls, tt.calls)
			}
			rs, _ := f.store.Releases(context.Background(), app, 0)
			if tt.ok != (len(rs) == 1) {
				t.Fatalf("%d releases; a deploy whose CI failed makes none", len(rs))
			}
		})
	}
}

// ciBySHA answers each commit's CI verdict from a map; unknown commits
// are pending.
type ciBySHA struct {
	mu    sync.Mutex
	state map[string]gh.Verdict
	reads map[string]int
}

func (c *ciBySHA) CIState(ctx context.Context, repo, sha string, required []string) (gh.Verdict, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads[sha]++
	if v, ok := c.state[sha]; ok {
		return v, nil
	}
	return pending, nil
}

// TestNewerPushSupersedesADeployWaitingForCI: c1's CI never finishes, c2
// is pushed a minute later with green CI. c1 gives way at once (not after
// its hour-long CI timeout), is recorded superseded, and c2 deploys.
func TestNewerPushSupersedesADeployWaitingForCI(t *testing.T) {
	f := newFixture(t)
	ci := &ciBySHA{state: map[string]gh.Verdict{"c2": green}, reads: map[string]int{}}
	rep := &fakeReporter{}
	f.acts.CI, f.acts.Reporter = ci, rep
	env := f.env()
	push := func(c string) func() {
		return func() {
			env.SignalWorkflow(workflows.SignalDeploy, workflows.DeployRequest{Repo: "octo-org/hello", CloneURL: "file:///r", Commit: c,
				Regions: []string{"a"}, Environment: "staging", CI: &workflows.CIPolicy{Timeout: time.Hour, Poll: 2 * time.Minute}})
		}
	}
	var c2Done time.Duration
	start := env.Now()
	env.RegisterDelayedCallback(push("c1"), 0)
	env.RegisterDelayedCallback(push("c2"), time.Minute)
	env.RegisterDelayedCallback(func() {
		// By the time the CI timeout of c1 would end, c2 has long deployed.
		rs, _ := f.store.Releases(context.Background(), app, 0)
		for _, r := range rs {
			if r.Commit == "c2" && r.Status == "succeeded" {
				c2Done = env.Now().Sub(start)
			}
		}
	}, 10*time.Minute)
	env.ExecuteWorkflow(workflows.AppWorkflow, workflows.AppInput{App: app})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if c2Done == 0 {
		t.Fatal("c2 had not deployed 10 minutes after it was pushed: c1's wait for CI held the queue")
	}
	rs, err := f.store.Releases(context.Background(), app, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(rs) - 1; i >= 0; i-- {
		got = append(got, fmt.Sprintf("%s:%s:%s", rs[i].Name(), rs[i].Commit, rs[i].Status))
	}
	if want := "v1:c1:superseded v2:c2:succeeded"; strings.Join(got, " ") != want {
		t.Fatalf("ledger = %s, want %s", strings.Join(got, " "), want)
	}
	if !strings.Contains(rs[1].Description, "superseded by c2") {
		t.Fatalf("c1's description = %q", rs[1].Description)
	}
	if got := strings.Join(rep.statuses, " "); !strings.Contains(got, "77:inactive:") {
		t.Fatalf("GitHub statuses = %s; c1's deployment must end inactive", got)
	}
}
