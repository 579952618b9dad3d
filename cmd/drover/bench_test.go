package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/drover/drover/api"
	"github.com/drover/drover/internal/benchcost"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/workflows"
)

// benchConfig is a dev stack with five local regions and two pipelines
// whose production stages run in one region and in all five, so one run
// measures promotion into 1 region against 5 (max_parallel: 5).
const benchConfig = `github:
  webhook_secret_env: SECRET_ENV
regions:
  local-a: { driver: local }
  local-b: { driver: local }
  local-c: { driver: local }
  local-d: { driver: local }
  local-e: { driver: local }
pipelines:
  one:
    repo: bench/one
    source: file://ONE_DIR
    stages:
      staging:    { app: one-staging, branch: main, regions: [local-a] }
      production: { app: one, regions: [local-a] }
  five:
    repo: bench/five
    source: file://FIVE_DIR
    stages:
      staging:    { app: five-staging, branch: main, regions: [local-a] }
      production: { app: five, regions: [local-a, local-b, local-c, local-d, local-e], rollout: { max_parallel: 5 } }
`

// BenchmarkOperations measures what drover adds to a release on the dev
// stack, one operation at a time, from the API call until the ledger says
// it is live (every region healthy and serving it): a config change in 1
// region (no build), promotion into 1 and into 5 regions, and a rollback
// of 5. "app-start" is the baseline: the app's own start until it
// answers, outside drover. bench/run prints these side by side.
func BenchmarkOperations(b *testing.B) {
	if testing.Short() {
		b.Skip("starts the dev stack; skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	b.Setenv(secretEnv, "bench-secret")
	one, five := newGitRepo(b), newGitRepo(b)
	cfg := strings.NewReplacer("SECRET_ENV", secretEnv, "ONE_DIR", one.dir, "FIVE_DIR", five.dir).Replace(benchConfig)
	path := filepath.Join(b.TempDir(), "drover.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	d, s := startDev(b, ctx, path, b.TempDir())
	defer d.Close()
	for i, r := range []struct {
		repo *gitRepo
		name string
	}{{one, "bench/one"}, {five, "bench/five"}} {
		c := r.repo.commit("bench", "web: bin/web\n")
		if code, body := s.push(ctx, fmt.Sprintf("bench-%d", i), pushPayloadFor(b, r.name, r.repo.dir, c)); code != http.StatusAccepted {
			b.Fatalf("push: %d %s", code, body)
		}
	}
	s.waitRelease(ctx, "one-staging", 1)
	s.waitRelease(ctx, "five-staging", 1)
	// Two releases of production to roll back between.
	for _, p := range []string{"one", "five"} {
		for range 2 {
			s.operation(ctx, http.MethodPost, "/api/v1/pipelines/"+p+"/promote", "")
		}
	}

	b.Run("app-start", func(b *testing.B) {
		bin := filepath.Join(b.TempDir(), "bench-web")
		if out, err := exec.Command("go", "-C", one.dir, "build", "-o", bin, ".").CombinedOutput(); err != nil {
			b.Fatalf("build the app: %v\n%s", err, out)
		}
		for b.Loop() {
			port := freeLocalPort(b)
			cmd := exec.Command(bin)
			cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port))
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			for {
				resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
				if err == nil {
					resp.Body.Close()
					break
				}
				time.Sleep(time.Millisecond)
			}
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	n := 0
	for _, op := range []struct {
		name string
		run  func()
	}{
		{"config-set/1-region", func() {
			n++
			if err := s.patch(ctx, "/api/v1/apps/one-staging/config", fmt.Sprintf(`{"BENCH":"%d"}`, n)); err != nil {
				b.Fatal(err)
			}
			s.operationHeard(ctx, d.client, http.MethodPost, "/api/v1/apps/one-staging/releases", "")
		}},
		{"promote/1-region", func() { s.operationHeard(ctx, d.client, http.MethodPost, "/api/v1/pipelines/one/promote", "") }},
		{"promote/5-regions", func() { s.operationHeard(ctx, d.client, http.MethodPost, "/api/v1/pipelines/five/promote", "") }},
		{"rollback/5-regions", func() { s.operationHeard(ctx, d.client, http.MethodPost, "/api/v1/apps/five/rollback", "") }},
	} {
		b.Run(op.name, func(b *testing.B) {
			m := benchcost.Start(b)
			for b.Loop() {
				m.Time(op.run)
			}
			m.Report()
		})
	}
}

// operation starts an operation and waits until it succeeded.
func (s *stack) operation(ctx context.Context, method, path, body string) {
	s.t.Helper()
	var op api.Operation
	if err := s.call(ctx, method, path, body, &op); err != nil {
		s.t.Fatal(err)
	}
	s.awaitOperation(ctx, op.ID)
}

// operationHeard starts an operation and waits for its workflow's end
// with one long poll of Temporal (how the embedded stack's own event
// stream learns of it), then checks the API says it succeeded. Asking the
// API every 2 ms instead, as operation does, cost the machine as much CPU
// as the operation measured, and on 2 cores slowed it down.
func (s *stack) operationHeard(ctx context.Context, c client.Client, method, path, body string) {
	s.t.Helper()
	var op api.Operation
	if err := s.call(ctx, method, path, body, &op); err != nil {
		s.t.Fatal(err)
	}
	for {
		err := c.GetWorkflow(ctx, op.ID, "").Get(ctx, nil)
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) { // still in its app's queue
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			s.t.Fatalf("%s: %v", op.ID, err)
		}
		break
	}
	s.awaitOperation(ctx, op.ID)
}

// awaitOperation waits until the API says operation id succeeded.
func (s *stack) awaitOperation(ctx context.Context, id string) {
	s.t.Helper()
	for {
		var cur api.Operation
		if err := s.get(ctx, "/api/v1/operations/"+id, &cur); err != nil {
			s.t.Fatal(err)
		}
		switch cur.State {
		case workflows.OperationSucceeded:
			if cur.Release != nil && cur.Release.Status != pipelines.ReleaseSucceeded {
				s.t.Fatalf("%s: release %s", id, cur.Release.Status)
			}
			return
		case workflows.OperationFailed:
			s.t.Fatalf("%s failed: %s", id, cur.Error)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func freeLocalPort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
