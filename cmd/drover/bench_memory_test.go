package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/gh/ghtest"
)

// BenchmarkWaitingPipelines measures the memory of N pipelines whose
// staging deploys all wait for CI at once (a monorepo's morning, or CI
// that is down): the resident set before and with them, in MiB.
//   - dev-stack: drover dev, embedded Temporal and all, in this process,
//     with WAITING_DEV pipelines (200);
//   - worker: a production drover worker process, with Temporal and a
//     drover server in processes of their own, with WAITING_WORKER
//     pipelines (2,000).
//
// All pipelines deploy one commit of one repository, each from its own
// branch, so the commit is built once and every deploy reuses its slug;
// its CI stays in progress.
func BenchmarkWaitingPipelines(b *testing.B) {
	if testing.Short() {
		b.Skip("starts drover with thousands of pipelines; skipped by -short")
	}
	b.Run("dev-stack", func(b *testing.B) {
		n := envInt(b, "WAITING_DEV", 200)
		for b.Loop() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
			w := newWaitingBench(b, n)
			d, s := startDev(b, ctx, w.config, b.TempDir())
			idle := settledRSS(b, os.Getpid())
			w.fill(ctx, s.base)
			busy := settledRSS(b, os.Getpid())
			w.report(idle, busy)
			d.Close()
			cancel()
		}
	})
	b.Run("worker", func(b *testing.B) {
		n := envInt(b, "WAITING_WORKER", 2000)
		for b.Loop() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			w := newWaitingBench(b, n)
			temporal := startTemporal(ctx, b)
			data := b.TempDir()
			listen := fmt.Sprintf("127.0.0.1:%d", freeLocalPort(b))
			env := []string{
				"DATABASE_URL=" + filepath.Join(data, "drover.db"),
				"TEMPORAL_ADDRESS=" + temporal, "TEMPORAL_NAMESPACE=default",
				"DROVER_SLUG_STORE=file://" + filepath.Join(data, "slugs"),
				"DROVER_CONFIG_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
				secretEnv + "=" + waitingSecret, "DROVER_ADMIN_TOKEN=bench-token",
				"DROVER_PUBLIC_URL=http://" + listen,
			}
			startDrover(b, "server", env, "server", "--config", w.config, "--listen", listen, "--data", b.TempDir(), "--log-level", "error")
			worker := startDrover(b, "worker", env, "worker", "--config", w.config, "--data", b.TempDir(), "--log-level", "error")
			waitReady(ctx, b, "http://"+listen)
			time.Sleep(2 * time.Second) // the worker polls and has its regions up
			idle := settledRSS(b, worker.cmd.Process.Pid)
			w.fill(ctx, "http://"+listen)
			busy := settledRSS(b, worker.cmd.Process.Pid)
			w.report(idle, busy)
			cancel()
		}
	})
}

const waitingSecret = "bench-secret"

type waitingBench struct {
	b      *testing.B
	n      int
	repo   *gitRepo
	gh     *ghtest.Server
	commit string
	config string
}

func newWaitingBench(b *testing.B, n int) *waitingBench {
	w := &waitingBench{b: b, n: n, repo: newGitRepo(b), gh: ghtest.New(b)}
	w.gh.AddRepo("octo-org/hello", "file://"+w.repo.dir)
	w.commit = w.repo.commit("waiting", "web: bin/web\n")
	w.gh.AddCheckRun("octo-org/hello", w.commit, "test", "in_progress", "")
	b.Setenv(secretEnv, waitingSecret)
	b.Setenv("DROVER_E2E_GH_TOKEN", ghtest.Token)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "github: { webhook_secret_env: %s, token_env: DROVER_E2E_GH_TOKEN, api_url: '%s' }\nregions:\n  local-a: { driver: local }\npipelines:\n", secretEnv, w.gh.URL)
	for i := range n {
		fmt.Fprintf(&cfg, "  p%04d:\n    repo: octo-org/hello\n    source: file://%s\n    stages:\n      staging: { app: p%04d-staging, branch: b%04d, regions: [local-a], wait_for_ci: true }\n", i, w.repo.dir, i, i)
	}
	w.config = filepath.Join(b.TempDir(), "drover.yaml")
	if err := os.WriteFile(w.config, []byte(cfg.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return w
}

// fill pushes the commit to every pipeline's branch and returns once each
// deploy has read its CI (and found it running). The first push builds
// the slug; the others reuse it.
func (w *waitingBench) fill(ctx context.Context, base string) {
	b := w.b
	url := base + "/webhooks/github"
	push := func(i int) {
		p := strings.Replace(string(pushPayload(b, w.repo.dir, w.commit)), `"refs/heads/main"`, fmt.Sprintf(`"refs/heads/b%04d"`, i), 1)
		code, body, err := SendWebhook(ctx, url, waitingSecret, "push", fmt.Sprintf("waiting-%d", i), []byte(p))
		if err != nil || code != http.StatusAccepted {
			b.Fatalf("push to b%04d: %d %s %v", i, code, body, err)
		}
	}
	waitReads := func(n int) {
		for w.gh.Reads("check-runs") < n {
			select {
			case <-ctx.Done():
				b.Fatalf("%d of %d deploys read their CI", w.gh.Reads("check-runs"), n)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	start := time.Now()
	push(0)
	waitReads(1)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				push(i)
			}
		}()
	}
	for i := 1; i < w.n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	waitReads(w.n)
	b.Logf("%d deploys waiting for CI after %s", w.n, time.Since(start).Round(time.Millisecond))
}

func (w *waitingBench) report(idle, busy float64) {
	w.b.ReportMetric(idle, "idle-MiB")
	w.b.ReportMetric(busy, "waiting-MiB")
	w.b.ReportMetric((busy-idle)*1024/float64(w.n), "KiB/pipeline")
	w.b.ReportMetric(0, "ns/op")
}

// settledRSS is pid's resident set in MiB, read once it has stopped
// growing (three reads a second apart within 1 MiB).
func settledRSS(tb testing.TB, pid int) float64 {
	tb.Helper()
	last := -1.0
	for range 30 {
		time.Sleep(time.Second)
		cur := rssMiB(tb, pid)
		if last >= 0 && cur-last < 1 && last-cur < 1 {
			return cur
		}
		last = cur
	}
	return last
}

func rssMiB(tb testing.TB, pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				tb.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	tb.Fatalf("no VmRSS for pid %d", pid)
	return 0
}
