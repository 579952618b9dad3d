package gh_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/drover/drover/gh"
	"github.com/drover/drover/pipelines"
)

func run(name, status, conclusion string) *github.CheckRun {
	r := &github.CheckRun{Name: github.String(name), Status: github.String(status), HTMLURL: github.String("https://github.com/o/r/runs/" + name)}
	if conclusion != "" {
		r.Conclusion = github.String(conclusion)
	}
	return r
}

func statuses(states ...string) *github.CombinedStatus {
	cs := &github.CombinedStatus{State: github.String("pending")}
	for i, s := range states {
		cs.Statuses = append(cs.Statuses, &github.RepoStatus{Context: github.String(fmt.Sprintf("ci/%d", i)), State: github.String(s), TargetURL: github.String("https://ci.example.com/" + s)})
	}
	return cs
}

// own is a combined status holding only a status drover posted itself.
func own(context, state string) *github.CombinedStatus {
	return &github.CombinedStatus{State: github.String(state), Statuses: []*github.RepoStatus{{Context: github.String(context), State: github.String(state)}}}
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name     string
		runs     []*github.CheckRun
		combined *github.CombinedStatus
		required []string
		state    string
		failing  string
		none     bool
	}{
		{"green", []*github.CheckRun{run("test", "completed", "success"), run("lint", "completed", "neutral"), run("docs", "completed", "skipped")}, statuses("success"), nil, pipelines.CISuccess, "", false},
		{"only Actions: empty combined status is none, not pending", []*github.CheckRun{run("test", "completed", "success")}, statuses(), nil, pipelines.CISuccess, "", false},
		{"red check", []*github.CheckRun{run("test", "completed", "failure"), run("lint", "in_progress", "")}, statuses(), nil, pipelines.CIFailure, "test (failure)", false},
		{"cancelled counts as failed", []*github.CheckRun{run("test", "completed", "cancelled")}, nil, nil, pipelines.CIFailure, "test (cancelled)", false},
		{"red status", nil, statuses("success", "failure"), nil, pipelines.CIFailure, "ci/1 (failure)", false},
		{"still running", []*github.CheckRun{run("test", "queued", "")}, statuses("success"), nil, pipelines.CIPending, "", false},
		{"pending status", nil, statuses("pending"), nil, pipelines.CIPending, "", false},
		{"required check missing", []*github.CheckRun{run("lint", "completed", "success")}, nil, []string{"test"}, pipelines.CIPending, "", false},
		{"required check present", []*github.CheckRun{run("test", "completed", "success")}, nil, []string{"test"}, pipelines.CISuccess, "", false},
		{"nothing at all", nil, statuses(), nil, pipelines.CISuccess, "", true},
		{"drover's own pending status is not CI", []*github.CheckRun{run("test", "completed", "success")}, own("drover/staging", "pending"), nil, pipelines.CISuccess, "", false},
		{"drover's own failed status is not CI", []*github.CheckRun{run("test", "completed", "success")}, own("drover/hello-pr-42", "failure"), nil, pipelines.CISuccess, "", false},
		{"only drover's own status: nothing at all", nil, own("drover/staging", "pending"), nil, pipelines.CISuccess, "", true},
		{"nothing at all but a required check", nil, nil, []string{"test"}, pipelines.CIPending, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := gh.Evaluate(tt.runs, tt.combined, tt.required)
			if v.State != tt.state || v.Failing != tt.failing || v.None != tt.none {
				t.Fatalf("= %+v; want state %s, failing %q, none %v", v, tt.state, tt.failing, tt.none)
			}
			if v.State == pipelines.CIFailure && v.FailingURL == "" {
				t.Fatal("a failure must say where to look")
			}
		})
	}
}

func TestRateLimitIsRetryableWithGitHubsDelay(t *testing.T) {
	const sha = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls == 1 {
			w.Header().Set("X-RateLimit-Limit", "5000")
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.Header().Set("X-RateLimit-Reset", fmt.Sprint(time.Now().Add(42*time.Second).Unix()))
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"message":"API rate limit exceeded for user ID 1.","documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}`)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/status") {
			fmt.Fprint(w, `{"state":"success","statuses":[{"context":"ci","state":"success"}],"total_count":1}`)
			return
		}
		fmt.Fprint(w, `{"total_count":0,"check_runs":[]}`)
	}))
	defer srv.Close()
	client, _ := github.NewClient(nil).WithEnterpriseURLs(srv.URL+"/api/v3/", srv.URL+"/api/v3/")
	c := &gh.Client{Auth: fixedClient{client}}
	_, err := c.CIState(context.Background(), "octo-org/hello", sha, nil)
	var rl *gh.RateLimited
	if !errors.As(err, &rl) || rl.Wait < 30*time.Second || rl.Wait > 43*time.Second {
		t.Fatalf("err = %v; want RateLimited with GitHub's reset (~42s)", err)
	}
	// go-github refuses calls before the reset it saw; a fresh client (as
	// a retried activity after the wait would see) gets through.
	client2, _ := github.NewClient(nil).WithEnterpriseURLs(srv.URL+"/api/v3/", srv.URL+"/api/v3/")
	v, err := (&gh.Client{Auth: fixedClient{client2}}).CIState(context.Background(), "octo-org/hello", sha, nil)
	if err != nil || v.State != pipelines.CISuccess {
		t.Fatalf("after the wait = %+v, %v", v, err)
	}
}

// TestCIStateAgainstGitHubShapedAPI serves GitHub's documented answers for
// check runs (two pages) and the combined status, under an Enterprise base URL.
func TestCIStateAgainstGitHubShapedAPI(t *testing.T) {
	const sha = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v3/repos/octo-org/hello/commits/"+sha+"/check-runs", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("page") == "2" {
			fmt.Fprint(w, `{"total_count":2,"check_runs":[{"id":2,"name":"lint","status":"completed","conclusion":"failure","html_url":"https://github.example.com/octo-org/hello/runs/2"}]}`)
			return
		}
		next := *r.URL
		q := next.Query()
		q.Set("page", "2")
		next.RawQuery = q.Encode()
		w.Header().Set("Link", fmt.Sprintf(`<http://%s%s>; rel="next"`, r.Host, next.RequestURI()))
		fmt.Fprint(w, `{"total_count":2,"check_runs":[{"id":1,"name":"test","status":"completed","conclusion":"success","html_url":"https://github.example.com/octo-org/hello/runs/1"}]}`)
	})
	mux.HandleFunc("/api/v3/repos/octo-org/hello/commits/"+sha+"/status", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"state":"pending","statuses":[],"sha":"`+sha+`","total_count":0}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	base, _ := url.Parse(srv.URL + "/api/v3/")
	client, err := github.NewClient(nil).WithEnterpriseURLs(base.String(), base.String())
	if err != nil {
		t.Fatal(err)
	}
	v, err := (&gh.Client{Auth: fixedClient{client}}).CIState(context.Background(), "octo-org/hello", sha, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.State != pipelines.CIFailure || v.Failing != "lint (failure)" || !strings.HasSuffix(v.FailingURL, "/runs/2") {
		t.Fatalf("verdict = %+v; want lint's failure from the second page", v)
	}
	if _, err := (&gh.Client{Auth: fixedClient{client}}).CIState(context.Background(), "nope", sha, nil); err == nil {
		t.Fatal("a repository without an owner must be refused")
	}
}

// fixedClient is an Auth that always answers with one client.
type fixedClient struct{ c *github.Client }

func (f fixedClient) Client(context.Context, string) (*github.Client, error) { return f.c, nil }
func (f fixedClient) Token(context.Context, string) (string, error)          { return "", nil }
