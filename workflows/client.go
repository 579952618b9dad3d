package workflows

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/drover/drover/pipelines"
)

// Starter starts and signals drover's workflows from outside Temporal: the
// webhook and API edges hold one.
type Starter struct {
	Client client.Client
	// Pauses keeps apps' auto-deploy pauses in the ledger; nil keeps them
	// in the queue workflows alone.
	Pauses AutoDeployPauses
}

// AutoDeployPauses reads and writes apps' auto-deploy pauses.
type AutoDeployPauses interface {
	SetAutoDeployPause(ctx context.Context, app, reason string) error
	AutoDeployPause(ctx context.Context, app string) (string, error)
}

// Deploy hands a push to app's queue, starting the queue if it is not
// running. Workflow IDs are business keys, so a repeated call for the same
// commit starts nothing new.
func (s *Starter) Deploy(ctx context.Context, app string, req DeployRequest) error {
	in, err := s.appInput(ctx, app)
	if err != nil {
		return err
	}
	_, err = s.Client.SignalWithStartWorkflow(ctx, AppWorkflowID(app), SignalDeploy, req,
		client.StartWorkflowOptions{TaskQueue: TaskQueue}, AppWorkflow, in)
	if err != nil {
		return fmt.Errorf("queue deploy of %s to %s: %w", short(req.Commit), app, err)
	}
	return nil
}

// queueWait bounds how long StartOperation waits for a worker to take an
// operation before it falls back on a signal, which waits for one durably.
const queueWait = 10 * time.Second

// StartOperation hands a promotion, rollback or change to app's queue,
// starting the queue if it is not running, and returns how many operations
// run or wait before it (-1 when it could not be told). It runs after
// whatever is already queued. The queue's validator refuses an operation
// already queued (pipelines.ErrConflict) or with nothing to do
// (pipelines.ErrInvalid). When no worker takes the update in time, or the
// queue predates it, the operation goes by signal instead: it still
// runs, once, when a worker is there.
func (s *Starter) StartOperation(ctx context.Context, app string, op Operation) (int, error) {
	in, err := s.appInput(ctx, app)
	if err != nil {
		return -1, err
	}
	uctx, cancel := context.WithTimeout(ctx, queueWait)
	defer cancel()
	start := s.Client.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID: AppWorkflowID(app), TaskQueue: TaskQueue, WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, AppWorkflow, in)
	h, err := s.Client.UpdateWithStartWorkflow(uctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{WorkflowID: AppWorkflowID(app), UpdateName: UpdateQueue, Args: []any{op},
			WaitForStage: client.WorkflowUpdateStageCompleted},
	})
	var q Queued
	if err == nil {
		err = h.Get(uctx, &q)
	}
	if err == nil {
		return q.Ahead, nil
	}
	var refused *temporal.ApplicationError
	if errors.As(err, &refused) {
		switch refused.Type() {
		case QueueErrDuplicate:
			return -1, fmt.Errorf("queue %s of %s: %s: %w", op.Kind, app, refused.Message(), pipelines.ErrConflict)
		case QueueErrInvalid:
			return -1, fmt.Errorf("queue %s of %s: %s: %w", op.Kind, app, refused.Message(), pipelines.ErrInvalid)
		}
	}
	if ctx.Err() != nil {
		return -1, fmt.Errorf("queue %s of %s: %w", op.Kind, app, ctx.Err())
	}
	// No worker in time, a queue from before the update, or one ending
	// as the update came: a signal waits for the worker and starts a new
	// queue if need be; the queue takes the operation once either way.
	_, err = s.Client.SignalWithStartWorkflow(ctx, AppWorkflowID(app), SignalOperation, op,
		client.StartWorkflowOptions{TaskQueue: TaskQueue}, AppWorkflow, in)
	if err != nil {
		return -1, fmt.Errorf("queue %s of %s: %w", op.Kind, app, err)
	}
	return -1, nil
}

// SignalCI tells deploy workflow id that its commit's CI changed. It
// reports false when that deploy is not running.
func (s *Starter) SignalCI(ctx context.Context, id string) (bool, error) {
	ok, err := s.signalRunning(ctx, id, SignalCI, nil)
	if err != nil {
		return false, fmt.Errorf("signal CI to %s: %w", id, err)
	}
	return ok, nil
}

// signalRunning signals workflow id, reporting false when it does not run.
func (s *Starter) signalRunning(ctx context.Context, id, signal string, arg any) (bool, error) {
	err := s.Client.SignalWorkflow(ctx, id, "", signal, arg)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return false, nil
	}
	return err == nil, err
}

// status returns workflow id's status, and false when Temporal has no such
// workflow (never started, or past retention).
func (s *Starter) status(ctx context.Context, id string) (enumspb.WorkflowExecutionStatus, bool, error) {
	desc, err := s.Client.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return desc.GetWorkflowExecutionInfo().GetStatus(), true, nil
}

// appInput is the first state of app's queue, should a signal start it:
// the app and its auto-deploy pause from the ledger, which outlives the
// workflow (ended when idle, or terminated).
func (s *Starter) appInput(ctx context.Context, app string) (AppInput, error) {
	in := AppInput{App: app}
	if s.Pauses == nil {
		return in, nil
	}
	reason, err := s.Pauses.AutoDeployPause(ctx, app)
	if err != nil {
		return in, fmt.Errorf("queue of %s: %w", app, err)
	}
	in.Paused = reason
	return in, nil
}

// SetAutoDeploy pauses or resumes app's auto-deploy, in the ledger first
// (when the Starter has it) and then in the app's queue.
func (s *Starter) SetAutoDeploy(ctx context.Context, app string, ad AutoDeploy) error {
	if s.Pauses != nil {
		reason := ""
		if ad.Paused {
			reason = cmp.Or(ad.Reason, "auto-deploy paused")
		}
		if err := s.Pauses.SetAutoDeployPause(ctx, app, reason); err != nil {
			return err
		}
	}
	_, err := s.Client.SignalWithStartWorkflow(ctx, AppWorkflowID(app), SignalAutoDeploy, ad,
		client.StartWorkflowOptions{TaskQueue: TaskQueue}, AppWorkflow, AppInput{App: app})
	if err != nil {
		return fmt.Errorf("set auto-deploy of %s: %w", app, err)
	}
	return nil
}

// Approve approves or rejects the release an operation (or a push's
// deploy/<app>/<sha>) is waiting with. It returns an error wrapping
// pipelines.ErrConflict, saying where the operation is, when it is not
// waiting for approval; ErrForbidden when ap.By queued it.
func (s *Starter) Approve(ctx context.Context, operation string, ap Approval) error {
	h, err := s.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: operation, UpdateName: UpdateApprove, Args: []any{ap},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	if err == nil {
		return nil
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		switch app.Type() {
		case ApprovalErrSelf:
			return fmt.Errorf("%s: %s: %w", operation, app.Message(), pipelines.ErrForbidden)
		case ApprovalErrDecided:
			return fmt.Errorf("%s: %s: %w", operation, app.Message(), pipelines.ErrConflict)
		case errInvalid:
			return fmt.Errorf("%s: %s: %w", operation, app.Message(), pipelines.ErrInvalid)
		}
	}
	// Refused for want of a handler: the operation is not at its
	// approval step, has ended, or started before the update existed.
	st, serr := s.OperationState(ctx, operation)
	if serr != nil {
		return serr
	}
	if st.State != OperationRunning {
		return fmt.Errorf("operation %s is %s, not waiting for approval: %w", operation, st.State, pipelines.ErrConflict)
	}
	// A workflow from before the update answers the requester query
	// while it waits, and takes the signal.
	res, qerr := s.Client.QueryWorkflow(ctx, operation, "", QueryRequester)
	if qerr != nil {
		return fmt.Errorf("operation %s is running, not waiting for approval: %w", operation, pipelines.ErrConflict)
	}
	var by string
	if res.Get(&by) == nil && by != "" && by == ap.By {
		return fmt.Errorf("%s was queued by %s, who may not approve it too; ask another token with the approve scope: %w", operation, by, pipelines.ErrForbidden)
	}
	if err := s.Client.SignalWorkflow(ctx, operation, "", SignalApproval, ap); err != nil {
		return fmt.Errorf("approve %s: %w", operation, err)
	}
	return nil
}

// ApprovalWait asks an operation (or a push's deploy) whether its release
// waits for approval now. An operation that has ended, or never reached
// its approval step, does not wait; one from before QueryApprovalWait
// existed is asked who queued it, which it answers only at that step.
func (s *Starter) ApprovalWait(ctx context.Context, operation string) (ApprovalWait, error) {
	v, err := s.Client.QueryWorkflow(ctx, operation, "", QueryApprovalWait)
	if err == nil {
		var w ApprovalWait
		if err := v.Get(&w); err != nil {
			return w, fmt.Errorf("ask %s whether it waits for approval: %w", operation, err)
		}
		return w, nil
	}
	var nf *serviceerror.NotFound
	var failed *serviceerror.QueryFailed
	switch {
	case errors.As(err, &nf):
		return ApprovalWait{}, nil
	case errors.As(err, &failed) && strings.Contains(failed.Message, QueryApprovalWait):
		// Unknown query type: not at its approval step, or older.
		v, rerr := s.Client.QueryWorkflow(ctx, operation, "", QueryRequester)
		if rerr != nil {
			return ApprovalWait{}, nil
		}
		w := ApprovalWait{Waiting: true}
		_ = v.Get(&w.RequestedBy)
		return w, nil
	}
	return ApprovalWait{}, fmt.Errorf("ask %s whether it waits for approval: %w", operation, err)
}

// AppStatus asks app's queue what it runs and holds; an app whose queue is
// not running runs nothing.
func (s *Starter) AppStatus(ctx context.Context, app string) (AppStatus, error) {
	var st AppStatus
	v, err := s.Client.QueryWorkflow(ctx, AppWorkflowID(app), "", QueryQueue)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("ask the queue of %s: %w", app, err)
	}
	if err := v.Get(&st); err != nil {
		return st, fmt.Errorf("ask the queue of %s: %w", app, err)
	}
	if st.Running != "" {
		// The queue learns that its operation ended in its next workflow
		// task, a moment after the operation itself says so: an operation
		// that has ended is not running, whatever the queue says yet.
		status, ok, err := s.status(ctx, st.Running)
		if err != nil {
			return st, fmt.Errorf("ask the queue of %s: %w", app, err)
		}
		if ok && status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			st.Running = ""
		}
	}
	return st, nil
}

// Operation states.
const (
	OperationQueued    = "queued"
	OperationRunning   = "running"
	OperationSucceeded = "succeeded"
	OperationFailed    = "failed"
)

// OperationState is where an operation's workflow is.
type OperationState struct {
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

// OperationState reports an operation by its workflow ID. An operation
// still waiting in its app's queue has no workflow yet: queued. One that
// is neither running, ended nor waiting returns an error wrapping
// pipelines.ErrNotFound.
func (s *Starter) OperationState(ctx context.Context, id string) (OperationState, error) {
	status, found, err := s.status(ctx, id)
	if err != nil {
		return OperationState{}, fmt.Errorf("describe operation %s: %w", id, err)
	}
	// An operation just handed to its queue may be in neither place for
	// a moment (the queue has not taken the signal in yet, or has just
	// started its workflow): look a few times before calling it unknown.
	for wait := 100 * time.Millisecond; !found; wait *= 2 {
		waiting, err := s.waiting(ctx, id)
		if err != nil {
			return OperationState{}, err
		}
		if waiting {
			return OperationState{State: OperationQueued}, nil
		}
		if status, found, err = s.status(ctx, id); err != nil {
			return OperationState{}, fmt.Errorf("describe operation %s: %w", id, err)
		}
		if found {
			break
		}
		if wait > operationLookup {
			return OperationState{}, fmt.Errorf("no operation %s (not running, not waiting in its app's queue, or past retention): %w", id, pipelines.ErrNotFound)
		}
		select {
		case <-ctx.Done():
			return OperationState{}, ctx.Err()
		case <-time.After(wait):
		}
	}
	switch status {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return OperationState{State: OperationRunning}, nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return OperationState{State: OperationSucceeded}, nil
	}
	st := OperationState{State: OperationFailed}
	if err := s.Client.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
		st.Error = reason(err)
	}
	return st, nil
}

// operationLookup bounds how long OperationState looks for an operation
// that is neither running nor waiting before it calls it unknown.
const operationLookup = 2 * time.Second

// waiting reports whether operation id waits in its app's queue.
func (s *Starter) waiting(ctx context.Context, id string) (bool, error) {
	app, _, ok := ParseDeployWorkflowID(id)
	if !ok {
		if _, app, ok = ParseOperationWorkflowID(id); !ok {
			return false, nil
		}
	}
	st, err := s.AppStatus(ctx, app)
	if err != nil {
		return false, err
	}
	return slices.Contains(st.Waiting, id), nil
}

// DeployExists reports whether a deploy of commit to app was ever started
// (and is still within Temporal's retention).
func (s *Starter) DeployExists(ctx context.Context, app, commit string) (bool, error) {
	_, found, err := s.status(ctx, DeployWorkflowID(app, commit))
	if err != nil {
		return false, fmt.Errorf("look for the deploy of %s to %s: %w", short(commit), app, err)
	}
	return found, nil
}

// EnsureSchedules makes Temporal run each watch's workflow on its
// schedule, creating or updating it, and deletes drover's schedules that
// the config no longer asks for.
func (s *Starter) EnsureSchedules(ctx context.Context, watches []Watch) error {
	sc := s.Client.ScheduleClient()
	keep := map[string]bool{}
	for _, w := range watches {
		keep[w.ID] = true
		spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: w.Every}}}
		action := &client.ScheduleWorkflowAction{
			ID: w.ID, Workflow: w.Workflow, Args: []any{w.Arg}, TaskQueue: TaskQueue,
			WorkflowRunTimeout: 5 * time.Minute,
		}
		_, err := sc.Create(ctx, client.ScheduleOptions{
			ID: w.ID, Spec: spec, Action: action,
			// One run at a time; a slow one makes the next wait its turn.
			Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
			Note:    w.Note,
		})
		if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
			err = sc.GetHandle(ctx, w.ID).Update(ctx, client.ScheduleUpdateOptions{
				DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
					sched := in.Description.Schedule
					sched.Spec, sched.Action = &spec, action
					return &client.ScheduleUpdate{Schedule: &sched}, nil
				},
			})
		}
		if err != nil {
			return fmt.Errorf("schedule %s: %w", w.ID, err)
		}
	}
	iter, err := sc.List(ctx, client.ScheduleListOptions{PageSize: 100})
	if err != nil {
		return fmt.Errorf("list schedules: %w", err)
	}
	for iter.HasNext() {
		e, err := iter.Next()
		if err != nil {
			return fmt.Errorf("list schedules: %w", err)
		}
		ours := false
		for _, prefix := range schedulePrefixes {
			ours = ours || strings.HasPrefix(e.ID, prefix)
		}
		if ours && !keep[e.ID] {
			if err := sc.GetHandle(ctx, e.ID).Delete(ctx); err != nil {
				return fmt.Errorf("delete schedule %s, which the config no longer asks for: %w", e.ID, err)
			}
		}
	}
	return nil
}

// ReviewRunning reports whether pull request number's review app
// workflow runs.
func (s *Starter) ReviewRunning(ctx context.Context, repo string, number int) (bool, error) {
	status, _, err := s.status(ctx, ReviewWorkflowID(repo, number))
	if err != nil {
		return false, fmt.Errorf("look for the review app workflow of #%d: %w", number, err)
	}
	return status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// ReviewEvent hands a pull request event to its review app's workflow,
// starting the workflow with start when it is not running.
func (s *Starter) ReviewEvent(ctx context.Context, start ReviewInput, ev PREvent) error {
	_, err := s.Client.SignalWithStartWorkflow(ctx, ReviewWorkflowID(start.Stage.Request.Repo, start.Number), SignalPullRequest, ev,
		client.StartWorkflowOptions{TaskQueue: TaskQueue}, ReviewAppWorkflow, start)
	if err != nil {
		return fmt.Errorf("hand %s of #%d to %s: %w", ev.Action, start.Number, start.App, err)
	}
	return nil
}

// ReviewClose tells a running review app workflow to destroy its app. It
// reports false when none runs (the pull request has no review app).
func (s *Starter) ReviewClose(ctx context.Context, repo string, number int, ev PREvent) (bool, error) {
	ok, err := s.signalRunning(ctx, ReviewWorkflowID(repo, number), SignalPullRequest, ev)
	if err != nil {
		return false, fmt.Errorf("close the review app of #%d: %w", number, err)
	}
	return ok, nil
}

// runOneOff runs a one-off workflow (a ps, a plan) to its end and returns
// its result; what names it in errors, which say when no worker answered.
//
// It asks for eager start: where this process also runs a worker of the
// task queue (drover dev, or a server beside a worker), the start's answer
// carries the first workflow task to it, skipping a round trip through
// matching (see BenchmarkSequentialWorkflows: dev-stack against
// lazy-start).
// Elsewhere the SDK does not ask, and the start is as before.
func runOneOff[T any](ctx context.Context, c client.Client, opts client.StartWorkflowOptions, what string, wf any, in any) (T, error) {
	var out T
	opts.EnableEagerStart = true
	run, err := c.ExecuteWorkflow(ctx, opts, wf, in)
	if err != nil {
		return out, fmt.Errorf("%s: %w", what, err)
	}
	closed := func(ctx context.Context) (bool, error) {
		d, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
		if err != nil {
			return false, err
		}
		return d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
	}
	if err := awaitResult(ctx, resultCheck, func(ctx context.Context) error { return run.Get(ctx, &out) }, closed); err != nil {
		var te *temporal.TimeoutError
		if errors.As(err, &te) {
			return out, fmt.Errorf("%s: no drover worker answered: %w", what, err)
		}
		return out, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// resultCheck is how often a wait for a one-off's result asks whether the
// workflow has closed: one-offs mostly end well within it, so a wait
// rarely asks at all.
const resultCheck = 2 * time.Second

// awaitResult waits for get, a long poll of a workflow's result. Every
// interval it asks closed whether the workflow has ended; a get still
// waiting a whole interval after the workflow was seen closed is asked
// again, and its answer comes at once. Temporal's history service can
// drop the close of a workflow whose client waits for it (its long poll
// then sleeps out history.longPollExpirationInterval, 20 s by default;
// see devstack), so without this a `drover ps` on a cluster could hang
// for as long.
func awaitResult(ctx context.Context, interval time.Duration, get func(context.Context) error, closed func(context.Context) (bool, error)) error {
	for {
		gctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- get(gctx) }()
		tick := time.NewTicker(interval)
		seenClosed, again := false, false
		for !again {
			select {
			case err := <-done:
				tick.Stop()
				cancel()
				return err
			case <-tick.C:
				if seenClosed {
					again = true
					continue
				}
				if ok, err := closed(ctx); err == nil && ok {
					seenClosed = true
				}
			}
		}
		tick.Stop()
		cancel()
		<-done
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
