package gh_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
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
