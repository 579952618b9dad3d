package workflows

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Reporter tells GitHub how a deploy goes.
type Reporter interface {
	StartDeployment(ctx context.Context, repo, sha, environment, description string, release int) (int64, error)
	DeploymentStatus(ctx context.Context, repo string, id int64, state, description, environmentURL, logURL string) error
	CommitStatus(ctx context.Context, repo, sha, context, state, description, targetURL string) error
}

// ReportInput is one step of a deploy told to GitHub.
type ReportInput struct {
	Repo        string
	Commit      string
	Environment string
	Operation   string
	// State is a gh.State* value.
	State          string
	Description    string
	EnvironmentURL string
	Release        int
	// Deployment is the GitHub Deployment's ID; 0 creates (or finds) it.
	Deployment int64
}

// reportOptions are for telling GitHub things: a few tries over a few
// minutes, after which the caller logs and carries on.
func reportOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		// A report is a few GitHub calls. One cut off by a crashed worker is
		// retried once this passes, so it bounds how late GitHub hears of a
		// deploy's end after drover restarts.
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute, MaximumAttempts: 5},
	}
}

// releaseOutputRE matches a failed release phase's reason, which ends
// with the command's last lines of output.
var releaseOutputRE = regexp.MustCompile(`(release command .* exited with code -?\d+): (?s:.*)`)

// public is a reason fit for places anyone who can read the repository
// sees (PR comments, GitHub deployment statuses): a release phase's
// output stays in drover, since a command may print config vars.
func public(reason string) string {
	return releaseOutputRE.ReplaceAllString(reason, "$1 (its output is in drover: drover releases APP --json)")
}

// report tells GitHub a deploy's step. It never fails the deploy: it
// retries for a while, then logs and carries on.
func report(ctx workflow.Context, in DeployInput, deployment *int64, state, description, url string) {
	*deployment = startReport(ctx, in, *deployment, state, description, url)()
}

// startReport schedules the report of a deploy's step and returns what
// waits for it: the GitHub Deployment's ID (deployment when the report
// failed, which is logged).
func startReport(ctx workflow.Context, in DeployInput, deployment int64, state, description, url string) func() int64 {
	description = public(description)
	if in.Environment == "" {
		return func() int64 { return deployment }
	}
	rctx, _ := workflow.NewDisconnectedContext(ctx)
	rctx = workflow.WithActivityOptions(rctx, reportOptions())
	f := workflow.ExecuteActivity(rctx, gha.Report, ReportInput{
		Repo: in.Repo, Commit: in.Commit, Environment: in.Environment, Operation: workflow.GetInfo(ctx).WorkflowExecution.ID,
		State: state, Description: description, EnvironmentURL: url, Deployment: deployment,
	})
	return func() int64 {
		var id int64
		if err := f.Get(rctx, &id); err != nil {
			workflow.GetLogger(ctx).Warn("report to GitHub", "state", state, "error", err)
			return deployment
		}
		return id
	}
}

// reported makes an operation's release (a promotion, rollback or change)
// and tells GitHub how it goes, as a push's deploy is told.
func reported(ctx workflow.Context, in DeployInput, create CreateReleaseInput, releasePhase bool) (DeployResult, error) {
	var deployment int64
	if workflow.GetVersion(ctx, versionReportAlongside, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		report(ctx, in, &deployment, "in_progress", create.Description, "")
		res, err := release(ctx, in, create, releasePhase)
		return reportEnd(ctx, in, create, deployment, res, err)
	}
	// GitHub hears "in progress" while the release is made, rather than
	// the operation waiting a round trip for it first. The end's report
	// waits for it, so GitHub still sees the two in order.
	started := startReport(ctx, in, 0, "in_progress", create.Description, "")
	res, err := release(ctx, in, create, releasePhase)
	return reportEnd(ctx, in, create, started(), res, err)
}

// versionReportAlongside is the GetVersion change ID under which an
// operation's "in progress" report runs alongside making its release.
const versionReportAlongside = "report-alongside-release"

// reportEnd tells GitHub how an operation's release ended.
func reportEnd(ctx workflow.Context, in DeployInput, create CreateReleaseInput, deployment int64, res DeployResult, err error) (DeployResult, error) {
	if err != nil {
		report(ctx, in, &deployment, failureState(err), res.Reason, "")
		return res, err
	}
	report(ctx, in, &deployment, "success", fmt.Sprintf("v%d is running: %s", res.Version, create.Description), firstURL(res))
	return res, nil
}

// firstURL is where the release answers in its first region, if anywhere.
func firstURL(res DeployResult) string {
	if len(res.URLs) > 0 {
		return res.URLs[0].URL
	}
	return ""
}

// failureState is how GitHub hears of a failed deploy: "failure" when the
// code, its CI, its release phase or its rollout failed, "error" when
// drover could not do its part (a region or GitHub unreachable, a step
// out of retries), which is for drover's operators rather than the author.
func failureState(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		switch app.Type() {
		case errInvalid, errDeployFailed, errReleasePhase:
			return "failure"
		}
	}
	return "error"
}
