package workflows_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/drover/drover/api"
	"github.com/drover/drover/deployments/slugs"
	"github.com/drover/drover/deployments/sqlstore"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
	"github.com/drover/drover/workflows"
)

const app = "hello-staging"

// fakeBuilder builds every commit into a slug named after it.
type fakeBuilder struct {
	mu       sync.Mutex
	builds   []string
	token    string
	url      string
	procfile pipelines.Procfile
	err      error
}

func (b *fakeBuilder) Build(ctx context.Context, in slugs.BuildInput, out io.Writer) (slugs.BuildResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.builds = append(b.builds, in.Commit)
	b.token, b.url = in.Token, in.CloneURL
	fmt.Fprintf(out, "-----> building %s\n", in.Commit)
	if b.err != nil {
		return slugs.BuildResult{}, b.err
	}
	return slugs.BuildResult{Digest: digest(in.Commit), Procfile: b.procfile, Buildpack: "go"}, nil
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// fakeSlugs makes a real, tiny slug for each digest on first use, holding
// files[digest] (file name → content) if given.
type fakeSlugs struct {
	dir   string
	files map[string]map[string]string
	// corrupt is a digest whose stored bytes do not hash to it, as a
	// tampered object in a bucket.
	corrupt string
}

func (s *fakeSlugs) Path(d string) (string, error) {
	if d == s.corrupt {
		return "", fmt.Errorf("slug %s in s3://drover-slugs: content has sha256 %s, not its name: refusing it: %w", d, digest("tampered"), slugs.ErrCorrupt)
	}
	path := filepath.Join(s.dir, d+".tar.gz")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	src, err := os.MkdirTemp(s.dir, "src-")
	if err != nil {
		return "", err
	}
	for name, body := range s.files[d] {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			return "", err
		}
	}
	var buf bytes.Buffer
	if err := slugs.Pack(context.Background(), src, &buf); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, buf.Bytes(), 0o644)
}

// fakeRegion records what it was asked to do and fails releases on demand.
type fakeRegion struct {
	name string
	mu   sync.Mutex
	// failRelease makes Deploy of that release fail with the reason.
	failRelease map[int]string
	deploys     []int
	stops       int
	// stopFailures makes that many Stop calls fail, as a region that is
	// down does.
	stopFailures int
	tasks        []regions.Task
	taskExit     int
	// taskOutput is what tasks print ("migrating" when empty).
	taskOutput   string
	running      int
	unreachable  bool
	lastSlug     regions.Slug
	lastTemplate string
	// lastRepoTemplate and lastRepoFields are the repository's job file
	// and the fields it may set.
	lastRepoTemplate string
	lastRepoFields   []string
	// during, when set, runs inside Deploy, as a driver's watch would.
	during func(d regions.Deployment)
}

func (r *fakeRegion) Name() string { return r.name }

// RendersJobs makes the fake a scheduler region, which gets the
// repository's job template (regions.JobRenderer).
func (r *fakeRegion) RendersJobs() {}

// Processes lists one web.1 up on the running release, or fails as a
// region that is down does.
func (r *fakeRegion) Processes(ctx context.Context, app string) ([]regions.Process, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unreachable {
		return nil, fmt.Errorf("region %s: %w", r.name, regions.ErrUnavailable)
	}
	if r.running == 0 {
		return []regions.Process{}, nil
	}
	return []regions.Process{{Dyno: "web.1", Type: "web", Release: r.running, State: regions.ProcessUp}}, nil
}

func (r *fakeRegion) Deploy(ctx context.Context, d regions.Deployment) (regions.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deploys = append(r.deploys, d.Release)
	r.lastSlug = d.Slug
	r.lastTemplate = string(d.JobTemplate)
	r.lastRepoTemplate, r.lastRepoFields = string(d.RepoJobTemplate), d.RepoJobFields
	if r.during != nil {
		r.during(d)
	}
	if r.unreachable {
		return regions.Result{}, fmt.Errorf("dial tcp 10.0.0.1:4646: connection refused: %w", regions.ErrUnavailable)
	}
	if reason, ok := r.failRelease[d.Release]; ok {
		return regions.Result{}, &regions.DeployError{Region: r.name, App: d.App, Release: d.Release, Reason: reason}
	}
	if d.Env["DROVER_RELEASE"] != fmt.Sprintf("v%d", d.Release) {
		return regions.Result{}, fmt.Errorf("deployment env lacks DROVER_RELEASE: %v", d.Env)
	}
	r.running = d.Release
	return regions.Result{URL: "http://" + r.name + ".test"}, nil
}

func (r *fakeRegion) Stop(ctx context.Context, app string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stops++
	if r.stopFailures > 0 {
		r.stopFailures--
		return fmt.Errorf("dial tcp 10.0.0.1:4646: connection refused: %w", regions.ErrUnavailable)
	}
	r.running = 0
	return nil
}

func (r *fakeRegion) RunTask(ctx context.Context, t regions.Task) (regions.TaskResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tasks = append(r.tasks, t)
	return regions.TaskResult{ExitCode: r.taskExit, Output: cmp.Or(r.taskOutput, "migrating\n")}, nil
}

func (r *fakeRegion) Status(ctx context.Context, app string) (regions.Status, error) {
	return regions.Status{Release: r.running, Running: r.running != 0}, nil
}

type regionMap map[string]*fakeRegion

func (m regionMap) Region(name string) (regions.Region, error) {
	if r, ok := m[name]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("region %q: %w", name, pipelines.ErrNotFound)
}

type fixture struct {
	testsuite.WorkflowTestSuite
	store   *sqlstore.Store
	builder *fakeBuilder
	regions regionMap
	slugs   *fakeSlugs
	acts    *workflows.Activities
	gh      *workflows.GitHubActivities
	runs    int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "drover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{
		store:   st,
		builder: &fakeBuilder{procfile: pipelines.Procfile{{Type: "web", Command: "bin/web"}, {Type: "release", Command: "bin/migrate"}}},
		regions: regionMap{"a": {name: "a"}, "b": {name: "b"}},
	}
	f.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	f.slugs = &fakeSlugs{dir: t.TempDir(), files: map[string]map[string]string{}}
	f.acts = &workflows.Activities{Store: st, Builder: f.builder, Slugs: f.slugs, Regions: f.regions, HeartbeatEvery: 50 * time.Millisecond,
		Git: repoTokens{"octo-org/hello": "gh-token"}, Logger: slog.New(slog.DiscardHandler)}
	f.gh = &workflows.GitHubActivities{Logger: slog.New(slog.DiscardHandler)}
	f.acts.GitHub = f.gh
	return f
}

func (f *fixture) env() *testsuite.TestWorkflowEnvironment {
	env := f.NewTestWorkflowEnvironment()
	workflows.Register(env, f.acts, f.gh)
	return env
}

func (f *fixture) deploy(t *testing.T, commit string) (workflows.DeployResult, error) {
	t.Helper()
	env := f.env()
	// Each deploy has its own ID, as in production, where the ledger tells
	// one deploy's release from another's by workflow ID and run.
	f.runs++
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: fmt.Sprintf("%s#%d", workflows.DeployWorkflowID(app, commit), f.runs)})
	env.ExecuteWorkflow(workflows.DeployWorkflow, workflows.DeployInput{App: app, DeployRequest: workflows.DeployRequest{
		Repo: "octo-org/hello", CloneURL: "file:///repo", Commit: commit, Regions: []string{"a", "b"}}})
	if !env.IsWorkflowCompleted() {
		t.Fatal("deploy did not complete")
	}
	var res workflows.DeployResult
	err := env.GetWorkflowError()
	if err == nil {
		if gerr := env.GetWorkflowResult(&res); gerr != nil {
			t.Fatal(gerr)
		}
	}
	return res, err
}

// ledger returns app's releases, oldest first, as "v1:c1:succeeded …",
// and the releases themselves, newest first.
func (f *fixture) ledger(t *testing.T, app string) (string, []pipelines.Release) {
	t.Helper()
	rs, err := f.store.Releases(context.Background(), app, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(rs) - 1; i >= 0; i-- {
		out = append(out, fmt.Sprintf("%s:%s:%s", rs[i].Name(), rs[i].Commit, rs[i].Status))
	}
	return strings.Join(out, " "), rs
}

func (f *fixture) release(t *testing.T, v int) pipelines.Release {
	t.Helper()
	r, err := f.store.Release(context.Background(), app, v)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func regionStatus(r pipelines.Release, region string) pipelines.RegionStatus {
	for _, st := range r.Regions {
		if st.Region == region {
			return st.Status
		}
	}
	return ""
}

func TestDeploySucceeds(t *testing.T) {
	f := newFixture(t)
	if _, err := f.store.SetConfigVars(context.Background(), app, map[string]string{"DATABASE_URL": "postgres://x"}, nil); err != nil {
		t.Fatal(err)
	}
	// A driver's progress reaches the ledger while the region deploys, at
	// most every ProgressEvery, counting from "deploying": a step at once
	// after it stays out.
	f.acts.ProgressEvery = 50 * time.Millisecond
	var early, seen pipelines.RegionState
	f.regions["b"].during = func(d regions.Deployment) {
		state := func() (out pipelines.RegionState) {
			r, err := f.store.Release(context.Background(), app, d.Release)
			if err == nil {
				for _, st := range r.Regions {
					if st.Region == "b" {
						out = st
					}
				}
			}
			return out
		}
		d.Progress("unpacking slug")
		early = state()
		time.Sleep(60 * time.Millisecond)
		d.Progress("web: 0/1 healthy")
		seen = state()
	}
	// Region b fetches slugs over HTTP, as Nomad clients do, with a grant.
	grants := slugs.NewGrants([]byte("config key"))
	f.acts.SlugURL = func(region, digest string) string {
		if region == "b" {
			return api.SlugURL("http://drover.internal:8080/", grants, digest, time.Now().Add(time.Hour))
		}
		return ""
	}
	res, err := f.deploy(t, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := url.Parse(f.regions["b"].lastSlug.URL); err != nil || u.Host != "drover.internal:8080" || u.Path != api.SlugPath(digest("c1")) {
		t.Errorf("region b slug URL = %q, want %s on drover.internal:8080 (%v)", f.regions["b"].lastSlug.URL, api.SlugPath(digest("c1")), err)
	} else if err := grants.Check(slugs.GrantDownload, digest("c1"), u.Query().Get("grant"), time.Now()); err != nil {
		t.Errorf("region b slug URL %q: %v", u, err)
	}
	if seen.Status != pipelines.RegionRunning || seen.Message != "web: 0/1 healthy" {
		t.Errorf("region b during its deploy = %+v, want running with the driver's progress", seen)
	}
	if early.Status != pipelines.RegionRunning || early.Message != "deploying" {
		t.Errorf("region b at once after its start = %+v, want running and still deploying", early)
	}
	if got := f.regions["a"].lastSlug; got.URL != "" || got.Path == "" {
		t.Errorf("region a slug = %+v, want a path and no URL", got)
	}
	if res.Version != 1 || res.Status != pipelines.ReleaseSucceeded || len(res.URLs) != 2 || res.URLs[1].URL != "http://b.test" {
		t.Fatalf("result = %+v", res)
	}
	r := f.release(t, 1)
	if r.Status != pipelines.ReleaseSucceeded || r.Slug != digest("c1") || r.Commit != "c1" || r.ConfigVersion != 1 {
		t.Fatalf("ledger v1 = %+v", r)
	}
	for _, region := range []string{"a", "b"} {
		if regionStatus(r, region) != pipelines.RegionSuccessful {
			t.Errorf("region %s = %q", region, regionStatus(r, region))
		}
	}
	if f.builder.token != "gh-token" {
		t.Errorf("build token = %q; the configured GitHub token must reach the fetch", f.builder.token)
	}
	if r.Formation["web"] != 1 {
		t.Errorf("formation = %v, want web=1", r.Formation)
	}
	// The release phase ran once, in the first region, with the config vars.
	a := f.regions["a"]
	if len(a.tasks) != 1 || a.tasks[0].Command != "bin/migrate" || a.tasks[0].Env["DATABASE_URL"] != "postgres://x" || len(f.regions["b"].tasks) != 0 {
		t.Fatalf("release phase tasks: a=%+v b=%+v", a.tasks, f.regions["b"].tasks)
	}
	if !strings.HasPrefix(r.Output, "release phase exited with code 0") {
		t.Fatalf("release output = %q", r.Output)
	}

	// The same commit again reuses its build.
	if _, err := f.deploy(t, "c1"); err != nil {
		t.Fatal(err)
	}
	if len(f.builder.builds) != 1 {
		t.Fatalf("builds = %v, want the slug of c1 reused", f.builder.builds)
	}
}

// TestRepoJobFileNeverReplacesTheStagesTemplate: the stage's job_template
// always reaches the region; a repository's drover.nomad.hcl rides along
// with the fields the stage lets it set, for the driver to lay over it.
func TestRepoJobFileNeverReplacesTheStagesTemplate(t *testing.T) {
	f := newFixture(t)
	f.acts.JobTemplates = func(app string) []byte { return []byte(`job "stage" {}`) }
	f.slugs.files[digest("c2")] = map[string]string{"drover.nomad.hcl": `job "repo" {}`}
	if _, err := f.deploy(t, "c1"); err != nil {
		t.Fatal(err)
	}
	if a := f.regions["a"]; a.lastTemplate != `job "stage" {}` || a.lastRepoTemplate != "" {
		t.Fatalf("c1 (no job file in the repo) got %q and %q", a.lastTemplate, a.lastRepoTemplate)
	}
	f.acts.RepoJobFields = func(app string) []string { return []string{"resources"} }
	if _, err := f.deploy(t, "c2"); err != nil {
		t.Fatal(err)
	}
	a := f.regions["a"]
	if a.lastTemplate != `job "stage" {}` || a.lastRepoTemplate != `job "repo" {}` || fmt.Sprint(a.lastRepoFields) != "[resources]" {
		t.Fatalf("c2 got template %q, repo job file %q, fields %v; want the stage's, the repo's, [resources]", a.lastTemplate, a.lastRepoTemplate, a.lastRepoFields)
	}
}

func TestDeployBuildFailureMakesNoRelease(t *testing.T) {
	f := newFixture(t)
	f.builder.err = &pipelines.ProcfileError{Line: 2, Text: "web npm start", Msg: "expected"}
	_, err := f.deploy(t, "c1")
	if err == nil || !strings.Contains(err.Error(), "Procfile line 2") {
		t.Fatalf("err = %v, want the Procfile line", err)
	}
	if len(f.builder.builds) != 1 {
		t.Fatalf("a broken Procfile was built %d times; it must not be retried", len(f.builder.builds))
	}
	rs, _ := f.store.Releases(context.Background(), app, 0)
	if len(rs) != 0 || len(f.regions["a"].deploys) != 0 {
		t.Fatalf("releases %v, deploys %v; want none", rs, f.regions["a"].deploys)
	}
	b, err := f.store.FindBuild(context.Background(), "octo-org/hello", "c1")
	if err != nil || b.Slug != "" || !strings.Contains(b.Output, "building c1") || !strings.Contains(b.Output, "Procfile line 2") {
		t.Fatalf("failed build kept as %+v, %v; want its output", b, err)
	}
	// Fixed and pushed again, the same commit builds again.
	f.builder.err = nil
	if _, err := f.deploy(t, "c1"); err != nil {
		t.Fatal(err)
	}
	if len(f.builder.builds) != 2 {
		t.Fatalf("builds = %v; a failed build must not be reused", f.builder.builds)
	}
}

func TestDeployReleasePhaseFailureChangesNoRegion(t *testing.T) {
	f := newFixture(t)
	f.regions["a"].taskExit = 3
	_, err := f.deploy(t, "c1")
	if err == nil || !strings.Contains(err.Error(), "exited with code 3") {
		t.Fatalf("err = %v", err)
	}
	r := f.release(t, 1)
	if r.Status != pipelines.ReleaseFailed || !strings.Contains(r.Reason, "exited with code 3") || !strings.Contains(r.Output, "migrating") {
		t.Fatalf("ledger v1 = %+v", r)
	}
	if len(f.regions["a"].deploys)+len(f.regions["b"].deploys) != 0 {
		t.Fatal("a region changed after the release phase failed")
	}
	if len(f.regions["a"].tasks) != 1 {
		t.Fatalf("release phase ran %d times, want once", len(f.regions["a"].tasks))
	}
}

// TestDeployRefusesCorruptSlug: a slug whose stored bytes do not match its
// digest (a tampered bucket object) fails the release at once with that
// reason, and no region runs it.
func TestDeployRefusesCorruptSlug(t *testing.T) {
	f := newFixture(t)
	f.slugs.corrupt = digest("c1")
	_, err := f.deploy(t, "c1")
	if err == nil || !strings.Contains(err.Error(), "not its name: refusing it") {
		t.Fatalf("err = %v", err)
	}
	r := f.release(t, 1)
	if r.Status != pipelines.ReleaseFailed || !strings.Contains(r.Reason, "content has sha256") {
		t.Fatalf("ledger v1 = %s %q", r.Status, r.Reason)
	}
	if n := len(f.regions["a"].deploys) + len(f.regions["b"].deploys) + len(f.regions["a"].tasks); n != 0 {
		t.Fatalf("%d region steps ran a corrupt slug", n)
	}
}

func TestDeployRegionFailureRollsBackEarlierRegions(t *testing.T) {
	f := newFixture(t)
	if _, err := f.deploy(t, "c1"); err != nil {
		t.Fatal(err)
	}
	f.regions["b"].failRelease = map[int]string{2: "web.1 exited with code 1: listen tcp: address already in use"}
	_, err := f.deploy(t, "c2")
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("err = %v", err)
	}
	if got := f.regions["a"].deploys; fmt.Sprint(got) != "[1 2 1]" {
		t.Fatalf("region a deploys = %v, want [1 2 1]: v2 then back to v1", got)
	}
	if f.regions["a"].running != 1 {
		t.Fatalf("region a runs v%d, want v1", f.regions["a"].running)
	}
	if got := f.regions["b"].deploys; fmt.Sprint(got) != "[1 2 1]" {
		t.Fatalf("region b deploys = %v, want [1 2 1]: the failed v2 is not retried, and b is made sure of v1", got)
	}
	r := f.release(t, 2)
	if r.Status != pipelines.ReleaseFailed || !strings.Contains(r.Reason, "region b") || !strings.Contains(r.Reason, "address already in use") {
		t.Fatalf("v2 = %s %q", r.Status, r.Reason)
	}
	if regionStatus(r, "a") != pipelines.RegionReverted || regionStatus(r, "b") != pipelines.RegionFailed {
		t.Fatalf("v2 regions = %+v", r.Regions)
	}
	cur, err := f.store.CurrentRelease(context.Background(), app)
	if err != nil || cur.Version != 1 {
		t.Fatalf("current = v%d, %v; want v1", cur.Version, err)
	}
}

// TestRolloutStrategy runs 3 regions under each on_failure policy with the
// failure in the first, middle and last region, and checks which release
// each region ends on and what the ledger says.
func TestRolloutStrategy(t *testing.T) {
	regions := []string{"a", "b", "c"}
	tests := []struct {
		onFailure string
		failIn    string
		// ends is each region's release after v2's rollout, in a, b, c order.
		ends string
		// status is v2's final status; states its a, b, c region states.
		status pipelines.ReleaseStatus
		states string
	}{
		{pipelines.FailAll, "a", "1 1 1", pipelines.ReleaseFailed, "failed pending pending"},
		{pipelines.FailAll, "b", "1 1 1", pipelines.ReleaseFailed, "reverted failed pending"},
		{pipelines.FailAll, "c", "1 1 1", pipelines.ReleaseFailed, "reverted reverted failed"},
		{pipelines.FailLocal, "a", "1 2 2", pipelines.ReleaseSucceeded, "failed successful successful"},
		{pipelines.FailLocal, "b", "2 1 2", pipelines.ReleaseSucceeded, "successful failed successful"},
		{pipelines.FailLocal, "c", "2 2 1", pipelines.ReleaseSucceeded, "successful successful failed"},
		{pipelines.FailStop, "a", "1 1 1", pipelines.ReleaseFailed, "failed pending pending"},
		{pipelines.FailStop, "b", "2 1 1", pipelines.ReleaseFailed, "successful failed pending"},
		{pipelines.FailStop, "c", "2 2 1", pipelines.ReleaseFailed, "successful successful failed"},
	}
	for _, tt := range tests {
		for _, parallel := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/fail-in-%s/parallel-%d", tt.onFailure, tt.failIn, parallel), func(t *testing.T) {
				f := newFixture(t)
				f.regions["c"] = &fakeRegion{name: "c"}
				run := func(commit string) error {
					env := f.env()
					f.runs++
					env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: fmt.Sprintf("deploy-%d", f.runs)})
					env.ExecuteWorkflow(workflows.DeployWorkflow, workflows.DeployInput{App: app, DeployRequest: workflows.DeployRequest{
						Repo: "octo-org/hello", CloneURL: "file:///r", Commit: commit, Regions: regions, MaxParallel: parallel, OnFailure: tt.onFailure}})
					return env.GetWorkflowError()
				}
				if err := run("c1"); err != nil {
					t.Fatal(err)
				}
				f.regions[tt.failIn].failRelease = map[int]string{2: "web.1 exited with code 1"}
				err := run("c2")
				if (err != nil) != (tt.status == pipelines.ReleaseFailed) {
					t.Fatalf("workflow error = %v, want failed=%v", err, tt.status == pipelines.ReleaseFailed)
				}
				var ends, states []string
				v2 := f.release(t, 2)
				for _, r := range regions {
					ends = append(ends, fmt.Sprint(f.regions[r].running))
					states = append(states, string(regionStatus(v2, r)))
				}
				want := tt.ends
				wantStates := tt.states
				if parallel == 3 && tt.onFailure != pipelines.FailLocal {
					// One wave: every region is tried before the failure is known.
					want, wantStates = parallelOutcome(tt.onFailure, tt.failIn, regions)
				}
				if got := strings.Join(ends, " "); got != want {
					t.Errorf("regions a b c run %s, want %s", got, want)
				}
				if got := strings.Join(states, " "); got != wantStates {
					t.Errorf("v2 region states %s, want %s", got, wantStates)
				}
				if v2.Status != tt.status {
					t.Errorf("v2 %s (%s), want %s", v2.Status, v2.Reason, tt.status)
				}
				if !strings.Contains(v2.Reason, "region "+tt.failIn) {
					t.Errorf("v2 reason %q does not name region %s", v2.Reason, tt.failIn)
				}
			})
		}
	}
}

// parallelOutcome is where regions end when all three roll in one wave.
func parallelOutcome(onFailure, failIn string, regions []string) (ends, states string) {
	var e, s []string
	for _, r := range regions {
		switch {
		case r == failIn:
			e, s = append(e, "1"), append(s, "failed")
		case onFailure == pipelines.FailAll:
			e, s = append(e, "1"), append(s, "reverted")
		default: // stop: the wave's other regions already moved
			e, s = append(e, "2"), append(s, "successful")
		}
	}
	return strings.Join(e, " "), strings.Join(s, " ")
}

func TestUnreachableRegionIsRetriedThenFails(t *testing.T) {
	f := newFixture(t)
	if _, err := f.deploy(t, "c1"); err != nil {
		t.Fatal(err)
	}
	f.regions["b"].unreachable = true
	_, err := f.deploy(t, "c2")
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want the region's last error", err)
	}
	tries := 0
	for _, v := range f.regions["b"].deploys {
		if v == 2 {
			tries++
		}
	}
	if tries != 5 {
		t.Fatalf("region b was tried %d times for v2, want 5", tries)
	}
	v2 := f.release(t, 2)
	var b pipelines.RegionState
	for _, st := range v2.Regions {
		if st.Region == "b" {
			b = st
		}
	}
	if b.Status != pipelines.RegionFailed || !strings.Contains(b.Message, "attempt 5") || !strings.Contains(b.Message, "connection refused") {
		t.Fatalf("region b = %+v, want failed with its last attempt's error", b)
	}
	if f.regions["a"].running != 1 {
		t.Fatalf("region a runs v%d, want v1 back", f.regions["a"].running)
	}
}

func TestFirstDeployFailureStopsEarlierRegions(t *testing.T) {
	f := newFixture(t)
	f.regions["b"].failRelease = map[int]string{1: "web never answered"}
	if _, err := f.deploy(t, "c1"); err == nil {
		t.Fatal("want failure")
	}
	if f.regions["a"].stops != 1 || f.regions["a"].running != 0 {
		t.Fatalf("region a: stops=%d running=v%d; with no earlier release it must be stopped", f.regions["a"].stops, f.regions["a"].running)
	}
}

func TestAppQueueSupersedesWaitingPushes(t *testing.T) {
	f := newFixture(t)
	env := f.env()
	// Builds take a minute of workflow time, so pushes pile up behind c1.
	env.OnActivity(f.acts.Build, mock.Anything, mock.Anything).After(time.Minute).Return(
		func(ctx context.Context, in workflows.BuildInput) (workflows.BuildResult, error) {
			f.builder.mu.Lock()
			f.builder.builds = append(f.builder.builds, in.Commit)
			f.builder.mu.Unlock()
			return workflows.BuildResult{Slug: digest(in.Commit), Procfile: pipelines.Procfile{{Type: "web", Command: "bin/web"}}}, nil
		})
	push := func(c string) func() {
		return func() {
			env.SignalWorkflow(workflows.SignalDeploy, workflows.DeployRequest{Repo: "octo-org/hello", CloneURL: "file:///r", Commit: c, Regions: []string{"a"}})
		}
	}
	env.RegisterDelayedCallback(push("c1"), 0)
	env.RegisterDelayedCallback(push("c2"), 10*time.Second)
	env.RegisterDelayedCallback(push("c1"), 15*time.Second) // redelivered: nothing new
	env.RegisterDelayedCallback(push("c3"), 20*time.Second)
	env.RegisterDelayedCallback(push("c4"), 30*time.Second)
	env.RegisterDelayedCallback(push("c4"), 90*time.Second) // c4 is running now: nothing new
	env.ExecuteWorkflow(workflows.AppWorkflow, workflows.AppInput{App: app})
	if !env.IsWorkflowCompleted() {
		t.Fatal("app workflow did not end after its idle timeout")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(f.builder.builds); got != "[c1 c4]" {
		t.Fatalf("built %s, want [c1 c4]: c2 and c3 waited and were superseded", got)
	}
	got, rs := f.ledger(t, app)
	want := "v1:c1:succeeded v2:c2:superseded v3:c3:superseded v4:c4:succeeded"
	if got != want {
		t.Fatalf("ledger = %s\nwant     %s", got, want)
	}
	if !strings.Contains(rs[1].Description, "superseded by c4") {
		t.Fatalf("v3 description = %q", rs[1].Description)
	}
}

func TestAppQueueRetriesAFailedCommitWhenPushedAgain(t *testing.T) {
	f := newFixture(t)
	f.regions["a"].failRelease = map[int]string{1: "boom"}
	env := f.env()
	push := func(c string) func() {
		return func() {
			env.SignalWorkflow(workflows.SignalDeploy, workflows.DeployRequest{Repo: "octo-org/hello", CloneURL: "file:///r", Commit: c, Regions: []string{"a"}})
		}
	}
	env.RegisterDelayedCallback(push("c1"), 0)
	env.RegisterDelayedCallback(push("c1"), time.Hour)
	env.ExecuteWorkflow(workflows.AppWorkflow, workflows.AppInput{App: app})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	r := f.release(t, 2)
	if r.Commit != "c1" || r.Status != pipelines.ReleaseSucceeded {
		t.Fatalf("v2 = %+v; a failed commit pushed again must deploy again", r)
	}
}

func TestIDsRoundTrip(t *testing.T) {
	if a, ok := workflows.ParseAppWorkflowID(workflows.AppWorkflowID("hello")); !ok || a != "hello" {
		t.Fatal("app ID")
	}
	a, c, ok := workflows.ParseDeployWorkflowID(workflows.DeployWorkflowID("hello", "abc"))
	if !ok || a != "hello" || c != "abc" {
		t.Fatal("deploy ID")
	}
	if a, ok := workflows.ParseProcessesWorkflowID(workflows.ProcessesWorkflowID("hello", "n1")); !ok || a != "hello" {
		t.Fatal("ps ID")
	}
	for _, bad := range []string{"", "app/", "app/a/b", "deploy/x", "ps/hello", "ps//n", "ps/hello/n/x"} {
		if _, ok := workflows.ParseProcessesWorkflowID(bad); ok {
			t.Errorf("ParseProcessesWorkflowID(%q) ok", bad)
		}
		if _, ok := workflows.ParseAppWorkflowID(bad); ok && bad != "deploy/x" {
			t.Errorf("ParseAppWorkflowID(%q) ok", bad)
		}
		if _, _, ok := workflows.ParseDeployWorkflowID(bad); ok {
			t.Errorf("ParseDeployWorkflowID(%q) ok", bad)
		}
	}
}

// repoTokens hands git one token per repository, as a GitHub App's
// installations do.
type repoTokens map[string]string

func (r repoTokens) Token(_ context.Context, repo string) (string, error) { return r[repo], nil }

// TestDeployOutsideTheConfigIsRefused: a deploy request that reaches the
// workflows by another door than the webhook and the API (anyone who can
// start a workflow in the namespace) cannot build another repository or
// release into a region its stage does not list.
func TestDeployOutsideTheConfigIsRefused(t *testing.T) {
	tests := []struct {
		name    string
		repo    string
		regions []string
		want    string
	}{
		{"another repository", "mallory/evil", []string{"a"}, "not mallory/evil"},
		{"a region the stage does not list", "octo-org/hello", []string{"a", "b"}, `region "b" is not one of`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			cfg, err := pipelines.ParseConfig("drover.yaml", []byte("regions: { a: { driver: local }, b: { driver: local } }\npipelines:\n  hello:\n    repo: octo-org/hello\n    stages:\n      staging: { app: hello-staging, branch: main, regions: [a] }\n"))
			if err != nil {
				t.Fatal(err)
			}
			f.acts.CheckDeploy = cfg.CheckDeploy
			env := f.env()
			env.ExecuteWorkflow(workflows.DeployWorkflow, workflows.DeployInput{App: app, DeployRequest: workflows.DeployRequest{
				Repo: tt.repo, CloneURL: "file:///r", Commit: "c1", Regions: tt.regions}})
			if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if n := len(f.regions["a"].deploys) + len(f.regions["b"].deploys); n != 0 {
				t.Fatalf("%d region deploys", n)
			}
		})
	}
}

// TestBuildFetchesTheConfiguredSource: whatever clone URL a request
// carries (a webhook payload's, signed or not), the build fetches the
// repository drover.yaml names, and GitHub's token goes only to GitHub.
func TestBuildFetchesTheConfiguredSource(t *testing.T) {
	tests := []struct {
		name, pipeline string
		wantURL        string
		wantToken      string
	}{
		{"the repository on GitHub", "    repo: octo-org/hello\n", "https://github.com/octo-org/hello.git", "gh-token"},
		{"a configured local source gets no token", "    repo: octo-org/hello\n    source: 'file:///srv/hello'\n", "file:///srv/hello", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			cfg, err := pipelines.ParseConfig("drover.yaml", []byte("regions: { a: { driver: local } }\npipelines:\n  hello:\n"+tt.pipeline+"    stages:\n      staging: { app: hello-staging, branch: main, regions: [a] }\n"))
			if err != nil {
				t.Fatal(err)
			}
			f.acts.Sources = cfg.SourceOf
			env := f.env()
			env.ExecuteWorkflow(workflows.DeployWorkflow, workflows.DeployInput{App: app, DeployRequest: workflows.DeployRequest{
				Repo: "octo-org/hello", CloneURL: "https://evil.example.com/steal.git", Commit: "c1", Regions: []string{"a"}}})
			if err := env.GetWorkflowError(); err != nil {
				t.Fatal(err)
			}
			if f.builder.url != tt.wantURL || f.builder.token != tt.wantToken {
				t.Fatalf("build fetched %q with token %q; want %q with %q", f.builder.url, f.builder.token, tt.wantURL, tt.wantToken)
			}
		})
	}
}

// TestOnlyStepsAreActivities: registering Activities registers its
// steps, not the helpers others call (turning a release into a
// deployment), which nothing should be able to schedule.
func TestOnlyStepsAreActivities(t *testing.T) {
	f := newFixture(t)
	env := f.NewTestActivityEnvironment()
	env.RegisterActivity(f.acts)
	if _, err := env.ExecuteActivity("Deployment", pipelines.Release{App: app, Version: 1}, "a"); err == nil || !strings.Contains(err.Error(), "unable to find activityType=Deployment") {
		t.Fatalf("Deployment as an activity: %v; want it not registered", err)
	}
	if _, err := env.ExecuteActivity("RollbackTarget", workflows.SourceInput{App: app}); err == nil || !strings.Contains(err.Error(), "no earlier succeeded release") {
		t.Fatalf("a step: %v; want it run", err)
	}
}

// TestReleasePhaseRunsOnceWhateverItsOutput: the release phase's
// completion is a fact of its own, not a header of its output, which the
// ledger keeps only the last 1 MiB of: a retry after a release phase
// that printed more finds it ran, and runs nothing again.
func TestReleasePhaseRunsOnceWhateverItsOutput(t *testing.T) {
	for _, exit := range []int{0, 3} {
		t.Run(fmt.Sprintf("exit %d", exit), func(t *testing.T) {
			f := newFixture(t)
			f.regions["a"].taskOutput = strings.Repeat("applying migration 0042\n", 2<<20/24)
			f.regions["a"].taskExit = exit
			f.deploy(t, "c1")
			env := f.NewTestActivityEnvironment()
			env.RegisterActivity(f.acts)
			_, err := env.ExecuteActivity(f.acts.ReleasePhase, workflows.ReleasePhaseInput{App: app, Version: 1, Region: "a"})
			if (exit == 0) != (err == nil) {
				t.Fatalf("retried release phase: %v", err)
			}
			if n := len(f.regions["a"].tasks); n != 1 {
				t.Fatalf("release phase ran %d times", n)
			}
		})
	}
}

type fakeCollector struct {
	stored  []slugs.Stored
	deleted []string
}

func (c *fakeCollector) List(context.Context) ([]slugs.Stored, error) { return c.stored, nil }
func (c *fakeCollector) Delete(_ context.Context, digest string) error {
	c.deleted = append(c.deleted, digest)
	return nil
}

// TestCollectDeletesOnlyWhatNothingKeeps: the collect schedule's workflow
// deletes slugs no kept release uses, sparing the ones the ledger keeps
// and new ones a release may not name yet.
func TestCollectDeletesOnlyWhatNothingKeeps(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "c1")
	old, young := time.Now().Add(-48*time.Hour), time.Now().Add(-time.Minute)
	col := &fakeCollector{stored: []slugs.Stored{
		{Digest: digest("c1"), Modified: old},         // v1's: kept
		{Digest: digest("gone"), Modified: old},       // nothing names it
		{Digest: digest("building"), Modified: young}, // a build's, not released yet
	}}
	f.acts.SlugCollector = col
	env := f.env()
	env.ExecuteWorkflow(workflows.CollectWorkflow, workflows.CollectWatch(pipelines.Retention{}).Arg)
	var res workflows.CollectResult
	if err := env.GetWorkflowError(); err != nil || env.GetWorkflowResult(&res) != nil {
		t.Fatal(err)
	}
	if strings.Join(col.deleted, ",") != digest("gone") || res.Slugs != 1 || res.Kept != 1 {
		t.Fatalf("deleted %v (%+v); want only the unreferenced old slug", col.deleted, res)
	}
}
