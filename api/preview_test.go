package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/drover/drover/api"
	"github.com/drover/drover/deployments"
	"github.com/drover/drover/deployments/sqlstore"
	"github.com/drover/drover/gh"
	"github.com/drover/drover/gh/ghtest"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
	"github.com/drover/drover/workflows"
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
		{"pipeline", p.Pipeline + " " + p.Repo, "hello octo-org/hello"},
		{"from", fmt.Sprint(p.From.App, " v", p.From.Version, " ", p.From.Slug), "hello-staging v2 sha256:two"},
		{"to", fmt.Sprint(p.To.App, " v", p.To.Version, " ", p.To.Slug), "hello v1 sha256:old"},
		{"commits", fmt.Sprint(p.Commits.Base == c0, p.Commits.Head == c2, p.Commits.Compared), "true true false"},
		{"commits note", p.Commits.Note, "drover has no GitHub credentials to list the commits between 000000000000 and 222222222222"},
		{"config", fmt.Sprint(p.Config.OnlyFrom, p.Config.OnlyTo, p.Config.Differ), "[DEBUG] [SENTRY_DSN] [DATABASE_URL]"},
		{"formation", fmt.Sprint(p.Formation), "[{clock 1 0}]"},
		{"release phase", fmt.Sprint(p.ReleasePhase != nil && p.ReleasePhase.Command == "bin/migrate"), "true"},
		{"regions", fmt.Sprint(p.Regions), "[{local-a local [web.1 (the new release) web.2 (the new release)] [clock.1 (v1) web.1 (v1) web.2 (v1)] <nil> } {local-b local [web.1 (the new release) web.2 (the new release)] [clock.1 (v1) web.1 (v1) web.2 (v1)] <nil> }]"},
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
		{"regions", fmt.Sprint(p.Regions), "[{local-a local [web.1 (the new release)] [web.1 (v2) web.2 (v2) web.3 (v2)] <nil> } {local-b local [web.1 (the new release)] [] <nil> }]"},
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

// fakePlanner answers a plan per region from plans, or fails with err,
// and records what it was asked.
type fakePlanner struct {
	plans   map[string]*regions.Plan
	err     error
	ids     []string
	rels    []pipelines.Release
	regions [][]string
}

func (f *fakePlanner) Plan(ctx context.Context, id string, rel pipelines.Release, names []string) ([]workflows.RegionPlan, error) {
	f.ids, f.rels, f.regions = append(f.ids, id), append(f.rels, rel), append(f.regions, names)
	if f.err != nil {
		return nil, f.err
	}
	var out []workflows.RegionPlan
	for _, n := range names {
		out = append(out, workflows.RegionPlan{Region: n, Plan: f.plans[n]})
	}
	return out, nil
}

// withNomadRegion makes local-b a Nomad region and plans with p.
func withNomadRegion(p *fakePlanner) func(*api.Server) {
	return func(s *api.Server) {
		spec := s.Config.Regions["local-b"]
		spec.Driver = pipelines.DriverNomad
		s.Config.Regions["local-b"] = spec
		s.Plans = p
	}
}

// mustSucceed makes a succeeded release of app in regs.
func mustSucceed(t *testing.T, st *sqlstore.Store, r deployments.NewRelease) pipelines.Release {
	t.Helper()
	ctx := context.Background()
	rel, err := st.CreateRelease(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	for _, reg := range r.Regions {
		st.SetRegionState(ctx, r.App, rel.Version, pipelines.RegionState{Region: reg, Status: pipelines.RegionSuccessful})
	}
	if err := st.FinishRelease(ctx, r.App, rel.Version, pipelines.ReleaseSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	return rel
}

// TestPromotePreviewShowsNomadPlan: in a Nomad region the preview carries
// Nomad's own plan of the release the promotion would make (production's
// next version of staging's slug, with production's config and the
// formation it would run), asked of the Nomad regions only; a group that
// cannot be placed is a warning that names the region, so a promotion
// that cannot be placed is known before it starts.
func TestPromotePreviewShowsNomadPlan(t *testing.T) {
	planner := &fakePlanner{plans: map[string]*regions.Plan{"local-b": {
		Groups:   []regions.GroupPlan{{Group: "web", Change: regions.ChangeEdited, Tasks: []regions.TaskChange{{Task: "web", Change: regions.ChangeEdited, Fields: []string{"Artifact.GetterSource"}}}, Create: 2, Destructive: 2}},
		Failures: []regions.PlacementFailure{{Group: "web", Allocations: 2, Reason: "2 allocations cannot be placed: resources exhausted on 1 node (memory)"}},
		Warnings: []string{},
	}}}
	e, ops, st := newOpsServerWith(t, withNomadRegion(planner))
	web := pipelines.Procfile{{Type: "web", Command: "bin/web"}}
	mustSucceed(t, st, deployments.NewRelease{App: "hello", Slug: "sha256:old", Commit: strings.Repeat("0", 40), Procfile: web, Formation: pipelines.Formation{"web": 2}, Regions: []string{"local-a", "local-b"}})
	src := mustSucceed(t, st, deployments.NewRelease{App: "hello-staging", Slug: "sha256:new", Commit: strings.Repeat("1", 40), Procfile: web, Formation: pipelines.Formation{"web": 1}, Regions: []string{"local-a"}})
	cv, err := st.SetConfigVars(context.Background(), "hello", map[string]string{"DATABASE_URL": "postgres://prod-secret"}, nil)
	if err != nil {
		t.Fatal(err)
	}

	w := do(e, http.MethodGet, "/api/v1/pipelines/hello/promote/preview", "Bearer read-token", "")
	var p api.PromotionPreview
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &p) != nil {
		t.Fatalf("preview: %d %s", w.Code, w.Body)
	}
	if len(planner.ids) != 1 || !strings.HasPrefix(planner.ids[0], "plan/hello/") || fmt.Sprint(planner.regions[0]) != "[local-b]" {
		t.Fatalf("planner asked %v about %v; want one plan of hello in local-b alone", planner.ids, planner.regions)
	}
	rel := planner.rels[0]
	if got := fmt.Sprint(rel.App, " v", rel.Version, " ", rel.Slug, " ", rel.Commit == src.Commit, " ", rel.Formation, " ", rel.ConfigVersion == cv.Version, " ", len(rel.Procfile)); got != "hello v2 sha256:new true map[web:2] true 1" {
		t.Errorf("planned release = %s", got)
	}
	if len(p.Regions) != 2 || p.Regions[0].Plan != nil || p.Regions[0].Error != "" || len(p.Regions[0].Start) != 2 {
		t.Fatalf("local-a = %+v; want start and stop alone", p.Regions)
	}
	b := p.Regions[1]
	if b.Driver != pipelines.DriverNomad || b.Plan == nil || len(b.Plan.Groups) != 1 || b.Plan.Groups[0].Create != 2 || b.Plan.Placeable() {
		t.Fatalf("local-b = %+v; want Nomad's plan", b)
	}
	if want := "region local-b: web: 2 allocations cannot be placed: resources exhausted on 1 node (memory)"; fmt.Sprint(p.Warnings) != "["+want+"]" {
		t.Errorf("warnings = %q, want %q", p.Warnings, want)
	}
	if !strings.Contains(w.Body.String(), `"in_place":0`) || strings.Contains(w.Body.String(), "secret") {
		t.Errorf("body: %s", w.Body)
	}
	if len(ops.started) != 0 {
		t.Fatalf("a preview started %v", ops.started)
	}
}

// TestPreviewPlanError: a plan that could not be made is the Nomad
// region's error, and the preview still answers with everything else.
// A rollback plans the old release's config version.
func TestPreviewPlanError(t *testing.T) {
	planner := &fakePlanner{err: errors.New("ask the regions of hello: no drover worker answered")}
	e, _, st := newOpsServerWith(t, withNomadRegion(planner))
	web := pipelines.Procfile{{Type: "web", Command: "bin/web"}}
	st.SetConfigVars(context.Background(), "hello", map[string]string{"A": "1"}, nil)
	cv, _ := st.ConfigVars(context.Background(), "hello")
	mustSucceed(t, st, deployments.NewRelease{App: "hello", Slug: "sha256:a", Commit: strings.Repeat("a", 40), Procfile: web, ConfigVersion: cv.Version, Regions: []string{"local-a", "local-b"}})
	st.SetConfigVars(context.Background(), "hello", map[string]string{"A": "2"}, nil)
	cv2, _ := st.ConfigVars(context.Background(), "hello")
	mustSucceed(t, st, deployments.NewRelease{App: "hello", Slug: "sha256:b", Commit: strings.Repeat("b", 40), Procfile: web, ConfigVersion: cv2.Version, Regions: []string{"local-a", "local-b"}})

	w := do(e, http.MethodGet, "/api/v1/apps/hello/rollback/preview", "Bearer read-token", "")
	var p api.PromotionPreview
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &p) != nil {
		t.Fatalf("preview with a failed plan: %d %s", w.Code, w.Body)
	}
	if len(p.Regions) != 2 || p.Regions[1].Plan != nil || p.Regions[1].Error != "could not plan: ask the regions of hello: no drover worker answered" {
		t.Fatalf("regions = %+v; want local-b's error", p.Regions)
	}
	if p.Regions[0].Error != "" || p.Regions[1].Driver != pipelines.DriverNomad || p.Warnings == nil || len(p.Warnings) != 0 || p.Config.Empty() {
		t.Errorf("preview = %+v", p)
	}
	if rel := planner.rels[0]; rel.Version != 3 || rel.Slug != "sha256:a" || rel.ConfigVersion != cv.Version || cv.Version == cv2.Version {
		t.Errorf("planned rollback = v%d %s config %d, want v3 sha256:a config %d", rel.Version, rel.Slug, rel.ConfigVersion, cv.Version)
	}
}
