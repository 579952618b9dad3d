package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drover/drover/pipelines"
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
	// ApprovalTimeout, when set, makes the release wait that long for
	// SignalApproval before anything changes.
	ApprovalTimeout time.Duration `json:",omitempty"`
	// Environment, when set, is the GitHub environment (the stage) the
	// deploy is reported to as a GitHub Deployment and commit status.
	Environment string `json:",omitempty"`
	// CI, when set, makes the deploy wait for the commit's CI to pass
	// after building it.
	CI *CIPolicy `json:",omitempty"`
	// Formation, when set, is the app's first release's formation.
	Formation pipelines.Formation `json:",omitempty"`
	// RequestedBy is the API token that queued the operation; it may not
	// approve the release it asked for.
	RequestedBy string `json:",omitempty"`
}

// CIPolicy is how a deploy waits for CI.
type CIPolicy struct {
	RequiredChecks []string
	Timeout        time.Duration
	// Grace is how long a commit with no checks at all is given for some
	// to appear before that counts as passing.
	Grace time.Duration
	// Poll is how often GitHub is asked again when no webhook signals news.
	Poll time.Duration
}

// AppInput is the state an AppWorkflow carries across Continue-As-New.
type AppInput struct {
	App string
	// Pending are the pushes and operations waiting, in order; at most one
	// of them is a push.
	Pending []Pending
	// Queued is where a waiting push was kept before operations existed;
	// it is moved into Pending on start.
	Queued *DeployRequest `json:",omitempty"`
	// Superseded are pushes replaced while waiting, not yet in the ledger.
	Superseded []RecordSupersededInput
	// Paused, when set, says why auto-deploy is off: pushes are recorded
	// as skipped until it is resumed.
	Paused string `json:",omitempty"`
	// Seen holds the commits already queued, running or deployed, newest
	// last, so a redelivered push starts nothing.
	Seen []string
}

// Pending is one entry of an app's queue: a push or an operation.
type Pending struct {
	Push *DeployRequest `json:",omitempty"`
	Op   *Operation     `json:",omitempty"`
}

// request is the deploy request the entry runs with.
func (p Pending) request() DeployRequest {
	switch {
	case p.Push != nil:
		return *p.Push
	case p.Op != nil && p.Op.Promote != nil:
		return p.Op.Promote.DeployRequest
	case p.Op != nil && p.Op.Rollback != nil:
		return p.Op.Rollback.DeployRequest
	case p.Op != nil && p.Op.Change != nil:
		return p.Op.Change.DeployRequest
	}
	return DeployRequest{}
}

// operationWork bounds what one operation does besides waiting: its
// build, release phase and rollout.
const operationWork = 3 * time.Hour

// runTimeout bounds one operation's run: no shorter than the waits
// inside it (approval, CI), or the server would end it mid-wait and leave
// its release pending.
func (r DeployRequest) runTimeout() time.Duration {
	d := operationWork + r.ApprovalTimeout
	if r.CI != nil {
		d += r.CI.Timeout
	}
	return d
}

// endAbandoned ends the release of an operation that timed out or was
// terminated, which could not end it itself (its disconnected cleanup
// never ran): failed in the ledger, and on GitHub.
func endAbandoned(ctx workflow.Context, app, operation string, req DeployRequest, err error) {
	var terminated *temporal.TerminatedError
	reason := ""
	switch {
	case temporal.IsTimeoutError(err):
		reason = "timed out"
	case errors.As(err, &terminated):
		reason = "was terminated"
	default:
		return
	}
	if workflow.GetVersion(ctx, "end-abandoned-releases", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	actx := workflow.WithActivityOptions(ctx, shortOptions())
	in := AbandonInput{App: app, Operation: operation, Repo: req.Repo, Environment: req.Environment,
		Reason: fmt.Sprintf("operation %s %s before it finished; run it again", operation, reason)}
	if aerr := workflow.ExecuteActivity(actx, a.EndAbandonedRelease, in).Get(ctx, nil); aerr != nil {
		workflow.GetLogger(ctx).Error("end abandoned release", "app", app, "operation", operation, "error", aerr)
	}
}

// AppStatus is what QueryQueue answers.
type AppStatus struct {
	Running string
	Queued  string
	Paused  string
	// Waiting are the workflow IDs of the operations and push waiting in
	// the queue, in order.
	Waiting []string `json:",omitempty"`
}

// SignalAutoDeploy pauses or resumes an app's auto-deploy.
const SignalAutoDeploy = "autodeploy"

// AutoDeploy is SignalAutoDeploy's payload.
type AutoDeploy struct {
	Paused bool
	Reason string
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
	pushes := workflow.GetSignalChannel(ctx, SignalDeploy)
	ops := workflow.GetSignalChannel(ctx, SignalOperation)
	autodeploy := workflow.GetSignalChannel(ctx, SignalAutoDeploy)
	actx := workflow.WithActivityOptions(ctx, shortOptions())
	status := AppStatus{}
	if err := workflow.SetQueryHandler(ctx, QueryQueue, func() (AppStatus, error) {
		st := status
		for _, p := range in.Pending {
			if p.Op != nil {
				st.Waiting = append(st.Waiting, p.Op.ID)
			} else if p.Push != nil {
				st.Waiting = append(st.Waiting, DeployWorkflowID(in.App, p.Push.Commit))
			}
		}
		return st, nil
	}); err != nil {
		return err
	}
	// A queue carried over from before operations existed.
	if in.Queued != nil {
		in.Pending = append([]Pending{{Push: in.Queued}}, in.Pending...)
		in.Queued = nil
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
	// skip records a push that auto-deploy will not deploy. It is not
	// remembered as seen: once resumed, pushing it again deploys it.
	skip := func(req DeployRequest) {
		err := workflow.ExecuteActivity(actx, a.RecordSkipped, RecordSkippedInput{
			App: in.App, Commit: req.Commit, Operation: DeployWorkflowID(in.App, req.Commit) + "@skipped@" + workflow.Now(ctx).UTC().Format("20060102T150405.000"),
			Reason: fmt.Sprintf("push of %s skipped: %s; run `drover autodeploy resume %s`", short(req.Commit), in.Paused, in.App),
		}).Get(ctx, nil)
		if err != nil {
			log.Error("record skipped push", "app", in.App, "commit", req.Commit, "error", err)
		}
	}
	// enqueue takes a push; a push already waiting is superseded by it, and
	// the newest waits at the back. Promotions and rollbacks never collapse.
	enqueue := func(req DeployRequest) {
		if seen[req.Commit] {
			log.Info("push already seen", "app", in.App, "commit", req.Commit)
			return
		}
		if in.Paused != "" {
			skip(req)
			return
		}
		remember(req.Commit)
		for i, p := range in.Pending {
			if p.Push != nil {
				in.Superseded = append(in.Superseded, RecordSupersededInput{
					App: in.App, Commit: p.Push.Commit, SupersededBy: req.Commit,
					Operation: DeployWorkflowID(in.App, p.Push.Commit) + "@superseded",
				})
				in.Pending = append(in.Pending[:i], in.Pending[i+1:]...)
				break
			}
		}
		in.Pending = append(in.Pending, Pending{Push: &req})
		status.Queued = req.Commit
	}
	enqueueOp := func(op Operation) {
		in.Pending = append(in.Pending, Pending{Op: &op})
	}
	// recordSuperseded writes the superseded pushes into the ledger. It runs
	// between operations, so they are numbered after the release that was
	// running when they arrived, in the order they came.
	recordSuperseded := func() {
		for _, sup := range in.Superseded {
			if err := workflow.ExecuteActivity(actx, a.RecordSuperseded, sup).Get(ctx, nil); err != nil {
				log.Error("record superseded push", "app", in.App, "commit", sup.Commit, "error", err)
			}
		}
		in.Superseded = nil
	}
	setAutoDeploy := func(ad AutoDeploy) {
		in.Paused = ""
		if ad.Paused {
			in.Paused = ad.Reason
			if in.Paused == "" {
				in.Paused = "auto-deploy paused"
			}
		}
		status.Paused = in.Paused
	}
	status.Paused = in.Paused
	receive := func(sel workflow.Selector) {
		sel.AddReceive(autodeploy, func(c workflow.ReceiveChannel, more bool) {
			var ad AutoDeploy
			c.Receive(ctx, &ad)
			setAutoDeploy(ad)
		})
		sel.AddReceive(pushes, func(c workflow.ReceiveChannel, more bool) {
			var req DeployRequest
			c.Receive(ctx, &req)
			enqueue(req)
		})
		sel.AddReceive(ops, func(c workflow.ReceiveChannel, more bool) {
			var op Operation
			c.Receive(ctx, &op)
			enqueueOp(op)
		})
	}
	drain := func() {
		for {
			var req DeployRequest
			var op Operation
			var ad AutoDeploy
			switch {
			case autodeploy.ReceiveAsync(&ad):
				setAutoDeploy(ad)
			case pushes.ReceiveAsync(&req):
				enqueue(req)
			case ops.ReceiveAsync(&op):
				enqueueOp(op)
			default:
				return
			}
		}
	}

	for {
		drain()
		recordSuperseded()
		if len(in.Pending) == 0 {
			// Idle: continue as new here, where nothing runs, once the
			// history is long; every signal is drained first so none is lost.
			if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
				return workflow.NewContinueAsNewError(ctx, AppWorkflow, in)
			}
			// Wait for the next push or operation, or end after a long idle
			// spell: the next one starts a fresh queue with signal-with-start.
			idle := false
			tctx, cancelTimer := workflow.WithCancel(ctx)
			sel := workflow.NewSelector(ctx)
			receive(sel)
			sel.AddFuture(workflow.NewTimer(tctx, idleTimeout), func(workflow.Future) { idle = true })
			sel.Select(ctx)
			cancelTimer()
			if idle {
				drain()
				if len(in.Pending) == 0 {
					return nil
				}
			}
			continue
		}
		next := in.Pending[0]
		in.Pending = in.Pending[1:]
		opts := workflow.ChildWorkflowOptions{ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON}
		var child workflow.ChildWorkflowFuture
		var label string
		onFailure := func() {}
		req := next.request()
		opts.WorkflowRunTimeout = req.runTimeout()
		switch {
		case next.Push != nil:
			req := *next.Push
			if status.Queued == req.Commit {
				status.Queued = ""
			}
			label = req.Commit
			opts.WorkflowID = DeployWorkflowID(in.App, req.Commit)
			// A failed deploy of a commit may be tried again by pushing it
			// again; a succeeded or running one never runs twice.
			opts.WorkflowIDReusePolicy = enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY
			child = workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), DeployWorkflow, DeployInput{App: in.App, DeployRequest: req})
		case next.Op != nil && next.Op.Promote != nil:
			label, opts.WorkflowID = next.Op.ID, next.Op.ID
			child = workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), PromoteWorkflow, *next.Op.Promote)
		case next.Op != nil && next.Op.Rollback != nil:
			label, opts.WorkflowID = next.Op.ID, next.Op.ID
			// From the moment a manual rollback starts, pushes must not
			// silently undo it: auto-deploy pauses until resumed, and
			// un-pauses only if the rollback fails.
			pausedBefore := in.Paused
			setAutoDeploy(AutoDeploy{Paused: true, Reason: RollbackPauseReason(next.Op.ID)})
			// Pushes that came after the rollback was asked for are
			// skipped too, or they would undo it the moment it ends.
			rest := in.Pending[:0]
			for _, p := range in.Pending {
				if p.Push != nil {
					forget(p.Push.Commit)
					skip(*p.Push)
					status.Queued = ""
					continue
				}
				rest = append(rest, p)
			}
			in.Pending = rest
			onFailure = func() { setAutoDeploy(AutoDeploy{Paused: pausedBefore != "", Reason: pausedBefore}) }
			child = workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), RollbackWorkflow, *next.Op.Rollback)
		case next.Op != nil && next.Op.Change != nil:
			label, opts.WorkflowID = next.Op.ID, next.Op.ID
			child = workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), ChangeWorkflow, *next.Op.Change)
		default:
			log.Error("unknown queue entry; dropped", "app", in.App)
			continue
		}
		status.Running = label
		recordQueueDepth(ctx, in.App, len(in.Pending)+1)
		done := false
		// A push waiting for CI gives way to a newer push to its branch:
		// the newer one is told to it once, and it ends unless it is past
		// the wait.
		told := ""
		for !done {
			sel := workflow.NewSelector(ctx)
			sel.AddFuture(child, func(f workflow.Future) {
				done = true
				var res DeployResult
				if err := f.Get(ctx, &res); err != nil {
					if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
						log.Info("operation already exists", "app", in.App, "operation", label)
						return
					}
					log.Warn("operation failed", "app", in.App, "operation", label, "error", err)
					if next.Push != nil {
						forget(next.Push.Commit)
					}
					onFailure()
					endAbandoned(ctx, in.App, opts.WorkflowID, req, err)
				}
			})
			receive(sel)
			sel.Select(ctx)
			if !done && next.Push != nil && next.Push.CI != nil && status.Queued != "" && status.Queued != told {
				told = status.Queued
				supersede(ctx, child, told)
			}
		}
		status.Running = ""
		recordQueueDepth(ctx, in.App, len(in.Pending))
	}
}
