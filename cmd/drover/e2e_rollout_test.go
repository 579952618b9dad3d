package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/api"
	"github.com/drover/drover/pipelines"
)

// rolloutCase is one stage's rollout policy in TestFaultRegionFailsMidRollout.
type rolloutCase struct {
	app         string
	onFailure   string // as drover.yaml says it
	maxParallel int
}

// expectRollout is what the README's rollout section promises when a
// release fails in region failIn of regions (rolled in waves of
// maxParallel): the release each region ends on ("new" or "old"), each
// region's state in the ledger, and whether the release succeeds.
func expectRollout(onFailure string, maxParallel int, regions []string, failIn string) (ends, states []string, ok bool) {
	failWave := -1
	for i, r := range regions {
		if r == failIn {
			failWave = i / maxParallel
		}
	}
	for i, r := range regions {
		wave := i / maxParallel
		switch {
		case r == failIn:
			ends, states = append(ends, "old"), append(states, "failed")
		case onFailure == pipelines.FailLocal:
			// fail_local: the failed region goes back, every other carries on.
			ends, states = append(ends, "new"), append(states, "successful")
		case wave > failWave:
			// fail_all and stop never start a wave after the failed one.
			ends, states = append(ends, "old"), append(states, "pending")
		case onFailure == pipelines.FailAll:
			// fail_all: every region touched goes back.
			ends, states = append(ends, "old"), append(states, "reverted")
		default:
			// stop: the regions that made it stay on the new release.
			ends, states = append(ends, "new"), append(states, "successful")
		}
	}
	return ends, states, onFailure == pipelines.FailLocal
}

// TestFaultRegionFailsMidRollout runs drover dev with three local regions
// and one stage per rollout policy (on_failure fail_all, fail_local and
// stop, each with max_parallel 1 and 2). For each stage and each region, a
// config change makes the app crash in that region only; the test checks
// that exactly the documented regions end reverted, the others on the
// release they should run, and that the ledger says so: the release's
// status, each region's state, and the failed region named in its reason.
func TestFaultRegionFailsMidRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end fault suite; skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t.Setenv(secretEnv, "e2e-secret")
	repo := newGitRepo(t)
	regions := []string{"local-a", "local-b", "local-c"}
	var cases []rolloutCase
	for _, f := range []struct{ name, yaml string }{{pipelines.FailAll, "fail_all"}, {pipelines.FailLocal, "fail_local"}, {pipelines.FailStop, `""`}} {
		for _, p := range []int{1, 2} {
			cases = append(cases, rolloutCase{app: fmt.Sprintf("%s-%d", strings.ReplaceAll(f.name, "_", "-"), p), onFailure: f.yaml, maxParallel: p})
		}
	}
	var yaml strings.Builder
	fmt.Fprintf(&yaml, "github: { webhook_secret_env: %s }\nregions:\n", secretEnv)
	for _, r := range regions {
		fmt.Fprintf(&yaml, "  %s: { driver: local }\n", r)
	}
	yaml.WriteString("pipelines:\n")
	for _, c := range cases {
		// A repository per pipeline, all built from one source: a push
		// deploys to one stage.
		fmt.Fprintf(&yaml, "  %s:\n    repo: octo-org/%s\n    source: file://%s\n    stages:\n      staging: { app: %s, branch: main, regions: [%s], rollout: { max_parallel: %d, on_failure: %s } }\n",
			c.app, c.app, repo.dir, c.app, strings.Join(regions, ", "), c.maxParallel, c.onFailure)
	}
	config := filepath.Join(t.TempDir(), "drover.yaml")
	if err := os.WriteFile(config, []byte(yaml.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	d, s := startDev(t, ctx, config, t.TempDir())
	defer d.Close()

	// A push to each repository deploys v1 of its stage: the first alone,
	// so the others' builds find the Go build cache warm.
	c1 := repo.commit("steady", "web: bin/web\n")
	for i, c := range cases {
		if code, body := s.push(ctx, "rollout-"+c.app, pushPayloadFor(t, "octo-org/"+c.app, repo.dir, c1)); code != http.StatusAccepted {
			t.Fatalf("push: %d %s", code, body)
		}
		if i == 0 {
			s.waitRelease(ctx, c.app, 1)
		}
	}
	t0 := time.Now()
	for _, c := range cases {
		if v1 := s.waitRelease(ctx, c.app, 1); v1.Status != pipelines.ReleaseSucceeded {
			t.Fatalf("%s v1 = %s: %s", c.app, v1.Status, v1.Reason)
		}
	}
	t.Logf("v1 everywhere in %v", time.Since(t0))
	var mu sync.Mutex
	var table []string
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows := checkRolloutPolicy(ctx, t, s, c, regions)
			mu.Lock()
			table = append(table, rows...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("a region failing mid-rollout, 3 regions:\n  %-12s %-10s %-8s %-28s %-9s %s\n  %s", "on_failure", "parallel", "fails in", "regions a b c end on", "release", "as documented",
		strings.Join(table, "\n  "))
}

var servedVersion = regexp.MustCompile(` v(\d+)\s*$`)

// checkRolloutPolicy fails each region of one stage in turn and checks
// what the rollout did; it returns a table row per region.
func checkRolloutPolicy(ctx context.Context, t *testing.T, s *stack, c rolloutCase, regions []string) []string {
	var rows []string
	policy := c.onFailure
	if policy == `""` {
		policy = pipelines.FailStop
	}
	release := func(vars string) pipelines.Release {
		if err := s.patch(ctx, "/api/v1/apps/"+c.app+"/config", vars); err != nil {
			t.Errorf("%s: config: %v", c.app, err)
			return pipelines.Release{}
		}
		var op api.Operation
		if err := s.call(ctx, "POST", "/api/v1/apps/"+c.app+"/releases", `{"description": "rollout fault"}`, &op); err != nil {
			t.Errorf("%s: release: %v", c.app, err)
			return pipelines.Release{}
		}
		for {
			for _, r := range s.releases(ctx, c.app) {
				if strings.HasPrefix(r.Operation, op.ID+"@") && r.Status.Terminal() {
					return r
				}
			}
			select {
			case <-ctx.Done():
				t.Errorf("%s: operation %s never ended", c.app, op.ID)
				return pipelines.Release{}
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	for _, failIn := range regions {
		before := release(`{"CRASH_IN_REGION": null}`)
		if before.Status != pipelines.ReleaseSucceeded {
			t.Errorf("%s: the healthy release v%d ended %s: %s", c.app, before.Version, before.Status, before.Reason)
			return rows
		}
		bad := release(fmt.Sprintf(`{"CRASH_IN_REGION": %q}`, failIn))
		wantEnds, wantStates, wantOK := expectRollout(policy, c.maxParallel, regions, failIn)
		var info api.AppInfo
		if err := s.get(ctx, "/api/v1/apps/"+c.app, &info); err != nil {
			t.Errorf("%s: %v", c.app, err)
			return rows
		}
		served := map[string]string{}
		var answers []string
		for _, w := range info.Where {
			body, err := httpGet(w.URL)
			answers = append(answers, fmt.Sprintf("%s %s: %q %v", w.Region, w.URL, strings.TrimSpace(body), err))
			m := servedVersion.FindStringSubmatch(strings.TrimSpace(body))
			switch {
			case err != nil || m == nil:
				served[w.Region] = "down"
			case m[1] == strconv.Itoa(bad.Version):
				served[w.Region] = "new"
			case m[1] == strconv.Itoa(before.Version):
				served[w.Region] = "old"
			default:
				served[w.Region] = "v" + m[1]
			}
			// What the API says the region runs is what it serves.
			if m != nil && m[1] != strconv.Itoa(w.Release) {
				t.Errorf("%s: the API says %s runs v%d; it serves v%s", c.app, w.Region, w.Release, m[1])
			}
		}
		var ends, states []string
		for _, r := range regions {
			ends = append(ends, served[r])
			st := "?"
			for _, rs := range bad.Regions {
				if rs.Region == r {
					st = string(rs.Status)
				}
			}
			states = append(states, st)
		}
		okAsDocumented := true
		what := fmt.Sprintf("%s (parallel %d) failing in %s", policy, c.maxParallel, failIn)
		if got, want := strings.Join(ends, " "), strings.Join(wantEnds, " "); got != want {
			t.Errorf("%s: regions end on %s, want %s; they answer %s", what, got, want, strings.Join(answers, "; "))
			okAsDocumented = false
		}
		if got, want := strings.Join(states, " "), strings.Join(wantStates, " "); got != want {
			t.Errorf("%s: the ledger's region states are %s, want %s", what, got, want)
			okAsDocumented = false
		}
		if (bad.Status == pipelines.ReleaseSucceeded) != wantOK {
			t.Errorf("%s: v%d %s, want succeeded=%v (%s)", what, bad.Version, bad.Status, wantOK, bad.Reason)
			okAsDocumented = false
		}
		if !strings.Contains(bad.Reason, "region "+failIn) || !strings.Contains(bad.Reason, "crashing on purpose") {
			t.Errorf("%s: reason %q does not name the region and the app's words", what, bad.Reason)
			okAsDocumented = false
		}
		if wantCurrent := map[bool]int{true: bad.Version, false: before.Version}[wantOK]; info.Current == nil || info.Current.Version != wantCurrent {
			t.Errorf("%s: the ledger's current release is %v, want v%d", what, info.Current, wantCurrent)
			okAsDocumented = false
		}
		rows = append(rows, fmt.Sprintf("%-12s %-10d %-8s %-28s %-9s %v", policy, c.maxParallel, failIn, strings.Join(ends, " ")+" ("+strings.Join(states, ",")+")", bad.Status, okAsDocumented))
	}
	return rows
}

// TestE2EPromoteAsSoonAsTheLastEnds: a promotion whose operation reads
// succeeded has ended, so the next one is accepted at once. (The app's
// queue hears of the end a workflow task later; asking it alone answered
// 409 "is running" in that gap, which a script promoting twice in a row,
// or bench/run, would hit.)
func TestE2EPromoteAsSoonAsTheLastEnds(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts drover dev; skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Setenv(secretEnv, "e2e-secret")
	repo := newGitRepo(t)
	_, s := startDev(t, ctx, writeConfig(t, repo.dir), t.TempDir())
	c := repo.commit("hello", "web: bin/web\n")
	if code, body := s.push(ctx, "d-1", pushPayload(t, repo.dir, c)); code != http.StatusAccepted {
		t.Fatalf("push: %d %s", code, body)
	}
	s.waitRelease(ctx, "hello-staging", 1)
	for range 12 {
		s.operation(ctx, http.MethodPost, "/api/v1/pipelines/hello/promote", "")
	}
	if rs := s.releases(ctx, "hello"); len(rs) != 12 {
		t.Fatalf("12 promotions made %d releases", len(rs))
	}
}
