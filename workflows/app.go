package workflows

import (
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// DeployRequest asks an app's queue to deploy a commit; it is the payload of
// SignalDeploy.
type DeployRequest struct {
	Repo     string
	CloneURL string
	Commit   string
	// Regions in rollout order.
	Regions     []string
	Description string
	// MaxParallel regions roll out at once (0: one at a time).
	MaxParallel int
	// OnFailure is pipelines.FailAll (also when empty), FailLocal or FailStop.
	OnFailure string
}

// AppInput is the state an AppWorkflow carries across Continue-As-New.
type AppInput struct {
	App string
	// Queued is the push waiting behind the running operation, if any.
	Queued *DeployRequest
	// Superseded are pushes replaced while waiting, not yet in the ledger.
	Superseded []RecordSupersededInput
	// Seen holds the commits already queued, running or deployed, newest
	// last, so a redelivered push starts nothing.
	Seen []string
}

// AppStatus is what QueryQueue answers.
type AppStatus struct {
	Running string
	Queued  string
}

// maxSeen bounds the commits an AppWorkflow remembers; older ones fall back
// on the deploy workflow ID, which also refuses a second deploy of a commit.
const maxSeen = 200

// idleTimeout ends an AppWorkflow that has had nothing to do for a day, so
// apps nobody pushes to keep no open workflow.
const idleTimeout = 24 * time.Hour

// AppWorkflow is the one workflow per app that orders every change to it:
// one operation at a time, each as a child workflow. Pushes that arrive
// while one runs wait; only the newest waiting push deploys and the older
// ones are recorded as superseded.
func AppWorkflow(ctx workflow.Context, in AppInput) error {
	log := workflow.GetLogger(ctx)
	signals := workflow.GetSignalChannel(ctx, SignalDeploy)
	short := workflow.WithActivityOptions(ctx, shortOptions())
	status := AppStatus{}
	if err := workflow.SetQueryHandler(ctx, QueryQueue, func() (AppStatus, error) { return status, nil }); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, c := range in.Seen {
		seen[c] = true
	}
	remember := func(commit string) {
		if !seen[commit] {
			seen[commit] = true
			in.Seen = append(in.Seen, commit)
			if len(in.Seen) > maxSeen {
				delete(seen, in.Seen[0])
				in.Seen = in.Seen[1:]
			}
		}
	}
	forget := func(commit string) {
		delete(seen, commit)
		for i, c := range in.Seen {
			if c == commit {
				in.Seen = append(in.Seen[:i], in.Seen[i+1:]...)
				break
			}
		}
	}
	// enqueue takes a push; a push already waiting is superseded by it.
	enqueue := func(req DeployRequest) {
		if seen[req.Commit] {
			log.Info("push already seen", "app", in.App, "commit", req.Commit)
			return
		}
		remember(req.Commit)
		if old := in.Queued; old != nil {
			in.Superseded = append(in.Superseded, RecordSupersededInput{
				App: in.App, Commit: old.Commit, SupersededBy: req.Commit,
				Operation: DeployWorkflowID(in.App, old.Commit) + "@superseded",
			})
		}
		in.Queued = &req
		status.Queued = req.Commit
	}
	// recordSuperseded writes the superseded pushes into the ledger. It runs
	// between operations, so they are numbered after the release that was
	// running when they arrived, in the order they came.
	recordSuperseded := func() {
		for _, sup := range in.Superseded {
			if err := workflow.ExecuteActivity(short, a.RecordSuperseded, sup).Get(ctx, nil); err != nil {
				log.Error("record superseded push", "app", in.App, "commit", sup.Commit, "error", err)
			}
		}
		in.Superseded = nil
	}
	drain := func() {
		var req DeployRequest
		for signals.ReceiveAsync(&req) {
			enqueue(req)
			req = DeployRequest{}
		}
	}

	for {
		drain()
		recordSuperseded()
		if in.Queued == nil {
			// Idle: continue as new here, where nothing runs, once the
			// history is long; every signal is drained first so none is lost.
			if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
				return workflow.NewContinueAsNewError(ctx, AppWorkflow, in)
			}
			// Wait for the next push, or end after a long idle spell: the
			// next push starts a fresh queue with signal-with-start.
			idle := false
			tctx, cancelTimer := workflow.WithCancel(ctx)
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(signals, func(c workflow.ReceiveChannel, more bool) {
				var req DeployRequest
				c.Receive(ctx, &req)
				enqueue(req)
			})
			sel.AddFuture(workflow.NewTimer(tctx, idleTimeout), func(workflow.Future) { idle = true })
			sel.Select(ctx)
			cancelTimer()
			if idle {
				drain()
				if in.Queued == nil {
					return nil
				}
			}
			continue
		}
		req := *in.Queued
		in.Queued = nil
		status.Running, status.Queued = req.Commit, ""

		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID: DeployWorkflowID(in.App, req.Commit),
			// A failed deploy of a commit may be tried again by pushing it
			// again; a succeeded or running one never runs twice.
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
			ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
			WorkflowRunTimeout:    3 * time.Hour,
		})
		child := workflow.ExecuteChildWorkflow(cctx, DeployWorkflow, DeployInput{App: in.App, DeployRequest: req})
		done := false
		for !done {
			sel := workflow.NewSelector(ctx)
			sel.AddFuture(child, func(f workflow.Future) {
				done = true
				var res DeployResult
				if err := f.Get(ctx, &res); err != nil {
					if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
						log.Info("deploy already exists", "app", in.App, "commit", req.Commit)
						return
					}
					log.Warn("deploy failed", "app", in.App, "commit", req.Commit, "error", err)
					forget(req.Commit)
				}
			})
			sel.AddReceive(signals, func(c workflow.ReceiveChannel, more bool) {
				var next DeployRequest
				c.Receive(ctx, &next)
				enqueue(next)
			})
			sel.Select(ctx)
		}
		status.Running = ""
	}
}
