package workflows

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// Commenter keeps drover's one comment on a pull request.
type Commenter interface {
	UpsertComment(ctx context.Context, repo string, number int, key, body string, id int64) (int64, error)
}

// PullRequestReader reads a pull request from GitHub.
type PullRequestReader interface {
	PullRequest(ctx context.Context, repo string, number int) (pipelines.PullRequest, error)
	OpenPullRequests(ctx context.Context, repo string) ([]pipelines.PullRequest, error)
}

// AppJSONFile is Heroku's app manifest at a repository's root.
const AppJSONFile = "app.json"

// maxAppJSON bounds an app.json read from user code.
const maxAppJSON = 1 << 20

// PrepareReviewInput is a review app about to deploy a build.
type PrepareReviewInput struct {
	App      string
	Pipeline string
	Repo     string
	PR       pipelines.PullRequest
	Regions  []string
	Slug     string
	// ConfigFrom is the app whose config vars a new review app copies.
	ConfigFrom string
	MaxApps    int
}

// PrepareReviewResult is what the review app's app.json asks for, and
// the review apps to destroy to make room for it.
type PrepareReviewResult struct {
	// Formation is app.json's formation, for the app's first release.
	Formation  pipelines.Formation `json:",omitempty"`
	Postdeploy string
	Predestroy string
	Evict      []ReviewEvict
}

// ReviewEvict names a review app to destroy.
type ReviewEvict struct {
	App string
	PR  int
}

// PrepareReviewApp makes (or refreshes) the review app in the ledger and
// its config: the config_from app's vars, then app.json's env for review
// apps, with secrets generated once. Keys the app already has are never
// changed, so generated secrets and hand-set vars last the app's life. A
// new app over max_apps gets the idlest review apps to evict.
func (a *Activities) PrepareReviewApp(ctx context.Context, in PrepareReviewInput) (PrepareReviewResult, error) {
	var res PrepareReviewResult
	ra, err := a.Store.ReviewApp(ctx, in.App)
	isNew := err != nil || ra.DestroyedAt != nil
	if err != nil && !errors.Is(err, pipelines.ErrNotFound) {
		return res, err
	}
	if isNew && in.MaxApps > 0 {
		live, err := a.Store.ReviewApps(ctx, in.Pipeline)
		if err != nil {
			return res, err
		}
		var others []pipelines.ReviewApp
		for _, r := range live {
			if r.App != in.App {
				others = append(others, r)
			}
		}
		sort.SliceStable(others, func(i, j int) bool { return others[i].LastActive().Before(others[j].LastActive()) })
		for i := 0; i < len(others)-in.MaxApps+1; i++ {
			res.Evict = append(res.Evict, ReviewEvict{App: others[i].App, PR: others[i].PR})
		}
	}
	if err := a.Store.SyncApp(ctx, pipelines.App{Name: in.App, Pipeline: in.Pipeline, Stage: pipelines.StageReview, Repo: in.Repo, Regions: in.Regions}); err != nil {
		return res, err
	}
	ra.App, ra.Pipeline, ra.Repo, ra.PR = in.App, in.Pipeline, in.Repo, in.PR.Number
	ra.Title, ra.Branch, ra.Fork = in.PR.Title, in.PR.Branch, in.PR.Fork
	if isNew {
		ra.Commit, ra.URL, ra.DeployedAt = "", "", nil
	}
	if err := a.Store.PutReviewApp(ctx, ra); err != nil {
		return res, err
	}

	var manifest pipelines.AppJSON
	path, err := a.Slugs.Path(in.Slug)
	if err != nil {
		return res, permanent(err)
	}
	data, err := slugs.ReadFile(ctx, path, AppJSONFile, maxAppJSON)
	switch {
	case err == nil:
		m, err := pipelines.ParseAppJSON(data)
		if err != nil {
			return res, refuse("%v", err)
		}
		manifest = m.ForReview()
	case !errors.Is(err, pipelines.ErrNotFound):
		return res, err
	}
	res.Postdeploy, res.Predestroy = manifest.Scripts.Postdeploy, manifest.Scripts.PrPredestroy
	for typ, f := range manifest.Formation {
		if res.Formation == nil {
			res.Formation = pipelines.Formation{}
		}
		res.Formation[typ] = f.Quantity
	}

	base := map[string]string{}
	if in.ConfigFrom != "" {
		cv, err := a.Store.ConfigVars(ctx, in.ConfigFrom)
		if err != nil {
			return res, fmt.Errorf("config of %s (config_from): %w", in.ConfigFrom, err)
		}
		base = cv.Vars
	}
	cur, err := a.Store.ConfigVars(ctx, in.App)
	if err != nil {
		return res, err
	}
	env, _, err := manifest.ReviewEnv(base, cur.Vars, rand.Reader)
	if err != nil {
		return res, refuse("%v", err)
	}
	// env holds base, app.json's env and the app's own vars: set what the
	// app lacks.
	set := map[string]string{}
	for k, v := range env {
		if _, ok := cur.Vars[k]; !ok {
			set[k] = v
		}
	}
	if len(set) > 0 {
		if _, err := a.Store.SetConfigVars(ctx, in.App, set, nil); err != nil {
			return res, err
		}
	}
	return res, nil
}

// ReviewDeployedInput is a review app's successful deploy.
type ReviewDeployedInput struct {
	App    string
	Commit string
	URL    string
}

// ReviewDeployed records a review app's deployed commit, URL and time.
func (a *Activities) ReviewDeployed(ctx context.Context, in ReviewDeployedInput) error {
	ra, err := a.Store.ReviewApp(ctx, in.App)
	if err != nil {
		return permanent(err)
	}
	now := time.Now().UTC()
	ra.Commit, ra.URL, ra.DeployedAt = in.Commit, in.URL, &now
	return a.Store.PutReviewApp(ctx, ra)
}

// ReviewScriptInput is an app.json script to run once.
type ReviewScriptInput struct {
	App     string
	Name    string
	Command string
	Region  string
}

// RunReviewScript runs an app.json script (postdeploy, pr-predestroy) as a
// one-off task from the app's current release, with its config vars. A
// non-zero exit is a non-retryable failure naming the script.
func (a *Activities) RunReviewScript(ctx context.Context, in ReviewScriptInput) error {
	cur, err := a.Store.CurrentRelease(ctx, in.App)
	if err != nil {
		return permanent(err)
	}
	_, region, d, err := a.target(ctx, in.App, cur.Version, in.Region)
	if err != nil {
		return err
	}
	_, stop := a.heartbeat(ctx)
	defer stop()
	res, err := region.RunTask(ctx, regions.Task{App: in.App, Release: cur.Version, Name: in.Name, Slug: d.Slug, Command: in.Command, Env: d.Env})
	if err != nil {
		return fmt.Errorf("%s of %s in %s: %w", in.Name, in.App, in.Region, err)
	}
	if res.ExitCode != 0 {
		return refuse("app.json %s %q exited with code %d: %s", in.Name, in.Command, res.ExitCode, lastLines(res.Output, 5))
	}
	return nil
}

// StopAppInput names an app in a region.
type StopAppInput struct {
	App    string
	Region string
}

// StopApp stops and purges app in a region.
func (a *Activities) StopApp(ctx context.Context, in StopAppInput) error {
	region, err := a.Regions.Region(in.Region)
	if errors.Is(err, pipelines.ErrNotFound) {
		// The region left drover.yaml since the app was made: drover can
		// no longer reach it, and teardown must not stall on it.
		a.logger().Warn("region no longer configured; nothing stopped there", "app", in.App, "region", in.Region)
		return nil
	}
	if err != nil {
		return permanent(err)
	}
	if err := region.Stop(ctx, in.App); err != nil {
		return fmt.Errorf("stop %s in %s: %w", in.App, in.Region, err)
	}
	return nil
}

// DestroyReviewInput is a review app to mark destroyed.
type DestroyReviewInput struct {
	App    string
	Reason string
}

// DestroyReviewApp marks the review app destroyed and deletes its config.
func (a *Activities) DestroyReviewApp(ctx context.Context, in DestroyReviewInput) error {
	err := a.Store.DestroyReviewApp(ctx, in.App, in.Reason)
	if errors.Is(err, pipelines.ErrNotFound) {
		return nil
	}
	return err
}

// CommentInput is drover's comment on a pull request.
type CommentInput struct {
	Repo    string
	Number  int
	Key     string
	Body    string
	Comment int64
}

// ReadPullRequestInput names a pull request.
type ReadPullRequestInput struct {
	Repo   string
	Number int
}

// EvictInput is a review app to destroy to make room for another.
type EvictInput struct {
	// Start is the evicted app's first state, should its workflow need
	// starting to tear it down.
	Start  ReviewInput
	Reason string
}

// EvictReviewApp tells a review app's workflow to destroy the app, or
// starts one that does when none runs.
func (a *Activities) EvictReviewApp(ctx context.Context, in EvictInput) error {
	return destroyReviewApp(ctx, a.Reviews, in.Start, PREvent{Action: PRDestroy, PR: pipelines.PullRequest{Number: in.Start.Number}, Reason: in.Reason})
}

// destroyReviewApp tells a running review app workflow to destroy its
// app, or starts one, knowing the app exists, to tear it down.
func destroyReviewApp(ctx context.Context, q ReviewQueue, start ReviewInput, ev PREvent) error {
	if q == nil {
		return errors.New("no workflow client to reach review apps")
	}
	running, err := q.ReviewClose(ctx, start.Stage.Request.Repo, start.Number, ev)
	if err != nil || running {
		return err
	}
	start.Created = true
	return q.ReviewEvent(ctx, start, ev)
}
