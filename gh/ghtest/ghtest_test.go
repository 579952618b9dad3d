package ghtest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/drover/drover/gh/ghtest"
)

func client(t *testing.T, s *ghtest.Server) *github.Client {
	t.Helper()
	c, err := github.NewClient(nil).WithAuthToken(ghtest.Token).WithEnterpriseURLs(s.URL, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCombinedStatusIsLatestPerContext checks the stand-in against
// GitHub's documented combined status: the newest status per context,
// failure over pending over success, pending when there are none, paged.
func TestCombinedStatusIsLatestPerContext(t *testing.T) {
	tests := []struct {
		name   string
		posts  [][2]string // context, state, in order
		state  string
		latest map[string]string
	}{
		{"none", nil, "pending", map[string]string{}},
		{"pending then success", [][2]string{{"ci", "pending"}, {"ci", "success"}}, "success", map[string]string{"ci": "success"}},
		{"one pending context", [][2]string{{"ci", "success"}, {"drover/staging", "pending"}}, "pending", map[string]string{"ci": "success", "drover/staging": "pending"}},
		{"error is failure", [][2]string{{"a", "pending"}, {"b", "error"}}, "failure", map[string]string{"a": "pending", "b": "error"}},
		{"a fixed failure", [][2]string{{"a", "failure"}, {"a", "success"}, {"b", "success"}}, "success", map[string]string{"a": "success", "b": "success"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ghtest.New(t)
			s.AddRepo("o/r", "file:///r")
			c := client(t, s)
			ctx := context.Background()
			for _, p := range tt.posts {
				if _, _, err := c.Repositories.CreateStatus(ctx, "o", "r", "abc", &github.RepoStatus{Context: github.String(p[0]), State: github.String(p[1])}); err != nil {
					t.Fatal(err)
				}
			}
			got := map[string]string{}
			opts := &github.ListOptions{PerPage: 1}
			for {
				cs, resp, err := c.Repositories.GetCombinedStatus(ctx, "o", "r", "abc", opts)
				if err != nil {
					t.Fatal(err)
				}
				if cs.GetState() != tt.state || cs.GetTotalCount() != len(tt.latest) {
					t.Fatalf("state %s, total %d; want %s, %d", cs.GetState(), cs.GetTotalCount(), tt.state, len(tt.latest))
				}
				for _, st := range cs.Statuses {
					got[st.GetContext()] = st.GetState()
				}
				if resp.NextPage == 0 {
					break
				}
				opts.Page = resp.NextPage
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.latest) {
				t.Fatalf("latest = %v, want %v", got, tt.latest)
			}
			all, _, err := c.Repositories.ListStatuses(ctx, "o", "r", "abc", nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != len(tt.posts) || (len(all) > 0 && all[0].GetState() != tt.posts[len(tt.posts)-1][1]) {
				t.Fatalf("statuses list must hold every status, newest first: %d", len(all))
			}
		})
	}
}

// TestDeploymentsFilterAndPage: deployments are listed newest first and
// filtered by sha and environment, and comments page by ascending ID.
func TestDeploymentsFilterAndPage(t *testing.T) {
	s := ghtest.New(t)
	s.AddRepo("o/r", "file:///r")
	c := client(t, s)
	ctx := context.Background()
	var ids []int64
	for _, d := range [][2]string{{"a", "staging"}, {"a", "production"}, {"b", "staging"}, {"a", "staging"}} {
		dep, _, err := c.Repositories.CreateDeployment(ctx, "o", "r", &github.DeploymentRequest{Ref: github.String(d[0]), Environment: github.String(d[1])})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, dep.GetID())
	}
	list, _, err := c.Repositories.ListDeployments(ctx, "o", "r", &github.DeploymentsListOptions{SHA: "a", Environment: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].GetID() != ids[3] || list[1].GetID() != ids[0] {
		t.Fatalf("deployments of a to staging = %v; want %d then %d", list, ids[3], ids[0])
	}
	for i := range 5 {
		if _, _, err := c.Issues.CreateComment(ctx, "o", "r", 7, &github.IssueComment{Body: github.String(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	var bodies string
	opts := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 2}}
	for {
		page, resp, err := c.Issues.ListComments(ctx, "o", "r", 7, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, cm := range page {
			bodies += cm.GetBody()
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	if bodies != "01234" {
		t.Fatalf("comments over pages = %q", bodies)
	}
}

// TestWriteLatencyDropsAbandonedWrites: with write latency, a write whose
// client gives up before it is applied leaves no status; one that waits
// is applied.
func TestWriteLatencyDropsAbandonedWrites(t *testing.T) {
	s := ghtest.New(t)
	s.AddRepo("o/r", "file:///r")
	s.SetWriteLatency(300 * time.Millisecond)
	c := client(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := c.Repositories.CreateStatus(ctx, "o", "r", "abc", &github.RepoStatus{Context: github.String("a"), State: github.String("pending")}); err == nil {
		t.Fatal("a write abandoned after 50 ms was answered")
	}
	time.Sleep(400 * time.Millisecond)
	if got := s.Statuses("o/r", "abc"); len(got) != 0 {
		t.Fatalf("statuses after an abandoned write = %v, want none", got)
	}
	t0 := time.Now()
	if _, _, err := c.Repositories.CreateStatus(context.Background(), "o", "r", "abc", &github.RepoStatus{Context: github.String("a"), State: github.String("success")}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took < 300*time.Millisecond {
		t.Fatalf("a write took %v, want the 300 ms latency", took)
	}
	if got := s.Statuses("o/r", "abc"); len(got) != 1 || got[0] != "a:success" {
		t.Fatalf("statuses = %v, want [a:success]", got)
	}
}

// TestCompareAsGitHubDoes checks the stand-in against GitHub's documented
// "Compare two commits": commits head has that base lacks, oldest first,
// status and counts, pages of per_page, 404 for an unknown commit.
func TestCompareAsGitHubDoes(t *testing.T) {
	s := ghtest.New(t)
	s.AddRepo("o/r", "file:///r")
	// a <- b <- c <- d, and a <- x (a branch off a)
	s.AddCommit("o/r", ghtest.Commit{SHA: "a"}, ghtest.Commit{SHA: "b", Parent: "a", Message: "b\n\nbody", Author: "ann"},
		ghtest.Commit{SHA: "c", Parent: "b", Author: "bob"}, ghtest.Commit{SHA: "d", Parent: "c"}, ghtest.Commit{SHA: "x", Parent: "a"})
	c := client(t, s)
	ctx := context.Background()
	for _, tt := range []struct {
		base, head, want string
	}{
		{"a", "d", "ahead 3/0 [b c d]"},
		{"d", "b", "behind 0/2 []"},
		{"d", "d", "identical 0/0 []"},
		{"x", "c", "diverged 2/1 [b c]"},
	} {
		cmp, _, err := c.Repositories.CompareCommits(ctx, "o", "r", tt.base, tt.head, nil)
		if err != nil {
			t.Fatal(err)
		}
		var shas []string
		for _, rc := range cmp.Commits {
			shas = append(shas, rc.GetSHA())
		}
		if got := fmt.Sprintf("%s %d/%d %v", cmp.GetStatus(), cmp.GetAheadBy(), cmp.GetBehindBy(), shas); got != tt.want || cmp.GetTotalCommits() != cmp.GetAheadBy() {
			t.Errorf("compare %s...%s = %s (total %d), want %s", tt.base, tt.head, got, cmp.GetTotalCommits(), tt.want)
		}
	}
	cmp, _, err := c.Repositories.CompareCommits(ctx, "o", "r", "a", "d", &github.ListOptions{PerPage: 2, Page: 2})
	if err != nil || len(cmp.Commits) != 1 || cmp.Commits[0].GetSHA() != "d" || cmp.GetTotalCommits() != 3 {
		t.Fatalf("page 2 of 2: %+v %v", cmp, err)
	}
	if _, _, err := c.Repositories.CompareCommits(ctx, "o", "r", "a", "nope", nil); err == nil {
		t.Fatal("an unknown commit must be 404")
	}
}
