package workflows

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/drover/drover/deployments"
	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/gh"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// Builder turns a commit into a slug.
type Builder interface {
	Build(ctx context.Context, in slugs.BuildInput, out io.Writer) (slugs.BuildResult, error)
}

// SlugPaths finds a slug's file by digest.
type SlugPaths interface {
	Path(digest string) (string, error)
}

// RegionSet finds a region by its name in drover.yaml.
type RegionSet interface {
	Region(name string) (regions.Region, error)
}

// GitCredentials gives git a token for a repository.
type GitCredentials interface {
	Token(ctx context.Context, repo string) (string, error)
}

// Activities are the steps workflows run. Each is idempotent: a retry finds
// what an earlier attempt did and carries on from there.
type Activities struct {
	// repoTemplates caches the repository job template of each slug.
	repoTemplates templateCache

	Store   deployments.Store
	Builder Builder
	Slugs   SlugPaths
	Regions RegionSet
	// GitHub is the GitHub steps' group, which a few of these steps use
	// too: ending an abandoned release on GitHub, and the review sweep's
	// read of open pull requests. Nil leaves GitHub out of them.
	GitHub *GitHubActivities
	// Queue hands pushes found by reconciliation to apps' queues.
	Queue PushQueue
	// Reviews hands missed pull requests to review app workflows.
	Reviews ReviewQueue
	// Git authenticates https fetches of private repositories (a token,
	// or a GitHub App installation's). It is held here, not passed through
	// workflow inputs, so no token lands in a workflow history.
	Git GitCredentials
	// SlugCollector deletes slugs nothing keeps; nil leaves them.
	SlugCollector SlugCollector
	// Sources says where builds of a repository fetch it
	// (pipelines.Config.SourceOf): the input's CloneURL, which may come
	// from a webhook payload, is used only when Sources is nil (tests).
	Sources func(repo string) (pipelines.GitSource, error)
	// SlugURL returns the URL at which a region's machines fetch the slug
	// digest from drover, signed so it needs no login, or "" for regions
	// that read slug files directly. It reads the clock to sign, which
	// activities may and workflow code may not.
	SlugURL func(region, digest string) string
	// JobTemplates returns an app's scheduler job template, if it has one.
	JobTemplates func(app string) []byte
	// CheckDeploy, when set, refuses a build or release drover.yaml does
	// not allow (pipelines.Config.CheckDeploy).
	CheckDeploy func(app, repo string, regions []string) error
	// RepoJobFields says what an app's repository job file may set.
	RepoJobFields func(app string) []string
	// Exposure says how an app is reached behind the team's ingress.
	Exposure func(app string) pipelines.Exposure
	Logger   *slog.Logger
	// HeartbeatEvery is how often long activities heartbeat; default 2s.
	HeartbeatEvery time.Duration
	// ProgressEvery is how often at most a region's progress reaches the
	// ledger; default 1s.
	ProgressEvery time.Duration
}

// Error types that retry policies name as non-retryable.
const (
	errInvalid      = "Invalid"
	errDeployFailed = "DeployFailed"
	errReleasePhase = "ReleasePhaseFailed"
)

// permanent marks errors no retry can fix as non-retryable; others go back
// to Temporal to be retried.
func permanent(err error) error {
	var de *regions.DeployError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &de):
		return temporal.NewNonRetryableApplicationError(de.Reason, errDeployFailed, err)
	case errors.Is(err, pipelines.ErrInvalid), errors.Is(err, pipelines.ErrNotFound):
		return temporal.NewNonRetryableApplicationError(err.Error(), errInvalid, err)
	}
	return err
}

// heartbeat keeps a long activity alive in Temporal's eyes, reporting the
// latest progress message, until stop is called.
func (a *Activities) heartbeat(ctx context.Context) (report func(string), stop func()) {
	every := a.HeartbeatEvery
	if every <= 0 {
		every = 2 * time.Second
	}
	var mu sync.Mutex
	last := ""
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				mu.Lock()
				msg := last
				mu.Unlock()
				activity.RecordHeartbeat(ctx, msg)
			}
		}
	}()
	var once sync.Once
	return func(msg string) {
			mu.Lock()
			last = msg
			mu.Unlock()
		}, func() {
			once.Do(func() { close(done) })
		}
}

func (a *Activities) logger() *slog.Logger {
	if a.Logger == nil {
		return slog.Default()
	}
	return a.Logger
}

// BuildInput names the commit to build.
type BuildInput struct {
	App      string
	Repo     string
	CloneURL string
	Commit   string
}

// BuildResult is the slug built from the commit.
type BuildResult struct {
	Slug      string
	Buildpack string
	Procfile  pipelines.Procfile
	// Reused is true when an earlier build of the same commit was found.
	Reused bool
}

// Build builds the commit into a slug, or finds the slug an earlier build of
// the same commit made. Broken code or a broken Procfile is non-retryable.
func (a *Activities) Build(ctx context.Context, in BuildInput) (BuildResult, error) {
	if a.CheckDeploy != nil {
		if err := a.CheckDeploy(in.App, in.Repo, nil); err != nil {
			return BuildResult{}, permanent(err)
		}
	}
	b, err := a.Store.FindBuild(ctx, in.Repo, in.Commit)
	switch {
	case err == nil && b.Slug != "":
		if _, perr := a.Slugs.Path(b.Slug); perr == nil {
			return BuildResult{Slug: b.Slug, Buildpack: b.Buildpack, Procfile: b.Procfile, Reused: true}, nil
		}
	case err != nil && !errors.Is(err, pipelines.ErrNotFound):
		return BuildResult{}, err
	}
	report, stop := a.heartbeat(ctx)
	defer stop()
	var out bytes.Buffer
	// Followers of the operation see the output as it is written.
	live := startLiveOutput(a.Store, deployments.BuildStep(in.Repo, in.Commit), a.logger())
	defer live.Close()
	w := &progressWriter{w: io.MultiWriter(&out, live), report: report}
	src := pipelines.GitSource{URL: in.CloneURL, GitHub: true}
	if a.Sources != nil {
		if src, err = a.Sources(in.Repo); err != nil {
			return BuildResult{}, permanent(fmt.Errorf("where to fetch %s: %w", in.Repo, err))
		}
	}
	// The token goes only to the repository on the GitHub host, never to
	// a mirror or a local path drover.yaml names instead.
	token := ""
	if a.Git != nil && in.Repo != "" && src.GitHub {
		if token, err = a.Git.Token(ctx, in.Repo); err != nil {
			return BuildResult{}, fmt.Errorf("credentials to fetch %s: %w", in.Repo, err)
		}
	}
	res, err := a.Builder.Build(ctx, slugs.BuildInput{CloneURL: src.URL, Commit: in.Commit, Token: token, App: in.App}, w)
	if err != nil {
		a.logger().Warn("build failed", "app", in.App, "commit", in.Commit, "error", err)
		// The output of a failed build is what its author needs most.
		fmt.Fprintf(&out, "\n !     Build failed: %v\n", err)
		if rerr := a.Store.RecordBuild(context.WithoutCancel(ctx), deployments.Build{Repo: in.Repo, Commit: in.Commit, Output: out.String()}); rerr != nil {
			a.logger().Error("record failed build", "commit", in.Commit, "error", rerr)
		}
		return BuildResult{}, permanent(fmt.Errorf("build %s at %s: %w", in.Repo, short(in.Commit), err))
	}
	if err := a.Store.RecordBuild(ctx, deployments.Build{Repo: in.Repo, Commit: in.Commit, Slug: res.Digest,
		Buildpack: res.Buildpack, Procfile: res.Procfile, Output: out.String()}); err != nil {
		return BuildResult{}, err
	}
	return BuildResult{Slug: res.Digest, Buildpack: res.Buildpack, Procfile: res.Procfile}, nil
}

// progressWriter keeps build output and reports its latest line as progress.
type progressWriter struct {
	w      io.Writer
	report func(string)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	if line := strings.TrimSpace(string(b)); line != "" {
		if i := strings.LastIndexByte(line, '\n'); i >= 0 {
			line = line[i+1:]
		}
		p.report(line)
	}
	return p.w.Write(b)
}

// CreateReleaseInput describes a new release.
type CreateReleaseInput struct {
	App         string
	Slug        string
	Commit      string
	Procfile    pipelines.Procfile
	Description string
	Operation   string
	Regions     []string
	// From, when set, is the release whose config version and formation
	// the new one takes, all together (a rollback); otherwise the app's
	// current config and formation are used.
	From int
	// Scale, when set, changes these process types' counts.
	Scale pipelines.Formation
	// Initial, when set, is the formation of the app's first release
	// (app.json's formation for a review app); types the Procfile lacks
	// are ignored.
	Initial pipelines.Formation `json:",omitempty"`
}

// CreateReleaseResult names the release and the one it replaces.
type CreateReleaseResult struct {
	Version int
	// Previous is the version that ran before (0: none), which a failed
	// rollout goes back to.
	Previous int
	// HasReleasePhase is true when the Procfile has a release command.
	HasReleasePhase bool
}

// CreateRelease appends a pending release with the app's current config
// vars and formation (new process types start at one instance).
func (a *Activities) CreateRelease(ctx context.Context, in CreateReleaseInput) (CreateReleaseResult, error) {
	if a.CheckDeploy != nil {
		if err := a.CheckDeploy(in.App, "", in.Regions); err != nil {
			return CreateReleaseResult{}, permanent(err)
		}
	}
	cv, err := a.Store.ConfigVars(ctx, in.App)
	if err != nil {
		return CreateReleaseResult{}, err
	}
	var from, current *pipelines.Release
	if in.From > 0 {
		r, err := a.Store.Release(ctx, in.App, in.From)
		if err != nil {
			return CreateReleaseResult{}, permanent(err)
		}
		from = &r
		cv.Version = r.ConfigVersion
	}
	prev := 0
	cur, err := a.Store.CurrentRelease(ctx, in.App)
	switch {
	case err == nil:
		prev, current = cur.Version, &cur
	case !errors.Is(err, pipelines.ErrNotFound):
		return CreateReleaseResult{}, err
	}
	formation, err := pipelines.NextFormation(in.Procfile, current, from, in.Initial, in.Scale)
	if err != nil {
		return CreateReleaseResult{}, refuse("%s has %v", in.App, err)
	}
	r, err := a.Store.CreateRelease(ctx, deployments.NewRelease{
		App: in.App, Slug: in.Slug, Commit: in.Commit, ConfigVersion: cv.Version, Formation: formation,
		Procfile: in.Procfile, Description: in.Description, Operation: in.Operation, Regions: in.Regions,
	})
	if err != nil {
		return CreateReleaseResult{}, err
	}
	// A retry after the release was created must not see its own release
	// as the previous one.
	if prev >= r.Version {
		prev = 0
		if rs, err := a.Store.Releases(ctx, in.App, 0); err == nil {
			for _, old := range rs {
				if old.Version < r.Version && old.Status == pipelines.ReleaseSucceeded {
					prev = old.Version
					break
				}
			}
		}
	}
	_, hasRelease := in.Procfile.Command(pipelines.ReleaseProcess)
	return CreateReleaseResult{Version: r.Version, Previous: prev, HasReleasePhase: hasRelease}, nil
}

// ReleasePhaseInput names the release whose release command runs, and where.
type ReleasePhaseInput struct {
	App     string
	Version int
	Region  string
}

// ReleasePhaseResult says how the release command ended.
type ReleasePhaseResult struct {
	ExitCode int
}

// releasePhaseDone starts the kept output of a release phase that exited 0,
// so a retry after a crash does not run migrations twice.
const releasePhaseDone = "release phase exited with code 0"

// ReleasePhase runs the Procfile's release command once from the release's
// slug with its config vars, and keeps its output in the ledger. A non-zero
// exit is a non-retryable failure.
func (a *Activities) ReleasePhase(ctx context.Context, in ReleasePhaseInput) (ReleasePhaseResult, error) {
	rel, region, d, err := a.target(ctx, in.App, in.Version, in.Region)
	if err != nil {
		return ReleasePhaseResult{}, err
	}
	cmd, ok := rel.Procfile.Command(pipelines.ReleaseProcess)
	if !ok {
		return ReleasePhaseResult{}, nil
	}
	// It ran already (a retry after a crash): its recorded result stands.
	// Releases from before the result was recorded say so in the head of
	// their output.
	if rel.ReleasePhaseExit != nil {
		return releasePhaseResult(cmd, *rel.ReleasePhaseExit, rel.Output)
	}
	if strings.HasPrefix(rel.Output, releasePhaseDone) {
		return ReleasePhaseResult{}, nil
	}
	_, stop := a.heartbeat(ctx)
	defer stop()
	live := startLiveOutput(a.Store, deployments.ReleasePhaseStep(in.App, in.Version), a.logger())
	defer live.Close()
	res, err := region.RunTask(ctx, regions.Task{App: in.App, Release: in.Version, Name: pipelines.ReleaseProcess,
		Slug: d.Slug, Command: cmd, Env: d.Env, Output: live})
	if err != nil {
		return ReleasePhaseResult{}, fmt.Errorf("release phase of %s v%d in %s: %w", in.App, in.Version, in.Region, err)
	}
	out := fmt.Sprintf("release phase exited with code %d\n%s", res.ExitCode, res.Output)
	if err := a.Store.SetReleasePhaseResult(ctx, in.App, in.Version, res.ExitCode, out); err != nil {
		return ReleasePhaseResult{}, err
	}
	return releasePhaseResult(cmd, res.ExitCode, out)
}

// releasePhaseResult turns an exit code into the activity's answer: a
// non-zero exit is a non-retryable failure quoting the output's end.
func releasePhaseResult(cmd string, exit int, output string) (ReleasePhaseResult, error) {
	if exit == 0 {
		return ReleasePhaseResult{}, nil
	}
	msg := fmt.Sprintf("release command %q exited with code %d: %s", cmd, exit, lastLines(output, 5))
	return ReleasePhaseResult{ExitCode: exit}, temporal.NewNonRetryableApplicationError(msg, errReleasePhase, nil)
}

// target loads a release, the region it is going to, and what that region
// needs to run it. A missing release or region is non-retryable.
func (a *Activities) target(ctx context.Context, app string, version int, regionName string) (pipelines.Release, regions.Region, regions.Deployment, error) {
	rel, err := a.Store.Release(ctx, app, version)
	if err != nil {
		return rel, nil, regions.Deployment{}, permanent(err)
	}
	region, err := a.Regions.Region(regionName)
	if err != nil {
		return rel, nil, regions.Deployment{}, permanent(err)
	}
	d, err := a.deployment(ctx, rel, regionName)
	return rel, region, d, err
}

func (a *Activities) slugAndEnv(ctx context.Context, rel pipelines.Release) (regions.Slug, map[string]string, error) {
	path, err := a.Slugs.Path(rel.Slug)
	if err != nil {
		return regions.Slug{}, nil, permanent(fmt.Errorf("slug of %s v%d: %w", rel.App, rel.Version, err))
	}
	cv, err := a.Store.ConfigVarsAt(ctx, rel.App, rel.ConfigVersion)
	if err != nil {
		return regions.Slug{}, nil, err
	}
	return regions.Slug{Digest: rel.Slug, Path: path}, cv.Vars, nil
}

// DeployRegionInput names a release and the region to put it in.
type DeployRegionInput struct {
	App     string
	Version int
	Region  string
}

// DeployRegionResult is where the release answers in the region.
type DeployRegionResult struct {
	URL string
}

// DeployRegion makes the release run in one region and records the region's
// state in the ledger as it goes. A release that does not become healthy is
// a non-retryable failure; a region that cannot be reached is retried.
func (a *Activities) DeployRegion(ctx context.Context, in DeployRegionInput) (DeployRegionResult, error) {
	rel, region, d, err := a.target(ctx, in.App, in.Version, in.Region)
	if err != nil {
		return DeployRegionResult{}, err
	}
	if err := a.setRegion(ctx, rel, in.Region, pipelines.RegionRunning, "deploying", ""); err != nil {
		return DeployRegionResult{}, err
	}
	report, stop := a.heartbeat(ctx)
	defer stop()
	d.Progress = a.ledgerProgress(ctx, rel, in.Region, report)
	start := time.Now()
	res, err := region.Deploy(ctx, d)
	recordRegionDeploy(ctx, in.Region, start, err)
	if err != nil {
		// The ledger says why, whether or not a retry follows: a region
		// that stays unreachable ends failed with its last error.
		msg := err.Error()
		var de *regions.DeployError
		if errors.As(err, &de) {
			msg = de.Reason
		} else if !errors.Is(err, pipelines.ErrInvalid) {
			msg = fmt.Sprintf("attempt %d: %s", activity.GetInfo(ctx).Attempt, msg)
		}
		if serr := a.setRegion(context.WithoutCancel(ctx), rel, in.Region, pipelines.RegionFailed, msg, ""); serr != nil {
			a.logger().Error("record failed region", "app", in.App, "region", in.Region, "error", serr)
		}
		return DeployRegionResult{}, permanent(err)
	}
	if err := a.setRegion(ctx, rel, in.Region, pipelines.RegionSuccessful, res.Message, res.URL); err != nil {
		return DeployRegionResult{}, err
	}
	return DeployRegionResult{URL: res.URL}, nil
}

// ledgerProgress passes a region's progress to the heartbeat and, when it
// says something new, at most once a second, to the ledger, where the CLI
// and API show it ("web: 1/2 healthy"). The ledger has just been told
// "deploying", so the first second's steps stay out of it: a region that
// is live within a second (a local one, a warm Nomad client) costs the
// ledger two writes, not three, and the regions of a wave, which all
// write to their release's row, wait less for each other.
func (a *Activities) ledgerProgress(ctx context.Context, rel pipelines.Release, region string, report func(string)) func(string) {
	every := a.ProgressEvery
	if every <= 0 {
		every = time.Second
	}
	var mu sync.Mutex
	var last string
	at := time.Now()
	return func(msg string) {
		report(msg)
		mu.Lock()
		defer mu.Unlock()
		if msg == last || time.Since(at) < every {
			return
		}
		last, at = msg, time.Now()
		if err := a.setRegion(ctx, rel, region, pipelines.RegionRunning, msg, ""); err != nil {
			a.logger().Warn("record region progress", "app", rel.App, "region", region, "error", err)
		}
	}
}

func (a *Activities) setRegion(ctx context.Context, rel pipelines.Release, region string, st pipelines.RegionStatus, msg, url string) error {
	return a.Store.SetRegionState(ctx, rel.App, rel.Version, pipelines.RegionState{Region: region, Status: st, Message: msg, URL: url})
}

// RevertRegionInput names a region to put back on the release it ran before.
type RevertRegionInput struct {
	App string
	// Failed is the release being taken out.
	Failed int
	// To is the release to go back to; 0 means the app ran nothing there
	// before, so it is stopped.
	To     int
	Region string
}

// RevertRegion puts a region back on the previous release (or stops the app
// if there was none) and marks the failed release rolled back there.
func (a *Activities) RevertRegion(ctx context.Context, in RevertRegionInput) error {
	region, err := a.Regions.Region(in.Region)
	if err != nil {
		return permanent(err)
	}
	failed, err := a.Store.Release(ctx, in.App, in.Failed)
	if err != nil {
		return permanent(err)
	}
	msg := "stopped: no earlier release"
	if in.To == 0 {
		if err := region.Stop(ctx, in.App); err != nil {
			return fmt.Errorf("stop %s in %s: %w", in.App, in.Region, err)
		}
	} else {
		prev, err := a.Store.Release(ctx, in.App, in.To)
		if err != nil {
			return permanent(err)
		}
		d, err := a.deployment(ctx, prev, in.Region)
		if err != nil {
			return err
		}
		report, stop := a.heartbeat(ctx)
		defer stop()
		d.Progress = report
		if _, err := region.Deploy(ctx, d); err != nil {
			return fmt.Errorf("roll %s in %s back to %s: %w", in.App, in.Region, prev.Name(), err)
		}
		msg = "reverted to " + prev.Name()
	}
	// A region whose own deploy failed stays marked failed, with why, and
	// says where it went; regions that had succeeded become reverted.
	status := pipelines.RegionReverted
	for _, st := range failed.Regions {
		if st.Region == in.Region && st.Status == pipelines.RegionFailed {
			status, msg = pipelines.RegionFailed, st.Message+"; "+msg
		}
	}
	return a.setRegion(ctx, failed, in.Region, status, msg, "")
}

// FinishReleaseInput is a release's final status.
type FinishReleaseInput struct {
	App     string
	Version int
	Status  pipelines.ReleaseStatus
	Reason  string
}

// FinishRelease records a release's final status. A manual rollback that
// succeeds also records the auto-deploy pause it put on the app (which
// its queue holds meanwhile), so the pause outlives the queue workflow;
// it is written first, so a retry after a crash in between still does.
func (a *Activities) FinishRelease(ctx context.Context, in FinishReleaseInput) error {
	if in.Status == pipelines.ReleaseSucceeded {
		rel, err := a.Store.Release(ctx, in.App, in.Version)
		if err != nil {
			return err
		}
		if op, _, _ := strings.Cut(rel.Operation, "@"); strings.HasPrefix(op, OpRollback+"/") {
			if err := a.Store.SetAutoDeployPause(ctx, in.App, RollbackPauseReason(op)); err != nil {
				return err
			}
		}
	}
	return permanentConflict(a.Store.FinishRelease(ctx, in.App, in.Version, in.Status, in.Reason))
}

// AbandonInput names an operation that ended (timed out, terminated)
// without ending its release.
type AbandonInput struct {
	App, Operation    string
	Repo, Environment string
	Reason            string
}

// EndAbandonedRelease fails the release an ended operation left pending,
// and its GitHub deployment; a release it had finished, or none, is left
// as it is.
func (a *Activities) EndAbandonedRelease(ctx context.Context, in AbandonInput) error {
	rel, err := a.Store.ReleaseByOperation(ctx, in.App, in.Operation)
	if errors.Is(err, pipelines.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if rel.Status.Terminal() {
		return nil
	}
	if err := a.Store.FinishRelease(ctx, in.App, rel.Version, pipelines.ReleaseFailed, in.Reason); err != nil {
		return permanentConflict(err)
	}
	if in.Repo != "" && in.Environment != "" && a.GitHub != nil {
		if _, err := a.GitHub.report(ctx, ReportInput{Repo: in.Repo, Commit: rel.Commit, Environment: in.Environment, Operation: in.Operation,
			State: gh.StateFailure, Description: in.Reason, Release: rel.Version}); err != nil {
			a.logger().Warn("report abandoned release", "app", in.App, "operation", in.Operation, "error", err)
		}
	}
	return nil
}

// RollbackPauseReason is why a manual rollback paused auto-deploy.
func RollbackPauseReason(operation string) string {
	return "auto-deploy paused by a manual rollback (" + operation + ")"
}

func permanentConflict(err error) error {
	if errors.Is(err, pipelines.ErrConflict) {
		return temporal.NewNonRetryableApplicationError(err.Error(), errInvalid, err)
	}
	return permanent(err)
}

// RecordSkippedInput is a push that auto-deploy did not deploy.
type RecordSkippedInput struct {
	App       string
	Commit    string
	Reason    string
	Operation string
}

// RecordSkipped writes a skipped push into the ledger with the reason.
func (a *Activities) RecordSkipped(ctx context.Context, in RecordSkippedInput) (int, error) {
	return a.recordUndeployed(ctx, in.App, in.Commit, in.Operation, pipelines.ReleaseSkipped, in.Reason)
}

// recordUndeployed writes a push that did not deploy into the ledger, with
// its status and why, so users see it was seen.
func (a *Activities) recordUndeployed(ctx context.Context, app, commit, operation string, status pipelines.ReleaseStatus, why string) (int, error) {
	r, err := a.Store.CreateRelease(ctx, deployments.NewRelease{App: app, Status: status, Commit: commit, Operation: operation, Description: why})
	if err != nil {
		return 0, err
	}
	return r.Version, nil
}

// RecordSupersededInput is a queued push that a newer push replaced.
type RecordSupersededInput struct {
	App          string
	Commit       string
	SupersededBy string
	Operation    string
}

// RecordSuperseded writes a superseded push into the ledger, so users see
// that it was seen and why it did not deploy.
func (a *Activities) RecordSuperseded(ctx context.Context, in RecordSupersededInput) (int, error) {
	return a.recordUndeployed(ctx, in.App, in.Commit, in.Operation, pipelines.ReleaseSuperseded,
		"superseded by "+short(in.SupersededBy)+" before it deployed")
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
