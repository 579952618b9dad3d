package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/workflows"
)

// gitHubStandIn serves the GitHub API calls drover makes, shaped like
// GitHub's documented answers, under an Enterprise base path (/api/v3/):
// a branch's head, the repository, check runs, the combined status,
// deployments and their statuses, commit statuses, and issue comments. It
// records what drover told it.
type gitHubStandIn struct {
	t        *testing.T
	cloneURL string

	mu       sync.Mutex
	head     string
	message  string
	ci       map[string]string // commit → check run conclusion ("" while running)
	nextID   int64
	deploys  map[int64]string    // deployment ID → "sha@environment"
	statuses map[string][]string // "sha@environment" → deployment states
	commit   map[string][]string // sha → "context:state"
	comments map[int64]string    // comment ID → body
	onIssue  map[int64]int       // comment ID → issue number
	pulls    []map[string]any    // open pull requests
}

// setOpenPulls sets the open pull requests, head SHA by number, all from
// the repository itself.
func (g *gitHubStandIn) setOpenPulls(heads map[int]string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pulls = nil
	for n, sha := range heads {
		repo := map[string]any{"full_name": "octo-org/hello", "clone_url": g.cloneURL}
		g.pulls = append(g.pulls, map[string]any{"number": n, "state": "open", "title": fmt.Sprintf("PR %d", n),
			"head": map[string]any{"sha": sha, "ref": "feature", "repo": repo}, "base": map[string]any{"ref": "main", "repo": repo}})
	}
}

func newGitHubStandIn(t *testing.T, cloneURL string) (*gitHubStandIn, *httptest.Server) {
	g := &gitHubStandIn{t: t, cloneURL: cloneURL, ci: map[string]string{}, deploys: map[int64]string{},
		statuses: map[string][]string{}, commit: map[string][]string{}, comments: map[int64]string{}, onIssue: map[int64]int{}}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, srv
}

func (g *gitHubStandIn) setHead(sha, message string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.head, g.message = sha, message
}

func (g *gitHubStandIn) setCI(sha, conclusion string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ci[sha] = conclusion
}

// deploymentStates returns the states reported for sha's deployment to env.
func (g *gitHubStandIn) deploymentStates(sha, env string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.statuses[sha+"@"+env]...)
}

func (g *gitHubStandIn) commitStatuses(sha string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.commit[sha]...)
}

// issueComments returns the bodies of the comments on an issue or PR.
func (g *gitHubStandIn) issueComments(number int) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for id := int64(1); id <= g.nextID; id++ {
		if n, ok := g.onIssue[id]; ok && n == number {
			out = append(out, g.comments[id])
		}
	}
	return out
}

func (g *gitHubStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if a := r.Header.Get("Authorization"); a != "Bearer e2e-gh-token" && a != "token e2e-gh-token" {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}`)
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/api/v3/repos/octo-org/hello")
	if !ok {
		g.t.Errorf("GitHub stand-in: unexpected %s %s", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusNotFound)
		return
	}
	var body map[string]any
	json.NewDecoder(r.Body).Decode(&body)
	str := func(k string) string { s, _ := body[k].(string); return s }
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case r.Method == "GET" && path == "":
		reply(200, map[string]any{"id": 1, "full_name": "octo-org/hello", "clone_url": g.cloneURL, "default_branch": "main"})
	case r.Method == "GET" && path == "/pulls":
		if r.URL.Query().Get("state") != "open" {
			g.t.Errorf("pull requests listed with state %q", r.URL.Query().Get("state"))
		}
		list := g.pulls
		if list == nil {
			list = []map[string]any{}
		}
		reply(200, list)
	case r.Method == "GET" && path == "/branches/main":
		reply(200, map[string]any{"name": "main", "commit": map[string]any{"sha": g.head, "commit": map[string]any{"message": g.message}}, "protected": false})
	case r.Method == "GET" && len(parts) == 3 && parts[0] == "commits" && parts[2] == "check-runs":
		conclusion, known := g.ci[parts[1]]
		runs := []map[string]any{}
		if known {
			run := map[string]any{"id": 1, "name": "test", "head_sha": parts[1], "status": "in_progress", "conclusion": nil,
				"html_url": "https://github.example.com/octo-org/hello/runs/1"}
			if conclusion != "" {
				run["status"], run["conclusion"] = "completed", conclusion
			}
			runs = append(runs, run)
		}
		reply(200, map[string]any{"total_count": len(runs), "check_runs": runs})
	case r.Method == "GET" && len(parts) == 3 && parts[0] == "commits" && parts[2] == "status":
		reply(200, map[string]any{"state": "pending", "statuses": []any{}, "sha": parts[1], "total_count": 0})
	case r.Method == "GET" && path == "/deployments":
		key := r.URL.Query().Get("sha") + "@" + r.URL.Query().Get("environment")
		list := []any{}
		for id, k := range g.deploys {
			if k == key {
				list = append(list, map[string]any{"id": id, "sha": r.URL.Query().Get("sha"), "environment": r.URL.Query().Get("environment")})
			}
		}
		reply(200, list)
	case r.Method == "POST" && path == "/deployments":
		g.nextID++
		g.deploys[g.nextID] = str("ref") + "@" + str("environment")
		reply(201, map[string]any{"id": g.nextID, "sha": str("ref"), "environment": str("environment")})
	case r.Method == "POST" && len(parts) == 3 && parts[0] == "deployments" && parts[2] == "statuses":
		var id int64
		fmt.Sscan(parts[1], &id)
		key := g.deploys[id]
		state := str("state")
		if u := str("environment_url"); u != "" {
			state += " " + u
		}
		g.statuses[key] = append(g.statuses[key], state)
		reply(201, map[string]any{"id": 1, "state": str("state")})
	case r.Method == "POST" && len(parts) == 2 && parts[0] == "statuses":
		g.commit[parts[1]] = append(g.commit[parts[1]], str("context")+":"+str("state"))
		reply(201, map[string]any{"id": 1, "state": str("state"), "context": str("context")})
	case r.Method == "GET" && len(parts) == 3 && parts[0] == "issues" && parts[2] == "comments":
		var n int
		fmt.Sscan(parts[1], &n)
		list := []any{}
		for id := int64(1); id <= g.nextID; id++ {
			if g.onIssue[id] == n {
				list = append(list, map[string]any{"id": id, "body": g.comments[id], "user": map[string]any{"login": "drover[bot]", "type": "Bot"}})
			}
		}
		reply(200, list)
	case r.Method == "POST" && len(parts) == 3 && parts[0] == "issues" && parts[2] == "comments":
		var n int
		fmt.Sscan(parts[1], &n)
		g.nextID++
		g.comments[g.nextID], g.onIssue[g.nextID] = str("body"), n
		reply(201, map[string]any{"id": g.nextID, "body": str("body")})
	case r.Method == "PATCH" && len(parts) == 3 && parts[0] == "issues" && parts[1] == "comments":
		var id int64
		fmt.Sscan(parts[2], &id)
		if _, ok := g.comments[id]; !ok {
			reply(404, map[string]any{"message": "Not Found"})
			return
		}
		g.comments[id] = str("body")
		reply(200, map[string]any{"id": id, "body": str("body")})
	default:
		g.t.Errorf("GitHub stand-in: unexpected %s %s", r.Method, r.URL.Path)
		reply(404, map[string]any{"message": "Not Found"})
	}
}

// checkSuitePayload is GitHub's check_suite example for commit sha.
func checkSuitePayload(t *testing.T, sha string) []byte {
	t.Helper()
	p := fixture(t, "check_suite.completed.payload.json")
	p["check_suite"].(map[string]any)["head_sha"] = sha
	p["repository"].(map[string]any)["full_name"] = "octo-org/hello"
	out, _ := json.Marshal(p)
	return out
}

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
	gh, srv := newGitHubStandIn(t, "file://"+repo.dir)
	t.Setenv(secretEnv, "e2e-secret")
	t.Setenv("DROVER_E2E_GH_TOKEN", "e2e-gh-token")
	config := filepath.Join(t.TempDir(), "drover.yaml")
	yaml := fmt.Sprintf(`github: { webhook_secret_env: %s, token_env: DROVER_E2E_GH_TOKEN, api_url: '%s/api/v3/' }
regions:
  local-a: { driver: local }
pipelines:
  hello:
    repo: octo-org/hello
    stages:%s
`, secretEnv, srv.URL, stages)
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	d, s := startDev(t, ctx, config, data)
	return gh, d, s
}

// eventually polls cond every 100 ms until it holds or ctx ends.
func eventually(ctx context.Context, t *testing.T, what string, cond func() bool) {
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
	if code, body := s.webhook(ctx, "check_suite", "cs-1", checkSuitePayload(t, c1)); code != http.StatusAccepted || !strings.Contains(body, "signalled") {
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
	if got := gh.commitStatuses(c1); got[len(got)-1] != "drover/staging:success" {
		t.Fatalf("commit statuses = %v", got)
	}

	// The lost webhook turns up late: it is accepted and starts nothing.
	if code, body := s.push(ctx, "late-1", pushPayload(t, repo.dir, c1)); code != http.StatusAccepted {
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
