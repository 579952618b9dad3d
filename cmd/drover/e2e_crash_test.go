package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/api"
	"github.com/drover/drover/gh/ghtest"
	"github.com/drover/drover/pipelines"
)

// crashesPerStep is how many times TestFaultCrashAtEveryStep kills drover
// at each step: DROVER_FAULT_CRASHES, else 1, which keeps the suite
// within CI's time (each kill costs a restart and a deploy, about 17 s);
// raise it for a fault run of its own.
// stepsToCrash are the steps DROVER_FAULT_STEPS names (comma-separated,
// e.g. "promote,rollback"), else every step.
func stepsToCrash(all []string) map[string]bool {
	picked := map[string]bool{}
	for _, st := range strings.Split(os.Getenv("DROVER_FAULT_STEPS"), ",") {
		if st = strings.TrimSpace(st); slices.Contains(all, st) {
			picked[st] = true
		}
	}
	if len(picked) == 0 {
		for _, st := range all {
			picked[st] = true
		}
	}
	return picked
}

func crashesPerStep(t *testing.T) int {
	if n, err := strconv.Atoi(os.Getenv("DROVER_FAULT_CRASHES")); err == nil && n > 0 {
		return n
	}
	return 1
}

// TestFaultCrashAtEveryStep kills drover dev with SIGKILL at each step of
// a deploy (its build, its wait for CI, its release phase, its rollout,
// its finish) and of a promotion and a rollback, at a jittered moment,
// starts it again on the same data dir, and counts: operations lost (never
// ending in the ledger, or a deploy whose GitHub deployment never hears
// how it ended), doubled (two releases for one operation, or the release
// phase run twice), and regions left answering with another release than
// the ledger's current one. All three must stay 0.
func TestFaultCrashAtEveryStep(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end fault suite; skipped by -short")
	}
	n := crashesPerStep(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n)*7*time.Minute)
	defer cancel()
	repo := newGitRepo(t)
	// GitHub is in the loop: staging waits for CI, and every deploy is
	// reported as a GitHub deployment, so a crash can land in the wait and
	// in the report.
	gh := newGitHubStandIn(t, "file://"+repo.dir)
	t.Setenv("DROVER_E2E_GH_TOKEN", ghtest.Token)
	dev := startChildDev(ctx, t, writeConfigWithGitHub(t, repo.dir, gh.URL))
	s, data := dev.stack, dev.data
	crash := func() { dev.restart(ctx) }
	jitter := func(max time.Duration) { time.Sleep(rand.N(max)) }
	releaseOf := func(app string, pick func(pipelines.Release) bool) (pipelines.Release, int) {
		var found pipelines.Release
		count := 0
		for _, r := range s.releases(ctx, app) {
			if pick(r) {
				found = r
				count++
			}
		}
		return found, count
	}
	// regionsAgree counts the regions whose app does not answer with the
	// ledger's current release.
	regionsAgree := func(app string) int {
		var info api.AppInfo
		if err := s.get(ctx, "/api/v1/apps/"+app, &info); err != nil || info.Current == nil {
			return len(info.Where) + 1
		}
		off := 0
		for _, w := range info.Where {
			body, err := httpGet(w.URL)
			if err != nil || !strings.Contains(body, fmt.Sprintf("from %s v%d", app, info.Current.Version)) {
				off++
			}
		}
		return off
	}
	type tally struct{ runs, lost, doubled, regions int }
	results := map[string]*tally{}
	steps := []string{"build", "CI wait", "release phase", "rollout", "finish", "promote", "rollback"}
	for _, st := range steps {
		results[st] = &tally{}
	}
	// A fault run of its own may kill at some steps only.
	crashAt := stepsToCrash(steps)
	waitFinal := func(app string, pick func(pipelines.Release) bool) (pipelines.Release, bool) {
		deadline := time.Now().Add(90 * time.Second)
		for time.Now().Before(deadline) {
			if r, c := releaseOf(app, pick); c > 0 && r.Status.Terminal() {
				return r, true
			}
			time.Sleep(200 * time.Millisecond)
		}
		return pipelines.Release{}, false
	}
	// succeeded says the commit's staging deployment on GitHub ended in
	// success, as the deploy's last step reports it.
	succeeded := func(c string) bool {
		st := gh.deploymentStates(c, "staging")
		return len(st) > 0 && strings.HasPrefix(st[len(st)-1], "success")
	}
	// reported waits for succeeded. A report cut off by the kill is retried
	// once its start-to-close timeout passes, so this waits longer than that.
	reported := func(c string) bool {
		deadline := time.Now().Add(60 * time.Second)
		for !succeeded(c) {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(100 * time.Millisecond)
		}
		return true
	}
	ofCommit := func(c string) func(pipelines.Release) bool {
		return func(r pipelines.Release) bool { return r.Commit == c }
	}
	push := 0
	// finishedFirst counts the kills during "finish" that came after GitHub
	// had already heard of the success, the step's last write.
	finishedFirst := 0
	// deploy pushes a commit, waits until its deploy is at step (until, polled
	// every 10 ms), waits up to maxJitter more, and kills drover there.
	deploy := func(step string, maxJitter time.Duration, ciGreen bool, until func(commit string) bool) {
		push++
		c := repo.commit(fmt.Sprintf("push %d", push), "web: bin/web\nrelease: echo run $(od -An -N8 -tx8 /dev/urandom); sleep 1; echo migrated\n")
		if ciGreen {
			gh.setCI(c, "success")
		} else {
			gh.setCI(c, "")
		}
		gh.setHead(c, fmt.Sprintf("push %d", push))
		if code, body := s.push(ctx, fmt.Sprintf("crash-%d", push), pushPayload(t, repo.dir, c)); code != http.StatusAccepted {
			t.Fatalf("push: %d %s", code, body)
		}
		for !until(c) {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s of push %d", step, push)
			}
			time.Sleep(10 * time.Millisecond)
		}
		jitter(maxJitter)
		if step == "finish" && succeeded(c) {
			finishedFirst++
		}
		crash()
		gh.SetWriteLatency(0)
		if !ciGreen {
			// CI passes while drover is down; its webhook reaches the new
			// process.
			gh.setCI(c, "success")
			if code, body := s.webhook(ctx, "check_suite", fmt.Sprintf("crash-cs-%d", push), checkSuiteFor(t, c)); code != http.StatusAccepted {
				t.Fatalf("check_suite: %d %s", code, body)
			}
		}
		tl := results[step]
		tl.runs++
		r, ok := waitFinal("hello-staging", ofCommit(c))
		if !ok {
			tl.lost++
			t.Errorf("%s: the push of %s never ended", step, c[:7])
			return
		}
		if _, count := releaseOf("hello-staging", ofCommit(c)); count != 1 || strings.Count(r.Output, "run ") > 1 {
			tl.doubled++
			t.Errorf("%s: %d releases of %s, release phase output %q", step, count, c[:7], r.Output)
		}
		if r.Status != pipelines.ReleaseSucceeded {
			t.Errorf("%s: the push of %s ended %s: %s", step, c[:7], r.Status, r.Reason)
		}
		if !reported(c) {
			tl.lost++
			t.Errorf("%s: GitHub never heard that %s was deployed: deployment states %v", step, c[:7], gh.deploymentStates(c, "staging"))
		}
		if off := regionsAgree("hello-staging"); off != 0 {
			tl.regions += off
			t.Errorf("%s: %d regions answer with another release than the ledger's", step, off)
		}
	}
	building := func(string) bool {
		entries, _ := os.ReadDir(filepath.Join(data, "builds"))
		return len(entries) > 0
	}
	// waitingForCI: the deploy has read the commit's CI once since the push
	// (and found it running).
	var checkReads int
	waitingForCI := func(string) bool { return gh.Reads("check-runs") > checkReads }
	releasing := func(string) bool {
		rs := s.releases(ctx, "hello-staging")
		if len(rs) == 0 {
			return false
		}
		b, _ := os.ReadFile(filepath.Join(data, "regions", "local-a", "tasks", fmt.Sprintf("hello-staging-v%d-release", rs[0].Version), "output"))
		return bytes.HasPrefix(b, []byte("run "))
	}
	rollingOut := func(c string) bool {
		r, count := releaseOf("hello-staging", ofCommit(c))
		if count == 0 || r.Status.Terminal() {
			return false
		}
		for _, st := range r.Regions {
			if st.Status == pipelines.RegionRunning {
				return true
			}
		}
		return false
	}
	// finishing: the ledger has the release succeeded; reporting it to
	// GitHub (a deployment status, a commit status) is what is left.
	finishing := func(c string) bool {
		r, count := releaseOf("hello-staging", ofCommit(c))
		return count > 0 && r.Status == pipelines.ReleaseSucceeded
	}
	for range n {
		if crashAt["build"] {
			deploy("build", 300*time.Millisecond, true, building)
		}
		if crashAt["CI wait"] {
			checkReads = gh.Reads("check-runs")
			deploy("CI wait", 300*time.Millisecond, false, waitingForCI)
		}
		if crashAt["release phase"] {
			deploy("release phase", 300*time.Millisecond, true, releasing)
		}
		if crashAt["rollout"] {
			deploy("rollout", 300*time.Millisecond, true, rollingOut)
		}
		if crashAt["finish"] {
			// GitHub answering each write in 500 ms holds the deploy in its
			// last report long enough to be killed there.
			gh.SetWriteLatency(500 * time.Millisecond)
			deploy("finish", 300*time.Millisecond, true, finishing)
		}
	}
	if !crashAt["build"] && !crashAt["CI wait"] && !crashAt["release phase"] && !crashAt["rollout"] && !crashAt["finish"] {
		// Promotions need a staging release to promote, and rollbacks
		// an earlier one to go back to.
		for i := range 2 {
			c := repo.commit(fmt.Sprintf("seed %d", i), "web: bin/web\n")
			gh.setCI(c, "success")
			gh.setHead(c, "seed")
			if code, body := s.push(ctx, fmt.Sprintf("crash-seed-%d", i), pushPayload(t, repo.dir, c)); code != http.StatusAccepted {
				t.Fatalf("push: %d %s", code, body)
			}
			if r, ok := waitFinal("hello-staging", ofCommit(c)); !ok || r.Status != pipelines.ReleaseSucceeded {
				t.Fatalf("seed release: %+v", r)
			}
		}
	}
	operation := func(step, method, path, app string) {
		var op api.Operation
		// The ledger can end the last operation a moment before its queue
		// has seen it end; drover says to ask again then, and so does this.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			err := s.call(ctx, method, path, "", &op)
			if err == nil {
				break
			}
			if !strings.Contains(err.Error(), "again when it ends") || time.Now().After(deadline) {
				t.Fatalf("%s: %v", step, err)
			}
		}
		jitter(1500 * time.Millisecond)
		crash()
		tl := results[step]
		tl.runs++
		ofOp := func(r pipelines.Release) bool { return strings.HasPrefix(r.Operation, op.ID+"@") }
		r, ok := waitFinal(app, ofOp)
		if !ok {
			tl.lost++
			t.Errorf("%s: operation %s never ended", step, op.ID)
			return
		}
		if _, count := releaseOf(app, ofOp); count != 1 {
			tl.doubled++
			t.Errorf("%s: %d releases for operation %s", step, count, op.ID)
		}
		if r.Status != pipelines.ReleaseSucceeded {
			t.Errorf("%s: operation %s ended %s: %s", step, op.ID, r.Status, r.Reason)
		}
		if off := regionsAgree(app); off != 0 {
			tl.regions += off
			t.Errorf("%s: %d regions answer with another release than the ledger's", step, off)
		}
	}
	for range n {
		if crashAt["promote"] {
			operation("promote", "POST", "/api/v1/pipelines/hello/promote", "hello")
		}
	}
	// Rollbacks last: each pauses staging's auto-deploy.
	for range n {
		if crashAt["rollback"] {
			operation("rollback", "POST", "/api/v1/apps/hello-staging/rollback", "hello-staging")
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n  %-16s %6s %6s %8s %16s", "killed during", "kills", "lost", "doubled", "regions off")
	for _, st := range steps {
		tl := results[st]
		fmt.Fprintf(&b, "\n  %-16s %6d %6d %8d %16d", st, tl.runs, tl.lost, tl.doubled, tl.regions)
	}
	t.Logf("SIGKILL at every step, %d times each:%s\n  (%d of the %d kills during finish came after GitHub had heard of the success, its last write)",
		n, b.String(), finishedFirst, results["finish"].runs)
}
