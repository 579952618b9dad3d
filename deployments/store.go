package deployments

import (
	"context"
	"strconv"
	"time"

	"github.com/drover/drover/pipelines"
)

// NewRelease is what CreateRelease needs; the store assigns the version.
type NewRelease struct {
	App           string
	Status        pipelines.ReleaseStatus
	Slug          string
	Commit        string
	ConfigVersion int
	Formation     pipelines.Formation
	Procfile      pipelines.Procfile
	Description   string
	// Operation is the workflow that creates the release. A second call with
	// the same App and Operation returns the release the first call made,
	// so a retried activity never makes two releases.
	Operation string
	Regions   []string
}

// BuildStep and ReleasePhaseStep name the live output of a running build
// of a commit and of a release's release phase.
func BuildStep(repo, commit string) string { return "build/" + repo + "/" + commit }

func ReleasePhaseStep(app string, version int) string {
	return "release/" + app + "/v" + strconv.Itoa(version)
}

// Build is a finished build of one commit of one repository. A failed
// build has no Slug; its Output says why.
type Build struct {
	Repo      string             `json:"repo"`
	Commit    string             `json:"commit"`
	Slug      string             `json:"slug,omitempty"`
	Buildpack string             `json:"buildpack"`
	Procfile  pipelines.Procfile `json:"procfile"`
	Output    string             `json:"output,omitempty"`
	CreatedAt time.Time          `json:"created_at"`
}

// Store is the release ledger and everything it refers to. Methods that look
// one thing up return an error wrapping pipelines.ErrNotFound when it does not exist.
type Store interface {
	// SyncApp records an app from the config, creating or updating it.
	SyncApp(ctx context.Context, app pipelines.App) error
	// App returns one app.
	App(ctx context.Context, name string) (pipelines.App, error)
	// Apps returns every app, sorted by name.
	Apps(ctx context.Context) ([]pipelines.App, error)

	// CreateRelease appends the next version to app's ledger, with every
	// region pending. It is idempotent per (App, Operation).
	CreateRelease(ctx context.Context, r NewRelease) (pipelines.Release, error)
	// Release returns vN of app.
	Release(ctx context.Context, app string, version int) (pipelines.Release, error)
	// Releases returns app's ledger, newest first, at most limit (0: all).
	Releases(ctx context.Context, app string, limit int) ([]pipelines.Release, error)
	// ReleaseByOperation returns the release the operation (workflow ID)
	// made, if it made one yet.
	ReleaseByOperation(ctx context.Context, app, operation string) (pipelines.Release, error)
	// ReleaseOfCommit returns app's newest succeeded release of commit.
	ReleaseOfCommit(ctx context.Context, app, commit string) (pipelines.Release, error)
	// CurrentRelease returns app's newest succeeded release.
	CurrentRelease(ctx context.Context, app string) (pipelines.Release, error)
	// FinishRelease sets a pending release's final status and reason.
	// Finishing a release again with the same status is a no-op; changing a
	// final status is ErrConflict, since the ledger is append-only.
	FinishRelease(ctx context.Context, app string, version int, status pipelines.ReleaseStatus, reason string) error
	// NoteRelease appends a note (such as who approved it) to a release's
	// description; the same note twice is kept once.
	NoteRelease(ctx context.Context, app string, version int, note string) error
	// KeptSlugs returns the slugs the ledger needs: each app's newest keep
	// releases' and its current release's, destroyed review apps left out.
	KeptSlugs(ctx context.Context, keep int) (map[string]bool, error)
	// PruneBuilds forgets builds older than before whose slug is not kept.
	PruneBuilds(ctx context.Context, kept map[string]bool, before time.Time) (int, error)
	// PruneDeliveries forgets webhook deliveries received before before.
	PruneDeliveries(ctx context.Context, before time.Time) (int, error)
	// SetAutoDeployPause records why app's auto-deploy is paused ("": it
	// is not), so the pause outlives the app's queue workflow.
	SetAutoDeployPause(ctx context.Context, app, reason string) error
	// AutoDeployPause returns why app's auto-deploy is paused, "" if not.
	AutoDeployPause(ctx context.Context, app string) (string, error)
	// SetReleasePhaseResult records that the release phase ran, with its
	// exit code and output, in one write: a retry finds it and runs
	// nothing again.
	SetReleasePhaseResult(ctx context.Context, app string, version, exitCode int, output string) error
	// SetReleaseOutput keeps the release phase's output.
	SetReleaseOutput(ctx context.Context, app string, version int, output string) error
	// SetRegionState records where a release is in one region.
	SetRegionState(ctx context.Context, app string, version int, st pipelines.RegionState) error

	// ConfigVars returns app's newest config; version 0 with no vars if none was set.
	ConfigVars(ctx context.Context, app string) (pipelines.ConfigVars, error)
	// ConfigVarsAt returns app's config at a version (0: empty).
	ConfigVarsAt(ctx context.Context, app string, version int) (pipelines.ConfigVars, error)
	// SetConfigVars writes a new config version with set applied and unset removed.
	SetConfigVars(ctx context.Context, app string, set map[string]string, unset []string) (pipelines.ConfigVars, error)

	// FindBuild returns the build of repo at commit.
	FindBuild(ctx context.Context, repo, commit string) (Build, error)
	// RecordBuild keeps a build. A successful build of a repo and commit is
	// kept for good; a failed one is replaced by the next build of it.
	RecordBuild(ctx context.Context, b Build) error

	// PutReviewApp records a review app, creating it (again, if it was
	// destroyed) or updating its title, branch, commit, URL and deploy time.
	PutReviewApp(ctx context.Context, r pipelines.ReviewApp) error
	// ReviewApp returns the review app named app, live or destroyed.
	ReviewApp(ctx context.Context, app string) (pipelines.ReviewApp, error)
	// ReviewApps returns pipeline's live review apps, by PR number.
	ReviewApps(ctx context.Context, pipeline string) ([]pipelines.ReviewApp, error)
	// DestroyReviewApp marks a review app destroyed with the reason, and
	// deletes its config vars and its entry among the apps. Its releases
	// stay in the ledger. Destroying it again changes nothing.
	DestroyReviewApp(ctx context.Context, app, reason string) error

	// RanBefore reports whether a release of app before version
	// succeeded with this slug and config version.
	RanBefore(ctx context.Context, app string, version int, slug string, configVersion int) (bool, error)

	// StartRun records a one-off run and gives it the app's next number
	// (run.N); FinishRun records its exit code; Run and Runs read them,
	// Runs newest first.
	StartRun(ctx context.Context, r pipelines.Run) (pipelines.Run, error)
	FinishRun(ctx context.Context, app string, number, exitCode int) error
	Run(ctx context.Context, app string, number int) (pipelines.Run, error)
	Runs(ctx context.Context, app string, limit int) ([]pipelines.Run, error)

	// SetLiveOutput, LiveOutput and EndLiveOutput keep the output of a
	// running step (LiveStep names it) for those who follow it.
	SetLiveOutput(ctx context.Context, step, output string, total int64) error
	LiveOutput(ctx context.Context, step string) (output string, total int64, err error)
	EndLiveOutput(ctx context.Context, step string) error

	// RecordDelivery notes a webhook delivery ID and reports whether it was new.
	RecordDelivery(ctx context.Context, id, event string) (bool, error)
	// AcceptPush is a push delivery's whole intake in one write: it
	// records the delivery ID and, unless that was seen before or app
	// already released or is deploying commit, queues the push.
	AcceptPush(ctx context.Context, p Push) (PushIntake, error)
	// WaitingForCI records that workflow waits for CI of repo's commit;
	// CIWaiters names the workflows that do; CIWaitOver forgets the wait.
	WaitingForCI(ctx context.Context, workflow, repo, commit string) error
	CIWaiters(ctx context.Context, repo, commit string) ([]string, error)
	CIWaitOver(ctx context.Context, workflow string) error
	// ForgetDelivery removes a delivery ID whose work could not be started,
	// so GitHub's redelivery of it is acted on.
	ForgetDelivery(ctx context.Context, id string) error

	Close() error
}

// Push is one push delivery to intake: its delivery ID (empty when the
// sender gave none) and the app and commit it would deploy.
type Push struct {
	Delivery, Event   string
	App, Repo, Commit string
}

// PushVerdict is what intake made of a push.
type PushVerdict int

const (
	// PushQueued: new; hand it to the app's queue.
	PushQueued PushVerdict = iota
	// PushRedelivered: the delivery ID was received before.
	PushRedelivered
	// PushReleased: the app already released the commit (PushIntake.Release).
	PushReleased
	// PushInFlight: an earlier push of the commit is still being deployed.
	PushInFlight
)

// PushIntake is AcceptPush's answer.
type PushIntake struct {
	Verdict PushVerdict
	Release pipelines.Release
}
