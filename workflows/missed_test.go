package workflows_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/workflows"
)

type fakeBranches struct {
	head pipelines.BranchHead
	err  error
}

func (f *fakeBranches) BranchHead(ctx context.Context, repo, branch string) (pipelines.BranchHead, error) {
	return f.head, f.err
}

// fakeQueue stands in for the Starter: it records queued pushes and knows
// the deploys listed in exists.
type fakeQueue struct {
	mu     sync.Mutex
	queued []workflows.DeployRequest
	exists map[string]bool
}

func (q *fakeQueue) Deploy(ctx context.Context, app string, req workflows.DeployRequest) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queued = append(q.queued, req)
	return nil
}

func (q *fakeQueue) DeployExists(ctx context.Context, app, commit string) (bool, error) {
	return q.exists[commit], nil
}

func TestMissedPushWorkflow(t *testing.T) {
	tests := []struct {
		name     string
		head     string
		released string // a commit already in the ledger
		exists   string // a commit with a deploy workflow
		ghDown   bool
		queued   bool
		known    string
		err      string
	}{
		{"missed push is queued", "c2", "c1", "", false, true, "", ""},
		{"head already released", "c1", "c1", "", false, false, "c1 is v1 (succeeded)", ""},
		{"head being deployed", "c2", "c1", "c2", false, false, "a deploy of c2 exists", ""},
		{"GitHub down: retried, then the run fails; the next run tries again", "c2", "c1", "", true, false, "", "read the head of octo-org/hello main"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if _, err := f.deploy(t, tt.released); err != nil {
				t.Fatal(err)
			}
			q := &fakeQueue{exists: map[string]bool{tt.exists: true}}
			br := &fakeBranches{head: pipelines.BranchHead{Commit: tt.head, Message: "Fix the thing\n\nlong text", CloneURL: "https://github.com/octo-org/hello.git"}}
			if tt.ghDown {
				br.err = errors.New("502 Bad Gateway")
			}
			f.gh.Branches, f.acts.Queue = br, q
			env := f.env()
			stage := pipelines.Stage{Name: "staging", App: app, Branch: "main", Regions: []string{"a"}, WaitForCI: true}
			env.ExecuteWorkflow(workflows.MissedPushWorkflow, workflows.MissedPushInput{App: app, Branch: "main",
				Request: workflows.StageRequest(pipelines.Pipeline{Repo: "octo-org/hello"}, stage, "", "", "")})
			err := env.GetWorkflowError()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				if len(q.queued) != 0 {
					t.Fatal("queued a push without knowing the head")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var res workflows.MissedPushResult
			if err := env.GetWorkflowResult(&res); err != nil {
				t.Fatal(err)
			}
			if res.Queued != tt.queued || res.Known != tt.known || res.Head != tt.head {
				t.Fatalf("result = %+v, want queued=%v known=%q", res, tt.queued, tt.known)
			}
			if !tt.queued {
				if len(q.queued) != 0 {
					t.Fatalf("queued %v for a known commit", q.queued)
				}
				return
			}
			if len(q.queued) != 1 {
				t.Fatalf("queued %d pushes, want 1", len(q.queued))
			}
			req := q.queued[0]
			if req.Commit != "c2" || req.CloneURL != "https://github.com/octo-org/hello.git" || req.CI == nil || req.Environment != "staging" ||
				!strings.Contains(req.Description, "found by reconciliation") || !strings.HasSuffix(req.Description, ": Fix the thing") {
				t.Fatalf("queued %+v; want the stage's deploy of c2, as its webhook would have asked", req)
			}
		})
	}
}
