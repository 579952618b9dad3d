package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/log"
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

// UpdateQueue hands an operation to an app's queue and answers, once the
// queue has it, with its place (Queued). Its validator refuses an
// operation with nothing to do and one already queued or running. It
// replaces SignalOperation, which a queue still takes, for callers that
// cannot wait for a worker.
const UpdateQueue = "queue"

// Queued is UpdateQueue's answer.
type Queued struct {
	// Ahead is how many operations and pushes run or wait before it.
	Ahead int
}

// Error types of UpdateQueue's validator.
const (
	QueueErrInvalid   = "QueueInvalid"
	QueueErrDuplicate = "QueueDuplicate"
)

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
	q := &appQueue{AppInput: in, ctx: ctx, log: workflow.GetLogger(ctx),
		actx:       workflow.WithActivityOptions(ctx, shortOptions()),
		pushes:     workflow.GetSignalChannel(ctx, SignalDeploy),
		ops:        workflow.GetSignalChannel(ctx, SignalOperation),
		autodeploy: workflow.GetSignalChannel(ctx, SignalAutoDeploy),
		seen:       map[string]bool{},
		woken:      workflow.NewBufferedChannel(ctx, 1),
	}
	return q.run()
}

// appQueue is an AppWorkflow's state; its methods are the queue's steps.
// The order of their commands is what saved histories replay: change it
// only behind workflow.GetVersion.
type appQueue struct {
	AppInput
	ctx  workflow.Context
	log  log.Logger
	actx workflow.Context // short activities

	pushes, ops, autodeploy workflow.ReceiveChannel
	// woken wakes the queue when an update handler has queued something;
	// handlers run beside the queue's loop, which waits on its channels.
	woken  workflow.Channel
	status AppStatus
	seen   map[string]bool
}

func (q *appQueue) run() error {
	if err := workflow.SetQueryHandler(q.ctx, QueryQueue, q.query); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(q.ctx, UpdateQueue, q.queue,
		workflow.UpdateHandlerOptions{Validator: q.validateQueue}); err != nil {
		return err
	}
	// A queue carried over from before operations existed.
	if q.Queued != nil {
		q.Pending = append([]Pending{{Push: q.Queued}}, q.Pending...)
		q.Queued = nil
	}
	for _, c := range q.Seen {
		q.seen[c] = true
	}
	q.status.Paused = q.Paused
	for {
		q.drain()
		q.recordSuperseded()
		if len(q.Pending) == 0 {
			// Idle: continue as new here, where nothing runs, once the
			// history is long; every signal is drained first so none is lost.
			if workflow.GetInfo(q.ctx).GetContinueAsNewSuggested() {
				return workflow.NewContinueAsNewError(q.ctx, AppWorkflow, q.AppInput)
			}
			if q.waitIdle() {
				return nil
			}
			continue
		}
		next := q.Pending[0]
		q.Pending = q.Pending[1:]
		q.runNext(next)
	}
}

// query answers QueryQueue.
func (q *appQueue) query() (AppStatus, error) {
	st := q.status
	for _, p := range q.Pending {
		if p.Op != nil {
			st.Waiting = append(st.Waiting, p.Op.ID)
		} else if p.Push != nil {
			st.Waiting = append(st.Waiting, DeployWorkflowID(q.App, p.Push.Commit))
		}
	}
	return st, nil
}

// waitIdle waits for the next push or operation, or reports true after a
// long idle spell with nothing queued: the next one starts a fresh queue
// with signal-with-start.
func (q *appQueue) waitIdle() bool {
	idle := false
	tctx, cancelTimer := workflow.WithCancel(q.ctx)
	sel := workflow.NewSelector(q.ctx)
	q.receive(sel)
	sel.AddFuture(workflow.NewTimer(tctx, idleTimeout), func(workflow.Future) { idle = true })
	sel.Select(q.ctx)
	cancelTimer()
	if idle {
		q.drain()
		return len(q.Pending) == 0
	}
	return false
}

func (q *appQueue) remember(commit string) {
	if !q.seen[commit] {
		q.seen[commit] = true
		q.Seen = append(q.Seen, commit)
		if len(q.Seen) > maxSeen {
			delete(q.seen, q.Seen[0])
			q.Seen = q.Seen[1:]
		}
	}
}

func (q *appQueue) forget(commit string) {
	delete(q.seen, commit)
	for i, c := range q.Seen {
		if c == commit {
			q.Seen = append(q.Seen[:i], q.Seen[i+1:]...)
			break
		}
	}
}

// skip records a push that auto-deploy will not deploy. It is not
// remembered as seen: once resumed, pushing it again deploys it.
func (q *appQueue) skip(req DeployRequest) {
	err := workflow.ExecuteActivity(q.actx, a.RecordSkipped, RecordSkippedInput{
		App: q.App, Commit: req.Commit, Operation: DeployWorkflowID(q.App, req.Commit) + "@skipped@" + workflow.Now(q.ctx).UTC().Format("20060102T150405.000"),
		Reason: fmt.Sprintf("push of %s skipped: %s; run `drover autodeploy resume %s`", short(req.Commit), q.Paused, q.App),
	}).Get(q.ctx, nil)
	if err != nil {
		q.log.Error("record skipped push", "app", q.App, "commit", req.Commit, "error", err)
	}
}

// enqueue takes a push; a push already waiting is superseded by it, and
// the newest waits at the back. Promotions and rollbacks never collapse.
func (q *appQueue) enqueue(req DeployRequest) {
	if q.seen[req.Commit] {
		q.log.Info("push already seen", "app", q.App, "commit", req.Commit)
		return
	}
	if q.Paused != "" {
		q.skip(req)
		return
	}
	q.remember(req.Commit)
	for i, p := range q.Pending {
		if p.Push != nil {
			q.Superseded = append(q.Superseded, RecordSupersededInput{
				App: q.App, Commit: p.Push.Commit, SupersededBy: req.Commit,
				Operation: DeployWorkflowID(q.App, p.Push.Commit) + "@superseded",
			})
			q.Pending = append(q.Pending[:i], q.Pending[i+1:]...)
			break
		}
	}
	q.Pending = append(q.Pending, Pending{Push: &req})
	q.status.Queued = req.Commit
}

// enqueueOp queues an operation once: one that came by both UpdateQueue
// and SignalOperation (a caller falling back) is queued by the first.
func (q *appQueue) enqueueOp(op Operation) {
	if q.has(op.ID) {
		q.log.Info("operation already queued", "app", q.App, "operation", op.ID)
		return
	}
	q.Pending = append(q.Pending, Pending{Op: &op})
}

// has reports whether operation id runs or waits in the queue.
func (q *appQueue) has(id string) bool {
	if q.status.Running == id {
		return true
	}
	for _, p := range q.Pending {
		if p.Op != nil && p.Op.ID == id {
			return true
		}
	}
	return false
}

func (q *appQueue) validateQueue(op Operation) error {
	if op.ID == "" || (op.Promote == nil && op.Rollback == nil && op.Change == nil) {
		return temporal.NewApplicationError("an operation needs an ID and one of promote, rollback or change", QueueErrInvalid)
	}
	if q.has(op.ID) {
		return temporal.NewApplicationError("operation "+op.ID+" is already queued", QueueErrDuplicate)
	}
	return nil
}

// queue is UpdateQueue's handler.
func (q *appQueue) queue(ctx workflow.Context, op Operation) (Queued, error) {
	ahead := len(q.Pending)
	if q.status.Running != "" {
		ahead++
	}
	q.enqueueOp(op)
	q.woken.SendAsync(true)
	return Queued{Ahead: ahead}, nil
}

// recordSuperseded writes the superseded pushes into the ledger. It runs
// between operations, so they are numbered after the release that was
// running when they arrived, in the order they came.
func (q *appQueue) recordSuperseded() {
	for _, sup := range q.Superseded {
		if err := workflow.ExecuteActivity(q.actx, a.RecordSuperseded, sup).Get(q.ctx, nil); err != nil {
			q.log.Error("record superseded push", "app", q.App, "commit", sup.Commit, "error", err)
		}
	}
	q.Superseded = nil
}

func (q *appQueue) setAutoDeploy(ad AutoDeploy) {
	q.Paused = ""
	if ad.Paused {
		q.Paused = ad.Reason
		if q.Paused == "" {
			q.Paused = "auto-deploy paused"
		}
	}
	q.status.Paused = q.Paused
}

// receive adds the queue's signals to sel.
func (q *appQueue) receive(sel workflow.Selector) {
	sel.AddReceive(q.woken, func(c workflow.ReceiveChannel, more bool) { c.Receive(q.ctx, nil) })
	sel.AddReceive(q.autodeploy, func(c workflow.ReceiveChannel, more bool) {
		var ad AutoDeploy
		c.Receive(q.ctx, &ad)
		q.setAutoDeploy(ad)
	})
	sel.AddReceive(q.pushes, func(c workflow.ReceiveChannel, more bool) {
		var req DeployRequest
		c.Receive(q.ctx, &req)
		q.enqueue(req)
	})
	sel.AddReceive(q.ops, func(c workflow.ReceiveChannel, more bool) {
		var op Operation
		c.Receive(q.ctx, &op)
		q.enqueueOp(op)
	})
}

// drain takes every signal already received.
func (q *appQueue) drain() {
	q.woken.ReceiveAsync(nil)
	for {
		var req DeployRequest
		var op Operation
		var ad AutoDeploy
		switch {
		case q.autodeploy.ReceiveAsync(&ad):
			q.setAutoDeploy(ad)
		case q.pushes.ReceiveAsync(&req):
			q.enqueue(req)
		case q.ops.ReceiveAsync(&op):
			q.enqueueOp(op)
		default:
			return
		}
	}
}

// runNext runs one queue entry as a child workflow and waits for it,
// taking signals meanwhile.
func (q *appQueue) runNext(next Pending) {
	ctx := q.ctx
	opts := workflow.ChildWorkflowOptions{ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON}
	var child workflow.ChildWorkflowFuture
	var label string
	onFailure := func() {}
	req := next.request()
	opts.WorkflowRunTimeout = req.runTimeout()
	switch {
	case next.Push != nil:
		req := *next.Push
		if q.status.Queued == req.Commit {
			q.status.Queued = ""
		}
		label = req.Commit
		opts.WorkflowID = DeployWorkflowID(q.App, req.Commit)
		// A failed deploy of a commit may be tried again by pushing it
		// again; a succeeded or running one never runs twice.
		opts.WorkflowIDReusePolicy = enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY
		child = workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), DeployWorkflow, DeployInput{App: q.App, DeployRequest: req})
	case next.Op != nil && next.Op.Promote != nil:
		label, opts.WorkflowID = next.Op.ID, next.Op.ID
		child = workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), PromoteWorkflow, *next.Op.Promote)
	case next.Op != nil && next.Op.Rollback != nil:
		label, opts.WorkflowID = next.Op.ID, next.Op.ID
		onFailure = q.pauseForRollback(next.Op.ID)
		child = workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), RollbackWorkflow, *next.Op.Rollback)
	case next.Op != nil && next.Op.Change != nil:
		label, opts.WorkflowID = next.Op.ID, next.Op.ID
		child = workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), ChangeWorkflow, *next.Op.Change)
	default:
		q.log.Error("unknown queue entry; dropped", "app", q.App)
		return
	}
	q.status.Running = label
	recordQueueDepth(ctx, q.App, len(q.Pending)+1)
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
					q.log.Info("operation already exists", "app", q.App, "operation", label)
					return
				}
				q.log.Warn("operation failed", "app", q.App, "operation", label, "error", err)
				if next.Push != nil {
					q.forget(next.Push.Commit)
				}
				onFailure()
				endAbandoned(ctx, q.App, opts.WorkflowID, req, err)
			}
		})
		q.receive(sel)
		sel.Select(ctx)
		if !done && next.Push != nil && next.Push.CI != nil && q.status.Queued != "" && q.status.Queued != told {
			told = q.status.Queued
			supersede(ctx, child, told)
		}
	}
	q.status.Running = ""
	recordQueueDepth(ctx, q.App, len(q.Pending))
}

// pauseForRollback pauses auto-deploy as a manual rollback starts, so
// pushes do not silently undo it (until resumed), and skips the pushes
// waiting behind it, or they would undo it the moment it ends. It returns
// what undoes the pause if the rollback fails.
func (q *appQueue) pauseForRollback(operation string) (onFailure func()) {
	pausedBefore := q.Paused
	q.setAutoDeploy(AutoDeploy{Paused: true, Reason: RollbackPauseReason(operation)})
	rest := q.Pending[:0]
	for _, p := range q.Pending {
		if p.Push != nil {
			q.forget(p.Push.Commit)
			q.skip(*p.Push)
			q.status.Queued = ""
			continue
		}
		rest = append(rest, p)
	}
	q.Pending = rest
	return func() { q.setAutoDeploy(AutoDeploy{Paused: pausedBefore != "", Reason: pausedBefore}) }
}
