package workflows_test

import (
	"context"
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
