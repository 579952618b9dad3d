package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/workflows"
)

type fakeReporter struct {
	mu          sync.Mutex
	deployments int
	statuses    []string
	commit      []string
	descs       []string
	fail        bool
	// onStart, when set, runs as a deployment is created.
	onStart func()
}

// descriptions returns every description GitHub was given.
func (r *fakeReporter) descriptions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.descs...)
}

func (r *fakeReporter) StartDeployment(ctx context.Context, repo, sha, env, desc string, release int) (int64, error) {
	if r.onStart != nil {
		r.onStart()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return 0, errors.New("github is down")
	}
	r.deployments++
	return 77, nil
}

func (r *fakeReporter) DeploymentStatus(ctx context.Context, repo string, id int64, state, desc, envURL, logURL string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, fmt.Sprintf("%d:%s:%s", id, state, envURL))
	r.descs = append(r.descs, desc)
	return nil
}

func (r *fakeReporter) CommitStatus(ctx context.Context, repo, sha, context, state, desc, target string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.commit = append(r.commit, context+":"+state)
	r.descs = append(r.descs, desc)
	return nil
}

func TestDeployIsReportedToGitHub(t *testing.T) {
	tests := []struct {
		name     string
		ci       []pipelines.CIVerdict
		fail     bool
		ok       bool
		statuses string
		commit   string
	}{
		{"success", []pipelines.CIVerdict{green}, false, true, "77:queued: 77:in_progress: 77:success:http://a.test", "drover/staging:pending drover/staging:pending drover/staging:success"},
		{"CI red", []pipelines.CIVerdict{red}, false, false, "77:queued: 77:failure:", "drover/staging:pending drover/staging:failure"},
		{"GitHub down never fails a deploy", []pipelines.CIVerdict{green}, true, true, "", ""},
		// A region drover cannot reach is drover's trouble, not the code's.
		{"region unreachable", []pipelines.CIVerdict{green}, false, false, "77:queued: 77:in_progress: 77:error:", "drover/staging:pending drover/staging:pending drover/staging:error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			rep := &fakeReporter{fail: tt.fail}
			f.gh.Reporter, f.gh.CI = rep, &fakeCI{verdicts: tt.ci}
			f.gh.PublicURL = func() string { return "http://drover.test" }
			f.regions["a"].unreachable = tt.name == "region unreachable"
			env := f.env()
			env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "deploy/hello-staging/c1"})
			env.ExecuteWorkflow(workflows.DeployWorkflow, workflows.DeployInput{App: app, DeployRequest: workflows.DeployRequest{
				Repo: "octo-org/hello", CloneURL: "file:///r", Commit: "c1", Regions: []string{"a"}, Environment: "staging",
				CI: &workflows.CIPolicy{Timeout: time.Hour}}})
			if err := env.GetWorkflowError(); (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if got := strings.Join(rep.statuses, " "); got != tt.statuses {
				t.Fatalf("deployment statuses = %q\nwant                  %q", got, tt.statuses)
			}
			if got := strings.Join(rep.commit, " "); got != tt.commit {
				t.Fatalf("commit statuses = %q, want %q", got, tt.commit)
			}
			if !tt.fail && rep.deployments != 1 {
				t.Fatalf("%d GitHub deployments created, want 1 (then reused)", rep.deployments)
			}
		})
	}
}

// TestPromotionIsReportedToGitHub: a promotion is a release of production,
// reported as a deploy of the promoted commit to the production
// environment.
func TestPromotionIsReportedToGitHub(t *testing.T) {
	f := newFixture(t)
	if _, err := f.deploy(t, "c1"); err != nil {
		t.Fatal(err)
	}
	rep := &fakeReporter{}
	f.gh.Reporter = rep
	in := promote(app, 0)
	in.Repo, in.Environment = "octo-org/hello", "production"
	if _, err := f.run(t, workflows.PromoteWorkflow, in); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rep.statuses, " "); got != "77:in_progress: 77:success:http://a.test" {
		t.Fatalf("deployment statuses = %q", got)
	}
	if got := strings.Join(rep.commit, " "); got != "drover/production:pending drover/production:success" {
		t.Fatalf("commit statuses = %q", got)
	}
}

// TestDeployDoesNotWaitForGitHub: a push's build starts while GitHub is
// told it is queued, not after, and GitHub still hears queued, in
// progress and success in that order.
func TestDeployDoesNotWaitForGitHub(t *testing.T) {
	f := newFixture(t)
	builtWhileReporting := false
	rep := &fakeReporter{onStart: func() {
		for range 100 {
			f.builder.mu.Lock()
			n := len(f.builder.builds)
			f.builder.mu.Unlock()
			if n > 0 {
				builtWhileReporting = true
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}}
	f.gh.Reporter, f.gh.CI = rep, &fakeCI{verdicts: []pipelines.CIVerdict{green}}
	env := f.env()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "deploy/hello-staging/c1"})
	env.ExecuteWorkflow(workflows.DeployWorkflow, workflows.DeployInput{App: app, DeployRequest: workflows.DeployRequest{
		Repo: "octo-org/hello", CloneURL: "file:///r", Commit: "c1", Regions: []string{"a"}, Environment: "staging",
		CI: &workflows.CIPolicy{Timeout: time.Hour}}})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if !builtWhileReporting {
		t.Fatal("the build started only once GitHub had been told the deploy is queued")
	}
	if got := strings.Join(rep.statuses, " "); got != "77:queued: 77:in_progress: 77:success:http://a.test" {
		t.Fatalf("deployment statuses = %q", got)
	}
}

// TestOperationDoesNotWaitForGitHub: an operation's release is made while
// GitHub is told it is in progress, not after: a GitHub that takes its
// time does not hold the release up. GitHub still hears in progress
// before success.
func TestOperationDoesNotWaitForGitHub(t *testing.T) {
	f := newFixture(t)
	if _, err := f.deploy(t, "c1"); err != nil {
		t.Fatal(err)
	}
	madeWhileReporting := false
	rep := &fakeReporter{onStart: func() {
		// Hold the report until the release exists, or give up.
		for range 100 {
			if _, err := f.store.Release(context.Background(), production, 1); err == nil {
				madeWhileReporting = true
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}}
	f.gh.Reporter = rep
	in := promote(app, 0)
	in.Repo, in.Environment = "octo-org/hello", "production"
	if _, err := f.run(t, workflows.PromoteWorkflow, in); err != nil {
		t.Fatal(err)
	}
	if !madeWhileReporting {
		t.Fatal("the release was made only once GitHub had been told the operation is in progress")
	}
	if got := strings.Join(rep.statuses, " "); got != "77:in_progress: 77:success:http://a.test" {
		t.Fatalf("deployment statuses = %q", got)
	}
}

// TestReleaseOutputStaysInDrover: a failed release phase's reason ends
// with its output, which may print config vars; what GitHub is told (and
// a PR comment says) stops at the exit code.
func TestReleaseOutputStaysInDrover(t *testing.T) {
	f := newFixture(t)
	f.regions["a"].taskExit = 3
	f.regions["a"].taskOutput = "DATABASE_URL=postgres://user:hunter2@db/app\n"
	rep := &fakeReporter{}
	f.gh.Reporter = rep
	env := f.env()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "deploy/hello-staging/c1"})
	env.ExecuteWorkflow(workflows.DeployWorkflow, workflows.DeployInput{App: app, DeployRequest: workflows.DeployRequest{
		Repo: "octo-org/hello", CloneURL: "file:///r", Commit: "c1", Regions: []string{"a"}, Environment: "staging"}})
	if env.GetWorkflowError() == nil {
		t.Fatal("the release phase failed; the deploy must too")
	}
	if r := f.release(t, 1); !strings.Contains(r.Output, "hunter2") {
		t.Fatalf("the ledger keeps the output for the app's owners: %q", r.Output)
	}
	all := strings.Join(rep.descriptions(), "\n")
	if strings.Contains(all, "hunter2") || !strings.Contains(all, "exited with code 3 (its output is in drover") {
		t.Fatalf("GitHub was told:\n%s", all)
	}
}
