package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/pipelines"
)

// TestFaultStorms drives the dev stack with webhook storms and counts
// what they make:
//   - 1,000 deliveries of one push within 10 s, half of them GitHub's
//     redeliveries (a delivery ID already sent) and half the same signed
//     body under fresh IDs, make exactly one release;
//   - 50 pushes to one branch within 5 s each end released or superseded
//     in the ledger, and the newest is what runs.
func TestFaultStorms(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end fault suite; skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	t.Setenv(secretEnv, "e2e-secret")
	repo := newGitRepo(t)
	_, s := startDev(t, ctx, writeConfig(t, repo.dir), t.TempDir())
	table := [][2]string{}

	// One push, a thousand times.
	c1 := repo.commit("storm", "web: bin/web\n")
	payload := pushPayload(t, repo.dir, c1)
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	sem := make(chan struct{}, 32)
	for i := range 1000 {
		delivery := fmt.Sprintf("storm-%d", i)
		if i%2 == 1 {
			delivery = fmt.Sprintf("storm-%d", i-1) // a redelivery
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			code, _, err := SendWebhook(ctx, s.base+"/webhooks/github", s.secret, "push", delivery, payload)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				code = -1
			}
			codes[code]++
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if took > 10*time.Second {
		t.Errorf("1,000 deliveries took %s; want them within 10 s", took)
	}
	for code := range codes {
		if code != http.StatusAccepted && code != http.StatusOK {
			t.Errorf("answers %v: want only 202 and 200", codes)
		}
	}
	if codes[http.StatusAccepted] < 1 {
		t.Fatalf("answers %v: none accepted", codes)
	}
	v1 := s.waitRelease(ctx, "hello-staging", 1)
	time.Sleep(2 * time.Second) // room for a second release, were one coming
	rs := s.releases(ctx, "hello-staging")
	if len(rs) != 1 || v1.Status != pipelines.ReleaseSucceeded || v1.Commit != c1 {
		t.Fatalf("1,000 deliveries of one push made %d releases (v1 %s)", len(rs), v1.Status)
	}
	table = append(table, [2]string{"1,000 deliveries of one push in " + took.Round(time.Millisecond).String(),
		fmt.Sprintf("releases: %d; answers %v", len(rs), codes)})

	// Fifty pushes to main, as fast as git and the webhook take them.
	var commits []string
	for i := range 50 {
		commits = append(commits, repo.commit(fmt.Sprintf("push %d", i), "web: bin/web\n"))
	}
	start = time.Now()
	for i, c := range commits {
		if code, body, err := SendWebhook(ctx, s.base+"/webhooks/github", s.secret, "push", fmt.Sprintf("burst-%d", i), pushPayload(t, repo.dir, c)); err != nil || code != http.StatusAccepted {
			t.Fatalf("push %d: %d %s %v", i, code, body, err)
		}
	}
	took = time.Since(start)
	if took > 5*time.Second {
		t.Errorf("50 pushes took %s; want them within 5 s", took)
	}
	newest := commits[len(commits)-1]
	byCommit := map[string]pipelines.Release{}
	eventually(ctx, t, "every push to end in the ledger", func() bool {
		for _, r := range s.releases(ctx, "hello-staging") {
			byCommit[r.Commit] = r
		}
		n := 0
		for _, c := range commits {
			if r, ok := byCommit[c]; ok && r.Status.Terminal() {
				n++
			}
		}
		return n == len(commits)
	})
	count := map[pipelines.ReleaseStatus]int{}
	for _, c := range commits {
		r := byCommit[c]
		count[r.Status]++
		if r.Status != pipelines.ReleaseSucceeded && r.Status != pipelines.ReleaseSuperseded {
			t.Errorf("push of %s ended %s %q; want succeeded or superseded", c[:7], r.Status, r.Reason)
		}
	}
	if r := byCommit[newest]; r.Status != pipelines.ReleaseSucceeded {
		t.Fatalf("the newest push ended %s %q; want it released", r.Status, r.Reason)
	}
	s.answersEverywhere(ctx, "hello-staging", 2, "push 49")
	table = append(table, [2]string{"50 pushes to one branch in " + took.Round(time.Millisecond).String(),
		fmt.Sprintf("%d succeeded, %d superseded, the newest running", count[pipelines.ReleaseSucceeded], count[pipelines.ReleaseSuperseded])})

	var b strings.Builder
	for _, row := range table {
		fmt.Fprintf(&b, "\n  %-48s %s", row[0], row[1])
	}
	t.Logf("storms:%s", b.String())
}
