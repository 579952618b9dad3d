package devstack_test

import (
	"context"
	"database/sql"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
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
	// Its visibility record is in a file of its own.
	if n := visibilityRows(t, devstack.VisibilityFile(db), "echo-1"); n == 0 {
		t.Fatalf("no visibility records of echo-1 in %s", devstack.VisibilityFile(db))
	}
	if n := visibilityRows(t, db, ""); n != 0 {
		t.Fatalf("%d visibility records in the main file, want none", n)
	}
}

// TestVisibilityMovesToItsOwnFile: a dev stack from before the split
// keeps its visibility records in the main file; the first start after
// copies them into the new file, so the workflow is still listed.
func TestVisibilityMovesToItsOwnFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded Temporal server; skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := filepath.Join(t.TempDir(), "temporal.db")
	start := func() (*devstack.Server, client.Client) {
		return startWithClient(t, ctx, devstack.Options{DatabaseFile: db})
	}
	srv, c := start()
	w := worker.New(c, "test", worker.Options{})
	w.RegisterWorkflow(echo)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "echo-old", TaskQueue: "test"}, echo, "hi")
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// Visibility records are written after the workflow closes.
	for visibilityRows(t, devstack.VisibilityFile(db), "echo-old") == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	w.Stop()
	c.Close()
	srv.Stop()

	// The layout before the split: the records in the main file, no
	// visibility file. It is made in another directory (the server's
	// connections to a file outlive its Stop within one process).
	if err := devstack.CopyVisibility(db, devstack.VisibilityFile(db)); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(t.TempDir(), "temporal.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(db + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if err == nil {
			if err := os.WriteFile(old+suffix, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := visibilityRows(t, old, "echo-old"); n != 1 {
		t.Fatalf("the old layout has %d records of echo-old in the main file", n)
	}
	db = old
	// The first start's preparation copies them; the server itself may
	// also write again what its visibility queue had not acknowledged,
	// so the file is checked before it starts.
	if _, err := devstack.PrepareVisibility(devstack.VisibilityFile(db), true, db); err != nil {
		t.Fatal(err)
	}
	if n := visibilityRows(t, devstack.VisibilityFile(db), "echo-old"); n != 1 {
		t.Fatalf("the new visibility file has %d records of echo-old, want 1", n)
	}
	srv, c = start()
	defer srv.Stop()
	defer c.Close()
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: `WorkflowId = "echo-old"`})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Executions) != 1 {
		t.Fatalf("after the move, listing finds %d runs of echo-old, want 1", len(resp.Executions))
	}
}

// TestHistoryLongPollIsShort: a client waiting for a running workflow's
// close is answered within the dev stack's long-poll interval (100 ms),
// not Temporal's 20 s, so a close the history service failed to notify
// costs no more than that.
func TestHistoryLongPollIsShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded Temporal server; skipped by -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, c := startWithClient(t, ctx, devstack.Options{DatabaseFile: filepath.Join(t.TempDir(), "temporal.db")})
	defer srv.Stop()
	defer c.Close()
	w := worker.New(c, "test", worker.Options{})
	w.RegisterWorkflow(waitForSignal)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "test"}, waitForSignal)
	if err != nil {
		t.Fatal(err)
	}
	defer c.TerminateWorkflow(context.Background(), run.GetID(), run.GetRunID(), "test over")
	// Let the first workflow task finish, so the poll waits on nothing.
	time.Sleep(300 * time.Millisecond)
	started := time.Now()
	resp, err := c.WorkflowService().GetWorkflowExecutionHistory(ctx, &workflowservice.GetWorkflowExecutionHistoryRequest{
		Namespace: devstack.Namespace, Execution: &commonpb.WorkflowExecution{WorkflowId: run.GetID(), RunId: run.GetRunID()},
		WaitNewEvent: true, HistoryEventFilterType: enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT,
	})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(started); took > 2*time.Second {
		t.Fatalf("a long poll of a running workflow's close held for %v, want about 100 ms", took)
	}
	if len(resp.GetHistory().GetEvents()) != 0 {
		t.Fatalf("the poll returned events of a running workflow: %v", resp.GetHistory().GetEvents())
	}
}

// startWithClient starts a server, its logs discarded, and a client of it;
// the caller stops both.
func startWithClient(tb testing.TB, ctx context.Context, opts devstack.Options) (*devstack.Server, client.Client) {
	tb.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	srv, err := devstack.Start(ctx, opts)
	if err != nil {
		tb.Fatalf("start: %v", err)
	}
	c, err := client.DialContext(ctx, client.Options{HostPort: srv.FrontendAddress(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		srv.Stop()
		tb.Fatal(err)
	}
	return srv, c
}

func waitForSignal(ctx workflow.Context) error {
	workflow.GetSignalChannel(ctx, "go").Receive(ctx, nil)
	return nil
}

// visibilityRows counts the visibility records of workflow id (of any
// workflow when "") in a SQLite file.
func visibilityRows(t *testing.T, file, id string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+file+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM executions_visibility WHERE ? = '' OR workflow_id = ?`, id, id).Scan(&n); err != nil {
		t.Fatalf("count visibility records in %s: %v", file, err)
	}
	return n
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
			srv, c := startWithClient(b, ctx, devstack.Options{DatabaseFile: filepath.Join(b.TempDir(), "temporal.db"), DynamicConfig: tc.dyn})
			defer srv.Stop()
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
