// Package gh is drover's side of GitHub, over go-github: whether a
// commit's CI passed, and (to come) deployments, statuses and PR comments.
// The name keeps it apart from go-github's own package.
package gh

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/drover/drover/pipelines"
)

// okConclusions count as passing, as GitHub counts them.
var okConclusions = map[string]bool{"success": true, "neutral": true, "skipped": true}

// Evaluate combines a commit's check runs (all suites) and its combined
// status. Neutral and skipped runs pass. A combined status with no
// statuses is none, not pending: repositories that use only Actions have
// check runs and no statuses, and GitHub calls that combined state
// "pending". Every name in required must be among the runs or statuses and
// pass. drover's own statuses (drover/<environment>) are not CI and are
// left out, whatever their state. With nothing at all, the verdict is success only when nothing is
// required; callers wait a grace period before trusting that.
func Evaluate(runs []*github.CheckRun, combined *github.CombinedStatus, required []string) pipelines.CIVerdict {
	v := pipelines.CIVerdict{State: pipelines.CISuccess}
	seen := map[string]bool{}
	fail := func(name, url string) {
		if v.State != pipelines.CIFailure {
			v.State, v.Failing, v.FailingURL = pipelines.CIFailure, name, url
		}
	}
	wait := func(name string) {
		v.Waiting = append(v.Waiting, name)
		if v.State == pipelines.CISuccess {
			v.State = pipelines.CIPending
		}
	}
	sorted := append([]*github.CheckRun(nil), runs...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].GetName() < sorted[j].GetName() })
	for _, r := range sorted {
		name := r.GetName()
		seen[name] = true
		switch {
		case r.GetStatus() != "completed":
			wait(name)
		case okConclusions[r.GetConclusion()]:
		default:
			fail(fmt.Sprintf("%s (%s)", name, r.GetConclusion()), r.GetHTMLURL())
		}
	}
	statuses := 0
	if combined != nil {
		for _, s := range combined.Statuses {
			ctx := s.GetContext()
			// drover's own statuses say how its deploy goes, and the
			// deploy posts one (pending) before it waits: counting it
			// would make every deploy wait for itself.
			if pipelines.IsOwnStatusContext(ctx) {
				continue
			}
			statuses++
			seen[ctx] = true
			switch s.GetState() {
			case "success":
			case "pending":
				wait(ctx)
			default:
				fail(fmt.Sprintf("%s (%s)", ctx, s.GetState()), s.GetTargetURL())
			}
		}
	}
	for _, name := range required {
		if !seen[name] {
			wait(name + " (required, not reported yet)")
		}
	}
	v.None = len(runs) == 0 && statuses == 0
	return v
}

// RateLimited is GitHub saying to wait: a 403 or 429 rate limit. Callers
// retry after Wait, which comes from GitHub's reset or Retry-After headers.
type RateLimited struct {
	Wait time.Duration
	Err  error
}

func (e *RateLimited) Error() string {
	return fmt.Sprintf("GitHub rate limit: retry in %s: %v", e.Wait.Round(time.Second), e.Err)
}

func (e *RateLimited) Unwrap() error { return e.Err }

// rateLimited turns go-github's rate-limit errors into *RateLimited.
func rateLimited(err error, now time.Time) error {
	var rl *github.RateLimitError
	var abuse *github.AbuseRateLimitError
	switch {
	case errors.As(err, &rl):
		return &RateLimited{Wait: max(rl.Rate.Reset.Time.Sub(now), time.Second), Err: err}
	case errors.As(err, &abuse):
		return &RateLimited{Wait: max(abuse.GetRetryAfter(), time.Second), Err: err}
	}
	return err
}

// Client is drover's GitHub client: it reads CI state and reports
// deployments, acting on each repository as Auth says.
type Client struct {
	Auth Auth
}

// api returns the go-github client for repo and repo's owner and name.
func (c *Client) api(ctx context.Context, repo string) (*github.Client, string, string, error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok {
		return nil, "", "", fmt.Errorf("repository %q: want owner/name", repo)
	}
	gc, err := c.Auth.Client(ctx, repo)
	if err != nil {
		return nil, "", "", err
	}
	return gc, owner, name, nil
}

// CIState reads every check run and the combined status of repo
// ("owner/name") at sha, following pagination, and evaluates them.
func (c *Client) CIState(ctx context.Context, repo, sha string, required []string) (pipelines.CIVerdict, error) {
	gc, owner, name, err := c.api(ctx, repo)
	if err != nil {
		return pipelines.CIVerdict{}, err
	}
	var runs []*github.CheckRun
	opts := &github.ListCheckRunsOptions{Filter: github.String("latest"), ListOptions: github.ListOptions{PerPage: 100}}
	for {
		res, resp, err := gc.Checks.ListCheckRunsForRef(ctx, owner, name, sha, opts)
		if err != nil {
			return pipelines.CIVerdict{}, fmt.Errorf("check runs of %s at %s: %w", repo, sha, rateLimited(err, time.Now()))
		}
		runs = append(runs, res.CheckRuns...)
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	combined := &github.CombinedStatus{}
	sopts := &github.ListOptions{PerPage: 100}
	for {
		cs, resp, err := gc.Repositories.GetCombinedStatus(ctx, owner, name, sha, sopts)
		if err != nil {
			return pipelines.CIVerdict{}, fmt.Errorf("combined status of %s at %s: %w", repo, sha, rateLimited(err, time.Now()))
		}
		combined.Statuses = append(combined.Statuses, cs.Statuses...)
		if resp.NextPage == 0 {
			break
		}
		sopts.Page = resp.NextPage
	}
	return Evaluate(runs, combined, required), nil
}
