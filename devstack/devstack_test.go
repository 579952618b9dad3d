package devstack_test

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/drover/drover/devstack"
	"github.com/drover/drover/internal/benchcost"
)

func echo(ctx workflow.Context, s string) (string, error) { return "echo: " + s, nil }

// TestStartRunsWorkflowsAndKeepsHistory starts the embedded server, runs a
// workflow, restarts on the same file and reads the finished workflow back.
func TestStartRunsWorkflowsAndKeepsHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded Temporal server; skipped by -short")
	}
	db := filepath.Join(t.TempDir(), "temporal.db")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	run := func() string {
		srv, err := devstack.Start(ctx, devstack.Options{DatabaseFile: db, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatalf("start: %v", err)
		}
		defer srv.Stop()
		c, err := client.DialContext(ctx, client.Options{HostPort: srv.FrontendAddress(), Namespace: devstack.Namespace, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatalf("dial %s: %v", srv.FrontendAddress(), err)
		}
		defer c.Close()
		w := worker.New(c, "test", worker.Options{})
		w.RegisterWorkflow(echo)
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "echo-1", TaskQueue: "test"}, echo, "hi")
		if err != nil {
			t.Fatalf("execute: %v", err)
		}
		var out string
		if err := c.GetWorkflow(ctx, "echo-1", run.GetRunID()).Get(ctx, &out); err != nil {
			t.Fatalf("result: %v", err)
		}
		return out
	}
	if got := run(); got != "echo: hi" {
		t.Fatalf("first run = %q", got)
	}
	// Second start on the same file: the workflow ID is taken by the
	// finished run, so ExecuteWorkflow returns that run's result.
	if got := run(); got != "echo: hi" {
		t.Fatalf("after restart = %q", got)
	}
}

func ping(ctx context.Context, s string) (string, error) { return s, nil }

func pingWorkflow(ctx workflow.Context, s string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var out string
	err := workflow.ExecuteActivity(ctx, ping, s).Get(ctx, &out)
	return out, err
}

// BenchmarkSequentialWorkflows measures one workflow with one activity,
// start to result, one after another, on the embedded server: the latency
// floor of every drover operation on the dev stack.
func BenchmarkSequentialWorkflows(b *testing.B) {
	// Workflows start eagerly, as drover's one-off workflows (ps, plan)
	// do; "lazy-start" is the same without, its first task going through
	// matching. "temporal-defaults" puts back Temporal's own limit on how
	// often the one history shard's transfer queue is read (20 a second):
	// the ~80 ms floor the dev stack had, which its own setting removes
	// (see queuePollRPS).
	for _, tc := range []struct {
		name  string
		dyn   map[string]any
		eager bool
	}{
		{"dev-stack", nil, true},
		{"lazy-start", nil, false},
		{"temporal-defaults", map[string]any{"history.transferProcessorMaxPollRPS": 20}, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			srv, err := devstack.Start(ctx, devstack.Options{
				DatabaseFile: filepath.Join(b.TempDir(), "temporal.db"), Logger: slog.New(slog.DiscardHandler),
				DynamicConfig: tc.dyn,
			})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Stop()
			c, err := client.DialContext(ctx, client.Options{HostPort: srv.FrontendAddress(), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			w := worker.New(c, "bench", worker.Options{})
			w.RegisterWorkflow(pingWorkflow)
			w.RegisterActivity(ping)
			if err := w.Start(); err != nil {
				b.Fatal(err)
			}
			defer w.Stop()
			b.ResetTimer()
			m := benchcost.Start(b)
			for b.Loop() {
				m.Time(func() {
					run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "bench", EnableEagerStart: tc.eager}, pingWorkflow, "x")
					if err != nil {
						b.Fatal(err)
					}
					var out string
					if err := run.Get(ctx, &out); err != nil {
						b.Fatal(err)
					}
				})
			}
			m.Report()
		})
	}
}

// TestStartOnTakenPorts: a port found free can be taken before the server
// binds it. A port picked by Start is picked again, a few times; the
// frontend port the caller asked for is an error. Neither crashes the
// process, as the server's nil listener once did.
func TestStartOnTakenPorts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded Temporal server; skipped by -short")
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		name     string
		frontend int // the port asked for
		bad      int // of the picked ports, the index that is taken
		badPicks int // how many picks hand out the taken port
		wantErr  string
		picks    int
	}{
		{name: "asked-for frontend taken", frontend: port, bad: -1, wantErr: "temporal frontend service: listen tcp 127.0.0.1:" + strconv.Itoa(port), picks: 1},
		{name: "picked worker port taken once", bad: 3, badPicks: 1, picks: 2},
		{name: "picked history port taken every time", bad: 1, badPicks: 3, wantErr: "temporal history service: listen tcp", picks: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			picks := 0
			defer devstack.SetPickPorts(func(host string, n int) ([]int, error) {
				picks++
				ports, err := devstack.FreePorts(host, n)
				if err == nil && tc.bad >= 0 && picks <= tc.badPicks {
					ports[tc.bad] = port
				}
				return ports, err
			})()
			srv, err := devstack.Start(context.Background(), devstack.Options{
				DatabaseFile: filepath.Join(t.TempDir(), "temporal.db"), FrontendPort: tc.frontend, Logger: slog.New(slog.DiscardHandler),
			})
			if err == nil {
				srv.Stop()
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("start: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "address already in use")):
				t.Fatalf("start: %v; want an error with %q", err, tc.wantErr)
			}
			if picks != tc.picks {
				t.Errorf("ports picked %d times, want %d", picks, tc.picks)
			}
		})
	}
}
