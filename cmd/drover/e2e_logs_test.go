package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/api"
	"github.com/drover/drover/internal/syncbuf"
	"github.com/drover/drover/regions"
)

// checkLogs checks `drover logs` on hello-staging, which runs release
// with one web process in local-a and local-b, answering at url: the
// lines come in Heroku's shape, with drover's own; --tail shows a
// request's access line (accessLine(path) is in it) as it is written. It
// logs the median time from a request's answer to its line on the tail,
// of 20.
func checkLogs(t *testing.T, ctx context.Context, url, release string, accessLine func(path string) string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := Run(ctx, []string{"logs", "hello-staging", "-n", "200", "--source", "drover"}, Streams{Out: &out, Err: &errOut}); code != exitOK {
		t.Fatalf("drover logs: exit %d: %s", code, errOut.String())
	}
	line := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00 drover\[web\.1\]: State changed from starting to up \(` + release + `\)$`)
	if n := len(line.FindAllString(out.String(), -1)); n != 2 {
		t.Fatalf("drover logs --source drover shows %s's web.1 up %d times, want once per region:\n%s", release, n, out.String())
	}
	if strings.Contains(out.String(), " app[") {
		t.Fatalf("--source drover showed app lines:\n%s", out.String())
	}

	tctx, stop := context.WithCancel(ctx)
	var tail syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(tctx, []string{"logs", "hello-staging", "--tail", "-n", "0", "-p", "web"}, Streams{Out: &tail, Err: &tail})
	}()
	defer func() {
		stop()
		if code := <-done; code != exitOK {
			t.Errorf("drover logs --tail ended with exit %d:\n%s", code, tail.String())
		}
	}()
	time.Sleep(500 * time.Millisecond) // the tail connects
	var lags []time.Duration
	for i := range 20 {
		path := fmt.Sprintf("/tail-%d", i)
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		answered := time.Now()
		want := accessLine(path)
		for !strings.Contains(tail.String(), want) {
			if time.Since(answered) > 5*time.Second {
				t.Fatalf("the tail did not show %q within 5 s:\n%s", want, tail.String())
			}
			time.Sleep(2 * time.Millisecond)
		}
		lags = append(lags, time.Since(answered))
	}
	slices.Sort(lags)
	t.Logf("drover logs --tail showed a request's line %v after its answer (median of 20; min %v, max %v)", lags[10], lags[0], lags[19])
	if lags[10] > time.Second {
		t.Errorf("median lag %v: over a second", lags[10])
	}
}

// checkRuns checks `drover run` on hello-staging (v2 in local-a and
// local-b): an attached run gets the release's config and dyno metadata
// and stdin, and its exit code is drover's; a detached one logs as
// run.N; bad runs are one clear error.
func checkRuns(t *testing.T, ctx context.Context) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(ctx, []string{"run", "hello-staging", "--", `read word; echo "$word from $DROVER_APP $DROVER_RELEASE $DYNO in $DROVER_REGION"; exit 3`},
		Streams{In: strings.NewReader("hi\n"), Out: &out, Err: &errOut})
	if code != 3 || !regexp.MustCompile(`^hi from hello-staging v2 run\.\d+ in local-a\n$`).MatchString(out.String()) ||
		!strings.Contains(errOut.String(), "Running `read word;") {
		t.Fatalf("drover run: exit %d, out %q, err %q; want exit 3 and the run's own words", code, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	out.Reset()
	errOut.Reset()
	if code := Run(ctx, []string{"run", "hello-staging", "--detach", "--", "echo detached-line"}, Streams{Out: &out, Err: &errOut}); code != exitOK ||
		!regexp.MustCompile(`follow it with: drover logs hello-staging --dyno run\.\d+ --tail`).MatchString(out.String()) {
		t.Fatalf("drover run --detach: exit %d: %s %s", code, out.String(), errOut.String())
	}
	dyno := regexp.MustCompile(`run\.\d+`).FindString(out.String())
	deadline := time.Now().Add(5 * time.Second)
	for {
		out.Reset()
		Run(ctx, []string{"logs", "hello-staging", "--dyno", dyno}, Streams{Out: &out, Err: &errOut})
		if strings.Contains(out.String(), " app["+dyno+"]: detached-line") && strings.Contains(out.String(), " drover["+dyno+"]: Process exited with status 0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the detached run's lines are not in its log:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "hello-staging", "--region", "mars", "--", "true"}, `does not run in region "mars"`},
		{[]string{"run", "nope", "--", "true"}, "not found"},
		{[]string{"run", "hello-staging", "--", "no-such-command --flag"}, "could not start (exit 127)"},
	} {
		errOut.Reset()
		if code := Run(ctx, tt.args, Streams{In: strings.NewReader(""), Out: &out, Err: &errOut}); code == exitOK || !strings.Contains(errOut.String(), tt.want) {
			t.Errorf("drover %v: exit %d, %q; want an error saying %q", tt.args, code, errOut.String(), tt.want)
		}
	}
}

// psWebUp checks `drover ps APP --json`: in each of the app's two
// regions web.1 is up on release, and nothing else runs. It returns what
// ps said.
func psWebUp(t *testing.T, ctx context.Context, app string, release int) api.Processes {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := Run(ctx, []string{"ps", app, "--json"}, Streams{Out: &out, Err: &errOut}); code != exitOK {
		t.Fatalf("drover ps: exit %d: %s", code, errOut.String())
	}
	var ps api.Processes
	if err := json.Unmarshal(out.Bytes(), &ps); err != nil || len(ps.Regions) != 2 {
		t.Fatalf("ps --json = %s (%v)", out.String(), err)
	}
	for _, r := range ps.Regions {
		if len(r.Processes) != 1 || r.Processes[0].Dyno != "web.1" || r.Processes[0].State != regions.ProcessUp || r.Processes[0].Release != release {
			t.Fatalf("ps in %s = %+v (%s); want web.1 up on v%d", r.Region, r.Processes, r.Error, release)
		}
	}
	return ps
}
