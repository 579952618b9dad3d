package nomad_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/applog"
	"github.com/drover/drover/applog/applogtest"
	"github.com/drover/drover/regions"
)

func webAlloc(id string, index int, events ...*api.TaskEvent) *api.AllocationListStub {
	return &api.AllocationListStub{
		ID: id, NodeID: "n1", Namespace: "apps", JobID: "hello", TaskGroup: "web", Name: "hello.web[" + string(rune('0'+index)) + "]",
		DesiredStatus: api.AllocDesiredStatusRun, ClientStatus: api.AllocClientStatusRunning, CreateTime: time.Now().UnixNano(),
		ModifyTime: time.Now().UnixNano(),
		TaskStates: map[string]*api.TaskState{"web": {State: "running", Events: events}},
	}
}

// lineSink gathers what Logs sends.
type lineSink struct{ applogtest.Collector }

func (s *lineSink) sink() applog.Sink { return s.Sink() }
func (s *lineSink) strings() []string { return s.Short() }

// waitFor waits for the line "source[dyno]: message".
func (s *lineSink) waitFor(t *testing.T, want string) {
	t.Helper()
	s.WaitFor(t, 5*time.Second, strconv.Quote(want), func(l applog.Line) bool { return l.Source+"["+l.Dyno+"]: "+l.Message == want })
}

// TestLogs: Nomad's task logs come back as app lines, the newest -n of
// them (asked for by bytes from the end), and task events as drover lines
// with the exit code; a tail follows each task's log without repeating
// what the backlog showed, and picks up the allocations a deployment
// places after it began.
func TestLogs(t *testing.T) {
	f := newFakeNomad(t)
	f.blockAllocs = true
	started := &api.TaskEvent{Type: api.TaskStarted, Time: time.Now().Add(-time.Minute).UnixNano(), DisplayMessage: "Task started by client"}
	a1 := webAlloc("a1", 0, started)
	f.jobAllocs["hello"] = [][]*api.AllocationListStub{{a1}}
	f.logs["a1/web/stdout"] = "one\ntwo\nthree\n"
	f.logs["a1/web/stderr"] = "warn: cold cache\n"
	r := MustRegion(t, f.srv.URL)

	var all lineSink
	if err := r.Logs(ctx(t), "hello", applog.Query{Num: 100}, all.sink()); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(all.strings(), "\n")
	for _, want := range []string{"drover[web.1]: State changed from starting to up", "app[web.1]: one", "app[web.1]: three", "app[web.1]: warn: cold cache"} {
		if !strings.Contains(got, want) {
			t.Errorf("logs lack %q:\n%s", want, got)
		}
	}
	if !strings.HasPrefix(got, "drover[web.1]: State changed") {
		t.Errorf("the task event (a minute old) is not first:\n%s", got)
	}
	for _, l := range all.Lines() {
		if l.Region != "eu" {
			t.Errorf("line %s has region %q", l, l.Region)
		}
	}
	var two lineSink
	if err := r.Logs(ctx(t), "hello", applog.Query{Num: 2, Source: applog.SourceApp}, two.sink()); err != nil {
		t.Fatal(err)
	}
	if n := len(two.Lines()); n != 2 {
		t.Errorf("Num 2 gave %d lines: %q", n, two.strings())
	}
	if !hasRequest(f, "/v1/client/fs/logs/a1?", "offset=1024", "origin=end") {
		t.Errorf("Num 2 did not ask for the last 2 × 512 bytes: %v", f.requests)
	}

	ctx, cancel := context.WithCancel(ctx(t))
	defer cancel()
	var tail lineSink
	done := make(chan error, 1)
	go func() { done <- r.Logs(ctx, "hello", applog.Query{Num: 1, Tail: true, Source: ""}, tail.sink()) }()
	// The newest line of the backlog: of stdout or stderr, whichever
	// Nomad answered last.
	for deadline := time.Now().Add(5 * time.Second); len(tail.strings()) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := tail.strings(); len(got) != 1 {
		t.Fatalf("a tail of Num 1 began with %q", got)
	}
	f.appendLog("a1/web/stdout", "four\n")
	tail.waitFor(t, "app[web.1]: four")

	// A deployment replaces a1 with a2.
	a1stopped := webAlloc("a1", 0, started, &api.TaskEvent{Type: api.TaskTerminated, Time: time.Now().UnixNano(), ExitCode: 143})
	a1stopped.DesiredStatus = api.AllocDesiredStatusStop
	a2 := webAlloc("a2", 0, &api.TaskEvent{Type: api.TaskStarted, Time: time.Now().UnixNano()})
	f.appendLog("a2/web/stdout", "v2 listening\n")
	f.appendLog("a2/web/stderr", "")
	f.queueAllocs("hello", []*api.AllocationListStub{a1stopped, a2})
	tail.waitFor(t, "app[web.1]: v2 listening")
	tail.waitFor(t, "drover[web.1]: Process exited with status 143")
	f.appendLog("a2/web/stdout", "GET / 200\n")
	tail.waitFor(t, "app[web.1]: GET / 200")

	// A second process whose task has not started: Nomad has no log for
	// it yet, and the tail keeps asking until it has.
	b1 := webAlloc("b1", 1, &api.TaskEvent{Type: api.TaskReceived, Time: time.Now().UnixNano()})
	f.queueAllocs("hello", []*api.AllocationListStub{a2, b1})
	time.Sleep(300 * time.Millisecond)
	f.appendLog("b1/web/stdout", "late starter\n")
	f.appendLog("b1/web/stderr", "")
	tail.waitFor(t, "app[web.2]: late starter")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("tail ended with %v", err)
	}
	seen := map[string]int{}
	for _, l := range tail.strings() {
		seen[l]++
	}
	for l, n := range seen {
		if n > 1 && l != "drover[web.1]: State changed from starting to up" {
			t.Errorf("%q shown %d times", l, n)
		}
	}
	if seen["app[web.1]: one"] > 0 || seen["app[web.1]: two"] > 0 {
		t.Errorf("a tail with Num 1 showed older lines: %q", tail.strings())
	}
}

func hasRequest(f *fakeNomad, parts ...string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.requests {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(r, p)
		}
		if ok {
			return true
		}
	}
	return false
}

// TestLogsOfAnUnreachableRegion: a Nomad that cannot be reached is an
// error callers can tell (ErrUnavailable) naming the region.
func TestLogsOfAnUnreachableRegion(t *testing.T) {
	r := MustRegion(t, closedAddress())
	err := r.Logs(ctx(t), "hello", applog.Query{Num: 10}, applog.Lines(new([]applog.Line)))
	if !errors.Is(err, regions.ErrUnavailable) || !strings.Contains(err.Error(), "eu") {
		t.Errorf("err = %v, want ErrUnavailable naming region eu", err)
	}
}
