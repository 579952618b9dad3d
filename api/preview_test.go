package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/drover/drover/api"
	"github.com/drover/drover/deployments"
	"github.com/drover/drover/gh"
	"github.com/drover/drover/gh/ghtest"
	"github.com/drover/drover/pipelines"
)

// TestPromotePreview: the preview of promoting staging's release names
// both ends, the config keys that differ (never a value), the formation
// change, the release phase and, per region, what would start and stop;
// it changes nothing.
func TestPromotePreview(t *testing.T) {
	e, ops, st := newOpsServer(t)
	ctx := context.Background()
	release := func(app, commit, slug string, procfile pipelines.Procfile, formation pipelines.Formation, regions ...string) pipelines.Release {
		t.Helper()
		r, err := st.CreateRelease(ctx, deployments.NewRelease{App: app, Slug: slug, Commit: commit, Procfile: procfile, Formation: formation, Regions: regions})
		if err != nil {
			t.Fatal(err)
		}
		for _, reg := range regions {
			if err := st.SetRegionState(ctx, app, r.Version, pipelines.RegionState{Region: reg, Status: pipelines.RegionSuccessful}); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.FinishRelease(ctx, app, r.Version, pipelines.ReleaseSucceeded, ""); err != nil {
			t.Fatal(err)
		}
		return r
	}
	c0, c1, c2 := strings.Repeat("0", 39)+"a", strings.Repeat("1", 40), strings.Repeat("2", 40)
	web := pipelines.Procfile{{Type: "web", Command: "bin/web"}}
	withWorker := pipelines.Procfile{{Type: "web", Command: "bin/web"}, {Type: "worker", Command: "bin/worker"}, {Type: "release", Command: "bin/migrate"}}
	release("hello", c0, "sha256:old", pipelines.Procfile{{Type: "web", Command: "bin/web"}, {Type: "clock", Command: "bin/clock"}}, pipelines.Formation{"web": 2, "clock": 1}, "local-a", "local-b")
	release("hello-staging", c1, "sha256:one", web, pipelines.Formation{"web": 1}, "local-a")
	release("hello-staging", c2, "sha256:two", withWorker, pipelines.Formation{"web": 1, "worker": 0}, "local-a")
	st.SetConfigVars(ctx, "hello-staging", map[string]string{"DATABASE_URL": "postgres://staging-secret", "DEBUG": "1", "SAME": "x"}, nil)
	st.SetConfigVars(ctx, "hello", map[string]string{"DATABASE_URL": "postgres://prod-secret", "SAME": "x", "SENTRY_DSN": "https://sentry-secret"}, nil)

	w := do(e, http.MethodGet, "/api/v1/pipelines/hello/promote/preview", "Bearer read-token", "")
	if w.Code != http.StatusOK {
		t.Fatalf("preview: %d %s", w.Code, w.Body)
	}
	if body := w.Body.String(); strings.Contains(body, "secret") {
		t.Fatalf("the preview shows a config value: %s", body)
	}
	var p api.PromotionPreview
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	checks := []struct{ what, got, want string }{
		{"from", fmt.Sprint(p.From.App, " v", p.From.Version, " ", p.From.Slug), "hello-staging v2 sha256:two"},
		{"to", fmt.Sprint(p.To.App, " v", p.To.Version, " ", p.To.Slug), "hello v1 sha256:old"},
		{"commits", fmt.Sprint(p.Commits.Base == c0, p.Commits.Head == c2, p.Commits.Compared), "true true false"},
		{"commits note", p.Commits.Note, "drover has no GitHub credentials to list the commits between 000000000000 and 222222222222"},
		{"config", fmt.Sprint(p.Config.OnlyFrom, p.Config.OnlyTo, p.Config.Differ), "[DEBUG] [SENTRY_DSN] [DATABASE_URL]"},
		{"formation", fmt.Sprint(p.Formation), "[{clock 1 0}]"},
		{"release phase", fmt.Sprint(p.ReleasePhase != nil && p.ReleasePhase.Command == "bin/migrate"), "true"},
		{"regions", fmt.Sprint(p.Regions), "[{local-a local [web.1 (the new release) web.2 (the new release)] [clock.1 (v1) web.1 (v1) web.2 (v1)]} {local-b local [web.1 (the new release) web.2 (the new release)] [clock.1 (v1) web.1 (v1) web.2 (v1)]}]"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.what, c.got, c.want)
		}
	}
	// A named release, and nothing was started.
	w = do(e, http.MethodGet, "/api/v1/pipelines/hello/promote/preview?release=v1", "Bearer read-token", "")
	if !strings.Contains(w.Body.String(), `"slug":"sha256:one"`) || strings.Contains(w.Body.String(), "release_phase") {
		t.Fatalf("preview of v1: %d %s", w.Code, w.Body)
	}
	if len(ops.started) != 0 {
		t.Fatalf("a preview started %v", ops.started)
	}
	if rs, _ := st.Releases(ctx, "hello", 0); len(rs) != 1 {
		t.Fatalf("a preview made releases: %d", len(rs))
	}
	for _, tt := range []struct {
		path, token string
		status      int
		contains    string
	}{
		{"/api/v1/pipelines/nope/promote/preview", "read-token", 404, "no pipeline or app named nope"},
		{"/api/v1/pipelines/hello/promote/preview?release=seven", "read-token", 400, "vN"},
		{"/api/v1/pipelines/hello/promote/preview?release=v9", "read-token", 404, ""},
		{"/api/v1/pipelines/hello/promote/preview", "other-token", 403, ""},
		{"/api/v1/pipelines/hello/promote/preview", "approve-token", 403, "read scope"},
	} {
		w := do(e, http.MethodGet, tt.path, "Bearer "+tt.token, "")
		if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.contains) {
			t.Errorf("%s as %s: %d %s; want %d %q", tt.path, tt.token, w.Code, w.Body, tt.status, tt.contains)
		}
	}
}

// TestPromotePreviewListsCommitsFromGitHub: with GitHub connected, the
// preview lists the commits between production's release and staging's
// from GitHub's compare API (a stand-in that answers as GitHub does),
// oldest first with author and first line; a commit GitHub does not know
// still gets a preview, which says why the list is missing.
func TestPromotePreviewListsCommitsFromGitHub(t *testing.T) {
	g := ghtest.New(t)
	g.AddRepo("octo-org/hello", "file:///r")
	auth, err := gh.NewTokenAuth(g.URL, ghtest.Token)
	if err != nil {
		t.Fatal(err)
	}
	e, _, st := newOpsServerWith(t, func(s *api.Server) { s.Commits = &gh.Client{Auth: auth} })
	ctx := context.Background()
	c0, c1, c2 := strings.Repeat("a", 40), strings.Repeat("b", 40), strings.Repeat("c", 40)
	g.AddCommit("octo-org/hello", ghtest.Commit{SHA: c0}, ghtest.Commit{SHA: c1, Parent: c0, Author: "ann", Message: "Add the login page\n\nLong body"},
		ghtest.Commit{SHA: c2, Parent: c1, Author: "bob", Message: "Fix the header"})
	for _, r := range []struct{ app, commit string }{{"hello", c0}, {"hello-staging", c2}} {
		rel, err := st.CreateRelease(ctx, deployments.NewRelease{App: r.app, Slug: "s", Commit: r.commit, Procfile: pipelines.Procfile{{Type: "web", Command: "w"}}, Regions: []string{"local-a"}})
		if err != nil {
			t.Fatal(err)
		}
		st.FinishRelease(ctx, r.app, rel.Version, pipelines.ReleaseSucceeded, "")
	}
	var p api.PromotionPreview
	w := do(e, http.MethodGet, "/api/v1/pipelines/hello/promote/preview", "Bearer read-token", "")
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || w.Code != 200 {
		t.Fatalf("preview: %d %s", w.Code, w.Body)
	}
	if got := fmt.Sprint(p.Commits.Compared, p.Commits.Count, p.Commits.Commits); got != fmt.Sprintf("true 2 [{%s ann Add the login page} {%s bob Fix the header}]", c1, c2) {
		t.Fatalf("commits = %s", got)
	}
	// Production runs a commit GitHub does not know (a force-push).
	rel, _ := st.CreateRelease(ctx, deployments.NewRelease{App: "hello", Slug: "s", Commit: strings.Repeat("d", 40), Procfile: pipelines.Procfile{{Type: "web", Command: "w"}}, Regions: []string{"local-a"}})
	st.FinishRelease(ctx, "hello", rel.Version, pipelines.ReleaseSucceeded, "")
	w = do(e, http.MethodGet, "/api/v1/pipelines/hello/promote/preview", "Bearer read-token", "")
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || w.Code != 200 || p.Commits.Compared || !strings.Contains(p.Commits.Note, "could not read the commits between dddddddddddd and cccccccccccc from GitHub") {
		t.Fatalf("preview with an unknown commit: %d %+v", w.Code, p.Commits)
	}
}

// TestRollbackPreview: rolling back brings the old release's slug, config
// version and formation; the preview names the config vars that come
// back, go or change (never a value), the formation change, and runs the
// release phase only when asked to.
func TestRollbackPreview(t *testing.T) {
	e, ops, st := newOpsServer(t)
	ctx := context.Background()
	procfile := pipelines.Procfile{{Type: "web", Command: "bin/web"}, {Type: "release", Command: "bin/migrate"}}
	mk := func(commit string, formation pipelines.Formation) pipelines.Release {
		t.Helper()
		cv, _ := st.ConfigVars(ctx, "hello")
		r, err := st.CreateRelease(ctx, deployments.NewRelease{App: "hello", Slug: "sha256:" + commit, Commit: strings.Repeat(commit, 40), Procfile: procfile, Formation: formation, ConfigVersion: cv.Version, Regions: []string{"local-a"}})
		if err != nil {
			t.Fatal(err)
		}
		st.SetRegionState(ctx, "hello", r.Version, pipelines.RegionState{Region: "local-a", Status: pipelines.RegionSuccessful})
		st.FinishRelease(ctx, "hello", r.Version, pipelines.ReleaseSucceeded, "")
		return r
	}
	st.SetConfigVars(ctx, "hello", map[string]string{"OLD_FLAG": "secret-1", "TOKEN": "secret-2"}, nil)
	mk("a", pipelines.Formation{"web": 1})
	st.SetConfigVars(ctx, "hello", map[string]string{"TOKEN": "secret-3", "NEW_FLAG": "secret-4"}, []string{"OLD_FLAG"})
	mk("b", pipelines.Formation{"web": 3})

	var p api.PromotionPreview
	w := do(e, http.MethodGet, "/api/v1/apps/hello/rollback/preview", "Bearer read-token", "")
	if w.Code != 200 || strings.Contains(w.Body.String(), "secret") || json.Unmarshal(w.Body.Bytes(), &p) != nil {
		t.Fatalf("rollback preview: %d %s", w.Code, w.Body)
	}
	for _, c := range []struct{ what, got, want string }{
		{"ends", fmt.Sprint(p.From.App, " v", p.From.Version, " -> ", p.To.App, " v", p.To.Version), "hello v1 -> hello v2"},
		{"config", fmt.Sprint(p.Config.OnlyFrom, p.Config.OnlyTo, p.Config.Differ), "[OLD_FLAG] [NEW_FLAG] [TOKEN]"},
		{"formation", fmt.Sprint(p.Formation), "[{web 3 1}]"},
		{"release phase", fmt.Sprint(p.ReleasePhase), "<nil>"},
		{"regions", fmt.Sprint(p.Regions), "[{local-a local [web.1 (the new release)] [web.1 (v2) web.2 (v2) web.3 (v2)]} {local-b local [web.1 (the new release)] []}]"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.what, c.got, c.want)
		}
	}
	w = do(e, http.MethodGet, "/api/v1/apps/hello/rollback/preview?release=v1&run_release_phase=true", "Bearer read-token", "")
	if !strings.Contains(w.Body.String(), `"release_phase":{"command":"bin/migrate"}`) {
		t.Fatalf("with the release phase: %s", w.Body)
	}
	for _, tt := range []struct {
		path   string
		status int
	}{{"/api/v1/apps/nope/rollback/preview", 404}, {"/api/v1/apps/hello/rollback/preview?release=v9", 404}, {"/api/v1/apps/hello-staging/rollback/preview", 409}} {
		if w := do(e, http.MethodGet, tt.path, "Bearer read-token", ""); w.Code != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.path, w.Code, w.Body, tt.status)
		}
	}
	if len(ops.started) != 0 {
		t.Fatalf("a preview started %v", ops.started)
	}
}
