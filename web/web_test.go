package web_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/api"
	"github.com/drover/drover/deployments"
	"github.com/drover/drover/deployments/sqlstore"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/web"
	"github.com/drover/drover/workflows"
)

// ops stands in for Temporal behind the API: it records what the page
// queued and approved, and answers every operation with state.
type ops struct {
	mu        sync.Mutex
	started   []workflows.Operation
	approvals []workflows.Approval
	state     workflows.OperationState
	waiting   map[string]workflows.ApprovalWait
}

func (o *ops) StartOperation(ctx context.Context, app string, op workflows.Operation) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.started = append(o.started, op)
	return 0, nil
}
func (o *ops) OperationState(ctx context.Context, id string) (workflows.OperationState, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.state, nil
}
func (o *ops) SetAutoDeploy(ctx context.Context, app string, ad workflows.AutoDeploy) error {
	return nil
}
func (o *ops) Approve(ctx context.Context, operation string, ap workflows.Approval) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.approvals = append(o.approvals, ap)
	return nil
}
func (o *ops) AppStatus(ctx context.Context, app string) (workflows.AppStatus, error) {
	return workflows.AppStatus{}, nil
}
func (o *ops) Processes(ctx context.Context, id, app string, names []string) ([]workflows.RegionProcesses, error) {
	return nil, nil
}
func (o *ops) ReviewEvent(ctx context.Context, start workflows.ReviewInput, ev workflows.PREvent) error {
	return nil
}
func (o *ops) ReviewClose(ctx context.Context, repo string, number int, ev workflows.PREvent) (bool, error) {
	return false, nil
}
func (o *ops) ApprovalWait(ctx context.Context, operation string) (workflows.ApprovalWait, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.waiting[operation], nil
}

const (
	adminToken  = "admin-secret-token"
	readToken   = "read-secret-token"
	deployToken = "deploy-secret-token"
	leadToken   = "lead-secret-token"
	oddToken    = `odd "token"; with, odd bytes`
)

type site struct {
	t     testing.TB
	e     *gin.Engine
	ops   *ops
	store *sqlstore.Store
}

// newSite serves the API and the page for the example drover.yaml, with
// production requiring approval, on a real SQLite store.
func newSite(t testing.TB) *site {
	t.Helper()
	cfg, err := pipelines.LoadConfig(filepath.Join("..", "examples", "drover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	prod := cfg.Pipelines["hello"].Stages[pipelines.StageProduction]
	prod.RequireApproval = true
	cfg.Pipelines["hello"].Stages[pipelines.StageProduction] = prod
	return newSiteWith(t, cfg)
}

// newSiteWith serves the API and the page for cfg.
func newSiteWith(t testing.TB, cfg *pipelines.Config, with ...func(*api.Server)) *site {
	t.Helper()
	st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "drover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, app := range cfg.Apps() {
		if err := st.SyncApp(context.Background(), app); err != nil {
			t.Fatal(err)
		}
	}
	o := &ops{state: workflows.OperationState{State: workflows.OperationRunning}, waiting: map[string]workflows.ApprovalWait{}}
	gin.SetMode(gin.TestMode)
	e := gin.New()
	srv := &api.Server{Ledger: st, Config: cfg, Operations: o, Approvals: o, Reviews: st, ReviewOps: o, Tokens: []api.Token{
		{Name: "admin", Value: adminToken},
		{Name: "viewer", Value: readToken, Scopes: []string{pipelines.ScopeRead}},
		{Name: "ci", Value: deployToken, Scopes: []string{pipelines.ScopeRead, pipelines.ScopeDeploy}},
		{Name: "lead", Value: leadToken, Scopes: []string{pipelines.ScopeRead, pipelines.ScopeApprove}},
		{Name: "odd", Value: oddToken, Scopes: []string{pipelines.ScopeRead}},
	}}
	for _, w := range with {
		w(srv)
	}
	srv.Register(e)
	page := &web.Page{API: e, TemporalUI: "http://temporal.example:8233"}
	if err := page.Register(e); err != nil {
		t.Fatal(err)
	}
	return &site{t: t, e: e, ops: o, store: st}
}

// release records a succeeded release of app in its regions.
func (s *site) release(app, commit, slug, desc string, regions ...string) pipelines.Release {
	s.t.Helper()
	ctx := context.Background()
	r, err := s.store.CreateRelease(ctx, deployments.NewRelease{App: app, Slug: slug, Commit: commit, Description: desc,
		Procfile: pipelines.Procfile{{Type: "web", Command: "bin/web"}}, Formation: pipelines.Formation{"web": 1}, Regions: regions})
	if err != nil {
		s.t.Fatal(err)
	}
	for _, reg := range regions {
		if err := s.store.SetRegionState(ctx, app, r.Version, pipelines.RegionState{Region: reg, Status: pipelines.RegionSuccessful, URL: "http://" + reg + ".example/"}); err != nil {
			s.t.Fatal(err)
		}
	}
	if err := s.store.FinishRelease(ctx, app, r.Version, pipelines.ReleaseSucceeded, ""); err != nil {
		s.t.Fatal(err)
	}
	return r
}

// request is one browser request: a signed-in one carries the session
// cookie, and forms are sent as a same-origin browser sends them.
type request struct {
	method, path, token string
	form                url.Values
	header              map[string]string
}

func (s *site) do(r request) *httptest.ResponseRecorder {
	var body io.Reader
	if r.form != nil {
		body = strings.NewReader(r.form.Encode())
	}
	req := httptest.NewRequest(r.method, "http://drover.example"+r.path, body)
	if r.form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	if r.token != "" {
		req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: web.SessionValue(r.token)})
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.e.ServeHTTP(w, req)
	return w
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// csrf reads the form token the page gives token's session.
func (s *site) csrf(token string) string {
	s.t.Helper()
	w := s.do(request{method: "GET", path: "/", token: token})
	m := csrfField.FindStringSubmatch(w.Body.String())
	if m == nil {
		s.t.Fatalf("no csrf field on the page: %d %s", w.Code, w.Body)
	}
	return m[1]
}

func TestSignIn(t *testing.T) {
	s := newSite(t)
	tests := []struct {
		name     string
		r        request
		status   int
		location string
		contains string
		cookie   string
	}{
		{"the page needs a session", request{method: "GET", path: "/"}, 303, "/login", "", ""},
		{"a deep link comes back after", request{method: "GET", path: "/apps/hello"}, 303, "/login?next=%2Fapps%2Fhello", "", ""},
		{"the form", request{method: "GET", path: "/login?next=/apps/hello"}, 200, "", `name="next" value="/apps/hello"`, ""},
		{"an unknown token", request{method: "POST", path: "/login", form: url.Values{"token": {"nope"}}}, 401, "", "invalid bearer token", ""},
		{"no token", request{method: "POST", path: "/login", form: url.Values{"token": {""}}}, 400, "", "Paste an API token", ""},
		{"a token no cookie could carry as it is", request{method: "POST", path: "/login", form: url.Values{"token": {oddToken}}}, 303, "/", "",
			web.SessionCookie + "=" + web.SessionValue(oddToken) + "; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict"},
		{"signed in with it", request{method: "GET", path: "/", token: oddToken}, 200, "", "signed in as <b>odd</b>", ""},
		{"a good token", request{method: "POST", path: "/login", form: url.Values{"token": {readToken}, "next": {"/apps/hello"}}}, 303, "/apps/hello", "",
			web.SessionCookie + "=" + web.SessionValue(readToken) + "; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict"},
		{"behind TLS the cookie is Secure", request{method: "POST", path: "/login", form: url.Values{"token": {readToken}}, header: map[string]string{"X-Forwarded-Proto": "https"}}, 303, "/", "",
			web.SessionCookie + "=" + web.SessionValue(readToken) + "; Path=/; Max-Age=43200; HttpOnly; Secure; SameSite=Strict"},
		{"next stays on this site", request{method: "POST", path: "/login", form: url.Values{"token": {readToken}, "next": {"//evil.example/x"}}}, 303, "/", "",
			web.SessionCookie + "=" + web.SessionValue(readToken) + "; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict"},
		{"a sign-in from another site", request{method: "POST", path: "/login", form: url.Values{"token": {readToken}}, header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, 403, "", "another site", ""},
		{"a stale cookie", request{method: "GET", path: "/", token: "revoked"}, 303, "/login?msg=", "", web.SessionCookie + "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"},
		{"signed in", request{method: "GET", path: "/", token: readToken}, 200, "", "signed in as <b>viewer</b>", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := s.do(tt.r)
			if w.Code != tt.status || !strings.HasPrefix(w.Header().Get("Location"), tt.location) || !strings.Contains(w.Body.String(), tt.contains) {
				t.Fatalf("= %d at %q: %s\nwant %d at %q containing %q", w.Code, w.Header().Get("Location"), w.Body, tt.status, tt.location, tt.contains)
			}
			if got := w.Header().Get("Set-Cookie"); got != tt.cookie {
				t.Fatalf("Set-Cookie = %q\nwant        %q", got, tt.cookie)
			}
		})
	}
}

// TestPageHeaders: pages run only their own scripts and styles, cannot
// be framed and are not cached; assets are kept by digest.
func TestPageHeaders(t *testing.T) {
	s := newSite(t)
	w := s.do(request{method: "GET", path: "/", token: readToken})
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'self'; script-src 'self'",
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-store",
	} {
		if got := w.Header().Get(k); !strings.Contains(got, want) {
			t.Errorf("%s = %q; want %q", k, got, want)
		}
	}
	if !strings.Contains(w.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("the page may be framed: %q", w.Header().Get("Content-Security-Policy"))
	}
	for _, asset := range []string{"drover.css", "drover.js"} {
		m := regexp.MustCompile(`/assets/` + regexp.QuoteMeta(asset) + `\?v=[0-9a-f]{16}`).FindString(w.Body.String())
		if m == "" {
			t.Fatalf("the page does not link %s by digest", asset)
		}
		a := s.do(request{method: "GET", path: m})
		if a.Code != 200 || !strings.Contains(a.Header().Get("Cache-Control"), "immutable") || a.Body.Len() == 0 {
			t.Errorf("%s = %d %q", m, a.Code, a.Header().Get("Cache-Control"))
		}
	}
	if a := s.do(request{method: "GET", path: "/assets/nope.js"}); a.Code != 404 {
		t.Errorf("unknown asset = %d", a.Code)
	}
}

// TestBoard: each pipeline shows its stages with their app, current
// release (version, commit, description, age) and a dot per region whose
// title says why; staging has Promote for tokens that may deploy.
func TestBoard(t *testing.T) {
	s := newSite(t)
	s.release("hello-staging", strings.Repeat("a", 40), "sha256:"+strings.Repeat("1", 64), "push to main by octocat: Add the greeting", "local-a")
	s.release("hello", strings.Repeat("b", 40), "sha256:"+strings.Repeat("2", 64), "promote v1 of hello-staging by ci", "local-a", "local-b")

	w := s.do(request{method: "GET", path: "/", token: deployToken})
	body := w.Body.String()
	for _, want := range []string{
		`<h2>hello <a class="repo" href="https://github.com/octo-org/hello">octo-org/hello</a></h2>`,
		`<a href="/apps/hello-staging">hello-staging</a>`,
		`<a href="https://github.com/octo-org/hello/commit/` + strings.Repeat("a", 40) + `"><code>aaaaaaa</code></a>`,
		`push to main by octocat: Add the greeting`,
		`promote v1 of hello-staging by ci`,
		`title="local-b: successful (v1)"`,
		`<span class="dot ok"`,
		`action="/pipelines/hello/promote"`,
		`http://local-a.example/`,
		`just now`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the board lacks %s", want)
		}
	}
	if w.Code != 200 {
		t.Fatalf("= %d", w.Code)
	}
	if r := s.do(request{method: "GET", path: "/", token: readToken}); strings.Contains(r.Body.String(), `action="/pipelines/hello/promote"`) {
		t.Error("a read-only token is offered Promote")
	}
	if r := s.do(request{method: "GET", path: "/?fragment=pipelines", token: readToken}); r.Code != 200 || strings.Contains(r.Body.String(), "<html") || !strings.Contains(r.Body.String(), `class="pipeline"`) {
		t.Errorf("the pipelines fragment = %d %s", r.Code, r.Body)
	}
}

// TestBoardWithoutApprovals: a server that cannot list approvals (no
// route for it) still shows the board.
func TestBoardWithoutApprovals(t *testing.T) {
	cfg, err := pipelines.LoadConfig(filepath.Join("..", "examples", "drover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := newSiteWith(t, cfg, func(srv *api.Server) { srv.Approvals = nil })
	if w := s.do(request{method: "GET", path: "/", token: readToken}); w.Code != 200 || !strings.Contains(w.Body.String(), "hello-staging") {
		t.Fatalf("= %d %s", w.Code, w.Body)
	}
}

// TestForms: every POST needs the session's CSRF token and a same-site
// sender; the API's scopes decide the rest, and a refusal says why.
func TestForms(t *testing.T) {
	s := newSite(t)
	s.release("hello-staging", "c1", "sha256:one", "push", "local-a")
	s.release("hello-staging", "c2", "sha256:two", "push", "local-a")
	s.release("hello", "c1", "sha256:one", "promote", "local-a", "local-b")
	s.release("hello", "c2", "sha256:two", "promote", "local-a", "local-b")
	deployCSRF, readCSRF := s.csrf(deployToken), s.csrf(readToken)
	if deployCSRF == readCSRF {
		t.Fatal("two sessions have the same CSRF token")
	}
	tests := []struct {
		name     string
		r        request
		status   int
		location string
		contains string
		started  int
	}{
		{"promote without the token", request{method: "POST", path: "/pipelines/hello/promote", token: deployToken, form: url.Values{"release": {"v2"}}}, 403, "", "CSRF token is missing or wrong", 0},
		{"promote with another session's token", request{method: "POST", path: "/pipelines/hello/promote", token: deployToken, form: url.Values{"release": {"v2"}, "csrf": {readCSRF}}}, 403, "", "CSRF", 0},
		{"promote from another site", request{method: "POST", path: "/pipelines/hello/promote", token: deployToken, form: url.Values{"release": {"v2"}, "csrf": {deployCSRF}},
			header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, 403, "", "another site", 0},
		{"promote signed out", request{method: "POST", path: "/pipelines/hello/promote", form: url.Values{"release": {"v2"}, "csrf": {deployCSRF}}}, 303, "/login", "", 0},
		{"promote without the deploy scope", request{method: "POST", path: "/pipelines/hello/promote", token: readToken, form: url.Values{"release": {"v2"}, "csrf": {readCSRF}}}, 403, "", "lacks the deploy scope", 0},
		{"promote", request{method: "POST", path: "/pipelines/hello/promote", token: deployToken, form: url.Values{"release": {"v2"}, "csrf": {deployCSRF}}}, 303, "/?operation=promote%2Fhello%2F", "", 1},
		{"roll back", request{method: "POST", path: "/apps/hello/rollback", token: deployToken, form: url.Values{"release": {"v1"}, "csrf": {deployCSRF}}}, 303, "/?operation=rollback%2Fhello%2F", "", 1},
		{"roll back to no such release", request{method: "POST", path: "/apps/hello/rollback", token: deployToken, form: url.Values{"release": {"v9"}, "csrf": {deployCSRF}}}, 404, "", "v9", 0},
		{"sign out without the token", request{method: "POST", path: "/logout", token: deployToken, form: url.Values{}}, 403, "", "CSRF", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(s.ops.started)
			w := s.do(tt.r)
			if w.Code != tt.status || !strings.HasPrefix(w.Header().Get("Location"), tt.location) || !strings.Contains(w.Body.String(), tt.contains) {
				t.Fatalf("= %d at %q: %s\nwant %d at %q containing %q", w.Code, w.Header().Get("Location"), w.Body, tt.status, tt.location, tt.contains)
			}
			if got := len(s.ops.started) - before; got != tt.started {
				t.Fatalf("%d operations started; want %d", got, tt.started)
			}
		})
	}
	out := s.do(request{method: "POST", path: "/logout", token: deployToken, form: url.Values{"csrf": {deployCSRF}}})
	if out.Code != 303 || out.Header().Get("Location") != "/login" || !strings.Contains(out.Header().Get("Set-Cookie"), web.SessionCookie+"=; Path=/; Max-Age=0") {
		t.Fatalf("sign out = %d %q %q", out.Code, out.Header().Get("Location"), out.Header().Get("Set-Cookie"))
	}
	last := s.ops.started[len(s.ops.started)-1]
	if last.Rollback == nil || last.Rollback.ToVersion != 1 || last.Rollback.RequestedBy != "ci" {
		t.Fatalf("the rollback queued = %+v", last)
	}
	if p := s.ops.started[0].Promote; p == nil || p.FromVersion != 2 || p.FromApp != "hello-staging" || p.RequestedBy != "ci" {
		t.Fatalf("the promotion queued = %+v", s.ops.started[0])
	}
}

// TestApprovalsOnThePage: releases waiting for approval are listed with
// Approve and Reject for tokens with the approve scope; a decision goes to
// the API under the signed-in token's name.
func TestApprovalsOnThePage(t *testing.T) {
	s := newSite(t)
	s.release("hello", "c1", "sha256:one", "promote", "local-a", "local-b")
	if _, err := s.store.CreateRelease(context.Background(), deployments.NewRelease{App: "hello", Slug: "sha256:two", Commit: "c2", Operation: "promote/hello/abc@run1",
		Description: "promote v2 of hello-staging by ci", Regions: []string{"local-a", "local-b"}}); err != nil {
		t.Fatal(err)
	}
	s.ops.waiting["promote/hello/abc"] = workflows.ApprovalWait{Waiting: true, Version: 2, RequestedBy: "ci", Deadline: time.Now().Add(time.Hour)}

	lead := s.do(request{method: "GET", path: "/", token: leadToken}).Body.String()
	for _, want := range []string{"Waiting for approval", "<b>hello v2</b>", "queued by ci", `value="approve"`, `value="reject"`, `name="operation" value="promote/hello/abc"`,
		`href="http://temporal.example:8233/namespaces/default/workflows/promote%2Fhello%2Fabc"`} {
		if !strings.Contains(lead, want) {
			t.Errorf("the lead's page lacks %s", want)
		}
	}
	if viewer := s.do(request{method: "GET", path: "/", token: readToken}).Body.String(); strings.Contains(viewer, `value="approve"`) || !strings.Contains(viewer, "lacks the approve scope") {
		t.Error("a token without the approve scope is offered Approve")
	}
	w := s.do(request{method: "POST", path: "/approvals", token: leadToken, form: url.Values{"operation": {"promote/hello/abc"}, "decision": {"approve"}, "csrf": {s.csrf(leadToken)}}})
	if w.Code != 303 || len(s.ops.approvals) != 1 || s.ops.approvals[0] != (workflows.Approval{Approved: true, By: "lead"}) {
		t.Fatalf("approve = %d %s; approvals %+v", w.Code, w.Body, s.ops.approvals)
	}
	w = s.do(request{method: "POST", path: "/approvals", token: leadToken, form: url.Values{"operation": {"promote/hello/abc"}, "decision": {"reject"}, "csrf": {s.csrf(leadToken)}}})
	if w.Code != 303 || len(s.ops.approvals) != 2 || s.ops.approvals[1].Approved {
		t.Fatalf("reject = %d; approvals %+v", w.Code, s.ops.approvals)
	}
	if w := s.do(request{method: "POST", path: "/approvals", token: deployToken, form: url.Values{"operation": {"promote/hello/abc"}, "decision": {"approve"}, "csrf": {s.csrf(deployToken)}}}); w.Code != 403 || !strings.Contains(w.Body.String(), "approve scope") {
		t.Fatalf("approve without the scope = %d %s", w.Code, w.Body)
	}
}

// TestHistory: the ledger newest first, with status, short slug digest,
// commit link, config version, and Roll back on earlier succeeded
// releases only.
func TestHistory(t *testing.T) {
	s := newSite(t)
	s.release("hello", "c1", "sha256:"+strings.Repeat("1", 64), "first", "local-a", "local-b")
	s.release("hello", "c2", "sha256:"+strings.Repeat("2", 64), "second", "local-a", "local-b")
	if _, err := s.store.CreateRelease(context.Background(), deployments.NewRelease{App: "hello", Slug: "sha256:x", Commit: "c3", Description: "broken", Regions: []string{"local-a"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.store.FinishRelease(context.Background(), "hello", 3, pipelines.ReleaseFailed, "web crashed"); err != nil {
		t.Fatal(err)
	}
	body := s.do(request{method: "GET", path: "/apps/hello", token: deployToken}).Body.String()
	v3, v2, v1 := strings.Index(body, "<th scope=\"row\">v3"), strings.Index(body, "<th scope=\"row\">v2"), strings.Index(body, "<th scope=\"row\">v1")
	if v3 < 0 || v2 < v3 || v1 < v2 {
		t.Fatalf("releases not newest first (%d %d %d): %s", v3, v2, v1, body)
	}
	for _, want := range []string{"<code>111111111111</code>", "web crashed", "<td>v0</td>", `/octo-org/hello/commit/c2"`, `<span class="badge">current</span>`} {
		if !strings.Contains(body, want) {
			t.Errorf("the history lacks %s", want)
		}
	}
	if n := strings.Count(body, "Roll back to this"); n != 1 || !strings.Contains(body, `name="release" value="v1"`) {
		t.Errorf("%d Roll back buttons; want one, on v1", n)
	}
	if r := s.do(request{method: "GET", path: "/apps/nope", token: deployToken}); r.Code != 404 {
		t.Errorf("unknown app = %d", r.Code)
	}
}

// TestPreviewPage: the preview names the commits, config var names (never
// values), formation, release phase and each region's plan, and its form
// goes ahead with the previewed release.
func TestPreviewPage(t *testing.T) {
	s := newSite(t)
	s.release("hello-staging", "c1", "sha256:one", "push", "local-a")
	s.release("hello", "c0", "sha256:zero", "promote", "local-a", "local-b")
	ctx := context.Background()
	s.store.SetConfigVars(ctx, "hello-staging", map[string]string{"DEBUG": "very-secret-value"}, nil)
	s.store.SetConfigVars(ctx, "hello", map[string]string{"SENTRY_DSN": "another-secret"}, nil)
	w := s.do(request{method: "GET", path: "/pipelines/hello/promote", token: deployToken})
	body := w.Body.String()
	if w.Code != 200 || strings.Contains(body, "secret-value") || strings.Contains(body, "another-secret") {
		t.Fatalf("= %d %s", w.Code, body)
	}
	for _, want := range []string{"Promote hello-staging v1 to hello", "only in hello-staging: DEBUG", "only in hello: SENTRY_DSN",
		"no GitHub credentials", "<b>local-b</b> (local)", "web.1 (the new release)", "web.1 (v1)", `name="release" value="v1"`, `action="/pipelines/hello/promote"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the preview lacks %s", want)
		}
	}
	if len(s.ops.started) != 0 {
		t.Fatal("the preview started something")
	}
	// A rollback's preview: the old release's slug, config and formation
	// come back, and its form rolls back to exactly that release.
	s.release("hello", "c1", "sha256:one", "promote", "local-a", "local-b")
	r := s.do(request{method: "GET", path: "/apps/hello/rollback?release=v1", token: deployToken})
	body = r.Body.String()
	if r.Code != 200 {
		t.Fatalf("rollback preview = %d %s", r.Code, body)
	}
	for _, want := range []string{"Roll hello back to v1", "hello runs v2", "web.1 (v2)", `action="/apps/hello/rollback"`, `name="release" value="v1"`, "Roll back to v1"} {
		if !strings.Contains(body, want) {
			t.Errorf("the rollback preview lacks %s", want)
		}
	}
	if strings.Contains(body, `name="run_release_phase"`) {
		t.Error("the rollback's form runs the release phase unasked")
	}
	if r := s.do(request{method: "GET", path: "/apps/hello/rollback?release=v1&run_release_phase=true", token: deployToken}); !strings.Contains(r.Body.String(), `name="run_release_phase" value="true"`) {
		t.Error("a preview with the release phase does not carry it to its form")
	}
	if r := s.do(request{method: "GET", path: "/apps/hello/rollback?release=v9", token: deployToken}); r.Code != 404 {
		t.Errorf("rollback preview of no such release = %d", r.Code)
	}
	if len(s.ops.started) != 0 {
		t.Fatal("a rollback preview started something")
	}
}

// TestOperationEvents: the page's stream of an operation is the API's,
// each change sent as the progress block's HTML, then "done".
func TestOperationEvents(t *testing.T) {
	api.OperationPollInterval = 10 * time.Millisecond
	s := newSite(t)
	rel := s.release("hello", "c1", "sha256:one", "promote v1 of hello-staging", "local-a")
	if _, err := s.store.CreateRelease(context.Background(), deployments.NewRelease{App: "hello", Slug: "sha256:one", Operation: "promote/hello/x1@run1", Description: "promote again", Regions: []string{"local-a", "local-b"}}); err != nil {
		t.Fatal(err)
	}
	_ = rel
	srv := httptest.NewServer(s.e)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/events/operations/promote/hello/x1", nil)
	req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: web.SessionValue(readToken)})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("= %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		var ev strings.Builder
		for sc.Scan() {
			if sc.Text() == "" {
				events <- ev.String()
				ev.Reset()
				continue
			}
			ev.WriteString(sc.Text() + "\n")
		}
		close(events)
	}()
	next := func() string {
		select {
		case e := <-events:
			return e
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
		}
		return ""
	}
	first := next()
	if !strings.HasPrefix(first, "event: progress\n") || !strings.Contains(first, `data-state="running"`) || !strings.Contains(first, "local-b      pending") {
		t.Fatalf("first event:\n%s", first)
	}
	if err := s.store.SetRegionState(context.Background(), "hello", 2, pipelines.RegionState{Region: "local-a", Status: pipelines.RegionSuccessful, Message: "web.1 up"}); err != nil {
		t.Fatal(err)
	}
	if e := next(); !strings.Contains(e, "local-a      successful  web.1 up") {
		t.Fatalf("after local-a succeeded:\n%s", e)
	}
	s.ops.mu.Lock()
	s.ops.state = workflows.OperationState{State: workflows.OperationSucceeded}
	s.ops.mu.Unlock()
	if e := next(); !strings.Contains(e, `data-state="succeeded"`) {
		t.Fatalf("after it ended:\n%s", e)
	}
	if e := next(); e != "event: done\ndata: succeeded\n" {
		t.Fatalf("last event:\n%s", e)
	}
	// An operation the API does not know is its 404, not a stream.
	req, _ = http.NewRequest("GET", srv.URL+"/events/operations/bogus", nil)
	req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: web.SessionValue(readToken)})
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 404 {
		t.Fatalf("unknown operation = %v %v", r.StatusCode, err)
	}
}

// TestBoardReviewApps: a pipeline with a review stage shows its review
// apps first: pull request number and title (escaped), state, commit and
// app.
func TestBoardReviewApps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drover.yaml")
	if err := os.WriteFile(path, []byte(`github:
  webhook_secret: test
regions:
  local-a: { driver: local }
pipelines:
  hello:
    repo: octo-org/hello
    stages:
      review:     { regions: [local-a], ttl: 72h }
      staging:    { app: hello-staging, branch: main, regions: [local-a] }
      production: { app: hello, regions: [local-a] }
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := pipelines.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	s := newSiteWith(t, cfg)
	app := pipelines.ReviewAppName("hello", 12)
	if err := s.store.PutReviewApp(context.Background(), pipelines.ReviewApp{App: app, Pipeline: "hello", Repo: "octo-org/hello", PR: 12,
		Title: "Fix <script>alert(1)</script>", Branch: "fix", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	body := s.do(request{method: "GET", path: "/", token: readToken}).Body.String()
	for _, want := range []string{"<h3>Review apps</h3>", `<a href="https://github.com/octo-org/hello/pull/12">#12</a> Fix &lt;script&gt;alert(1)&lt;/script&gt;`,
		"not deployed yet", `<a href="/apps/` + app + `">` + app + `</a>`} {
		if !strings.Contains(body, want) {
			t.Errorf("the board lacks %s", want)
		}
	}
	if strings.Contains(body, "<script>alert") {
		t.Error("a pull request's title reached the page unescaped")
	}
}
