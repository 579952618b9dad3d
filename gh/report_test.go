package gh_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-github/v60/github"

	"github.com/drover/drover/gh"
)

// TestReportingSpeaksGitHubsAPI checks the requests drover makes for a
// deploy's GitHub Deployment, its statuses, and the commit status.
func TestReportingSpeaksGitHubsAPI(t *testing.T) {
	var mu sync.Mutex
	var got []string
	existing := "[]"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		switch {
		case r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/deployments"):
			if r.URL.Query().Get("sha") != "abc" || r.URL.Query().Get("environment") != "staging" {
				t.Errorf("list deployments query = %s", r.URL.RawQuery)
			}
			fmt.Fprint(w, existing)
		case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/deployments"):
			got = append(got, fmt.Sprintf("create ref=%v env=%v auto_merge=%v required_contexts=%v release=%v", body["ref"], body["environment"], body["auto_merge"], body["required_contexts"], body["payload"].(map[string]any)["drover_release"]))
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{"id":42,"sha":"abc","environment":"staging"}`)
		case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/deployments/42/statuses"):
			got = append(got, fmt.Sprintf("status %v %v %v", body["state"], body["environment_url"], body["log_url"]))
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{"id":1,"state":"success"}`)
		case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/statuses/abc"):
			got = append(got, fmt.Sprintf("commit %v %v", body["context"], body["state"]))
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{"id":1}`)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		}
	}))
	defer srv.Close()
	client, _ := github.NewClient(nil).WithEnterpriseURLs(srv.URL+"/api/v3/", srv.URL+"/api/v3/")
	c := &gh.Client{Auth: fixedClient{client}}
	ctx := context.Background()
	id, err := c.StartDeployment(ctx, "octo-org/hello", "abc", "staging", "push", 3)
	if err != nil || id != 42 {
		t.Fatalf("StartDeployment = %d, %v", id, err)
	}
	if err := c.DeploymentStatus(ctx, "octo-org/hello", id, gh.StateSuccess, "v3 is running", "http://app", "http://drover/api/v1/operations/x"); err != nil {
		t.Fatal(err)
	}
	if err := c.CommitStatus(ctx, "octo-org/hello", "abc", "drover/staging", "success", "v3", ""); err != nil {
		t.Fatal(err)
	}
	want := "create ref=abc env=staging auto_merge=false required_contexts=[] release=3|status success http://app http://drover/api/v1/operations/x|commit drover/staging success"
	if strings.Join(got, "|") != want {
		t.Fatalf("requests:\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
	// A retried start finds the deployment it made instead of a second one.
	existing = `[{"id":42,"sha":"abc","environment":"staging"}]`
	got = nil
	if id, err := c.StartDeployment(ctx, "octo-org/hello", "abc", "staging", "push", 3); err != nil || id != 42 || len(got) != 0 {
		t.Fatalf("retried StartDeployment = %d, %v, requests %v", id, err, got)
	}
}

// TestUpsertCommentEditsItsOwnComment: drover keeps one comment per review
// app, found by its marker among others' comments (on the second page),
// edited on every deploy, and made again if someone deleted it.
func TestUpsertCommentEditsItsOwnComment(t *testing.T) {
	var mu sync.Mutex
	comments := map[int64]string{1: "LGTM", 2: "nit: typo"}
	next := int64(10)
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, r.Method)
		var body map[string]string
		json.NewDecoder(r.Body).Decode(&body)
		switch {
		case r.Method == "GET" && r.URL.Path == "/api/v3/repos/octo-org/hello/issues/42/comments":
			// One comment per page, to exercise pagination.
			page := 1
			fmt.Sscan(r.URL.Query().Get("page"), &page)
			var ids []int64
			for id := range comments {
				ids = append(ids, id)
			}
			sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
			if page < len(ids) {
				w.Header().Set("Link", fmt.Sprintf(`<http://%s%s?page=%d>; rel="next"`, r.Host, r.URL.Path, page+1))
			}
			if page <= len(ids) {
				fmt.Fprintf(w, `[{"id":%d,"body":%q}]`, ids[page-1], comments[ids[page-1]])
				return
			}
			fmt.Fprint(w, `[]`)
		case r.Method == "POST" && r.URL.Path == "/api/v3/repos/octo-org/hello/issues/42/comments":
			next++
			comments[next] = body["body"]
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"id":%d}`, next)
		case r.Method == "PATCH" && strings.HasPrefix(r.URL.Path, "/api/v3/repos/octo-org/hello/issues/comments/"):
			var id int64
			fmt.Sscan(strings.TrimPrefix(r.URL.Path, "/api/v3/repos/octo-org/hello/issues/comments/"), &id)
			if _, ok := comments[id]; !ok {
				w.WriteHeader(http.StatusNotFound)
				fmt.Fprint(w, `{"message":"Not Found"}`)
				return
			}
			comments[id] = body["body"]
			fmt.Fprintf(w, `{"id":%d}`, id)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		}
	}))
	defer srv.Close()
	auth, _ := gh.NewTokenAuth(srv.URL+"/api/v3/", "t")
	c := &gh.Client{Auth: auth}
	ctx := context.Background()
	id, err := c.UpsertComment(ctx, "octo-org/hello", 42, "hello-pr-42", "deployed v1", 0)
	if err != nil || id != 11 {
		t.Fatalf("first comment = %d, %v", id, err)
	}
	// Found by its marker (after the others, on the third page) and edited.
	id, err = c.UpsertComment(ctx, "octo-org/hello", 42, "hello-pr-42", "deployed v2", 0)
	if err != nil || id != 11 || len(comments) != 3 || !strings.HasSuffix(comments[11], "\ndeployed v2") || !strings.HasPrefix(comments[11], gh.CommentMarker("hello-pr-42")) {
		t.Fatalf("second = %d, %v; comments %v", id, err, comments)
	}
	// Deleted by someone: made again.
	delete(comments, 11)
	id, err = c.UpsertComment(ctx, "octo-org/hello", 42, "hello-pr-42", "deployed v3", 11)
	if err != nil || id != 12 || comments[12] == "" {
		t.Fatalf("after deletion = %d, %v", id, err)
	}
}

func TestFromPullRequest(t *testing.T) {
	repo := func(name string) *github.Repository {
		return &github.Repository{FullName: github.String(name), CloneURL: github.String("https://github.com/" + name + ".git")}
	}
	pr := func(head *github.Repository, draft bool, state string) *github.PullRequest {
		return &github.PullRequest{Number: github.Int(42), Title: github.String("Add login"), Draft: github.Bool(draft), State: github.String(state),
			Head: &github.PullRequestBranch{SHA: github.String("abc"), Ref: github.String("login"), Repo: head},
			Base: &github.PullRequestBranch{Repo: repo("octo-org/hello")}}
	}
	tests := []struct {
		name       string
		pr         *github.PullRequest
		fork, open bool
		draft      bool
	}{
		{"same repository", pr(repo("octo-org/hello"), false, "open"), false, true, false},
		{"names compare case-insensitively", pr(repo("Octo-Org/Hello"), false, "open"), false, true, false},
		{"fork", pr(repo("mallory/hello"), false, "open"), true, true, false},
		{"deleted fork", pr(nil, false, "open"), true, true, false},
		{"draft", pr(repo("octo-org/hello"), true, "open"), false, true, true},
		{"closed", pr(repo("octo-org/hello"), false, "closed"), false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := gh.FromPullRequest(tt.pr)
			if got.Fork != tt.fork || got.Open != tt.open || got.Draft != tt.draft || got.Head != "abc" || got.Branch != "login" || got.Number != 42 {
				t.Fatalf("= %+v", got)
			}
		})
	}
}

func TestOpenPullRequestsReadsEveryPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v3/repos/octo-org/hello/pulls" || r.URL.Query().Get("state") != "open" {
			t.Errorf("unexpected %s", r.URL)
		}
		pr := `{"number":%d,"state":"open","draft":%v,"head":{"sha":"s%d","ref":"b","repo":{"full_name":%q,"clone_url":"https://x"}},"base":{"repo":{"full_name":"octo-org/hello"}}}`
		if r.URL.Query().Get("page") == "2" {
			fmt.Fprintf(w, "["+pr+"]", 3, true, 3, "octo-org/hello")
			return
		}
		w.Header().Set("Link", fmt.Sprintf(`<http://%s%s?state=open&page=2>; rel="next"`, r.Host, r.URL.Path))
		fmt.Fprintf(w, "["+pr+","+pr+"]", 1, false, 1, "octo-org/hello", 2, false, 2, "mallory/hello")
	}))
	defer srv.Close()
	auth, _ := gh.NewTokenAuth(srv.URL+"/api/v3/", "t")
	prs, err := (&gh.Client{Auth: auth}).OpenPullRequests(context.Background(), "octo-org/hello")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range prs {
		got = append(got, fmt.Sprintf("#%d %s fork=%v draft=%v open=%v", p.Number, p.Head, p.Fork, p.Draft, p.Open))
	}
	if want := "#1 s1 fork=false draft=false open=true|#2 s2 fork=true draft=false open=true|#3 s3 fork=false draft=true open=true"; strings.Join(got, "|") != want {
		t.Fatalf("= %s", strings.Join(got, "|"))
	}
}
