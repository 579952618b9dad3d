package workflows

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drover/drover/gh"
	"github.com/drover/drover/pipelines"
)

// SignalCI tells a deploy waiting for CI that its commit's checks changed;
// the check_suite, check_run, status and workflow_run webhooks send it.
const SignalCI = "ci"

// SignalSupersede tells a deploy waiting for CI that a newer push to its
// branch replaces it; its payload is the newer commit. A deploy past the
// wait ignores it and finishes.
const SignalSupersede = "supersede"

// errSuperseded is the error type of a deploy a newer push replaced.
const errSuperseded = "Superseded"

// supersede tells a running deploy that newer replaces it. The signal is
// not waited on: a deploy past its wait for CI, or already done, has
// nothing to do with it.
func supersede(ctx workflow.Context, child workflow.ChildWorkflowFuture, newer string) {
	if child.GetChildWorkflowExecution().Get(ctx, nil) == nil {
		child.SignalChildWorkflow(ctx, SignalSupersede, newer)
	}
}

// CIReader reads a commit's CI verdict.
type CIReader interface {
	CIState(ctx context.Context, repo, sha string, required []string) (pipelines.CIVerdict, error)
}

// CheckCIInput names a commit whose CI to read.
type CheckCIInput struct {
	Repo     string
	Commit   string
	Required []string
}

// retryAfterRateLimit makes GitHub's rate limits retry when GitHub says,
// not on the retry policy's schedule.
func retryAfterRateLimit(err error) error {
	var rl *gh.RateLimited
	if errors.As(err, &rl) {
		return temporal.NewApplicationErrorWithOptions(err.Error(), "RateLimited", temporal.ApplicationErrorOptions{NextRetryDelay: rl.Wait, Cause: err})
	}
	return err
}

// waitForCI waits until the commit's CI passes, re-reading it on every
// SignalCI and every Poll as a fallback for lost webhooks. It fails on a
// red check, naming it, and when Timeout passes. When the commit had no
// checks at all it returns a note saying so, for the release to record.
func waitForCI(ctx workflow.Context, in DeployInput) (string, error) {
	p := *in.CI
	if p.Poll <= 0 {
		p.Poll = 2 * time.Minute
	}
	if p.Timeout <= 0 {
		p.Timeout = time.Hour
	}
	if p.Grace <= 0 {
		p.Grace = 2 * time.Minute
	}
	actx := workflow.WithActivityOptions(ctx, shortOptions())
	signals := workflow.GetSignalChannel(ctx, SignalCI)
	supersede := workflow.GetSignalChannel(ctx, SignalSupersede)
	start := workflow.Now(ctx)
	for {
		var v pipelines.CIVerdict
		if err := workflow.ExecuteActivity(actx, gha.CheckCI, CheckCIInput{Repo: in.Repo, Commit: in.Commit, Required: p.RequiredChecks}).Get(ctx, &v); err != nil {
			return "", fmt.Errorf("read CI of %s: %w", short(in.Commit), err)
		}
		waited := workflow.Now(ctx).Sub(start)
		switch {
		case v.State == pipelines.CIFailure:
			return "", refuse("CI failed for %s: %s %s", short(in.Commit), v.Failing, v.FailingURL)
		case v.State == pipelines.CISuccess && !v.None:
			return "", nil
		case v.State == pipelines.CISuccess && waited >= p.Grace:
			return fmt.Sprintf("no CI checks or statuses were reported within %s; deployed without CI", p.Grace), nil
		case waited >= p.Timeout:
			return "", refuse("CI of %s did not finish within %s; still waiting on %s", short(in.Commit), p.Timeout, strings.Join(v.Waiting, ", "))
		}
		// Wake on news from a webhook, or poll; drain extra signals so a
		// burst of webhooks costs one read.
		tctx, cancel := workflow.WithCancel(ctx)
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(signals, func(c workflow.ReceiveChannel, more bool) { c.Receive(ctx, nil) })
		sel.AddFuture(workflow.NewTimer(tctx, p.Poll), func(workflow.Future) {})
		newer := ""
		sel.AddReceive(supersede, func(c workflow.ReceiveChannel, more bool) { c.Receive(ctx, &newer) })
		sel.Select(ctx)
		cancel()
		if newer != "" {
			return "", temporal.NewNonRetryableApplicationError(fmt.Sprintf("superseded by %s while waiting for CI", short(newer)), errSuperseded, nil, newer)
		}
		for signals.ReceiveAsync(nil) {
		}
	}
}
