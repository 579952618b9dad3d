package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/gh/ghtest"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/workflows"
)

// gitHubStandIn is the GitHub API stand-in (ghtest) holding octo-org/hello,
// with the helpers these tests read it through. It keeps what drover
// writes as GitHub does: drover's own commit statuses join the commit's
// combined status, so a deploy that waited on them would never pass.
type gitHubStandIn struct {
	*ghtest.Server
}

const e2eRepo = "octo-org/hello"

// setOpenPulls sets the open pull requests, head SHA by number, all from
// the repository itself.
func (g *gitHubStandIn) setOpenPulls(heads map[int]string) {
	var prs []ghtest.PullRequest
	for n, sha := range heads {
		prs = append(prs, ghtest.PullRequest{Number: n, Title: fmt.Sprintf("PR %d", n), Head: sha, Branch: "feature"})
	}
	g.SetPulls(e2eRepo, prs...)
}

func newGitHubStandIn(t *testing.T, cloneURL string) *gitHubStandIn {
	g := &gitHubStandIn{ghtest.New(t)}
	g.AddRepo(e2eRepo, cloneURL)
	return g
}

func (g *gitHubStandIn) setHead(sha, message string) {
	g.SetBranch(e2eRepo, "main", ghtest.Commit{SHA: sha, Message: message})
}

// setCI reports the commit's "test" check run: running while conclusion
// is empty, else completed with it.
func (g *gitHubStandIn) setCI(sha, conclusion string) {
	status := "completed"
	if conclusion == "" {
		status = "in_progress"
	}
	g.AddCheckRun(e2eRepo, sha, "test", status, conclusion)
}

// deploymentStates returns the states reported for sha's deployment to env.
func (g *gitHubStandIn) deploymentStates(sha, env string) []string {
	return g.DeploymentStates(e2eRepo, sha, env)
}

func (g *gitHubStandIn) commitStatuses(sha string) []string { return g.Statuses(e2eRepo, sha) }

// issueComments returns the bodies of the comments on an issue or PR.
func (g *gitHubStandIn) issueComments(number int) []string { return g.Comments(e2eRepo, number) }

func (s *stack) webhook(ctx context.Context, event, delivery string, payload []byte) (int, string) {
	s.t.Helper()
	code, body, err := SendWebhook(ctx, s.base+"/webhooks/github", s.secret, event, delivery, payload)
	if err != nil {
		s.t.Fatal(err)
	}
	return code, string(body)
}

// startWithGitHub starts drover dev with one local region and the hello
// pipeline's stages (YAML lines under stages:), talking to a GitHub API
// stand-in that serves repo.
func startWithGitHub(t *testing.T, ctx context.Context, repo *gitRepo, data, stages string) (*gitHubStandIn, *Dev, *stack) {
	t.Helper()
	gh := newGitHubStandIn(t, "file://"+repo.dir)
	t.Setenv(secretEnv, "e2e-secret")
	t.Setenv("DROVER_E2E_GH_TOKEN", ghtest.Token)
	config := filepath.Join(t.TempDir(), "drover.yaml")
	yaml := fmt.Sprintf(`github: { webhook_secret_env: %s, token_env: DROVER_E2E_GH_TOKEN, api_url: '%s' }
regions:
  local-a: { driver: local }
pipelines:
  hello:
    repo: octo-org/hello
    source: file://%s
    stages:%s
`, secretEnv, gh.URL, repo.dir, stages)
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	d, s := startDev(t, ctx, config, data)
	return gh, d, s
}

// eventually polls cond every 100 ms until it holds or ctx ends.
func eventually(ctx context.Context, t testing.TB, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestE2EGitHubInTheLoop runs drover dev against a GitHub API stand-in.
// A push whose webhook never arrives is found by the missed-push schedule
// (a real Temporal schedule every second), waits for CI, deploys once a
// check_suite webhook says CI passed, and is reported to GitHub; its
// webhook arriving late starts nothing. Then a commit whose CI fails
// deploys nothing, is reported as failed, and is not retried.
func TestE2EGitHubInTheLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end; skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	repo := newGitRepo(t)
	gh, d, s := startWithGitHub(t, ctx, repo, t.TempDir(), `
      staging: { app: hello-staging, branch: main, regions: [local-a], wait_for_ci: true, reconcile_interval: 1s }`)
	defer d.Close()

	// c1 is pushed, but its webhook is lost. Its CI is still running.
	c1 := repo.commit("caught up", "web: bin/web\n")
	gh.setCI(c1, "")
	gh.setHead(c1, "caught up")
	eventually(ctx, t, "the missed push's GitHub deployment", func() bool {
		st := gh.deploymentStates(c1, "staging")
		return len(st) > 0 && st[0] == "queued"
	})
	time.Sleep(1500 * time.Millisecond) // CI still running: nothing deploys
	if rs := s.releases(ctx, "hello-staging"); len(rs) != 0 {
		t.Fatalf("released before CI passed: %+v", rs)
	}
	// CI passes; the check_suite webhook wakes the waiting deploy.
	gh.setCI(c1, "success")
	if code, body := s.webhook(ctx, "check_suite", "cs-1", checkSuiteFor(t, c1)); code != http.StatusAccepted || !strings.Contains(body, "signalled") {
		t.Fatalf("check_suite: %d %s", code, body)
	}
	v1 := s.waitRelease(ctx, "hello-staging", 1)
	if v1.Status != pipelines.ReleaseSucceeded || v1.Commit != c1 || !strings.Contains(v1.Description, "found by reconciliation") {
		t.Fatalf("v1 = %s %s %q", v1.Status, v1.Commit, v1.Description)
	}
	s.answersEverywhere(ctx, "hello-staging", 1, "caught up from hello-staging v1")
	eventually(ctx, t, "the success status", func() bool {
		st := gh.deploymentStates(c1, "staging")
		return len(st) > 0 && strings.HasPrefix(st[len(st)-1], "success http://")
	})
	if got := strings.Join(gh.deploymentStates(c1, "staging"), ","); !strings.HasPrefix(got, "queued,in_progress,success http://127.0.0.1:") {
		t.Fatalf("deployment statuses = %s", got)
	}
	// drover's pending status was in c1's combined status all through the
	// wait, as GitHub keeps it; the deploy still went on.
	if got := gh.commitStatuses(c1); got[0] != "drover/staging:pending" || got[len(got)-1] != "drover/staging:success" {
		t.Fatalf("commit statuses = %v", got)
	}

	// The lost webhook turns up late: c1 is released, so it starts nothing.
	if code, body := s.push(ctx, "late-1", pushPayload(t, repo.dir, c1)); code != http.StatusOK || !strings.Contains(body, "already released") {
		t.Fatalf("late push: %d %s", code, body)
	}
	time.Sleep(3 * time.Second) // three more schedule runs
	if rs := s.releases(ctx, "hello-staging"); len(rs) != 1 {
		t.Fatalf("%d releases after the late webhook and more reconciliation, want exactly 1", len(rs))
	}

	// c2's CI fails: nothing deploys, GitHub hears why, and reconciliation
	// does not try it again.
	c2 := repo.commit("broken", "web: bin/web\n")
	gh.setCI(c2, "failure")
	gh.setHead(c2, "broken")
	if code, body := s.push(ctx, "d-2", pushPayload(t, repo.dir, c2)); code != http.StatusAccepted {
		t.Fatalf("push c2: %d %s", code, body)
	}
	eventually(ctx, t, "c2's failure on GitHub", func() bool {
		st := gh.deploymentStates(c2, "staging")
		return len(st) > 0 && st[len(st)-1] == "failure"
	})
	time.Sleep(3 * time.Second)
	if got := gh.deploymentStates(c2, "staging"); strings.Join(got, ",") != "queued,failure" {
		t.Fatalf("c2 deployment statuses = %v; want one failed attempt", got)
	}
	if rs := s.releases(ctx, "hello-staging"); len(rs) != 1 {
		t.Fatalf("%d releases; CI red must release nothing", len(rs))
	}
	s.answersEverywhere(ctx, "hello-staging", 1, "caught up from hello-staging v1")
}

// TestE2EMissedPushSchedules: drover dev keeps one Temporal schedule per
// auto-deploy stage in step with drover.yaml: made on start, updated when
// the interval changes, deleted when the stage goes.
func TestE2EMissedPushSchedules(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end; skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	repo := newGitRepo(t)
	_, d, _ := startWithGitHub(t, ctx, repo, t.TempDir(), `
      staging: { app: hello-staging, branch: main, regions: [local-a], reconcile_interval: 1h }`)
	defer d.Close()
	sc := d.client.ScheduleClient()
	every := func() time.Duration {
		t.Helper()
		desc, err := sc.GetHandle(ctx, workflows.MissedPushScheduleID("hello-staging")).Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return desc.Schedule.Spec.Intervals[0].Every
	}
	if got := every(); got != time.Hour {
		t.Fatalf("interval = %v, want drover.yaml's 1h", got)
	}
	starter := &workflows.Starter{Client: d.client}
	watches := workflows.Watches(d.Config)
	watches[0].Every = 5 * time.Minute
	if err := starter.EnsureSchedules(ctx, watches); err != nil {
		t.Fatal(err)
	}
	if got := every(); got != 5*time.Minute {
		t.Fatalf("interval after the change = %v", got)
	}
	if err := starter.EnsureSchedules(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.GetHandle(ctx, workflows.MissedPushScheduleID("hello-staging")).Describe(ctx); err == nil {
		t.Fatal("the schedule of a stage no longer configured is still there")
	}
}
