package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/drover/drover/pipelines"
)

// DeployInput is a commit to build and roll out to an app.
type DeployInput struct {
	App string
	// DeployRequest is embedded, so its fields sit at the top level of the
	// input's JSON, as they did before it was.
	DeployRequest
}

// DeployResult is the release a deploy made.
type DeployResult struct {
	Version int
	Status  pipelines.ReleaseStatus
	Reason  string
	URLs    []RegionURL
}

// RegionURL is where the app answers in one region.
type RegionURL struct {
	Region string
	URL    string
}

// a is the nil receiver workflows name activities through.
var a *Activities

func shortOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 200 * time.Millisecond, MaximumInterval: 10 * time.Second, MaximumAttempts: 20,
			NonRetryableErrorTypes: []string{errInvalid},
		},
	}
}

// storeStep runs a step that is one short write or read of drover's
// store (making or finishing a release, finding the one to promote or go
// back to). Since versionLocalStoreSteps it is a local activity: the
// workflow's own worker runs it within the workflow task and Temporal
// records its result, so it costs no round trip through Temporal's
// queues. A worker that dies mid-step has it run again by the next (each
// such step is idempotent: a release is made once per operation, and
// finishing one twice is a no-op), as an activity would be.
func storeStep(ctx workflow.Context, step any, args ...any) workflow.Future {
	if workflow.GetVersion(ctx, versionLocalStoreSteps, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, shortOptions()), step, args...)
	}
	o := shortOptions()
	return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: o.StartToCloseTimeout, RetryPolicy: o.RetryPolicy,
	}), step, args...)
}

// versionLocalStoreSteps is the GetVersion change ID under which short
// store steps run as local activities (storeStep).
const versionLocalStoreSteps = "local-store-steps"

func longOptions(timeout, heartbeat time.Duration, attempts int32) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: timeout,
		// A worker that dies mid-step (drover killed) is noticed after one
		// heartbeat timeout, and the step retried on the next worker.
		HeartbeatTimeout: heartbeat,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: attempts,
			NonRetryableErrorTypes: []string{errInvalid, errDeployFailed, errReleasePhase},
		},
	}
}

// DeployWorkflow builds a commit, creates a release, runs its release
// phase, and rolls it out region by region. If a region fails, every region
// already moved goes back to the previous release and the release fails.
func DeployWorkflow(ctx workflow.Context, in DeployInput) (DeployResult, error) {
	if len(in.Regions) == 0 {
		return DeployResult{}, temporal.NewNonRetryableApplicationError("app "+in.App+" has no regions", errInvalid, nil)
	}
	// A step's report to GitHub runs alongside the step it announces (the
	// build, the release), so the deploy does not wait a round trip for
	// it; the next report waits for it, so GitHub sees them in order.
	alongside := workflow.GetVersion(ctx, versionDeployReportsAlongside, workflow.DefaultVersion, 1) != workflow.DefaultVersion
	var deployment int64
	var inFlight func() int64
	settle := func() {
		if inFlight != nil {
			deployment, inFlight = inFlight(), nil
		}
	}
	announce := func(state, description string) {
		settle()
		if alongside {
			inFlight = startReport(ctx, in, deployment, state, description, "")
			return
		}
		report(ctx, in, &deployment, state, description, "")
	}
	tell := func(state, description, url string) {
		settle()
		report(ctx, in, &deployment, state, description, url)
	}
	announce("queued", "building "+short(in.Commit))
	failed := func(err error) (DeployResult, error) {
		recordOperation(ctx, string(pipelines.ReleaseFailed))
		tell(failureState(err), reason(err), "")
		return DeployResult{Status: pipelines.ReleaseFailed, Reason: reason(err)}, err
	}
	var build BuildResult
	bctx := workflow.WithActivityOptions(ctx, longOptions(30*time.Minute, 15*time.Second, 3))
	if err := workflow.ExecuteActivity(bctx, a.Build, BuildInput{App: in.App, Repo: in.Repo, CloneURL: in.CloneURL, Commit: in.Commit}).Get(ctx, &build); err != nil {
		return failed(err)
	}
	description := in.Description
	if in.CI != nil {
		note, err := waitForCI(ctx, in)
		if note != "" {
			description += "; " + note
		}
		if err != nil {
			if newer, ok := supersededBy(err); ok {
				settle()
				return superseded(ctx, in, &deployment, newer, err)
			}
			return failed(err)
		}
	}
	announce("in_progress", "releasing "+short(in.Commit))
	res, err := release(ctx, in, CreateReleaseInput{
		App: in.App, Slug: build.Slug, Commit: in.Commit, Procfile: build.Procfile, Description: description, Initial: in.Formation,
	}, true)
	if err != nil {
		tell(failureState(err), res.Reason, "")
		return res, err
	}
	tell("success", fmt.Sprintf("v%d is running", res.Version), firstURL(res))
	return res, nil
}

// versionDeployReportsAlongside is the GetVersion change ID under which a
// push deploy's "queued" and "in progress" reports run alongside its build
// and its release.
const versionDeployReportsAlongside = "deploy-reports-alongside"

// supersededBy returns the newer commit when err is a wait for CI that a
// newer push ended.
func supersededBy(err error) (string, bool) {
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != errSuperseded {
		return "", false
	}
	var newer string
	if app.Details(&newer) != nil {
		return "", false
	}
	return newer, true
}

// superseded records a push that a newer one replaced while it waited for
// CI: in the ledger, as pushes replaced in the queue are, and on GitHub.
func superseded(ctx workflow.Context, in DeployInput, deployment *int64, newer string, cause error) (DeployResult, error) {
	sctx, _ := workflow.NewDisconnectedContext(ctx)
	sctx = workflow.WithActivityOptions(sctx, shortOptions())
	var version int
	err := workflow.ExecuteActivity(sctx, a.RecordSuperseded, RecordSupersededInput{
		App: in.App, Commit: in.Commit, SupersededBy: newer,
		Operation: workflow.GetInfo(ctx).WorkflowExecution.ID + "@superseded",
	}).Get(sctx, &version)
	if err != nil {
		workflow.GetLogger(ctx).Error("record superseded push", "app", in.App, "commit", in.Commit, "error", err)
	}
	report(ctx, in, deployment, "inactive", "superseded by "+short(newer)+" while waiting for CI", "")
	return DeployResult{Version: version, Status: pipelines.ReleaseSuperseded, Reason: reason(cause)}, cause
}

// release is what every operation that makes a release shares, after it
// knows which slug: create the release, run its release phase (when
// releasePhase and the Procfile has one), roll it out, and record how it
// ended. A failure is recorded even when the workflow is being cancelled,
// so the ledger never keeps a release pending forever.
func release(ctx workflow.Context, in DeployInput, create CreateReleaseInput, releasePhase bool) (DeployResult, error) {
	log := workflow.GetLogger(ctx)
	short := workflow.WithActivityOptions(ctx, shortOptions())
	info := workflow.GetInfo(ctx)
	create.Operation = info.WorkflowExecution.ID + "@" + info.WorkflowExecution.RunID
	create.Regions = in.Regions
	var rel CreateReleaseResult
	if err := storeStep(ctx, a.CreateRelease, create).Get(ctx, &rel); err != nil {
		return DeployResult{Status: pipelines.ReleaseFailed, Reason: reason(err)}, err
	}
	res := DeployResult{Version: rel.Version}

	fail := func(err error) (DeployResult, error) {
		recordOperation(ctx, string(pipelines.ReleaseFailed))
		res.Status, res.Reason = pipelines.ReleaseFailed, reason(err)
		dctx, _ := workflow.NewDisconnectedContext(short)
		if ferr := storeStep(dctx, a.FinishRelease, FinishReleaseInput{
			App: in.App, Version: rel.Version, Status: pipelines.ReleaseFailed, Reason: res.Reason,
		}).Get(dctx, nil); ferr != nil {
			log.Error("record failed release", "app", in.App, "version", rel.Version, "error", ferr)
		}
		return res, err
	}

	if in.ApprovalTimeout > 0 {
		if err := awaitApproval(ctx, in, rel.Version); err != nil {
			return fail(err)
		}
	}

	if releasePhase && rel.HasReleasePhase {
		rctx := workflow.WithActivityOptions(ctx, longOptions(30*time.Minute, 15*time.Second, 3))
		if err := workflow.ExecuteActivity(deployInRegion(rctx, in.Regions[0]), a.ReleasePhase, ReleasePhaseInput{App: in.App, Version: rel.Version, Region: in.Regions[0]}).Get(ctx, nil); err != nil {
			return fail(fmt.Errorf("release phase: %w", err))
		}
	}

	urls, failures, err := rollout(ctx, in, rel)
	res.URLs = urls
	if err != nil {
		return fail(err)
	}
	reasonOK := ""
	if len(failures) > 0 {
		// fail_local: the release runs where it could; the ledger says
		// where it could not.
		reasonOK = "reverted in " + strings.Join(failures, "; ")
	}
	if err := storeStep(ctx, a.FinishRelease, FinishReleaseInput{
		App: in.App, Version: rel.Version, Status: pipelines.ReleaseSucceeded, Reason: reasonOK,
	}).Get(ctx, nil); err != nil {
		return fail(err)
	}
	res.Status, res.Reason = pipelines.ReleaseSucceeded, reasonOK
	recordOperation(ctx, string(pipelines.ReleaseSucceeded))
	return res, nil
}

// rollout puts the release into the regions in listed order, MaxParallel
// at a time, each wave's regions in parallel (futures over the sorted
// slice of the wave, never a map). What a failure does depends on
// OnFailure: fail_all reverts every region touched, the failed ones
// included; fail_local reverts the failed region and carries on, returning
// the failures it lived with; "" reverts the failed region and stops,
// leaving earlier regions on the new release.
func rollout(ctx workflow.Context, in DeployInput, rel CreateReleaseResult) (urls []RegionURL, failures []string, err error) {
	dctx := workflow.WithActivityOptions(ctx, longOptions(15*time.Minute, 15*time.Second, 5))
	parallel := in.MaxParallel
	if parallel <= 0 {
		parallel = 1
	}
	var touched []string
	for start := 0; start < len(in.Regions); start += parallel {
		wave := in.Regions[start:min(start+parallel, len(in.Regions))]
		futures := make([]workflow.Future, len(wave))
		for i, region := range wave {
			futures[i] = workflow.ExecuteActivity(deployInRegion(dctx, region), a.DeployRegion, DeployRegionInput{App: in.App, Version: rel.Version, Region: region})
		}
		var failed []string
		var errs []string
		for i, f := range futures {
			var out DeployRegionResult
			if err := f.Get(ctx, &out); err != nil {
				failed = append(failed, wave[i])
				errs = append(errs, fmt.Sprintf("region %s: %s", wave[i], reason(err)))
				continue
			}
			touched = append(touched, wave[i])
			urls = append(urls, RegionURL{Region: wave[i], URL: out.URL})
		}
		if len(failed) == 0 {
			continue
		}
		failure := errors.New(strings.Join(errs, "; "))
		switch in.OnFailure {
		case pipelines.FailLocal:
			revertAll(ctx, in.App, rel.Version, rel.Previous, failed)
			failures = append(failures, errs...)
		case pipelines.FailStop:
			revertAll(ctx, in.App, rel.Version, rel.Previous, failed)
			if len(touched) > 0 {
				failure = fmt.Errorf("%w; stopped there: %s left on v%d", failure, strings.Join(touched, ", "), rel.Version)
			}
			return urls, failures, failure
		default: // fail_all
			revertAll(ctx, in.App, rel.Version, rel.Previous, append(touched, failed...))
			return nil, failures, failure
		}
	}
	return urls, failures, nil
}

// revertAll puts regions back on the previous release, last first, on a
// disconnected context so a cancelled deploy still cleans up. A region that
// cannot be reverted is logged: the others still go back.
func revertAll(ctx workflow.Context, app string, failed, to int, regions []string) {
	rctx, _ := workflow.NewDisconnectedContext(ctx)
	rctx = workflow.WithActivityOptions(rctx, longOptions(15*time.Minute, 15*time.Second, 10))
	for i := len(regions) - 1; i >= 0; i-- {
		if err := workflow.ExecuteActivity(inRegion(rctx, regions[i]), a.RevertRegion, RevertRegionInput{App: app, Failed: failed, To: to, Region: regions[i]}).Get(rctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("revert region", "app", app, "region", regions[i], "error", err)
		}
	}
}

// reason is the human part of a workflow error: the innermost application
// error's message, wrapped in the step that failed.
func reason(err error) string {
	if notPickedUp(err) {
		return fmt.Sprintf("no drover worker took the step within %s: start a worker that serves the region (a local region needs drover worker --local-regions NAME)", regionPickup)
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		msg := appErr.Message()
		if prefix, _, ok := strings.Cut(err.Error(), ": activity error"); ok {
			return prefix + ": " + msg
		}
		return msg
	}
	return err.Error()
}
