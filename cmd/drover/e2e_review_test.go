package main

import (
	"bytes"
	"context"
	"encoding/json"
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

// prPayload is GitHub's own pull_request example for action, pointed at
// the local repository's branch and head.
func prPayload(t *testing.T, action, repoDir, branch, head string, number int) []byte {
	t.Helper()
	p := fixture(t, "pull_request."+action+".payload.json")
	p["number"] = number
	pr := p["pull_request"].(map[string]any)
	pr["number"] = number
	h := pr["head"].(map[string]any)
	h["sha"], h["ref"] = head, branch
	h["repo"].(map[string]any)["full_name"] = "octo-org/hello"
	// Never fetched: builds fetch the pipeline's configured source.
	h["repo"].(map[string]any)["clone_url"] = "https://clone.invalid/" + filepath.Base(repoDir) + ".git"
	pr["base"].(map[string]any)["repo"].(map[string]any)["full_name"] = "octo-org/hello"
	p["repository"].(map[string]any)["full_name"] = "octo-org/hello"
	out, _ := json.Marshal(p)
	return out
}

func (s *stack) reviewApps(ctx context.Context) []pipelines.ReviewApp {
	s.t.Helper()
	var list []pipelines.ReviewApp
	if err := s.get(ctx, "/api/v1/pipelines/hello/review-apps", &list); err != nil {
		s.t.Fatal(err)
	}
	return list
}

// waitReviewApp waits until pull request number's review app runs commit.
func (s *stack) waitReviewApp(ctx context.Context, number int, commit string) pipelines.ReviewApp {
	s.t.Helper()
	var found pipelines.ReviewApp
	eventually(ctx, s.t, fmt.Sprintf("review app of #%d running %s", number, commit), func() bool {
		for _, r := range s.reviewApps(ctx) {
			if r.PR == number && r.Commit == commit && r.URL != "" {
				found = r
				return true
			}
		}
		return false
	})
	return found
}

// TestE2EReviewApp opens a pull request from a branch of a local git
// repository: its review app answers at its URL with the staging config,
// a push to the branch redeploys it, one comment on the pull request keeps
// its URL, and closing the pull request stops its processes and its URL.
func TestE2EReviewApp(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end; skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	repo := newGitRepo(t)
	data := t.TempDir()
	gh, d, s := startWithGitHub(t, ctx, repo, data, `
      review: { regions: [local-a], ttl: 72h, config_from: staging, wait_for_ci: false, reconcile_interval: 1h }
      staging: { app: hello-staging, branch: main, regions: [local-a], reconcile_interval: 1h }`)
	defer d.Close()
	t.Setenv("DROVER_URL", s.base)
	t.Setenv("DROVER_TOKEN", s.token)

	c0 := repo.commit("main", "web: bin/web\n")
	gh.setHead(c0, "main")
	repo.git("checkout", "-q", "-b", "feature")
	// The branch describes its review app: a secret made once, a value,
	// and a postdeploy script.
	appJSON := `{"env": {"SECRET_KEY_BASE": {"generator": "secret"}, "GREETING": "hi"}, "scripts": {"postdeploy": "echo seeded"}}`
	if err := os.WriteFile(filepath.Join(repo.dir, "app.json"), []byte(appJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	c1 := repo.commit("review one", "web: bin/web\n")
	// Staging's config is where a review app's starts.
	if err := s.patch(ctx, "/api/v1/apps/hello-staging/config", `{"DATABASE_URL": "postgres://staging"}`); err != nil {
		t.Fatal(err)
	}

	if code, body := s.webhook(ctx, "pull_request", "pr-1", prPayload(t, "opened", repo.dir, "feature", c1, 42)); code != http.StatusAccepted {
		t.Fatalf("opened: %d %s", code, body)
	}
	r := s.waitReviewApp(ctx, 42, c1)
	if r.App != "hello-pr-42" {
		t.Fatalf("review app = %+v", r)
	}
	if body, err := httpGet(r.URL); err != nil || !strings.Contains(body, "review one from hello-pr-42 v1") {
		t.Fatalf("GET %s = %q, %v", r.URL, body, err)
	}
	var cfg pipelines.ConfigVars
	if err := s.get(ctx, "/api/v1/apps/hello-pr-42/config", &cfg); err != nil {
		t.Fatal(err)
	}
	secret := cfg.Vars["SECRET_KEY_BASE"]
	if cfg.Vars["DATABASE_URL"] != "postgres://staging" || cfg.Vars["GREETING"] != "hi" || len(secret) != 64 {
		t.Fatalf("hello-pr-42 config = %v; want staging's vars, app.json's value and a generated secret", cfg.Vars)
	}
	var out, errOut bytes.Buffer
	if code := Run(ctx, []string{"review-apps", "hello"}, Streams{Out: &out, Err: &errOut}); code != exitOK {
		t.Fatalf("drover review-apps: exit %d: %s", code, errOut.String())
	}
	if got := out.String(); !strings.Contains(got, "#42") || !strings.Contains(got, "hello-pr-42") || !strings.Contains(got, c1[:7]) || !strings.Contains(got, r.URL) {
		t.Fatalf("drover review-apps hello:\n%s", got)
	}

	// A push to the branch redeploys it.
	c2 := repo.commit("review two", "web: bin/web\n")
	if code, body := s.webhook(ctx, "pull_request", "pr-2", prPayload(t, "synchronize", repo.dir, "feature", c2, 42)); code != http.StatusAccepted {
		t.Fatalf("synchronize: %d %s", code, body)
	}
	r = s.waitReviewApp(ctx, 42, c2)
	if body, err := httpGet(r.URL); err != nil || !strings.Contains(body, "review two from hello-pr-42 v2") {
		t.Fatalf("GET %s after the push = %q, %v", r.URL, body, err)
	}
	eventually(ctx, t, "the comment naming c2", func() bool {
		c := gh.issueComments(42)
		return len(c) == 1 && strings.Contains(c[0], "runs `"+c2[:7]+"` (v2): "+r.URL)
	})
	if st := gh.deploymentStates(c2, "hello-pr-42"); len(st) == 0 {
		t.Fatal("the review app's deploy was not reported as a GitHub deployment")
	}
	if err := s.get(ctx, "/api/v1/apps/hello-pr-42/config", &cfg); err != nil || cfg.Vars["SECRET_KEY_BASE"] != secret {
		t.Fatalf("secret after the push = %q, %v; it is made once for the app's life", cfg.Vars["SECRET_KEY_BASE"], err)
	}
	if n := appProcesses(data, "hello-pr-42"); n != 1 {
		t.Fatalf("%d web processes for hello-pr-42, want 1", n)
	}

	// Closing destroys it: processes gone, URL refusing connections.
	if code, body := s.webhook(ctx, "pull_request", "pr-3", prPayload(t, "closed", repo.dir, "feature", c2, 42)); code != http.StatusAccepted {
		t.Fatalf("closed: %d %s", code, body)
	}
	eventually(ctx, t, "the review app destroyed", func() bool { return len(s.reviewApps(ctx)) == 0 })
	eventually(ctx, t, "its processes gone", func() bool { return appProcesses(data, "hello-pr-42") == 0 })
	if _, err := httpGet(r.URL); err == nil {
		t.Fatalf("%s still answers after the pull request closed", r.URL)
	}
	eventually(ctx, t, "the last comment", func() bool {
		c := gh.issueComments(42)
		return len(c) == 1 && strings.Contains(c[0], "was destroyed: the pull request was closed")
	})
	// A pull request from a fork waits for someone to deploy it with the
	// CLI, which then also destroys it.
	fork := prPayload(t, "opened", repo.dir, "feature", c2, 43)
	var p map[string]any
	json.Unmarshal(fork, &p)
	p["pull_request"].(map[string]any)["head"].(map[string]any)["repo"].(map[string]any)["full_name"] = "mallory/hello"
	fork, _ = json.Marshal(p)
	if code, body := s.webhook(ctx, "pull_request", "pr-4", fork); code != http.StatusAccepted {
		t.Fatalf("fork opened: %d %s", code, body)
	}
	eventually(ctx, t, "the fork notice", func() bool {
		c := gh.issueComments(43)
		return len(c) == 1 && strings.Contains(c[0], "drover review-apps create hello 43")
	})
	if list := s.reviewApps(ctx); len(list) != 0 {
		t.Fatalf("a fork's pull request was deployed by itself: %+v", list)
	}
	// Deploying a fork names the commit reviewed, and exactly that one.
	gh.SetPulls(e2eRepo, ghtest.PullRequest{Number: 43, Title: "PR 43", Head: c2, Branch: "feature", HeadRepo: "mallory/hello", HeadCloneURL: "file://" + repo.dir})
	errOut.Reset()
	if code := Run(ctx, []string{"review-apps", "create", "hello", "43"}, Streams{Out: &out, Err: &errOut}); code == exitOK || !strings.Contains(errOut.String(), "comes from a fork: name the commit you reviewed") {
		t.Fatalf("create a fork's app without --commit: exit %d: %s", code, errOut.String())
	}
	errOut.Reset()
	if code := Run(ctx, []string{"review-apps", "create", "hello", "43", "--commit", c1}, Streams{Out: &out, Err: &errOut}); code == exitOK || !strings.Contains(errOut.String(), "has moved on to "+c2) {
		t.Fatalf("create with a stale commit: exit %d: %s", code, errOut.String())
	}
	out.Reset()
	if code := Run(ctx, []string{"review-apps", "create", "hello", "43", "--commit", c2[:12]}, Streams{Out: &out, Err: &errOut}); code != exitOK {
		t.Fatalf("drover review-apps create: exit %d: %s", code, errOut.String())
	}
	r = s.waitReviewApp(ctx, 43, c2)
	if body, err := httpGet(r.URL); err != nil || !strings.Contains(body, "review two from hello-pr-43 v1") {
		t.Fatalf("GET %s = %q, %v", r.URL, body, err)
	}
	out.Reset()
	if code := Run(ctx, []string{"review-apps", "destroy", "hello", "43"}, Streams{Out: &out, Err: &errOut}); code != exitOK || !strings.Contains(out.String(), "destroying hello-pr-43") {
		t.Fatalf("drover review-apps destroy: exit %d: %s %s", code, out.String(), errOut.String())
	}
	eventually(ctx, t, "hello-pr-43 destroyed", func() bool { return len(s.reviewApps(ctx)) == 0 && appProcesses(data, "hello-pr-43") == 0 })
	eventually(ctx, t, "the last comment on #43", func() bool {
		c := gh.issueComments(43)
		return len(c) == 1 && strings.Contains(c[0], "was destroyed: destroyed by admin")
	})
	// Its workflow ends after that comment.
	if err := d.client.GetWorkflow(ctx, workflows.ReviewWorkflowID("octo-org/hello", 43), "").Get(ctx, nil); err != nil {
		t.Fatalf("review app workflow of #43: %v", err)
	}
	errOut.Reset()
	if code := Run(ctx, []string{"review-apps", "destroy", "hello", "43"}, Streams{Out: &out, Err: &errOut}); code != exitNotFound || !strings.Contains(errOut.String(), "has no review app") {
		t.Fatalf("destroying it again: exit %d: %s", code, errOut.String())
	}

	if dir := os.Getenv("DROVER_SAVE_HISTORY"); dir != "" {
		saveHistory(t, ctx, d, dir, "review.json", workflows.ReviewWorkflowID("octo-org/hello", 42))
	}
}

// TestE2EReviewAppSweep: pull_request webhooks that never arrive. The
// sweep (a Temporal schedule every second) finds the open pull request and
// makes its review app, then finds it no longer open and destroys it.
func TestE2EReviewAppSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end; skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	repo := newGitRepo(t)
	data := t.TempDir()
	gh, d, s := startWithGitHub(t, ctx, repo, data, `
      review: { regions: [local-a], reconcile_interval: 1s }
      staging: { app: hello-staging, branch: main, regions: [local-a], reconcile_interval: 1h }`)
	defer d.Close()
	repo.commit("main", "web: bin/web\n")
	repo.git("checkout", "-q", "-b", "feature")
	c1 := repo.commit("swept", "web: bin/web\n")

	gh.setOpenPulls(map[int]string{50: c1})
	r := s.waitReviewApp(ctx, 50, c1)
	if body, err := httpGet(r.URL); err != nil || !strings.Contains(body, "swept from hello-pr-50 v1") {
		t.Fatalf("GET %s = %q, %v", r.URL, body, err)
	}
	time.Sleep(2 * time.Second) // more sweeps: nothing deploys twice
	if rs := s.releases(ctx, "hello-pr-50"); len(rs) != 1 {
		t.Fatalf("%d releases of hello-pr-50, want 1", len(rs))
	}
	// Restarted on the same data dir, drover brings the review app back.
	d.Close()
	d, s = startDev(t, ctx, s.config, data)
	defer d.Close()
	s.answersEverywhere(ctx, "hello-pr-50", 1, "swept from hello-pr-50 v1")
	r = s.waitReviewApp(ctx, 50, c1)
	gh.setOpenPulls(nil)
	eventually(ctx, t, "hello-pr-50 destroyed", func() bool { return len(s.reviewApps(ctx)) == 0 && appProcesses(data, "hello-pr-50") == 0 })
	if _, err := httpGet(r.URL); err == nil {
		t.Fatalf("%s still answers", r.URL)
	}
	eventually(ctx, t, "the last comment", func() bool {
		c := gh.issueComments(50)
		return len(c) == 1 && strings.Contains(c[0], "was destroyed: the pull request is no longer open")
	})
}
