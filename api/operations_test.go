package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/api"
	"github.com/drover/drover/deployments"
	"github.com/drover/drover/deployments/sqlstore"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
	"github.com/drover/drover/workflows"
)

type fakeOps struct {
	started   []workflows.Operation
	apps      []string
	state     workflows.OperationState
	approvals []workflows.Approval
	running   map[string]string
}

func (f *fakeOps) StartOperation(ctx context.Context, app string, op workflows.Operation) (int, error) {
	f.started, f.apps = append(f.started, op), append(f.apps, app)
	return len(f.started) - 1, nil
}

// Processes answers web.1 up on v3 in each region, except a region named
// "down", which cannot say.
func (f *fakeOps) Processes(ctx context.Context, id, app string, names []string) ([]workflows.RegionProcesses, error) {
	if !strings.HasPrefix(id, "ps/"+app+"/") {
		return nil, fmt.Errorf("workflow ID %q is not one of %s's ps", id, app)
	}
	var out []workflows.RegionProcesses
	for _, n := range names {
		out = append(out, workflows.RegionProcesses{Region: n, Processes: []regions.Process{{Dyno: "web.1", Type: "web", Release: 3, State: regions.ProcessUp}}})
	}
	return out, nil
}

func (f *fakeOps) SetAutoDeploy(ctx context.Context, app string, ad workflows.AutoDeploy) error {
	f.apps = append(f.apps, app)
	return nil
}

func (f *fakeOps) Approve(ctx context.Context, operation string, ap workflows.Approval) error {
	if !strings.HasSuffix(operation, "/running") {
		return pipelines.ErrNotFound
	}
	f.approvals = append(f.approvals, ap)
	return nil
}

func (f *fakeOps) AppStatus(ctx context.Context, app string) (workflows.AppStatus, error) {
	return workflows.AppStatus{Running: f.running[app]}, nil
}

func (f *fakeOps) OperationState(ctx context.Context, id string) (workflows.OperationState, error) {
	return f.state, nil
}

func newOpsServer(t *testing.T) (*gin.Engine, *fakeOps, *sqlstore.Store) {
	t.Helper()
	return newOpsServerWith(t, func(*api.Server) {})
}

// newOpsServerWith is newOpsServer with the server changed by with first.
func newOpsServerWith(t *testing.T, with func(*api.Server)) (*gin.Engine, *fakeOps, *sqlstore.Store) {
	t.Helper()
	cfg, err := pipelines.LoadConfig(filepath.Join("..", "examples", "drover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "drover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, app := range cfg.Apps() {
		st.SyncApp(context.Background(), app)
	}
	ops := &fakeOps{state: workflows.OperationState{State: workflows.OperationRunning}}
	gin.SetMode(gin.TestMode)
	e := gin.New()
	srv := &api.Server{Ledger: st, Config: cfg, Operations: ops, Tokens: []api.Token{
		{Name: "admin", Value: token},
		{Name: "ci-other", Value: "other-token", Pipelines: []string{"other"}},
		{Name: "viewer", Value: "read-token", Scopes: []string{pipelines.ScopeRead}},
		{Name: "ci", Value: "deploy-token", Scopes: []string{pipelines.ScopeRead, pipelines.ScopeDeploy}},
		{Name: "lead", Value: "approve-token", Scopes: []string{pipelines.ScopeApprove}},
		{Name: "ops", Value: "config-token", Scopes: []string{pipelines.ScopeConfig}},
		{Name: "root", Value: "admin-token", Scopes: []string{pipelines.ScopeAdmin}},
	}}
	srv.Runs = st
	with(srv)
	srv.Register(e)
	return e, ops, st
}

// TestTokenScopes: each route needs its scope; config values need the
// config scope, while read sees which vars are set.
func TestTokenScopes(t *testing.T) {
	e, _, st := newOpsServer(t)
	if _, err := st.SetConfigVars(context.Background(), "hello", map[string]string{"DATABASE_URL": "postgres://secret"}, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, token, body string
		status                          int
		contains                        string
	}{
		{"read lists apps", "GET", "/api/v1/apps", "read-token", "", 200, "hello"},
		{"read lists processes", "GET", "/api/v1/apps/hello/ps", "read-token", "", 200, `"dyno":"web.1","type":"web","release":3,"state":"up"`},
		{"another pipeline's processes", "GET", "/api/v1/apps/hello/ps", "other-token", "", 403, "not allowed on pipeline"},
		{"processes of an unknown app", "GET", "/api/v1/apps/nope/ps", "read-token", "", 404, "not found"},
		{"read cannot promote", "POST", "/api/v1/pipelines/hello/promote", "read-token", "", 403, `token \"viewer\" lacks the deploy scope`},
		{"read sees config names, not values", "GET", "/api/v1/apps/hello/config", "read-token", "", 200, `"DATABASE_URL":""`},
		{"read cannot set config", "PATCH", "/api/v1/apps/hello/config", "read-token", `{"A":"1"}`, 403, "lacks the config scope"},
		{"deploy promotes", "POST", "/api/v1/pipelines/hello/promote", "deploy-token", "", 202, `"kind":"promote"`},
		{"deploy cannot approve", "POST", "/api/v1/approvals", "deploy-token", `{"operation":"promote/hello/running","approved":true}`, 403, "lacks the approve scope"},
		{"deploy cannot read config values", "GET", "/api/v1/apps/hello/config", "deploy-token", "", 200, `"DATABASE_URL":""`},
		{"approve cannot promote", "POST", "/api/v1/pipelines/hello/promote", "approve-token", "", 403, "lacks the deploy scope"},
		{"approve approves", "POST", "/api/v1/approvals", "approve-token", `{"operation":"promote/hello/running","approved":true}`, 200, `"by":"lead"`},
		{"config reads values", "GET", "/api/v1/apps/hello/config", "config-token", "", 200, `"DATABASE_URL":"postgres://secret"`},
		{"config cannot list releases", "GET", "/api/v1/apps/hello/releases", "config-token", "", 403, "lacks the read scope"},
		{"admin does everything", "GET", "/api/v1/apps/hello/config", "admin-token", "", 200, "postgres://secret"},
		{"no scopes key: everything", "GET", "/api/v1/apps/hello/config", token, "", 200, "postgres://secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(e, tt.method, tt.path, "Bearer "+tt.token, tt.body)
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.contains) {
				t.Fatalf("%s %s with %s = %d %s; want %d %q", tt.method, tt.path, tt.token, w.Code, w.Body, tt.status, tt.contains)
			}
		})
	}
}

func TestPromoteAndRollbackEndpoints(t *testing.T) {
	tests := []struct {
		name, method, path, auth, body string
		status                         int
		contains                       string
		started                        string // kind/app of the started operation
	}{
		{"pipelines", "GET", "/api/v1/pipelines", "Bearer " + token, "", 200, `"name":"hello","repo":"octo-org/hello","stages":{"production":{"app":"hello"`, ""},
		{"pipelines of another pipeline's token", "GET", "/api/v1/pipelines", "Bearer other-token", "", 200, "[]", ""},
		{"promote by pipeline", "POST", "/api/v1/pipelines/hello/promote", "Bearer " + token, "", 202, `"kind":"promote","app":"hello","state":"queued","ahead":0}`, "promote/hello"},
		{"promote by staging app", "POST", "/api/v1/pipelines/hello-staging/promote", "Bearer " + token, `{"release":"v7"}`, 202, `"state":"queued"`, "promote/hello"},
		{"promote unknown", "POST", "/api/v1/pipelines/nope/promote", "Bearer " + token, "", 404, "no pipeline or app named nope", ""},
		{"promote bad version", "POST", "/api/v1/pipelines/hello/promote", "Bearer " + token, `{"release":"seven"}`, 400, "want vN", ""},
		{"promote bad body", "POST", "/api/v1/pipelines/hello/promote", "Bearer " + token, `[`, 400, "invalid", ""},
		{"promote other pipeline's token", "POST", "/api/v1/pipelines/hello/promote", "Bearer other-token", "", 403, "forbidden", ""},
		{"promote without token", "POST", "/api/v1/pipelines/hello/promote", "", "", 401, "unauthorized", ""},
		{"rollback", "POST", "/api/v1/apps/hello/rollback", "Bearer " + token, "", 202, `"kind":"rollback"`, "rollback/hello"},
		{"rollback with nothing to go back to", "POST", "/api/v1/apps/hello-staging/rollback", "Bearer " + token, "", 409, `"message":"hello-staging has no earlier succeeded release to roll back to"`, ""},
		{"rollback to unknown release", "POST", "/api/v1/apps/hello/rollback", "Bearer " + token, `{"release":"v3"}`, 404, "not_found", ""},
		{"config release", "POST", "/api/v1/apps/hello/releases", "Bearer " + token, "", 202, `"kind":"config"`, "config/hello"},
		{"scale", "POST", "/api/v1/apps/hello/formation", "Bearer " + token, `{"web":3}`, 202, `"kind":"scale"`, "scale/hello"},
		{"scale negative", "POST", "/api/v1/apps/hello/formation", "Bearer " + token, `{"web":-1}`, 400, "between 0 and 1000", ""},
		{"scale empty", "POST", "/api/v1/apps/hello/formation", "Bearer " + token, `{}`, 400, "invalid", ""},
		{"scale other pipeline's token", "POST", "/api/v1/apps/hello/formation", "Bearer other-token", `{"web":3}`, 403, "forbidden", ""},
		{"resume auto-deploy", "POST", "/api/v1/apps/hello/autodeploy", "Bearer " + token, `{"paused":false}`, 200, `"paused":false`, ""},
		{"auto-deploy without a body", "POST", "/api/v1/apps/hello/autodeploy", "Bearer " + token, `{}`, 400, "paused", ""},
		{"rollback unknown app", "POST", "/api/v1/apps/nope/rollback", "Bearer " + token, "", 404, "not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ops, st := newOpsServer(t)
			succeeded(t, st, "hello", 2)
			w := do(e, tt.method, tt.path, tt.auth, tt.body)
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.contains) {
				t.Fatalf("%s %s = %d %s; want %d containing %q", tt.method, tt.path, w.Code, w.Body, tt.status, tt.contains)
			}
			if tt.started == "" {
				if len(ops.started) != 0 {
					t.Fatalf("started %v; want nothing", ops.started)
				}
				return
			}
			if len(ops.started) != 1 || !strings.HasPrefix(ops.started[0].ID, tt.started+"/") {
				t.Fatalf("started %+v; want one %s", ops.started, tt.started)
			}
		})
	}
}

func TestPromoteIntoABusyStageIsRefused(t *testing.T) {
	e, ops, _ := newOpsServer(t)
	ops.running = map[string]string{"hello": "rollback/hello/abc"}
	w := do(e, "POST", "/api/v1/pipelines/hello/promote", "Bearer "+token, "")
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "hello is running rollback/hello/abc") || len(ops.started) != 0 {
		t.Fatalf("= %d %s, started %v; want 409 with the reason", w.Code, w.Body, ops.started)
	}
}

func TestPromoteCarriesStagesAndVersion(t *testing.T) {
	e, ops, _ := newOpsServer(t)
	if w := do(e, "POST", "/api/v1/pipelines/hello/promote", "Bearer "+token, `{"release":"v7"}`); w.Code != 202 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	p := ops.started[0].Promote
	if p == nil || p.App != "hello" || p.FromApp != "hello-staging" || p.FromVersion != 7 || strings.Join(p.Regions, ",") != "local-a,local-b" || p.OnFailure != pipelines.FailAll {
		t.Fatalf("promote input = %+v", p)
	}
}

func TestApprovals(t *testing.T) {
	tests := []struct {
		name, auth, body string
		status           int
		contains         string
	}{
		{"approve", "Bearer " + token, `{"operation":"deploy/hello/running","approved":true}`, 200, `"by":"admin"`},
		{"reject a promotion", "Bearer " + token, `{"operation":"promote/hello/running","approved":false}`, 200, `"approved":false`},
		{"not running", "Bearer " + token, `{"operation":"deploy/hello/done","approved":true}`, 404, "not_found"},
		{"not an operation", "Bearer " + token, `{"operation":"bogus","approved":true}`, 404, "no operation bogus"},
		{"no decision", "Bearer " + token, `{"operation":"deploy/hello/running"}`, 400, "approved"},
		{"other pipeline's token", "Bearer other-token", `{"operation":"deploy/hello/running","approved":true}`, 403, "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ops, _ := newOpsServer(t)
			w := do(e, "POST", "/api/v1/approvals", tt.auth, tt.body)
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.contains) {
				t.Fatalf("= %d %s; want %d containing %q", w.Code, w.Body, tt.status, tt.contains)
			}
			if tt.status == 200 && (len(ops.approvals) != 1 || ops.approvals[0].By != "admin") {
				t.Fatalf("approvals = %+v", ops.approvals)
			}
		})
	}
}

// succeeded gives app n succeeded releases, so it has one to roll back to.
func succeeded(t *testing.T, st *sqlstore.Store, app string, n int) {
	t.Helper()
	ctx := context.Background()
	for range n {
		r, err := st.CreateRelease(ctx, deployments.NewRelease{App: app, Slug: "s", Regions: []string{"local-a"}})
		if err == nil {
			err = st.FinishRelease(ctx, app, r.Version, pipelines.ReleaseSucceeded, "")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestOperationState(t *testing.T) {
	e, _, st := newOpsServer(t)
	succeeded(t, st, "hello", 2)
	w := do(e, "POST", "/api/v1/apps/hello/rollback", "Bearer "+token, "")
	var op api.Operation
	json.Unmarshal(w.Body.Bytes(), &op)
	if _, err := st.CreateRelease(context.Background(), deployments.NewRelease{App: "hello", Slug: "s", Operation: op.ID + "@run1", Regions: []string{"local-a"}}); err != nil {
		t.Fatal(err)
	}
	w = do(e, "GET", "/api/v1/operations/"+op.ID, "Bearer "+token, "")
	var got api.Operation
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if got.State != workflows.OperationRunning || got.Release == nil || got.Release.Version != 3 || got.App != "hello" {
		t.Fatalf("operation = %+v", got)
	}
	if w := do(e, "GET", "/api/v1/operations/"+op.ID, "Bearer other-token", ""); w.Code != http.StatusForbidden {
		t.Fatalf("other pipeline's token: %d", w.Code)
	}
	if w := do(e, "GET", "/api/v1/operations/bogus", "Bearer "+token, ""); w.Code != http.StatusNotFound {
		t.Fatalf("bogus operation: %d", w.Code)
	}
}

// TestOperationStepOutput: a running operation carries its running step's
// output: a push's build before it has a release, its release phase
// after; from output_from on when output_step names that step, else all
// of it; none once no step runs.
func TestOperationStepOutput(t *testing.T) {
	e, _, st := newOpsServer(t)
	ctx := context.Background()
	commit := strings.Repeat("a", 40)
	id := workflows.DeployWorkflowID("hello-staging", commit)
	get := func(q string) *api.StepOutput {
		t.Helper()
		w := do(e, "GET", "/api/v1/operations/"+id+q, "Bearer "+token, "")
		var op api.Operation
		if err := json.Unmarshal(w.Body.Bytes(), &op); err != nil || w.Code != http.StatusOK {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		return op.Output
	}
	if o := get(""); o != nil {
		t.Fatalf("output before any step = %+v", o)
	}
	st.SetLiveOutput(ctx, deployments.BuildStep("octo-org/hello", commit), "-----> Go app detected\n       $ go build\n", 41)
	if o := get(""); o == nil || o.Step != "build" || o.From != 0 || !strings.HasPrefix(o.Text, "-----> Go") || o.Total != 41 {
		t.Fatalf("build output = %+v", o)
	}
	if o := get("?output_step=build&output_from=23"); o.From != 23 || o.Text != "       $ go build\n" {
		t.Fatalf("build output from 23 = %+v", o)
	}
	rel, err := st.CreateRelease(ctx, deployments.NewRelease{App: "hello-staging", Slug: "s", Operation: id + "@run1", Regions: []string{"local-a"}})
	if err != nil {
		t.Fatal(err)
	}
	st.SetLiveOutput(ctx, deployments.ReleasePhaseStep("hello-staging", rel.Version), "migrating\n", 10)
	// The build's offset does not count in the release phase.
	if o := get("?output_step=build&output_from=41"); o == nil || o.Step != "release phase" || o.Text != "migrating\n" {
		t.Fatalf("release phase output = %+v", o)
	}
	st.EndLiveOutput(ctx, deployments.ReleasePhaseStep("hello-staging", rel.Version))
	if o := get(""); o != nil {
		t.Fatalf("output after the step = %+v", o)
	}
}

// stepOps reports running, then succeeded.
type stepOps struct {
	fakeOps
	calls int
}

func (f *stepOps) OperationState(ctx context.Context, id string) (workflows.OperationState, error) {
	f.calls++
	if f.calls < 3 {
		return workflows.OperationState{State: workflows.OperationRunning}, nil
	}
	return workflows.OperationState{State: workflows.OperationSucceeded}, nil
}

func TestOperationEventStream(t *testing.T) {
	api.OperationPollInterval = time.Millisecond
	cfg, _ := pipelines.LoadConfig(filepath.Join("..", "examples", "drover.yaml"))
	st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "drover.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, app := range cfg.Apps() {
		st.SyncApp(context.Background(), app)
	}
	ops := &stepOps{}
	gin.SetMode(gin.TestMode)
	e := gin.New()
	(&api.Server{Ledger: st, Config: cfg, Operations: ops, Tokens: []api.Token{{Name: "admin", Value: token}}}).Register(e)
	srv := httptest.NewServer(e)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/operations/rollback/hello/abc", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	events := strings.Count(string(body), "event:operation")
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") || events != 2 ||
		!strings.Contains(string(body), `"state":"running"`) || !strings.Contains(string(body), `"state":"succeeded"`) {
		t.Fatalf("stream (%s, %d events):\n%s", resp.Header.Get("Content-Type"), events, body)
	}
}

// waits answers ApprovalWait from a table of operations that wait.
type waits map[string]workflows.ApprovalWait

func (w waits) ApprovalWait(ctx context.Context, operation string) (workflows.ApprovalWait, error) {
	if operation == "promote/hello/broken" {
		return workflows.ApprovalWait{}, errors.New("temporal is away")
	}
	return w[operation], nil
}

// TestListApprovals: the releases of approval stages that their workflows
// say wait are listed for tokens that may see the pipeline; pending ones
// that do not wait, or whose workflow cannot say, are not.
func TestListApprovals(t *testing.T) {
	e, _, st := newOpsServerWith(t, func(s *api.Server) {
		prod := s.Config.Pipelines["hello"].Stages[pipelines.StageProduction]
		prod.RequireApproval = true
		s.Config.Pipelines["hello"].Stages[pipelines.StageProduction] = prod
		s.Approvals = waits{
			"promote/hello/waits":   {Waiting: true, Version: 2, RequestedBy: "ci"},
			"promote/hello/decided": {Waiting: false, Version: 3},
		}
	})
	ctx := context.Background()
	succeeded(t, st, "hello", 1)
	for _, op := range []string{"promote/hello/waits", "promote/hello/decided", "promote/hello/broken"} {
		if _, err := st.CreateRelease(ctx, deployments.NewRelease{App: "hello", Slug: "s", Commit: "c0ffee", Operation: op + "@run1", Description: "promote v1 of hello-staging", Regions: []string{"local-a"}}); err != nil {
			t.Fatal(err)
		}
	}
	w := do(e, "GET", "/api/v1/approvals", "Bearer read-token", "")
	var got []api.PendingApproval
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &got) != nil {
		t.Fatalf("= %d %s", w.Code, w.Body)
	}
	if len(got) != 1 || got[0].Operation != "promote/hello/waits" || got[0].Release != 2 || got[0].RequestedBy != "ci" || got[0].Stage != "production" || got[0].Commit != "c0ffee" {
		t.Fatalf("approvals = %+v", got)
	}
	if w := do(e, "GET", "/api/v1/approvals", "Bearer other-token", ""); w.Code != 200 || strings.TrimSpace(w.Body.String()) != "[]" {
		t.Fatalf("another pipeline's token sees %d %s", w.Code, w.Body)
	}
}

// TestWhoami: any valid token may read its own name, scopes and pipelines;
// a token with no scopes listed has them all.
func TestWhoami(t *testing.T) {
	e, _, _ := newOpsServer(t)
	for _, tt := range []struct{ auth, want string }{
		{"Bearer " + token, `{"name":"admin","scopes":["admin"]}`},
		{"Bearer read-token", `{"name":"viewer","scopes":["read"]}`},
		{"Bearer other-token", `{"name":"ci-other","scopes":["admin"],"pipelines":["other"]}`},
	} {
		if w := do(e, "GET", "/api/v1/token", tt.auth, ""); w.Code != 200 || strings.TrimSpace(w.Body.String()) != tt.want {
			t.Errorf("%s: = %d %s; want %s", tt.auth, w.Code, w.Body, tt.want)
		}
	}
	if w := do(e, "GET", "/api/v1/token", "Bearer nope", ""); w.Code != 401 {
		t.Errorf("unknown token = %d", w.Code)
	}
}
