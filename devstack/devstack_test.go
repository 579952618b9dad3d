package devstack_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/drover/drover/devstack"
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
