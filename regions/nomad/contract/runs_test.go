package contract_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/applog"
	"github.com/drover/drover/applog/applogtest"
	"github.com/drover/drover/internal/syncbuf"
	"github.com/drover/drover/regions"
	"github.com/drover/drover/regions/nomad"
)

// tailLines collects a followed log.
type tailLines struct{ applogtest.Collector }

func (t *tailLines) sink() applog.Sink { return t.Sink() }

func (t *tailLines) waitFor(tb testing.TB, source, text string) {
	tb.Helper()
	t.WaitFor(tb, 30*time.Second, fmt.Sprintf("of %s saying %q", source, text), applogtest.Saying(source, "", text))
}

// TestLogsAcrossADeployment: a tail of the app's log on a real agent
// shows a request's access line, then goes on through a deployment that
// replaces the allocation, showing the new one's lines and its task
// events.
func TestLogsAcrossADeployment(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	app := fmt.Sprintf("drover-logs-%d", time.Now().Unix()%100000)
	t.Cleanup(func() { e.region.Stop(context.Background(), app) })
	res, err := e.region.Deploy(ctx, e.deployment(app, 1, map[string]string{"GREETING": "v1"}))
	if err != nil {
		t.Fatalf("deploy v1: %v", err)
	}
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	var tail tailLines
	done := make(chan error, 1)
	go func() { done <- e.region.Logs(tctx, app, applog.Query{Num: 10, Tail: true}, tail.sink()) }()
	time.Sleep(time.Second)
	if _, err := get(res.URL + "/before"); err != nil {
		t.Fatal(err)
	}
	tail.waitFor(t, applog.SourceApp, "request /before")
	tail.waitFor(t, applog.SourceDrover, "State changed from starting to up")

	res, err = e.region.Deploy(ctx, e.deployment(app, 2, map[string]string{"GREETING": "v2"}))
	if err != nil {
		t.Fatalf("deploy v2: %v", err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		body, _ := get(res.URL + "/after")
		if body == "v2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("v2 does not answer: %q", body)
		}
	}
	tail.waitFor(t, applog.SourceApp, "request /after")
	tail.waitFor(t, applog.SourceDrover, "Process exited with status")
	stop()
	if err := <-done; err != nil {
		t.Errorf("tail: %v", err)
	}
	var fromV1 bool
	for _, l := range tail.Lines() {
		fromV1 = fromV1 || (l.Source == applog.SourceApp && strings.Contains(l.Message, "request /before"))
	}
	if !fromV1 {
		t.Error("the first allocation's line is gone from the tail")
	}
}

// TestOneOffRuns: on a real agent, a detached one-off is the batch job
// <app>-run-N whose exit code is its task's; an attached one runs through
// exec with stdin, the release's config and DYNO, and its exit code is
// the command's; both jobs are purged when they end.
func TestOneOffRuns(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	app := fmt.Sprintf("drover-run-%d", time.Now().Unix()%100000)
	c, err := api.NewClient(&api.Config{Address: e.addr})
	if err != nil {
		t.Fatal(err)
	}
	purged := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			_, _, err := c.Jobs().Info(nomad.RunJobID(app, n), &api.QueryOptions{Region: e.nomadRegion})
			if err != nil && strings.Contains(err.Error(), "404") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s was not purged: %v", nomad.RunJobID(app, n), err)
			}
		}
	}
	oneOff := func(n int, command string) regions.OneOff {
		return regions.OneOff{App: app, Release: 1, Number: n, Command: command, Slug: e.slug, Env: map[string]string{"GREETING": "hi from config"}}
	}

	wait, err := e.region.StartRun(ctx, oneOff(1, `echo "detached $DYNO"; exit 3`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, err := wait(); code != 3 || err != nil {
		t.Fatalf("detached run = %d, %v; want exit 3", code, err)
	}
	purged(1)

	var out, errOut bytes.Buffer
	wait, err = e.region.StartRun(ctx, oneOff(2, `read word; echo "$word: $GREETING on $DYNO"; ls bin; echo oops >&2; exit 4`),
		&regions.Stdio{Stdin: strings.NewReader("hello\n"), Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatal(err)
	}
	code, err := wait()
	if code != 4 || err != nil || out.String() != "hello: hi from config on run.2\nweb\n" || errOut.String() != "oops\n" {
		t.Fatalf("attached run = %d, %v, stdout %q, stderr %q", code, err, out.String(), errOut.String())
	}
	purged(2)

	// On a terminal of the caller's size, through exec's tty.
	// (A terminal's input stays open while the run lasts: its end would
	// hang the terminal up.)
	var ttyOut syncbuf.Buffer
	ttyIn, ttyInW := io.Pipe()
	defer ttyInW.Close()
	wait, err = e.region.StartRun(ctx, oneOff(3, `test -t 0 && echo on-a-tty; stty size; exit 5`),
		&regions.Stdio{Stdin: ttyIn, Stdout: &ttyOut, Stderr: &ttyOut, TTY: true, Size: regions.TermSize{Rows: 30, Cols: 100}})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := wait(); code != 5 || err != nil || !strings.Contains(ttyOut.String(), "on-a-tty") || !strings.Contains(ttyOut.String(), "30 100") {
		t.Fatalf("tty run = %d, %v, output %q", code, err, ttyOut.String())
	}
	purged(3)
}

// TestReleasePhaseOutputIsLive: on a real agent, a release phase's output
// reaches Task.Output while it runs, not only in its result.
func TestReleasePhaseOutputIsLive(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	app := fmt.Sprintf("drover-live-%d", time.Now().Unix()%100000)
	var live syncbuf.Buffer
	done := make(chan regions.TaskResult, 1)
	go func() {
		res, err := e.region.RunTask(ctx, regions.Task{App: app, Release: 1, Name: "release", Slug: e.slug,
			Command: "echo migrating 1/2; sleep 3; echo migrating 2/2", Output: &live})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(live.String(), "migrating 1/2"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no live output: %q", live.String())
		}
	}
	if strings.Contains(live.String(), "migrating 2/2") {
		t.Fatalf("the first line came only with the second: %q", live.String())
	}
	res := <-done
	if res.ExitCode != 0 || live.String() != "migrating 1/2\nmigrating 2/2\n" {
		t.Fatalf("result %+v, live %q", res, live.String())
	}
}
