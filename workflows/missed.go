package workflows

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drover/drover/pipelines"
)

// GitHub does not redeliver a webhook that failed, so a push can be lost
// while drover is down or unreachable. For each auto-deploy stage a
// Temporal schedule runs MissedPushWorkflow every few minutes: it reads the
// branch's head from GitHub and queues its deploy when drover has never
// seen that commit. Whatever arrives later for the same commit (the
// webhook, redelivered by hand) finds it already queued or deployed.

// DefaultReconcileInterval is how often an auto-deploy stage's branch is
// compared with what drover has seen.
const DefaultReconcileInterval = pipelines.DefaultReconcileInterval

// MissedPushScheduleID names the schedule that watches app's branch.
func MissedPushScheduleID(app string) string { return "missed-push/" + app }

// BranchReader reads a branch's head from GitHub.
type BranchReader interface {
	BranchHead(ctx context.Context, repo, branch string) (pipelines.BranchHead, error)
}

// PushQueue queues pushes and knows which deploys exist; the Starter is one.
type PushQueue interface {
	Deploy(ctx context.Context, app string, req DeployRequest) error
	DeployExists(ctx context.Context, app, commit string) (bool, error)
}

// MissedPushInput is one auto-deploy stage to watch.
type MissedPushInput struct {
	App    string
	Branch string
	// Request is the stage's deploy without a commit (StageRequest).
	Request DeployRequest
}

// MissedPushResult says what one look at the branch found.
type MissedPushResult struct {
	Head string
	// Queued is true when the head had been missed and is now queued.
	Queued bool
	// Known says why nothing was queued.
	Known string `json:",omitempty"`
}

// BranchHeadInput names a branch.
type BranchHeadInput struct {
	Repo   string
	Branch string
}

// CommitKnownInput names a commit of an app.
type CommitKnownInput struct {
	App    string
	Commit string
}

// recentReleases is how far back the ledger is searched for a commit.
const recentReleases = 100

// CommitKnown says why drover already knows commit for app ("" when it
// does not): a deploy of it exists, or the ledger holds a release of it
// (deployed, failed, superseded or skipped).
func (a *Activities) CommitKnown(ctx context.Context, in CommitKnownInput) (string, error) {
	rs, err := a.Store.Releases(ctx, in.App, recentReleases)
	if err != nil {
		return "", fmt.Errorf("releases of %s: %w", in.App, err)
	}
	for _, r := range rs {
		if r.Commit == in.Commit {
			return fmt.Sprintf("%s is %s (%s)", short(in.Commit), r.Name(), r.Status), nil
		}
	}
	if a.Queue == nil {
		return "", errors.New("no workflow client to look for deploys")
	}
	ok, err := a.Queue.DeployExists(ctx, in.App, in.Commit)
	if err != nil {
		return "", err
	}
	if ok {
		return "a deploy of " + short(in.Commit) + " exists", nil
	}
	return "", nil
}

// QueuePushInput is a push to hand to an app's queue.
type QueuePushInput struct {
	App     string
	Request DeployRequest
}

// QueuePush hands a push to the app's queue, which ignores commits it has
// already seen.
func (a *Activities) QueuePush(ctx context.Context, in QueuePushInput) error {
	if a.Queue == nil {
		return errors.New("no workflow client to queue the push")
	}
	return a.Queue.Deploy(ctx, in.App, in.Request)
}

// scheduledOptions are for the steps of a scheduled check: a few tries,
// since the next run tries again anyway.
func scheduledOptions(timeout time.Duration) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: timeout,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 5,
			NonRetryableErrorTypes: []string{errInvalid}},
	}
}

// MissedPushWorkflow looks once at an auto-deploy stage's branch and
// queues its head when drover never saw it.
func MissedPushWorkflow(ctx workflow.Context, in MissedPushInput) (MissedPushResult, error) {
	actx := workflow.WithActivityOptions(ctx, scheduledOptions(30*time.Second))
	var head pipelines.BranchHead
	if err := workflow.ExecuteActivity(actx, gha.BranchHead, BranchHeadInput{Repo: in.Request.Repo, Branch: in.Branch}).Get(ctx, &head); err != nil {
		return MissedPushResult{}, fmt.Errorf("read the head of %s %s: %w", in.Request.Repo, in.Branch, err)
	}
	res := MissedPushResult{Head: head.Commit}
	if head.Commit == "" {
		res.Known = "the branch has no commit"
		return res, nil
	}
	if err := workflow.ExecuteActivity(actx, a.CommitKnown, CommitKnownInput{App: in.App, Commit: head.Commit}).Get(ctx, &res.Known); err != nil {
		return res, err
	}
	if res.Known != "" {
		return res, nil
	}
	req := in.Request
	req.Commit = head.Commit
	if req.CloneURL == "" {
		req.CloneURL = head.CloneURL
	}
	msg, _, _ := strings.Cut(head.Message, "\n")
	req.Description = "push to " + in.Branch + " (its webhook never arrived; found by reconciliation)"
	if msg != "" {
		req.Description += ": " + msg
	}
	workflow.GetLogger(ctx).Info("missed push found", "app", in.App, "branch", in.Branch, "commit", head.Commit)
	if err := workflow.ExecuteActivity(actx, a.QueuePush, QueuePushInput{App: in.App, Request: req}).Get(ctx, nil); err != nil {
		return res, err
	}
	res.Queued = true
	return res, nil
}

// Watches returns drover's schedules for cfg: a missed-push check for
// every auto-deploy stage, and a pull request sweep for every pipeline
// with a review stage, each at its stage's reconcile_interval.
func Watches(cfg *pipelines.Config) []Watch {
	var out []Watch
	for _, p := range cfg.Pipelines {
		for _, st := range p.Stages {
			switch {
			case st.Branch != "":
				in := MissedPushInput{App: st.App, Branch: st.Branch, Request: StageRequest(p, st, "", "", "")}
				out = append(out, Watch{
					ID: MissedPushScheduleID(st.App), Every: st.ReconcileEvery(), Workflow: MissedPushWorkflow, Arg: in,
					Note: "drover: deploys " + st.Branch + " heads whose push webhook never arrived",
				})
			case st.Name == pipelines.StageReview:
				out = append(out, Watch{
					ID: ReviewSweepScheduleID(p.Name), Every: st.ReconcileEvery(), Workflow: ReviewSweepWorkflow, Arg: ReviewTemplateFor(p, st),
					Note: "drover: makes and destroys review apps whose pull_request webhook never arrived",
				})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Watch is one of drover's schedules: Workflow(Arg) every Every.
type Watch struct {
	ID       string
	Every    time.Duration
	Workflow any
	Arg      any
	Note     string
}

// schedulePrefixes are the IDs drover's schedules start with; schedules
// with these prefixes that the config no longer asks for are deleted.
var schedulePrefixes = []string{MissedPushScheduleID(""), ReviewSweepScheduleID(""), CollectScheduleID}
