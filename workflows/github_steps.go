package workflows

import (
	"context"
	"log/slog"

	"go.temporal.io/sdk/activity"

	"github.com/drover/drover/pipelines"
)

// GitHubActivities are the steps that talk to GitHub's API: CI verdicts,
// deployments and statuses, branch heads, pull requests and their
// comments. They are a group of their own because they depend on GitHub
// credentials and on nothing else of drover's: they run on drover's own
// task queue, never on a region's worker. Workflows schedule them whatever
// the config (and saved histories hold them), so without credentials the
// group is still registered, with no client: reporting and commenting do
// nothing, and a step that needs an answer says which setting is missing.
type GitHubActivities struct {
	// CI reads commits' CI state.
	CI CIReader
	// Reporter tells GitHub about deploys.
	Reporter Reporter
	// Branches reads branch heads for missed-push reconciliation.
	Branches BranchReader
	// Comments keeps drover's comment on pull requests.
	Comments Commenter
	// PullRequests reads pull requests.
	PullRequests PullRequestReader
	// Waits, when set, keeps which deploys wait for which commit's CI, so
	// a CI webhook is signalled only to them.
	Waits CIWaits
	// PublicURL is drover's own base URL, for links in reports.
	PublicURL func() string
	Logger    *slog.Logger
}

// gha is the nil receiver workflows name the GitHub steps through.
var gha *GitHubActivities

func (a *GitHubActivities) logger() *slog.Logger {
	if a.Logger == nil {
		return slog.Default()
	}
	return a.Logger
}

// CheckCI reads the commit's CI verdict from GitHub. Without a GitHub
// client it is an error: a stage waits for CI only when one is configured.
func (a *GitHubActivities) CheckCI(ctx context.Context, in CheckCIInput) (pipelines.CIVerdict, error) {
	if a.CI == nil {
		return pipelines.CIVerdict{}, refuse("wait_for_ci is set but drover has no GitHub token (github.token_env)")
	}
	// The wait is recorded before GitHub is read: CI that changes after
	// the read sends a webhook, which then finds this deploy waiting.
	id := activity.GetInfo(ctx).WorkflowExecution.ID
	if a.Waits != nil {
		if err := a.Waits.WaitingForCI(ctx, id, in.Repo, in.Commit); err != nil {
			return pipelines.CIVerdict{}, err
		}
	}
	v, err := a.CI.CIState(ctx, in.Repo, in.Commit, in.Required)
	if err != nil {
		return v, retryAfterRateLimit(err)
	}
	if a.Waits != nil && (v.State == pipelines.CIFailure || v.State == pipelines.CISuccess && !v.None) {
		// The deploy stops waiting on this verdict.
		if err := a.Waits.CIWaitOver(ctx, id); err != nil {
			a.logger().Warn("forget wait for CI", "workflow", id, "error", err)
		}
	}
	return v, nil
}

// CIWaits keeps the deploys waiting for a commit's CI.
type CIWaits interface {
	WaitingForCI(ctx context.Context, workflow, repo, commit string) error
	CIWaiters(ctx context.Context, repo, commit string) ([]string, error)
	CIWaitOver(ctx context.Context, workflow string) error
}

// BranchHead reads the branch's head from GitHub.
func (a *GitHubActivities) BranchHead(ctx context.Context, in BranchHeadInput) (pipelines.BranchHead, error) {
	if a.Branches == nil {
		return pipelines.BranchHead{}, refuse("missed-push reconciliation needs GitHub credentials (github.token_env or github.app_id)")
	}
	h, err := a.Branches.BranchHead(ctx, in.Repo, in.Branch)
	return h, retryAfterRateLimit(err)
}

// Report sets the GitHub Deployment's status and the drover/<environment>
// commit status, creating the deployment first when needed. Without a
// Reporter (no GitHub token) it does nothing.
func (a *GitHubActivities) Report(ctx context.Context, in ReportInput) (int64, error) {
	id, err := a.report(ctx, in)
	return id, retryAfterRateLimit(err)
}

func (a *GitHubActivities) report(ctx context.Context, in ReportInput) (int64, error) {
	if a.Reporter == nil {
		return 0, nil
	}
	logURL := ""
	if a.PublicURL != nil && a.PublicURL() != "" {
		logURL = a.PublicURL() + "/api/v1/operations/" + in.Operation
	}
	id := in.Deployment
	if id == 0 {
		var err error
		if id, err = a.Reporter.StartDeployment(ctx, in.Repo, in.Commit, in.Environment, in.Description, in.Release); err != nil {
			return 0, err
		}
	}
	if err := a.Reporter.DeploymentStatus(ctx, in.Repo, id, in.State, in.Description, in.EnvironmentURL, logURL); err != nil {
		return id, err
	}
	commitState := map[string]string{"queued": "pending", "in_progress": "pending", "success": "success", "failure": "failure", "error": "error", "inactive": "error"}[in.State]
	return id, a.Reporter.CommitStatus(ctx, in.Repo, in.Commit, pipelines.StatusContext(in.Environment), commitState, in.Description, logURL)
}

// CommentOnPR sets drover's comment on the pull request. Without GitHub
// credentials it does nothing.
func (a *GitHubActivities) CommentOnPR(ctx context.Context, in CommentInput) (int64, error) {
	if a.Comments == nil {
		return in.Comment, nil
	}
	id, err := a.Comments.UpsertComment(ctx, in.Repo, in.Number, in.Key, in.Body, in.Comment)
	return id, retryAfterRateLimit(err)
}

// ReadPullRequest reads a pull request's head and state from GitHub.
func (a *GitHubActivities) ReadPullRequest(ctx context.Context, in ReadPullRequestInput) (pipelines.PullRequest, error) {
	if a.PullRequests == nil {
		return pipelines.PullRequest{}, refuse("reading pull request #%d needs GitHub credentials (github.token_env or github.app_id)", in.Number)
	}
	pr, err := a.PullRequests.PullRequest(ctx, in.Repo, in.Number)
	return pr, retryAfterRateLimit(err)
}
