package gh

import (
	"context"
	"fmt"
	"time"

	"github.com/drover/drover/pipelines"
	"github.com/google/go-github/v60/github"
)

// Deployment states drover reports, GitHub's words.
const (
	StateQueued     = "queued"
	StateInProgress = "in_progress"
	StateSuccess    = "success"
	StateFailure    = "failure"
	StateError      = "error"
	// StateInactive ends a deployment that never ran: a newer push
	// replaced it while it waited for CI.
	StateInactive = "inactive"
)

// StartDeployment finds or creates the GitHub Deployment of sha to
// environment, so a retried call reuses the first one. drover's releases
// have already passed the checks it waits for, so GitHub is told to check
// none (required_contexts: []) and not to merge (auto_merge: false).
func (c *Client) StartDeployment(ctx context.Context, repo, sha, environment, description string, release int) (int64, error) {
	gc, owner, name, err := c.api(ctx, repo)
	if err != nil {
		return 0, err
	}
	existing, _, err := gc.Repositories.ListDeployments(ctx, owner, name, &github.DeploymentsListOptions{SHA: sha, Environment: environment})
	if err != nil {
		return 0, fmt.Errorf("list deployments of %s: %w", repo, rateLimited(err, time.Now()))
	}
	if len(existing) > 0 {
		return existing[0].GetID(), nil
	}
	d, _, err := gc.Repositories.CreateDeployment(ctx, owner, name, &github.DeploymentRequest{
		Ref: github.String(sha), Environment: github.String(environment), Description: github.String(description),
		AutoMerge: github.Bool(false), RequiredContexts: &[]string{},
		Payload: map[string]any{"drover_release": release},
	})
	if err != nil {
		return 0, fmt.Errorf("create deployment of %s to %s: %w", sha, environment, rateLimited(err, time.Now()))
	}
	return d.GetID(), nil
}

// DeploymentStatus adds a status to a GitHub Deployment.
func (c *Client) DeploymentStatus(ctx context.Context, repo string, id int64, state, description, environmentURL, logURL string) error {
	gc, owner, name, err := c.api(ctx, repo)
	if err != nil {
		return err
	}
	req := &github.DeploymentStatusRequest{State: github.String(state), Description: github.String(truncate(description, 140))}
	if environmentURL != "" {
		req.EnvironmentURL = github.String(environmentURL)
	}
	if logURL != "" {
		req.LogURL = github.String(logURL)
	}
	if _, _, err := gc.Repositories.CreateDeploymentStatus(ctx, owner, name, id, req); err != nil {
		return fmt.Errorf("deployment %d status %s: %w", id, state, rateLimited(err, time.Now()))
	}
	return nil
}

// CommitStatus sets the commit status context (e.g. drover/staging).
func (c *Client) CommitStatus(ctx context.Context, repo, sha, context, state, description, targetURL string) error {
	gc, owner, name, err := c.api(ctx, repo)
	if err != nil {
		return err
	}
	st := &github.RepoStatus{Context: github.String(context), State: github.String(state), Description: github.String(truncate(description, 140))}
	if targetURL != "" {
		st.TargetURL = github.String(targetURL)
	}
	if _, _, err := gc.Repositories.CreateStatus(ctx, owner, name, sha, st); err != nil {
		return fmt.Errorf("commit status %s of %s: %w", context, sha, rateLimited(err, time.Now()))
	}
	return nil
}

// truncate keeps GitHub's 140-character description limit.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// BranchHead reads branch's newest commit in repo, and the repository's
// clone URL, which a push webhook would have carried.
func (c *Client) BranchHead(ctx context.Context, repo, branch string) (pipelines.BranchHead, error) {
	gc, owner, name, err := c.api(ctx, repo)
	if err != nil {
		return pipelines.BranchHead{}, err
	}
	b, _, err := gc.Repositories.GetBranch(ctx, owner, name, branch, 1)
	if err != nil {
		return pipelines.BranchHead{}, fmt.Errorf("branch %s of %s: %w", branch, repo, rateLimited(err, time.Now()))
	}
	r, _, err := gc.Repositories.Get(ctx, owner, name)
	if err != nil {
		return pipelines.BranchHead{}, fmt.Errorf("repository %s: %w", repo, rateLimited(err, time.Now()))
	}
	return pipelines.BranchHead{Commit: b.GetCommit().GetSHA(), Message: b.GetCommit().GetCommit().GetMessage(), CloneURL: r.GetCloneURL()}, nil
}
