package workflows

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drover/drover/pipelines"
)

// Operation kinds the app queue runs besides pushes. They never collapse.
const (
	OpPromote  = "promote"
	OpRollback = "rollback"
	// OpConfig releases the current slug with the app's newest config vars.
	OpConfig = "config"
	// OpScale releases the current slug with a new formation.
	OpScale = "scale"
)

// OperationKinds are the kinds an operation ID may start with.
var OperationKinds = []string{OpPromote, OpRollback, OpConfig, OpScale}

// SignalOperation hands a promotion or rollback to an app's queue.
const SignalOperation = "operation"

// Operation is a promotion or rollback waiting in an app's queue.
type Operation struct {
	ID       string
	Kind     string
	Promote  *PromoteInput  `json:",omitempty"`
	Rollback *RollbackInput `json:",omitempty"`
	Change   *ChangeInput   `json:",omitempty"`
}

// ChangeInput re-releases an app's current slug with its newest config
// vars and, when Scale is set, new process counts.
type ChangeInput struct {
	DeployInput
	Scale       pipelines.Formation
	Description string
}

// ChangeWorkflow makes a new release from the current release's slug with
// the app's newest config vars and formation (Scale applied), runs its
// release phase, and rolls it out, as Heroku does for `config:set` and
// `ps:scale`.
func ChangeWorkflow(ctx workflow.Context, in ChangeInput) (DeployResult, error) {
	var cur SourceRelease
	if err := storeStep(ctx, a.PromotionSource, SourceInput{App: in.App}).Get(ctx, &cur); err != nil {
		return DeployResult{Status: pipelines.ReleaseFailed, Reason: reason(err)}, err
	}
	in.Commit = cur.Commit
	return reported(ctx, in.DeployInput, CreateReleaseInput{
		App: in.App, Slug: cur.Slug, Commit: cur.Commit, Procfile: cur.Procfile,
		Description: in.Description, Scale: in.Scale,
	}, true)
}

// PromoteInput moves a release's slug from one app to the next stage's.
type PromoteInput struct {
	// DeployInput names the target app, its regions and rollout policy.
	DeployInput
	FromApp string
	// FromVersion is the release to promote; 0 means FromApp's current one.
	FromVersion int
}

// RollbackInput makes a new release from an old one.
type RollbackInput struct {
	DeployInput
	// ToVersion is the release to go back to; 0 means the one before the
	// current release.
	ToVersion int
	// RunReleasePhase runs the release command again; by default it does
	// not, since it already ran for that slug.
	RunReleasePhase bool
}

// PromoteWorkflow releases the exact slug of a staging release to the next
// stage's app, with that app's own config vars and formation, as Heroku
// does: promotion carries the build, not the config. Nothing is built.
func PromoteWorkflow(ctx workflow.Context, in PromoteInput) (DeployResult, error) {
	var src SourceRelease
	if err := storeStep(ctx, a.PromotionSource, SourceInput{App: in.FromApp, Version: in.FromVersion}).Get(ctx, &src); err != nil {
		return DeployResult{Status: pipelines.ReleaseFailed, Reason: reason(err)}, err
	}
	in.Commit = src.Commit
	return reported(ctx, in.DeployInput, CreateReleaseInput{
		App: in.App, Slug: src.Slug, Commit: src.Commit, Procfile: src.Procfile,
		Description: fmt.Sprintf("promoted from %s v%d", in.FromApp, src.Version),
	}, true)
}

// RollbackWorkflow makes release vN+1 from vK's slug, config version and
// formation, all three together, and rolls it out.
func RollbackWorkflow(ctx workflow.Context, in RollbackInput) (DeployResult, error) {
	var target SourceRelease
	if err := storeStep(ctx, a.RollbackTarget, SourceInput{App: in.App, Version: in.ToVersion}).Get(ctx, &target); err != nil {
		return DeployResult{Status: pipelines.ReleaseFailed, Reason: reason(err)}, err
	}
	in.Commit = target.Commit
	return reported(ctx, in.DeployInput, CreateReleaseInput{
		App: in.App, Slug: target.Slug, Commit: target.Commit, Procfile: target.Procfile,
		Description: fmt.Sprintf("rollback to v%d", target.Version), From: target.Version,
	}, in.RunReleasePhase)
}

// SourceInput names a release to promote or go back to (0: see callers).
type SourceInput struct {
	App     string
	Version int
}

// SourceRelease is the slug an operation reuses.
type SourceRelease struct {
	Version  int
	Slug     string
	Commit   string
	Procfile pipelines.Procfile
}

func source(r pipelines.Release) SourceRelease {
	return SourceRelease{Version: r.Version, Slug: r.Slug, Commit: r.Commit, Procfile: r.Procfile}
}

// PromotionSource finds the release to promote: the named one or the
// app's current one. Only a succeeded release can be promoted.
func (a *Activities) PromotionSource(ctx context.Context, in SourceInput) (SourceRelease, error) {
	var r pipelines.Release
	var err error
	if in.Version == 0 {
		r, err = a.Store.CurrentRelease(ctx, in.App)
		if errors.Is(err, pipelines.ErrNotFound) {
			return SourceRelease{}, refuse("%s has no succeeded release yet; deploy it first", in.App)
		}
	} else {
		r, err = a.Store.Release(ctx, in.App, in.Version)
	}
	if err != nil {
		return SourceRelease{}, permanent(err)
	}
	if r.Status != pipelines.ReleaseSucceeded {
		return SourceRelease{}, refuse("%s %s is %s, not succeeded: only a release that rolled out can be promoted", in.App, r.Name(), r.Status)
	}
	return source(r), nil
}

// RollbackTarget finds the release to go back to: the named one, or the
// last succeeded release before the current one.
func (a *Activities) RollbackTarget(ctx context.Context, in SourceInput) (SourceRelease, error) {
	if in.Version > 0 {
		r, err := a.Store.Release(ctx, in.App, in.Version)
		if err != nil {
			return SourceRelease{}, permanent(err)
		}
		if r.Slug == "" {
			return SourceRelease{}, refuse("%s %s has no slug (it was %s before it was built); pick another release", in.App, r.Name(), r.Status)
		}
		if err := a.slugKept(r); err != nil {
			return SourceRelease{}, err
		}
		return source(r), nil
	}
	rs, err := a.Store.Releases(ctx, in.App, 0)
	if err != nil {
		return SourceRelease{}, err
	}
	r, ok := pipelines.RollbackTarget(rs)
	if !ok {
		return SourceRelease{}, refuse("%s has no earlier succeeded release to roll back to", in.App)
	}
	if err := a.slugKept(r); err != nil {
		return SourceRelease{}, err
	}
	return source(r), nil
}

// slugKept refuses a release whose slug collection deleted, saying why.
func (a *Activities) slugKept(r pipelines.Release) error {
	if a.Slugs == nil {
		return nil
	}
	if _, err := a.Slugs.Path(r.Slug); errors.Is(err, pipelines.ErrNotFound) {
		return refuse("the slug of %s %s was collected (retention.releases keeps each app's newest releases' slugs); pick a newer release", r.App, r.Name())
	}
	return nil
}

// refuse is an operation that can never succeed as asked.
func refuse(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), errInvalid, nil)
}

// SignalApproval approves or rejects a release waiting for approval.
const SignalApproval = "approval"

// QueryRequester answers, while a release waits for approval, which API
// token queued it ("" for a push).
const QueryRequester = "requester"

// QueryApprovalWait answers an ApprovalWait: whether the operation's
// release waits for approval now, and who queued it. The page lists the
// releases that do. Queries add nothing to a history, so workflows from
// before it replay unchanged; those answer QueryRequester alone.
const QueryApprovalWait = "approval-wait"

// ApprovalWait is QueryApprovalWait's answer.
type ApprovalWait struct {
	Waiting     bool
	Version     int
	RequestedBy string
	// Deadline is when the release fails if nobody decides.
	Deadline time.Time
}

// UpdateApprove approves or rejects a release waiting for approval and
// answers only once the decision counts: its validator refuses it when
// the release is not waiting (already decided), or when the approver is
// the token that queued the release. An operation not at its approval
// step has no such handler, so Temporal refuses the update there too.
// SignalApproval stays for callers from before the update existed.
const UpdateApprove = "approve"

// Error types of UpdateApprove's refusals, for callers to map.
const (
	ApprovalErrSelf    = "SelfApproval"
	ApprovalErrDecided = "AlreadyDecided"
)

// Approval is SignalApproval's and UpdateApprove's payload.
type Approval struct {
	Approved bool
	By       string
}

func (ap Approval) note() string {
	if ap.Approved {
		return "approved by " + ap.By
	}
	return "rejected by " + ap.By
}

// awaitApproval waits for an approval before the release changes
// anything (release phase included), records who decided in the ledger,
// and fails the release when rejected or when nobody decides in time.
func awaitApproval(ctx workflow.Context, in DeployInput, version int) error {
	short := workflow.WithActivityOptions(ctx, shortOptions())
	id := workflow.GetInfo(ctx).WorkflowExecution.ID
	workflow.GetLogger(ctx).Info("release awaits approval", "app", in.App, "version", version, "approve", "drover approve "+id)
	// The API refuses a requester's approval of its own release; it asks
	// this query who that is.
	if err := workflow.SetQueryHandler(ctx, QueryRequester, func() (string, error) { return in.RequestedBy, nil }); err != nil {
		return err
	}
	var got *Approval
	// An accepted update hands its decision over this channel, which
	// adds no command: histories recorded with the signal alone replay.
	updates := workflow.NewBufferedChannel(ctx, 1)
	decided := false
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateApprove, func(ctx workflow.Context, ap Approval) (string, error) {
		decided = true
		updates.Send(ctx, ap)
		return fmt.Sprintf("v%d %s", version, ap.note()), nil
	}, workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, ap Approval) error {
		switch {
		case decided || got != nil:
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("v%d was already decided", version), ApprovalErrDecided, nil)
		case ap.By == "":
			return temporal.NewNonRetryableApplicationError("an approval must name who decides", errInvalid, nil)
		case in.RequestedBy != "" && ap.By == in.RequestedBy:
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("v%d was queued by %s, who may not approve it too; ask another token with the approve scope", version, ap.By), ApprovalErrSelf, nil)
		}
		return nil
	}})
	if err != nil {
		return err
	}
	timedOut := false
	deadline := workflow.Now(ctx).Add(in.ApprovalTimeout)
	if err := workflow.SetQueryHandler(ctx, QueryApprovalWait, func() (ApprovalWait, error) {
		return ApprovalWait{Waiting: got == nil && !decided && !timedOut, Version: version, RequestedBy: in.RequestedBy, Deadline: deadline}, nil
	}); err != nil {
		return err
	}
	tctx, cancel := workflow.WithCancel(ctx)
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(workflow.GetSignalChannel(ctx, SignalApproval), func(c workflow.ReceiveChannel, more bool) {
		var ap Approval
		c.Receive(ctx, &ap)
		got = &ap
	})
	sel.AddReceive(updates, func(c workflow.ReceiveChannel, more bool) {
		var ap Approval
		c.Receive(ctx, &ap)
		got = &ap
	})
	sel.AddFuture(workflow.NewTimer(tctx, in.ApprovalTimeout), func(workflow.Future) { timedOut = true })
	for {
		sel.Select(ctx)
		// A signal that got past the API from the requester itself does
		// not count; the wait goes on.
		if got != nil && in.RequestedBy != "" && got.By == in.RequestedBy {
			workflow.GetLogger(ctx).Warn("ignored an approval by the release's own requester", "app", in.App, "version", version, "by", got.By)
			got = nil
		}
		if got != nil || timedOut {
			break
		}
	}
	cancel()
	decided = true
	if got == nil {
		return refuse("nobody approved v%d within %s; run the operation again to ask anew", version, in.ApprovalTimeout)
	}
	note := got.note()
	if err := workflow.ExecuteActivity(short, a.NoteRelease, NoteReleaseInput{App: in.App, Version: version, Note: note}).Get(ctx, nil); err != nil {
		return err
	}
	if !got.Approved {
		return refuse("v%d %s", version, note)
	}
	return nil
}

// NoteReleaseInput adds a note to a release's description.
type NoteReleaseInput struct {
	App     string
	Version int
	Note    string
}

// NoteRelease records a decision, such as an approval, in the ledger.
func (a *Activities) NoteRelease(ctx context.Context, in NoteReleaseInput) error {
	return permanent(a.Store.NoteRelease(ctx, in.App, in.Version, in.Note))
}
