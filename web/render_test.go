package web

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/api"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

var update = flag.Bool("update", false, "rewrite the golden pages under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./web -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what the page renders (go test ./web -update rewrites it; check the diff):\n%s", path, firstDiff(string(want), string(got)))
	}
}

// firstDiff shows the first line where want and got part.
func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\nwant %s\ngot  %s", i+1, w, g)
		}
	}
	return ""
}

var now = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func testPage(t *testing.T) *Page {
	t.Helper()
	p := &Page{TemporalUI: "http://temporal.example:8233", Namespace: "drover", Now: func() time.Time { return now }}
	if err := p.load(); err != nil {
		t.Fatal(err)
	}
	return p
}

func render(t *testing.T, p *Page, name string, data any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := p.pages[name].ExecuteTemplate(&buf, "page", data); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var signedIn = user{token: "golden-token", info: api.TokenInfo{Name: "lead", Scopes: []string{pipelines.ScopeRead, pipelines.ScopeDeploy, pipelines.ScopeApprove}}}

func release(app string, v int, status pipelines.ReleaseStatus, commit, desc string, age time.Duration, regions ...pipelines.RegionState) *pipelines.Release {
	return &pipelines.Release{App: app, Version: v, Status: status, Commit: commit, Slug: "sha256:" + strings.Repeat("ab", 32), ConfigVersion: v,
		Description: desc, Operation: "deploy/" + app + "/" + commit + "@run-" + commit[:4], Regions: regions, CreatedAt: now.Add(-age)}
}

// TestGoldenPages renders each page from fixed data: what a user sees,
// byte for byte, including escaping of what pushes and pull requests
// write (titles, messages).
func TestGoldenPages(t *testing.T) {
	p := testPage(t)
	c1, c2, c3 := strings.Repeat("1", 40), strings.Repeat("2", 40), strings.Repeat("3", 40)
	staging := &api.AppInfo{App: pipelines.App{Name: "hello-staging", Pipeline: "hello", Stage: "staging", Repo: "octo-org/hello", Regions: []string{"local-a"}},
		Current: release("hello-staging", 7, pipelines.ReleaseSucceeded, c2, "push to main by octocat: Say <hello> & wave\nmore", 3*time.Minute),
		Where:   []api.RegionInfo{{Region: "local-a", Release: 7, Status: pipelines.RegionSuccessful, URL: "http://127.0.0.1:5001/"}}}
	prod := &api.AppInfo{App: pipelines.App{Name: "hello", Pipeline: "hello", Stage: "production", Repo: "octo-org/hello", Regions: []string{"eu", "us"}},
		Current: release("hello", 4, pipelines.ReleaseSucceeded, c1, "promote v6 of hello-staging by ci", 26*time.Hour),
		Where: []api.RegionInfo{{Region: "eu", Release: 4, Status: pipelines.RegionSuccessful, URL: "https://hello.example.com/"},
			{Region: "us", Release: 3, Status: pipelines.RegionFailed, Message: "web.1 exited 1: <panic>"}}}
	review := reviewAppView{ReviewApp: pipelines.ReviewApp{App: "hello-pr-12", Pipeline: "hello", Repo: "octo-org/hello", PR: 12, Title: `Fix "quotes" <script>alert(1)</script>`,
		Commit: c3, URL: "http://127.0.0.1:5002/", CreatedAt: now.Add(-5 * 24 * time.Hour), DeployedAt: new(now.Add(-2 * time.Hour))},
		Info: &api.AppInfo{Where: []api.RegionInfo{{Region: "local-a", Release: 1, Status: pipelines.RegionRunning}}}}
	op := &api.Operation{ID: "promote/hello/4f2a", Kind: "promote", App: "hello", State: "running",
		Release: release("hello", 5, pipelines.ReleasePending, c2, "promote v7 of hello-staging by lead", 10*time.Second,
			pipelines.RegionState{Region: "eu", Status: pipelines.RegionSuccessful, Message: "web.1 up"},
			pipelines.RegionState{Region: "us", Status: pipelines.RegionRunning, Message: "starting web.1"})}
	board := boardView{frame: newFrame(signedIn, "Pipelines"), Operation: op,
		Approvals: []api.PendingApproval{{Operation: "deploy/hello-staging/" + c3, Pipeline: "hello", Stage: "staging", App: "hello-staging", Release: 8, Commit: c3,
			Description: "push to main by octocat: Next", CreatedAt: now.Add(-time.Minute)}},
		Pipelines: []pipelineView{{Name: "hello", Repo: "octo-org/hello", Review: &reviewView{Apps: []reviewAppView{review}},
			Stages: []stageView{
				{Stage: "staging", Pipeline: "hello", Repo: "octo-org/hello", App: "hello-staging", Info: staging, Promote: true, RequireApproval: true},
				{Stage: "production", Pipeline: "hello", Repo: "octo-org/hello", App: "hello", Info: prod},
			}}}}
	golden(t, "board.html", render(t, p, "board", board))

	readOnly := user{token: "viewer-token", info: api.TokenInfo{Name: "viewer", Scopes: []string{pipelines.ScopeRead}}}
	board.frame = newFrame(readOnly, "Pipelines")
	board.Operation = nil
	golden(t, "board-read-only.html", render(t, p, "board", board))

	history := historyView{frame: newFrame(signedIn, "hello"), App: *prod, Repo: "octo-org/hello", Current: 4, Releases: []pipelines.Release{
		*release("hello", 5, pipelines.ReleaseFailed, c3, "promote v8 of hello-staging by ci", time.Hour),
		*prod.Current,
		*release("hello", 3, pipelines.ReleaseSucceeded, c1, "scale web=2", 3*24*time.Hour),
		*release("hello", 2, pipelines.ReleaseSuperseded, c1, "push", 4*24*time.Hour),
	}}
	history.Releases[0].Reason = "release phase exited 1"
	golden(t, "history.html", render(t, p, "history", history))

	preview := previewView{frame: newFrame(signedIn, "Promote hello"), Action: "/pipelines/hello/promote", Release: "v7",
		Preview: api.PromotionPreview{Pipeline: "hello", Repo: "octo-org/hello",
			From:         api.PreviewRelease{App: "hello-staging", Version: 7, Commit: c2, Slug: "sha256:" + strings.Repeat("cd", 32)},
			To:           api.PreviewRelease{App: "hello", Version: 4, Commit: c1, Slug: "sha256:" + strings.Repeat("ab", 32)},
			Commits:      api.CommitRange{Base: c1, Head: c2, Compared: true, Count: 2, Commits: []api.PreviewCommit{{SHA: c3, Author: "Mona", Message: "Add <b>bold</b>\n\nbody"}, {SHA: c2, Author: "Hubot", Message: "Say hello"}}},
			Config:       pipelines.KeyDiff{OnlyFrom: []string{"DEBUG"}, OnlyTo: []string{"SENTRY_DSN"}, Differ: []string{"DATABASE_URL"}},
			Formation:    []pipelines.FormationChange{{Type: "worker", From: 0, To: 1}},
			ReleasePhase: &api.PreviewCommand{Command: "bin/migrate"},
			Warnings:     []string{"region eu: web: 2 allocations cannot be placed: resources exhausted on 1 node (memory)"},
			Regions: []api.RegionPreview{{Region: "local-a", Driver: "local", Start: []string{"web.1 (the new release)"}, Stop: []string{"web.1 (v4)"}},
				{Region: "eu", Driver: "nomad", Plan: &regions.Plan{
					Groups: []regions.GroupPlan{{Group: "web", Change: regions.ChangeEdited, Create: 2, Canary: 2, Ignore: 2,
						Tasks: []regions.TaskChange{{Task: "web", Change: regions.ChangeEdited, Fields: []string{"Artifact.GetterSource", "Meta.drover_release"}, Annotations: []string{"forces create/destroy update"}}}},
						{Group: "worker", Change: regions.ChangeAdded, Create: 1}},
					Failures: []regions.PlacementFailure{{Group: "web", Allocations: 2, Reason: "2 allocations cannot be placed: resources exhausted on 1 node (memory)"}}}},
				{Region: "us", Driver: "nomad", Error: "region us is unavailable: dial tcp 10.0.0.1:4646: connection refused"}}}}
	golden(t, "preview.html", render(t, p, "preview", preview))

	golden(t, "login.html", render(t, p, "login", loginView{Next: "/apps/hello", Message: "Your token is no longer valid; sign in again."}))
}

// TestPageWeight: the pipelines page with its stylesheet and script stays
// small; the closing note of the page's issue quotes these numbers.
func TestPageWeight(t *testing.T) {
	p := testPage(t)
	total := 0
	for name, a := range p.assets {
		t.Logf("%s: %d bytes", name, len(a.body))
		total += len(a.body)
	}
	if total > 16<<10 {
		t.Errorf("the page's CSS and JS weigh %d bytes; keep them under 16 KiB", total)
	}
}
