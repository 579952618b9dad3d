package workflows_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/workflows"
)

type fakePRs struct{ open []pipelines.PullRequest }

func (f *fakePRs) PullRequest(ctx context.Context, repo string, number int) (pipelines.PullRequest, error) {
	for _, pr := range f.open {
		if pr.Number == number {
			return pr, nil
		}
	}
	return pipelines.PullRequest{Number: number}, nil
}

func (f *fakePRs) OpenPullRequests(ctx context.Context, repo string) ([]pipelines.PullRequest, error) {
	return f.open, nil
}

// fakeReviewQueue records what reaches review app workflows.
type fakeReviewQueue struct {
	mu      sync.Mutex
	running map[int]bool
	got     []string
	reasons []string
}

func (q *fakeReviewQueue) ReviewEvent(ctx context.Context, start workflows.ReviewInput, ev workflows.PREvent) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.got = append(q.got, fmt.Sprintf("start #%d %s %s created=%v", start.Number, start.App, ev.Action, start.Created))
	q.reasons = append(q.reasons, ev.Reason)
	return nil
}

func (q *fakeReviewQueue) ReviewClose(ctx context.Context, repo string, number int, ev workflows.PREvent) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.running[number] {
		return false, nil
	}
	q.got = append(q.got, fmt.Sprintf("signal #%d %s", number, ev.Action))
	return true, nil
}

func (q *fakeReviewQueue) ReviewRunning(ctx context.Context, repo string, number int) (bool, error) {
	return q.running[number], nil
}

// TestReviewSweep: the sweep hands missed pull requests to their review
// apps and destroys the apps of pull requests no longer open, and leaves
// alone what is already in hand.
func TestReviewSweep(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ago := time.Now().Add(-time.Hour)
	put := func(n int, commit string, destroyed bool) {
		app := pipelines.ReviewAppName("hello", n)
		f.store.PutReviewApp(ctx, pipelines.ReviewApp{App: app, Pipeline: "hello", Repo: "octo-org/hello", PR: n, Commit: commit, DeployedAt: &ago})
		if destroyed {
			f.store.DestroyReviewApp(ctx, app, "no deploy for 72h0m0s")
		}
	}
	put(3, "h3", true)  // destroyed by TTL, no push since
	put(4, "old", true) // destroyed, then pushed to
	put(6, "h6", false) // closed while drover was away; its workflow runs
	put(7, "h7", false) // closed; its workflow is gone
	put(8, "h8", false) // open and live, but its workflow is gone
	pr := func(n int, head string, fork, draft bool) pipelines.PullRequest {
		return pipelines.PullRequest{Number: n, Head: head, CloneURL: "file:///r", Fork: fork, Draft: draft, Open: true}
	}
	f.gh.PullRequests = &fakePRs{open: []pipelines.PullRequest{
		pr(1, "h1", false, false), // its opened webhook was lost
		pr(2, "h2", false, false), // in hand
		pr(3, "h3", false, false),
		pr(4, "h4", false, false),
		pr(5, "h5", true, false), // a fork never deployed
		pr(9, "h9", false, true), // a draft
		pr(8, "h8", false, false),
	}}
	q := &fakeReviewQueue{running: map[int]bool{2: true, 6: true}}
	f.acts.Reviews = q
	env := f.env()
	p := pipelines.Pipeline{Name: "hello", Repo: "octo-org/hello", Stages: map[string]pipelines.Stage{}}
	env.ExecuteWorkflow(workflows.ReviewSweepWorkflow, workflows.ReviewTemplateFor(p, pipelines.Stage{Name: "review", Regions: []string{"a"}}))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res workflows.ReviewSweepResult
	env.GetWorkflowResult(&res)
	if fmt.Sprint(res.Handed) != "[1 4 8]" || fmt.Sprint(res.Destroyed) != "[6 7]" {
		t.Fatalf("result = %+v", res)
	}
	want := "start #1 hello-pr-1 opened created=false|start #4 hello-pr-4 synchronize created=false|start #8 hello-pr-8 synchronize created=false|" +
		"signal #6 destroy|start #7 hello-pr-7 destroy created=true"
	if got := strings.Join(q.got, "|"); got != want {
		t.Fatalf("events:\n%s\nwant\n%s", got, want)
	}
}
