package workflows

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/drover/drover/pipelines"
)

// A pull_request webhook GitHub failed to deliver is not sent again. For
// each pipeline with a review stage a Temporal schedule runs
// ReviewSweepWorkflow, which compares the repository's open pull requests
// with the review apps drover holds: an open pull request whose head no
// review app has seen is handed to its workflow, and a live review app
// whose pull request is no longer open is destroyed.

// ReviewSweepScheduleID names the schedule that sweeps pipeline's pull
// requests.
func ReviewSweepScheduleID(pipeline string) string { return "review-sweep/" + pipeline }

// ReviewQueue hands events to review app workflows; the Starter is one.
type ReviewQueue interface {
	ReviewEvent(ctx context.Context, start ReviewInput, ev PREvent) error
	ReviewClose(ctx context.Context, repo string, number int, ev PREvent) (bool, error)
	ReviewRunning(ctx context.Context, repo string, number int) (bool, error)
}

// ReviewSweepResult says what one sweep did, by pull request number.
type ReviewSweepResult struct {
	Handed    []int `json:",omitempty"`
	Destroyed []int `json:",omitempty"`
}

// ReviewSweepWorkflow sweeps one pipeline's pull requests once.
func ReviewSweepWorkflow(ctx workflow.Context, t ReviewTemplate) (ReviewSweepResult, error) {
	actx := workflow.WithActivityOptions(ctx, scheduledOptions(2*time.Minute))
	var res ReviewSweepResult
	err := workflow.ExecuteActivity(actx, a.SweepReviewApps, t).Get(ctx, &res)
	return res, err
}

// SweepReviewApps hands each open pull request that drover missed to its
// review app workflow, and destroys the review apps of pull requests that
// are no longer open. It leaves alone a pull request whose workflow runs,
// one whose app was destroyed with no push since (by TTL, max_apps or on
// purpose), and a fork's or a draft's that never deployed (a sweep could
// only comment on them again). Handing an event twice is harmless: the
// workflow acts on heads, not events.
func (a *Activities) SweepReviewApps(ctx context.Context, t ReviewTemplate) (ReviewSweepResult, error) {
	var res ReviewSweepResult
	if a.GitHub == nil || a.GitHub.PullRequests == nil || a.Reviews == nil {
		return res, refuse("sweeping pull requests needs GitHub credentials (github.token_env or github.app_id)")
	}
	open, err := a.GitHub.PullRequests.OpenPullRequests(ctx, t.Repo)
	if err != nil {
		return res, retryAfterRateLimit(err)
	}
	isOpen := map[int]bool{}
	for _, pr := range open {
		isOpen[pr.Number] = true
		start := t.For(pr.Number)
		running, err := a.Reviews.ReviewRunning(ctx, t.Repo, pr.Number)
		if err != nil {
			return res, err
		}
		if running {
			continue
		}
		ra, err := a.Store.ReviewApp(ctx, start.App)
		action := PRSynchronize
		switch {
		case errors.Is(err, pipelines.ErrNotFound):
			if pr.Fork || (pr.Draft && !t.Stage.DeployDrafts) {
				continue
			}
			action = PROpened
		case err != nil:
			return res, err
		case ra.DestroyedAt != nil && ra.Commit == pr.Head:
			continue
		}
		a.logger().Info("pull request missed; handing it to its review app", "app", start.App, "pr", pr.Number, "head", pr.Head)
		if err := a.Reviews.ReviewEvent(ctx, start, PREvent{Action: action, PR: pr}); err != nil {
			return res, err
		}
		res.Handed = append(res.Handed, pr.Number)
	}
	live, err := a.Store.ReviewApps(ctx, t.Pipeline)
	if err != nil {
		return res, err
	}
	for _, ra := range live {
		if isOpen[ra.PR] {
			continue
		}
		ev := PREvent{Action: PRDestroy, PR: pipelines.PullRequest{Number: ra.PR}, Reason: "the pull request is no longer open"}
		if err := destroyReviewApp(ctx, a.Reviews, t.For(ra.PR), ev); err != nil {
			return res, fmt.Errorf("destroy %s: %w", ra.App, err)
		}
		a.logger().Info("pull request no longer open; destroying its review app", "app", ra.App, "pr", ra.PR)
		res.Destroyed = append(res.Destroyed, ra.PR)
	}
	return res, nil
}
