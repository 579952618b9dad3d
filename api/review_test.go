package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/api"
	"github.com/drover/drover/deployments/sqlstore"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/workflows"
)

type fakeReviews struct {
	events  []workflows.PREvent
	starts  []workflows.ReviewInput
	running map[int]bool
}

func (f *fakeReviews) ReviewEvent(ctx context.Context, start workflows.ReviewInput, ev workflows.PREvent) error {
	f.events, f.starts = append(f.events, ev), append(f.starts, start)
	return nil
}

func (f *fakeReviews) ReviewClose(ctx context.Context, repo string, number int, ev workflows.PREvent) (bool, error) {
	if !f.running[number] {
		return false, nil
	}
	f.events = append(f.events, ev)
	return true, nil
}

func TestReviewAppEndpoints(t *testing.T) {
	cfg, err := pipelines.ParseConfig("drover.yaml", []byte(`regions: { a: { driver: local } }
pipelines:
  hello:
    repo: octo-org/hello
    stages:
      review: { regions: [a], ttl: 24h }
      staging: { app: hello-staging, branch: main, regions: [a] }
  plain:
    repo: octo-org/plain
    stages:
      staging: { app: plain-staging, regions: [a] }
`))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "drover.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	st.PutReviewApp(ctx, pipelines.ReviewApp{App: "hello-pr-7", Pipeline: "hello", Repo: "octo-org/hello", PR: 7, Commit: "c7", URL: "http://127.0.0.1:4100", DeployedAt: &at})
	st.PutReviewApp(ctx, pipelines.ReviewApp{App: "hello-pr-8", Pipeline: "hello", Repo: "octo-org/hello", PR: 8})
	st.DestroyReviewApp(ctx, "hello-pr-8", "closed")
	reviews := &fakeReviews{running: map[int]bool{42: true}}
	gin.SetMode(gin.TestMode)
	e := gin.New()
	(&api.Server{Ledger: st, Config: cfg, Operations: &fakeOps{}, Reviews: st, ReviewOps: reviews, Tokens: []api.Token{
		{Name: "admin", Value: token}, {Name: "ci-other", Value: "other-token", Pipelines: []string{"other"}},
	}}).Register(e)
	send := func(method, path, tok string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		return w
	}

	w := send("GET", "/api/v1/pipelines/hello/review-apps", token)
	var list []pipelines.ReviewApp
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &list) != nil || len(list) != 1 || list[0].PR != 7 || list[0].Commit != "c7" || list[0].URL == "" {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
	if !strings.Contains(w.Body.String(), `"pr":7`) || !strings.Contains(w.Body.String(), `"deployed_at":"2026-11-23T09:00:00Z"`) {
		t.Fatalf("list JSON = %s", w.Body)
	}

	w = send("POST", "/api/v1/pipelines/hello/review-apps/42", token)
	if w.Code != http.StatusAccepted || !strings.Contains(w.Body.String(), `"app":"hello-pr-42"`) || !strings.Contains(w.Body.String(), `"operation":"review/octo-org/hello/42"`) {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	if ev := reviews.events[0]; ev.Action != workflows.PRCreate || ev.By != "admin" || ev.PR.Number != 42 || reviews.starts[0].Stage.TTL != 24*time.Hour {
		t.Fatalf("create event = %+v, start %+v", ev, reviews.starts[0])
	}
	// The operation it answers with is one the operations endpoint knows.
	if w := send("GET", "/api/v1/operations/review/octo-org/hello/42", token); w.Code != http.StatusOK ||
		!strings.Contains(w.Body.String(), `"kind":"review"`) || !strings.Contains(w.Body.String(), `"app":"hello-pr-42"`) {
		t.Fatalf("review operation: %d %s", w.Code, w.Body)
	}
	if w := send("GET", "/api/v1/operations/review/octo-org/hello/42", "other-token"); w.Code != http.StatusForbidden {
		t.Fatalf("review operation with another pipeline's token: %d %s", w.Code, w.Body)
	}
	if w := send("GET", "/api/v1/operations/review/octo-org/plain/1", token); w.Code != http.StatusNotFound {
		t.Fatalf("review operation of a pipeline without review apps: %d %s", w.Code, w.Body)
	}

	// A running review app is told; one only in the ledger gets a
	// workflow that tears it down; one that does not exist is 404.
	if w := send("DELETE", "/api/v1/pipelines/hello/review-apps/42", token); w.Code != http.StatusAccepted || reviews.events[1].Action != workflows.PRDestroy ||
		!strings.Contains(reviews.events[1].Reason, "destroyed by admin") {
		t.Fatalf("destroy running: %d %s %+v", w.Code, w.Body, reviews.events)
	}
	if w := send("DELETE", "/api/v1/pipelines/hello/review-apps/7", token); w.Code != http.StatusAccepted || !reviews.starts[1].Created || reviews.events[2].Action != workflows.PRDestroy {
		t.Fatalf("destroy from the ledger: %d %s", w.Code, w.Body)
	}
	for _, tt := range []struct {
		method, path, tok string
		code              int
		msg               string
	}{
		{"DELETE", "/api/v1/pipelines/hello/review-apps/8", token, 404, "pull request #8 of hello has no review app"},
		{"DELETE", "/api/v1/pipelines/hello/review-apps/99", token, 404, "has no review app"},
		{"POST", "/api/v1/pipelines/hello/review-apps/x", token, 400, `is not a pull request number`},
		{"GET", "/api/v1/pipelines/plain/review-apps", token, 400, "pipeline plain has no review stage"},
		{"GET", "/api/v1/pipelines/nope/review-apps", token, 404, `no pipeline named`},
		{"GET", "/api/v1/pipelines/hello/review-apps", "other-token", 403, "not allowed on pipeline"},
	} {
		if w := send(tt.method, tt.path, tt.tok); w.Code != tt.code || !strings.Contains(w.Body.String(), tt.msg) {
			t.Errorf("%s %s = %d %s; want %d %q", tt.method, tt.path, w.Code, w.Body, tt.code, tt.msg)
		}
	}
}

// prReader answers one pull request as GitHub has it.
type prReader struct{ pr pipelines.PullRequest }

func (r prReader) PullRequest(ctx context.Context, repo string, number int) (pipelines.PullRequest, error) {
	return r.pr, nil
}

// TestCreateReviewAppDeploysWhatWasReviewed: a fork's review app needs the
// commit the caller reviewed; a commit the head has moved on from is
// refused; the one named deploys, with the pull request as GitHub has it.
func TestCreateReviewAppDeploysWhatWasReviewed(t *testing.T) {
	cfg, err := pipelines.ParseConfig("drover.yaml", []byte(`regions: { a: { driver: local } }
pipelines:
  hello:
    repo: octo-org/hello
    stages:
      review: { regions: [a] }
`))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "drover.db"))
	defer st.Close()
	head := strings.Repeat("c", 40)
	reviews := &fakeReviews{running: map[int]bool{}}
	gin.SetMode(gin.TestMode)
	e := gin.New()
	(&api.Server{Ledger: st, Config: cfg, Operations: &fakeOps{}, Reviews: st, ReviewOps: reviews, Tokens: []api.Token{{Name: "admin", Value: token}},
		PullRequests: prReader{pipelines.PullRequest{Number: 43, Head: head, Fork: true, Open: true}}}).Register(e)
	tests := []struct {
		name, body string
		status     int
		contains   string
	}{
		{"a fork without the commit", "", 400, "comes from a fork: name the commit you reviewed"},
		{"a commit the head moved on from", `{"commit": "` + strings.Repeat("b", 40) + `"}`, 409, "has moved on to " + head},
		{"too short to tell", `{"commit": "ccc"}`, 409, "has moved on"},
		{"the reviewed commit", `{"commit": "` + head[:12] + `"}`, 202, `"status":"deploying"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(e, "POST", "/api/v1/pipelines/hello/review-apps/43", "Bearer "+token, tt.body)
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.contains) {
				t.Fatalf("= %d %s; want %d %q", w.Code, w.Body, tt.status, tt.contains)
			}
		})
	}
	if len(reviews.events) != 1 || reviews.events[0].PR.Head != head || !reviews.events[0].PR.Fork {
		t.Fatalf("events = %+v; want one create carrying the pull request as GitHub has it", reviews.events)
	}
}
