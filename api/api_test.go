package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/api"
	"github.com/drover/drover/deployments"
	"github.com/drover/drover/deployments/sqlstore"
	"github.com/drover/drover/pipelines"
)

const token = "t0ken"

func newServer(t *testing.T) (*gin.Engine, *sqlstore.Store) {
	t.Helper()
	st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "drover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if err := st.SyncApp(ctx, pipelines.App{Name: "hello", Pipeline: "hello", Stage: "staging", Repo: "o/r", Regions: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	r, err := st.CreateRelease(ctx, deployments.NewRelease{App: "hello", Slug: strings.Repeat("a", 64), Commit: "c1", Regions: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	st.SetRegionState(ctx, "hello", r.Version, pipelines.RegionState{Region: "a", Status: pipelines.RegionSuccessful, URL: "http://127.0.0.1:1"})
	st.FinishRelease(ctx, "hello", r.Version, pipelines.ReleaseSucceeded, "")
	if err := st.RecordBuild(ctx, deployments.Build{Repo: "o/r", Commit: "c1", Output: "compile error"}); err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.TestMode)
	e := gin.New()
	(&api.Server{Ledger: st, Tokens: []api.Token{
		{Name: "admin", Value: token},
		{Name: "ci-hello", Value: "hello-token", Pipelines: []string{"hello"}},
		{Name: "ci-other", Value: "other-token", Pipelines: []string{"other"}},
	}}).Register(e)
	return e, st
}

func do(e *gin.Engine, method, path, auth, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	e.ServeHTTP(w, req)
	return w
}

func TestAPI(t *testing.T) {
	e, _ := newServer(t)
	tests := []struct {
		name, method, path, auth, body string
		status                         int
		contains                       string
	}{
		{"health needs no token", "GET", "/healthz", "", "", 200, `"ok"`},
		{"no token", "GET", "/api/v1/apps", "", "", 401, `"code":"unauthorized"`},
		{"wrong token", "GET", "/api/v1/apps", "Bearer nope", "", 401, "invalid bearer token"},
		{"apps", "GET", "/api/v1/apps", "Bearer " + token, "", 200, `"name":"hello"`},
		{"app info has URL", "GET", "/api/v1/apps/hello", "Bearer " + token, "", 200, `"url":"http://127.0.0.1:1"`},
		{"unknown app", "GET", "/api/v1/apps/nope", "Bearer " + token, "", 404, `{"error":{"code":"not_found"`},
		{"releases", "GET", "/api/v1/apps/hello/releases", "Bearer " + token, "", 200, `"version":1`},
		{"releases of unknown app", "GET", "/api/v1/apps/nope/releases", "Bearer " + token, "", 404, "not_found"},
		{"one release", "GET", "/api/v1/apps/hello/releases/v1", "Bearer " + token, "", 200, `"status":"succeeded"`},
		{"bad version", "GET", "/api/v1/apps/hello/releases/vx", "Bearer " + token, "", 400, `"code":"invalid"`},
		{"missing release", "GET", "/api/v1/apps/hello/releases/v9", "Bearer " + token, "", 404, "not_found"},
		{"build of a commit", "GET", "/api/v1/apps/hello/builds/c1", "Bearer " + token, "", 200, `"output":"compile error"`},
		{"build of unknown commit", "GET", "/api/v1/apps/hello/builds/c9", "Bearer " + token, "", 404, "not_found"},
		{"pipeline token on its pipeline", "GET", "/api/v1/apps/hello/releases", "Bearer hello-token", "", 200, `"version":1`},
		{"token of another pipeline", "GET", "/api/v1/apps/hello", "Bearer other-token", "", 403, `{"error":{"code":"forbidden","message":"token \"ci-other\" is not allowed on pipeline \"hello\""}}`},
		{"token of another pipeline, releases", "GET", "/api/v1/apps/hello/releases/v1", "Bearer other-token", "", 403, "forbidden"},
		{"token of another pipeline, config", "PATCH", "/api/v1/apps/hello/config", "Bearer other-token", `{"A":"1"}`, 403, "forbidden"},
		{"other pipeline's apps are not listed", "GET", "/api/v1/apps", "Bearer other-token", "", 200, "[]"},
		{"unknown app beats forbidden", "GET", "/api/v1/apps/nope", "Bearer other-token", "", 404, "not_found"},
		{"config set", "PATCH", "/api/v1/apps/hello/config", "Bearer " + token, `{"A":"1","B":"2"}`, 200, `"version":1`},
		{"config bad key", "PATCH", "/api/v1/apps/hello/config", "Bearer " + token, `{"1A":"x"}`, 400, "config var name"},
		{"config bad body", "PATCH", "/api/v1/apps/hello/config", "Bearer " + token, `[1]`, 400, "JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(e, tt.method, tt.path, tt.auth, tt.body)
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.contains) {
				t.Fatalf("%s %s = %d %s; want %d containing %q", tt.method, tt.path, w.Code, w.Body, tt.status, tt.contains)
			}
		})
	}
}

func TestConfigPatchUnsets(t *testing.T) {
	e, _ := newServer(t)
	do(e, "PATCH", "/api/v1/apps/hello/config", "Bearer "+token, `{"A":"1","B":"2"}`)
	w := do(e, "PATCH", "/api/v1/apps/hello/config", "Bearer "+token, `{"B":null}`)
	var cv pipelines.ConfigVars
	if err := json.Unmarshal(w.Body.Bytes(), &cv); err != nil || cv.Version != 2 || cv.Vars["A"] != "1" || len(cv.Vars) != 1 {
		t.Fatalf("after unset: %s", w.Body)
	}
	w = do(e, "GET", "/api/v1/apps/hello/config", "Bearer "+token, "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"A":"1"`) {
		t.Fatalf("get config: %d %s", w.Code, w.Body)
	}
}

// TestAppInfoReadsURLsLive: the URL shown is where the app answers now,
// asked of the region, not the one recorded at release time; a region
// that cannot say keeps the recorded one.
func TestAppInfoReadsURLsLive(t *testing.T) {
	st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "drover.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	st.SyncApp(ctx, pipelines.App{Name: "hello", Pipeline: "hello", Stage: "staging", Repo: "o/r", Regions: []string{"a", "b"}})
	r, _ := st.CreateRelease(ctx, deployments.NewRelease{App: "hello", Slug: strings.Repeat("a", 64), Commit: "c1", Regions: []string{"a", "b"}})
	for _, region := range []string{"a", "b"} {
		st.SetRegionState(ctx, "hello", r.Version, pipelines.RegionState{Region: region, Status: pipelines.RegionSuccessful, URL: "http://recorded-" + region})
	}
	st.FinishRelease(ctx, "hello", r.Version, pipelines.ReleaseSucceeded, "")
	gin.SetMode(gin.TestMode)
	e := gin.New()
	(&api.Server{Ledger: st, Tokens: []api.Token{{Name: "admin", Value: token}},
		LiveURL: func(_ context.Context, app, region string) (string, bool) {
			if region == "a" {
				return "http://10.0.0.9:31000", true
			}
			return "", false
		}}).Register(e)
	w := do(e, "GET", "/api/v1/apps/hello", "Bearer "+token, "")
	var info api.AppInfo
	if err := json.Unmarshal(w.Body.Bytes(), &info); err != nil || len(info.Where) != 2 {
		t.Fatalf("GET /api/v1/apps/hello = %d %s", w.Code, w.Body)
	}
	if info.Where[0].URL != "http://10.0.0.9:31000" || info.Where[1].URL != "http://recorded-b" {
		t.Fatalf("URLs = %q, %q; want the live one in a and the recorded one in b", info.Where[0].URL, info.Where[1].URL)
	}
}

// TestAppInfoSaysWhatEachRegionRuns: a region runs the newest release
// that succeeded there, which after a partial rollout is not the current
// one: fail_local leaves the failed region on the release before, and a
// rollout stopped at a failed region leaves the regions before it on the
// failed release. Each region's status is what the newest release did
// there.
func TestAppInfoSaysWhatEachRegionRuns(t *testing.T) {
	type region struct {
		status pipelines.RegionStatus
		msg    string
	}
	tests := []struct {
		name string
		// v2 is the second release's state per region (a, b) and its end.
		v2     [2]region
		v2End  pipelines.ReleaseStatus
		want   string // region:release:status, a then b
		wantV  int    // the current release
		urlsOf [2]int // whose recorded URL each region shows
	}{
		{"all succeeded", [2]region{{pipelines.RegionSuccessful, ""}, {pipelines.RegionSuccessful, ""}}, pipelines.ReleaseSucceeded,
			"a:2:successful b:2:successful", 2, [2]int{2, 2}},
		{"fail_local failed in a", [2]region{{pipelines.RegionFailed, "web.1 exited with code 1; reverted to v1"}, {pipelines.RegionSuccessful, ""}}, pipelines.ReleaseSucceeded,
			"a:1:failed b:2:successful", 2, [2]int{1, 2}},
		{"stopped at b", [2]region{{pipelines.RegionSuccessful, ""}, {pipelines.RegionFailed, "web.1 exited with code 1; reverted to v1"}}, pipelines.ReleaseFailed,
			"a:2:successful b:1:failed", 1, [2]int{2, 1}},
		{"fail_all", [2]region{{pipelines.RegionReverted, "reverted to v1"}, {pipelines.RegionFailed, "web.1 exited"}}, pipelines.ReleaseFailed,
			"a:1:reverted b:1:failed", 1, [2]int{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "drover.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ctx := context.Background()
			regions := []string{"a", "b"}
			st.SyncApp(ctx, pipelines.App{Name: "hello", Pipeline: "hello", Stage: "staging", Repo: "o/r", Regions: regions})
			for v, states := range [][2]region{{{pipelines.RegionSuccessful, ""}, {pipelines.RegionSuccessful, ""}}, tt.v2} {
				r, err := st.CreateRelease(ctx, deployments.NewRelease{App: "hello", Slug: strings.Repeat("a", 64), Commit: "c", Regions: regions})
				if err != nil {
					t.Fatal(err)
				}
				for i, name := range regions {
					st.SetRegionState(ctx, "hello", r.Version, pipelines.RegionState{Region: name, Status: states[i].status, Message: states[i].msg,
						URL: "http://" + name + "-v" + string(rune('1'+v))})
				}
				end := pipelines.ReleaseSucceeded
				if v == 1 {
					end = tt.v2End
				}
				st.FinishRelease(ctx, "hello", r.Version, end, "")
			}
			gin.SetMode(gin.TestMode)
			e := gin.New()
			(&api.Server{Ledger: st, Tokens: []api.Token{{Name: "admin", Value: token}}}).Register(e)
			w := do(e, "GET", "/api/v1/apps/hello", "Bearer "+token, "")
			var info api.AppInfo
			if err := json.Unmarshal(w.Body.Bytes(), &info); err != nil || len(info.Where) != 2 || info.Current == nil {
				t.Fatalf("GET /api/v1/apps/hello = %d %s", w.Code, w.Body)
			}
			var got []string
			for i, ri := range info.Where {
				got = append(got, ri.Region+":"+string(rune('0'+ri.Release))+":"+string(ri.Status))
				if want := "http://" + ri.Region + "-v" + string(rune('0'+tt.urlsOf[i])); ri.URL != want {
					t.Errorf("%s's URL = %q, want %q (the release it runs)", ri.Region, ri.URL, want)
				}
				if ri.Status == pipelines.RegionFailed && ri.Message == "" {
					t.Errorf("%s failed and says nothing of why", ri.Region)
				}
			}
			if strings.Join(got, " ") != tt.want || info.Current.Version != tt.wantV {
				t.Fatalf("regions %v, current v%d; want %s, v%d", got, info.Current.Version, tt.want, tt.wantV)
			}
		})
	}
}
