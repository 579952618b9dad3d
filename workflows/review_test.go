package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/workflows"
)

const reviewApp = "hello-pr-42"

// fakeComments keeps drover's comments by ID, as GitHub would.
type fakeComments struct {
	mu     sync.Mutex
	bodies map[int64][]string // every version of each comment
	next   int64
}

func (c *fakeComments) UpsertComment(ctx context.Context, repo string, number int, key, body string, id int64) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bodies == nil {
		c.bodies = map[int64][]string{}
	}
	if id == 0 {
		c.next++
		id = c.next
	}
	c.bodies[id] = append(c.bodies[id], body)
	return id, nil
}

// only returns the versions of the one comment, failing if there are more.
func (c *fakeComments) only(t *testing.T) []string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.bodies) != 1 {
		t.Fatalf("%d comments on the pull request, want one, edited: %v", len(c.bodies), c.bodies)
	}
	for _, b := range c.bodies {
		return b
	}
	return nil
}

func (c *fakeComments) last(t *testing.T) string {
	b := c.only(t)
	return b[len(b)-1]
}

const reviewManifest = `{
  "env": {
    "SECRET_KEY_BASE": { "generator": "secret" },
    "DATABASE_URL": { "description": "copied from staging" },
    "GREETING": "hi"
  },
  "scripts": { "postdeploy": "bin/seed", "pr-predestroy": "bin/goodbye" },
  "formation": { "web": { "quantity": 2 }, "clock": { "quantity": 1 } }
}`

type reviewFixture struct {
	*fixture
	comments *fakeComments
	env      *testsuite.TestWorkflowEnvironment
	start    time.Time
}

func newReviewFixture(t *testing.T) *reviewFixture {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.store.SetConfigVars(ctx, "hello-staging", map[string]string{"DATABASE_URL": "postgres://staging"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"c1", "c2", "c3", "c4"} {
		f.slugs.files[digest(c)] = map[string]string{"app.json": reviewManifest}
	}
	f.builder.procfile = pipelines.Procfile{{Type: "web", Command: "bin/web"}}
	rf := &reviewFixture{fixture: f, comments: &fakeComments{}}
	f.gh.Comments = rf.comments
	rf.env = f.env()
	rf.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.ReviewWorkflowID("octo-org/hello", 42)})
	rf.start = rf.env.Now()
	return rf
}

func (rf *reviewFixture) at(d time.Duration, action, head string, edit ...func(*workflows.PREvent)) {
	rf.env.RegisterDelayedCallback(func() {
		ev := workflows.PREvent{Action: action, PR: pipelines.PullRequest{Number: 42, Title: "Add login", Branch: "login", Head: head, CloneURL: "file:///r", Open: true}}
		for _, e := range edit {
			e(&ev)
		}
		rf.env.SignalWorkflow(workflows.SignalPullRequest, ev)
	}, d)
}

func (rf *reviewFixture) run(t *testing.T, in func(*workflows.ReviewInput)) error {
	t.Helper()
	p := pipelines.Pipeline{Name: "hello", Repo: "octo-org/hello", Stages: map[string]pipelines.Stage{
		"staging": {Name: "staging", App: "hello-staging", Regions: []string{"a"}},
	}}
	st := pipelines.Stage{Name: "review", Regions: []string{"a", "b"}, TTL: "72h", ConfigFrom: "staging"}
	start := workflows.ReviewStart(p, st, 42)
	if in != nil {
		in(&start)
	}
	rf.env.ExecuteWorkflow(workflows.ReviewAppWorkflow, start)
	if !rf.env.IsWorkflowCompleted() {
		t.Fatal("review app workflow did not end")
	}
	return rf.env.GetWorkflowError()
}

func (rf *reviewFixture) ledger(t *testing.T) string {
	t.Helper()
	got, _ := rf.fixture.ledger(t, reviewApp)
	return got
}

func (rf *reviewFixture) tasks(region string) []string {
	r := rf.regions[region]
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, t := range r.tasks {
		out = append(out, t.Name+":"+t.Command)
	}
	return out
}

// assertDestroyed checks the app is gone everywhere and recorded so.
func (rf *reviewFixture) assertDestroyed(t *testing.T, reason string) {
	t.Helper()
	ctx := context.Background()
	for _, name := range []string{"a", "b"} {
		if r := rf.regions[name]; r.stops == 0 || r.running != 0 {
			t.Errorf("region %s: %d stops, running v%d; the review app must be stopped everywhere", name, r.stops, r.running)
		}
	}
	ra, err := rf.store.ReviewApp(ctx, reviewApp)
	if err != nil || ra.DestroyedAt == nil || !strings.Contains(ra.Reason, reason) {
		t.Fatalf("ledger review app = %+v, %v; want destroyed because %q", ra, err, reason)
	}
	if cv, _ := rf.store.ConfigVars(ctx, reviewApp); len(cv.Vars) != 0 {
		t.Fatalf("config of a destroyed review app: %v", cv.Vars)
	}
	if last := rf.comments.last(t); !strings.Contains(last, "was destroyed: "+reason) {
		t.Fatalf("last comment = %q", last)
	}
}

// TestReviewAppOpenDeployCommentClose: opening deploys the head with the
// staging config and app.json's env (secrets made once), comments the URL,
// runs postdeploy once, redeploys on push, and closing destroys it.
func TestReviewAppOpenDeployCommentClose(t *testing.T) {
	rf := newReviewFixture(t)
	var secret string
	rf.at(0, workflows.PROpened, "c1")
	rf.env.RegisterDelayedCallback(func() {
		cv, _ := rf.store.ConfigVars(context.Background(), reviewApp)
		secret = cv.Vars["SECRET_KEY_BASE"]
		if cv.Vars["DATABASE_URL"] != "postgres://staging" || cv.Vars["GREETING"] != "hi" || len(secret) != 64 {
			t.Errorf("config after the first deploy = %v", cv.Vars)
		}
		if last := rf.comments.last(t); !strings.Contains(last, "runs `c1` (v1): http://a.test") {
			t.Errorf("comment after deploying c1 = %q", last)
		}
		ra, _ := rf.store.ReviewApp(context.Background(), reviewApp)
		if ra.Commit != "c1" || ra.URL != "http://a.test" || ra.DeployedAt == nil || ra.Title != "Add login" {
			t.Errorf("ledger review app = %+v", ra)
		}
	}, 30*time.Minute)
	rf.at(time.Hour, workflows.PRSynchronize, "c2")
	rf.at(2*time.Hour, workflows.PRClosed, "c2", func(e *workflows.PREvent) { e.Reason = "the pull request was merged" })
	if err := rf.run(t, nil); err != nil {
		t.Fatal(err)
	}
	if got := rf.ledger(t); got != "v1:c1:succeeded v2:c2:succeeded" {
		t.Fatalf("ledger = %s", got)
	}
	// app.json's formation makes the first release's; the next keeps it.
	for _, v := range []int{1, 2} {
		if r, _ := rf.store.Release(context.Background(), reviewApp, v); r.Formation["web"] != 2 || len(r.Formation) != 1 {
			t.Fatalf("v%d formation = %v; want app.json's web=2 (clock is not in the Procfile)", v, r.Formation)
		}
	}
	if got := strings.Join(rf.tasks("a"), ","); got != "postdeploy:bin/seed,pr-predestroy:bin/goodbye" {
		t.Fatalf("tasks in a = %s; postdeploy runs once, pr-predestroy before teardown", got)
	}
	bodies := rf.comments.only(t)
	if !strings.HasPrefix(bodies[0], "Deploying `c1`") || !strings.Contains(strings.Join(bodies, "\n"), "runs `c2` (v2)") {
		t.Fatalf("comments = %q", bodies)
	}
	rf.assertDestroyed(t, "the pull request was merged")
	if secret == "" {
		t.Fatal("no secret was generated")
	}
}

// TestReviewAppNewestHeadWins: three pushes land while the first deploy
// builds; only the newest is deployed after it.
func TestReviewAppNewestHeadWins(t *testing.T) {
	rf := newReviewFixture(t)
	rf.env.OnActivity(rf.acts.Build, mock.Anything, mock.Anything).After(time.Minute).Return(
		func(ctx context.Context, in workflows.BuildInput) (workflows.BuildResult, error) {
			rf.builder.mu.Lock()
			rf.builder.builds = append(rf.builder.builds, in.Commit)
			rf.builder.mu.Unlock()
			return workflows.BuildResult{Slug: digest(in.Commit), Procfile: pipelines.Procfile{{Type: "web", Command: "bin/web"}}}, nil
		})
	rf.at(0, workflows.PROpened, "c1")
	rf.at(5*time.Second, workflows.PRSynchronize, "c2")
	rf.at(10*time.Second, workflows.PRSynchronize, "c3")
	rf.at(15*time.Second, workflows.PRSynchronize, "c4")
	rf.at(time.Hour, workflows.PRClosed, "c4")
	if err := rf.run(t, nil); err != nil {
		t.Fatal(err)
	}
	// The first deploy builds twice (its own step, reused by the deploy).
	builds := strings.Join(rf.builder.builds, " ")
	if strings.Contains(builds, "c2") || strings.Contains(builds, "c3") {
		t.Fatalf("built %s; c2 and c3 were replaced before they started", builds)
	}
	if got := rf.ledger(t); got != "v1:c1:succeeded v2:c4:succeeded" {
		t.Fatalf("ledger = %s; want c1, then only the newest head", got)
	}
}

// TestReviewAppClosedDuringDeploy: the deploy is cancelled where it is, its
// release recorded as failed, and the app destroyed in every region.
func TestReviewAppClosedDuringDeploy(t *testing.T) {
	rf := newReviewFixture(t)
	rf.env.OnActivity(rf.acts.DeployRegion, mock.Anything, mock.Anything).After(10 * time.Minute).Return(
		func(ctx context.Context, in workflows.DeployRegionInput) (workflows.DeployRegionResult, error) {
			return rf.acts.DeployRegion(ctx, in)
		})
	rf.at(0, workflows.PROpened, "c1")
	rf.at(5*time.Minute, workflows.PRClosed, "c1")
	if err := rf.run(t, nil); err != nil {
		t.Fatal(err)
	}
	if got := rf.ledger(t); got != "v1:c1:failed" {
		t.Fatalf("ledger = %s; the cancelled deploy's release must not stay pending or succeed", got)
	}
	if took := rf.env.Now().Sub(rf.start); took > 30*time.Minute {
		t.Fatalf("teardown took %v of workflow time", took)
	}
	rf.assertDestroyed(t, "the pull request was closed")
}

// TestReviewAppTTL: a review app with no deploy for the TTL is destroyed,
// with a last comment saying so.
func TestReviewAppTTL(t *testing.T) {
	rf := newReviewFixture(t)
	rf.at(0, workflows.PROpened, "c1")
	if err := rf.run(t, nil); err != nil {
		t.Fatal(err)
	}
	took := rf.env.Now().Sub(rf.start)
	if took < 72*time.Hour || took > 73*time.Hour {
		t.Fatalf("destroyed after %v, want the 72h TTL", took)
	}
	rf.assertDestroyed(t, "no deploy for 72h0m0s")
}

// TestReviewAppTeardownOutlastsARegionThatIsDown: stopping fails twice in
// region b; teardown retries until the app is gone there too.
func TestReviewAppTeardownOutlastsARegionThatIsDown(t *testing.T) {
	rf := newReviewFixture(t)
	rf.regions["b"].stopFailures = 2
	rf.at(0, workflows.PROpened, "c1")
	rf.at(time.Hour, workflows.PRClosed, "c1")
	if err := rf.run(t, nil); err != nil {
		t.Fatal(err)
	}
	if rf.regions["b"].stops != 3 {
		t.Fatalf("region b asked to stop %d times, want 3 (two failures, then done)", rf.regions["b"].stops)
	}
	rf.assertDestroyed(t, "the pull request was closed")
}

// TestReviewAppForkWaitsForSomeoneToDeployIt: a fork's pull request is not
// deployed (its code would get the pipeline's secrets) until someone runs
// `drover review-apps create`.
func TestReviewAppForkWaitsForSomeoneToDeployIt(t *testing.T) {
	rf := newReviewFixture(t)
	fork := func(e *workflows.PREvent) { e.PR.Fork = true }
	rf.at(0, workflows.PROpened, "c1", fork)
	rf.at(10*time.Minute, workflows.PRSynchronize, "c2", fork)
	rf.env.RegisterDelayedCallback(func() {
		if len(rf.builder.builds) != 0 {
			t.Errorf("built %v from a fork", rf.builder.builds)
		}
		// One comment, edited for each new commit, saying how to deploy it.
		if got := rf.comments.only(t); len(got) != 2 || !strings.Contains(got[1], "did not deploy `c2`") || !strings.Contains(got[1], "drover review-apps create hello 42") {
			t.Errorf("comments = %q; want the notice, naming the newest commit", got)
		}
	}, 30*time.Minute)
	rf.at(time.Hour, workflows.PRCreate, "", func(e *workflows.PREvent) { e.PR = pipelines.PullRequest{Number: 42}; e.By = "admin" })
	// A newer commit from the fork was not looked at: it waits again.
	rf.at(90*time.Minute, workflows.PRSynchronize, "c3", fork)
	rf.env.RegisterDelayedCallback(func() {
		if last := rf.comments.last(t); !strings.Contains(last, "did not deploy `c3`") {
			t.Errorf("comment after the fork's new commit = %q", last)
		}
	}, 100*time.Minute)
	rf.at(2*time.Hour, workflows.PRClosed, "c3", fork)
	if err := rf.run(t, nil); err != nil {
		t.Fatal(err)
	}
	if got := rf.ledger(t); got != "v1:c2:succeeded" {
		t.Fatalf("ledger = %s; deployed on purpose, the head someone looked at, and nothing after", got)
	}
	rf.assertDestroyed(t, "the pull request was closed")
}

// TestReviewAppDraftWaitsForReadyForReview: drafts deploy once ready,
// unless the stage deploys drafts.
func TestReviewAppDraftWaitsForReadyForReview(t *testing.T) {
	for _, deployDrafts := range []bool{false, true} {
		t.Run(fmt.Sprintf("deploy_drafts=%v", deployDrafts), func(t *testing.T) {
			rf := newReviewFixture(t)
			draft := func(e *workflows.PREvent) { e.PR.Draft = true }
			rf.at(0, workflows.PROpened, "c1", draft)
			rf.env.RegisterDelayedCallback(func() {
				if deployed := rf.ledger(t) != ""; deployed != deployDrafts {
					t.Errorf("draft deployed = %v, want %v", deployed, deployDrafts)
				}
			}, 30*time.Minute)
			rf.at(time.Hour, workflows.PRReadyForReview, "c1")
			rf.at(2*time.Hour, workflows.PRClosed, "c1")
			if err := rf.run(t, func(in *workflows.ReviewInput) { in.Stage.DeployDrafts = deployDrafts }); err != nil {
				t.Fatal(err)
			}
			if got := rf.ledger(t); got != "v1:c1:succeeded" {
				t.Fatalf("ledger = %s", got)
			}
		})
	}
}

// TestReviewAppContinuesAsNew: a pull request with many pushes keeps its
// history bounded, carrying its state (and the comment) over.
func TestReviewAppContinuesAsNew(t *testing.T) {
	rf := newReviewFixture(t)
	rf.at(0, workflows.PROpened, "c1")
	rf.at(time.Hour, workflows.PRSynchronize, "c2")
	rf.at(2*time.Hour, workflows.PRSynchronize, "c3")
	err := rf.run(t, func(in *workflows.ReviewInput) { in.ContinueAfter = 2 })
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("err = %v; want Continue-As-New after two events", err)
	}
	if got := rf.ledger(t); got != "v1:c1:succeeded v2:c2:succeeded" {
		t.Fatalf("ledger = %s", got)
	}
	if can.WorkflowType.Name != "ReviewAppWorkflow" {
		t.Fatalf("continued as %s", can.WorkflowType.Name)
	}
}

// TestReviewAppBrokenManifestSaysWhy: a required app.json var with no
// value fails the deploy before any release, and the comment names it.
func TestReviewAppBrokenManifestSaysWhy(t *testing.T) {
	rf := newReviewFixture(t)
	rf.slugs.files[digest("c1")] = map[string]string{"app.json": `{"env": {"STRIPE_KEY": {"description": "needed"}}}`}
	rf.at(0, workflows.PROpened, "c1")
	rf.at(time.Hour, workflows.PRClosed, "c1")
	if err := rf.run(t, nil); err != nil {
		t.Fatal(err)
	}
	if got := rf.ledger(t); got != "" {
		t.Fatalf("ledger = %s; nothing may be released", got)
	}
	bodies := rf.comments.only(t)
	if !strings.Contains(strings.Join(bodies, "\n"), "env STRIPE_KEY required and has no value") {
		t.Fatalf("comments = %q", bodies)
	}
	rf.assertDestroyed(t, "the pull request was closed")
}

// TestReviewAppMaxAppsEvictsTheIdlest: with max_apps 2 and two review apps
// live, opening a third destroys the one idle longest, saying why.
func TestReviewAppMaxAppsEvictsTheIdlest(t *testing.T) {
	rf := newReviewFixture(t)
	ctx := context.Background()
	old, recent := time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
	rf.store.PutReviewApp(ctx, pipelines.ReviewApp{App: "hello-pr-7", Pipeline: "hello", Repo: "octo-org/hello", PR: 7, DeployedAt: &recent})
	rf.store.PutReviewApp(ctx, pipelines.ReviewApp{App: "hello-pr-8", Pipeline: "hello", Repo: "octo-org/hello", PR: 8, DeployedAt: &old})
	// #8's workflow is gone: one is started to tear it down.
	q := &fakeReviewQueue{running: map[int]bool{7: true}}
	rf.acts.Reviews = q
	rf.at(0, workflows.PROpened, "c1")
	rf.at(time.Hour, workflows.PRClosed, "c1")
	if err := rf.run(t, func(in *workflows.ReviewInput) { in.Stage.MaxApps = 2 }); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(q.got, "|"); got != "start #8 hello-pr-8 destroy created=true" {
		t.Fatalf("evicted %q; want #8, idle longest", got)
	}
	if q.reasons[0] != "the review stage keeps at most 2 review apps (max_apps), and #42 needed room; it had been idle longest" {
		t.Fatalf("reason = %q", q.reasons[0])
	}
}

// TestReviewAppPushSupersedesADeployWaitingForCI: with wait_for_ci, a push
// replaces a deploy whose CI has not finished.
func TestReviewAppPushSupersedesADeployWaitingForCI(t *testing.T) {
	rf := newReviewFixture(t)
	rf.gh.CI = &ciBySHA{state: map[string]pipelines.CIVerdict{"c2": green}, reads: map[string]int{}}
	rf.at(0, workflows.PROpened, "c1")
	rf.at(time.Minute, workflows.PRSynchronize, "c2")
	rf.at(time.Hour, workflows.PRClosed, "c2")
	if err := rf.run(t, func(in *workflows.ReviewInput) {
		in.Stage.Request.CI = &workflows.CIPolicy{Timeout: 24 * time.Hour, Poll: 2 * time.Minute}
	}); err != nil {
		t.Fatal(err)
	}
	if got := rf.ledger(t); got != "v1:c1:superseded v2:c2:succeeded" {
		t.Fatalf("ledger = %s; c1 waited for CI and gave way to c2", got)
	}
}

// TestReviewAppTeardownSkipsARegionNoLongerConfigured: a region removed
// from drover.yaml since the app was made does not stall its teardown.
func TestReviewAppTeardownSkipsARegionNoLongerConfigured(t *testing.T) {
	rf := newReviewFixture(t)
	rf.at(0, workflows.PROpened, "c1")
	rf.env.RegisterDelayedCallback(func() { delete(rf.regions, "b") }, 30*time.Minute)
	rf.at(time.Hour, workflows.PRClosed, "c1")
	if err := rf.run(t, nil); err != nil {
		t.Fatal(err)
	}
	ra, err := rf.store.ReviewApp(context.Background(), reviewApp)
	if err != nil || ra.DestroyedAt == nil || rf.regions["a"].stops == 0 {
		t.Fatalf("review app = %+v, %v; a stopped %d times", ra, err, rf.regions["a"].stops)
	}
}
