package workflows_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/drover/drover/gh"
	"github.com/drover/drover/gh/ghtest"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/workflows"
)

// fakeCI answers with verdicts in turn, repeating the last.
type fakeCI struct {
	mu       sync.Mutex
	verdicts []pipelines.CIVerdict
	calls    int
}

func (f *fakeCI) CIState(ctx context.Context, repo, sha string, required []string) (pipelines.CIVerdict, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.verdicts[min(f.calls, len(f.verdicts)-1)]
	f.calls++
	return v, nil
}

var (
	pending = pipelines.CIVerdict{State: pipelines.CIPending, Waiting: []string{"test"}}
	green   = pipelines.CIVerdict{State: pipelines.CISuccess}
	red     = pipelines.CIVerdict{State: pipelines.CIFailure, Failing: "test (failure)", FailingURL: "https://github.com/o/r/runs/1"}
	none    = pipelines.CIVerdict{State: pipelines.CISuccess, None: true}
)

// TestWaitForCI drives a deploy's wait for CI through drover's GitHub
// client against a GitHub API stand-in.
func TestWaitForCI(t *testing.T) {
	tests := []struct {
		name     string
		script   []string
		required []string
		signalAt time.Duration // 0: no webhook arrives
		ok       bool
		err      string
		note     string        // in the release's description
		maxTime  time.Duration // the deploy must end by then (workflow time)
		reads    int
	}{
		{"green", []string{"success"}, nil, 0, true, "", "", time.Minute, 1},
		{"red", []string{"failure"}, nil, 0, false, "CI failed for c1: test (failure) https://github.example.com/octo-org/hello/runs/1", "", time.Minute, 1},
		{"pending then green by webhook", []string{"running", "success"}, nil, 30 * time.Second, true, "", "", 10 * time.Minute, 2},
		{"pending then green, webhook lost: the poll finds it", []string{"running", "success"}, nil, 0, true, "", "", 3 * time.Hour, 2},
		{"never finishes", []string{"running"}, nil, 0, false, "did not finish within 2h0m0s; still waiting on test", "", 3 * time.Hour, 3},
		{"required check never reported", []string{"success"}, []string{"deploy-gate"}, 0, false, "still waiting on deploy-gate (required, not reported yet)", "", 3 * time.Hour, 3},
		{"rate limited, then green", []string{"ratelimit", "success"}, nil, 0, true, "", "", time.Minute, 2},
		{"no checks at all: passes after the grace period, and says so", []string{"none"}, nil, 0, true, "", "no CI checks or statuses were reported within 30m0s; deployed without CI", 3 * time.Hour, 2},
		{"no checks at all, but one is required", []string{"none"}, []string{"test"}, 0, false, "still waiting on test (required, not reported yet)", "", 3 * time.Hour, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			stand := ghtest.New(t)
			stand.AddRepo("octo-org/hello", "file:///r")
			// Each read of the check runs takes the next step of the
			// script: a CI app reporting its run, or GitHub saying to wait.
			stand.BeforeRead(func(kind string, read int) {
				if kind != "check-runs" {
					return
				}
				switch step := tt.script[min(read, len(tt.script)-1)]; step {
				case "ratelimit":
					stand.RateLimitNext(1)
				case "none":
				case "running":
					stand.AddCheckRun("octo-org/hello", "c1", "test", "in_progress", "")
				default:
					stand.AddCheckRun("octo-org/hello", "c1", "test", "completed", step)
				}
			})
			f.gh.CI = ghClient(t, stand)
			env := f.env()
			env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "deploy/hello-staging/c1"})
			if tt.signalAt > 0 {
				env.RegisterDelayedCallback(func() { env.SignalWorkflow(workflows.SignalCI, nil) }, tt.signalAt)
			}
			start := env.Now()
			env.ExecuteWorkflow(workflows.DeployWorkflow, workflows.DeployInput{App: app, DeployRequest: workflows.DeployRequest{
				Repo: "octo-org/hello", CloneURL: "file:///r", Commit: "c1", Regions: []string{"a"}, Description: "push",
				CI: &workflows.CIPolicy{RequiredChecks: tt.required, Timeout: 2 * time.Hour, Poll: time.Hour, Grace: 30 * time.Minute}}})
			err := env.GetWorkflowError()
			if (err == nil) != tt.ok || (tt.err != "" && !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("err = %v, want ok=%v %q", err, tt.ok, tt.err)
			}
			if took := env.Now().Sub(start); took > tt.maxTime {
				t.Fatalf("took %v of workflow time, want at most %v", took, tt.maxTime)
			}
			if got := stand.Reads("check-runs"); got != tt.reads {
				t.Fatalf("check runs read %d times, want %d", got, tt.reads)
			}
			rs, _ := f.store.Releases(context.Background(), app, 0)
			if tt.ok != (len(rs) == 1) {
				t.Fatalf("%d releases; a deploy whose CI failed makes none", len(rs))
			}
			if tt.ok && tt.note != "" && !strings.HasSuffix(rs[0].Description, "; "+tt.note) {
				t.Fatalf("description = %q; want the note %q", rs[0].Description, tt.note)
			}
			if tt.ok && tt.note == "" && rs[0].Description != "push" {
				t.Fatalf("description = %q", rs[0].Description)
			}
		})
	}
}

// ghClient is drover's GitHub client on the stand-in.
func ghClient(t *testing.T, stand *ghtest.Server) *gh.Client {
	t.Helper()
	auth, err := gh.NewTokenAuth(stand.URL, ghtest.Token)
	if err != nil {
		t.Fatal(err)
	}
	return &gh.Client{Auth: auth}
}

// TestWaitForCIIgnoresDroversOwnStatus: the deploy reports itself to
// GitHub (a pending drover/staging commit status) before it waits for CI;
// GitHub counts that status in the commit's combined status, as it counts
// any. With every check run green the deploy must go on at once, not wait
// for its own status until the CI timeout.
func TestWaitForCIIgnoresDroversOwnStatus(t *testing.T) {
	f := newFixture(t)
	stand := ghtest.New(t)
	stand.AddRepo("octo-org/hello", "file:///r")
	stand.AddCheckRun("octo-org/hello", "c1", "test", "completed", "success")
	stand.AddStatus("octo-org/hello", "c1", "ci/lint", "success")
	ghc := ghClient(t, stand)
	f.gh.CI, f.gh.Reporter = ghc, ghc
	env := f.env()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "deploy/hello-staging/c1"})
	start := env.Now()
	env.ExecuteWorkflow(workflows.DeployWorkflow, workflows.DeployInput{App: app, DeployRequest: workflows.DeployRequest{
		Repo: "octo-org/hello", CloneURL: "file:///r", Commit: "c1", Regions: []string{"a"}, Description: "push", Environment: "staging",
		CI: &workflows.CIPolicy{Timeout: 2 * time.Hour, Poll: time.Hour, Grace: 30 * time.Minute}}})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("deploy failed: %v", err)
	}
	if took := env.Now().Sub(start); took > time.Minute {
		t.Fatalf("the deploy waited %v of workflow time for CI that was already green", took)
	}
	if got := stand.Reads("check-runs"); got != 1 {
		t.Fatalf("check runs read %d times, want 1", got)
	}
	// The wait read a combined status that held drover's own pending one.
	got := strings.Join(stand.Statuses("octo-org/hello", "c1"), " ")
	if !strings.HasPrefix(got, "ci/lint:success drover/staging:pending") || !strings.HasSuffix(got, "drover/staging:success") {
		t.Fatalf("commit statuses = %s", got)
	}
	if d := stand.DeploymentStates("octo-org/hello", "c1", "staging"); strings.Join(d, ",") != "queued,in_progress,success http://a.test" {
		t.Fatalf("deployment states = %v", d)
	}
}

// ciBySHA answers each commit's CI verdict from a map; unknown commits
// are pending.
type ciBySHA struct {
	mu    sync.Mutex
	state map[string]pipelines.CIVerdict
	reads map[string]int
}

func (c *ciBySHA) CIState(ctx context.Context, repo, sha string, required []string) (pipelines.CIVerdict, error) {
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
	ci := &ciBySHA{state: map[string]pipelines.CIVerdict{"c2": green}, reads: map[string]int{}}
	rep := &fakeReporter{}
	f.gh.CI, f.gh.Reporter = ci, rep
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
	got, rs := f.ledger(t, app)
	if want := "v1:c1:superseded v2:c2:succeeded"; got != want {
		t.Fatalf("ledger = %s, want %s", got, want)
	}
	if !strings.Contains(rs[1].Description, "superseded by c2") {
		t.Fatalf("c1's description = %q", rs[1].Description)
	}
	if got := strings.Join(rep.statuses, " "); !strings.Contains(got, "77:inactive:") {
		t.Fatalf("GitHub statuses = %s; c1's deployment must end inactive", got)
	}
}

// memWaits is a CIWaits in memory: workflow → repo@commit.
type memWaits struct {
	mu    sync.Mutex
	waits map[string]string
	log   []string
}

func (m *memWaits) WaitingForCI(ctx context.Context, workflow, repo, commit string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.waits[workflow] = repo + "@" + commit
	m.log = append(m.log, "wait "+workflow)
	return nil
}

func (m *memWaits) CIWaiters(ctx context.Context, repo, commit string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []string
	for id, at := range m.waits {
		if at == repo+"@"+commit {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (m *memWaits) CIWaitOver(ctx context.Context, workflow string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.waits, workflow)
	m.log = append(m.log, "over "+workflow)
	return nil
}

// TestCheckCIRecordsTheWait: each CI read first records that its deploy
// waits (so a webhook for CI that changes after the read finds it), and a
// verdict the deploy stops waiting on (green or red) forgets the wait; a
// pending one, or no checks yet (within the grace), keeps it.
func TestCheckCIRecordsTheWait(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	for _, tt := range []struct {
		name    string
		verdict pipelines.CIVerdict
		kept    bool
	}{{"pending", pending, true}, {"no checks yet", none, true}, {"green", green, false}, {"red", red, false}} {
		t.Run(tt.name, func(t *testing.T) {
			waits := &memWaits{waits: map[string]string{}}
			acts := &workflows.GitHubActivities{CI: &fakeCI{verdicts: []pipelines.CIVerdict{tt.verdict}}, Waits: waits}
			env := s.NewTestActivityEnvironment()
			env.RegisterActivity(acts)
			if _, err := env.ExecuteActivity(acts.CheckCI, workflows.CheckCIInput{Repo: "o/r", Commit: strings.Repeat("a", 40)}); err != nil {
				t.Fatal(err)
			}
			ids, _ := waits.CIWaiters(context.Background(), "o/r", strings.Repeat("a", 40))
			if len(waits.log) == 0 || !strings.HasPrefix(waits.log[0], "wait ") || (len(ids) == 1) != tt.kept {
				t.Fatalf("waits %v after %s (log %v); want kept %v", ids, tt.name, waits.log, tt.kept)
			}
		})
	}
}
