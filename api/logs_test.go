package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/api"
	"github.com/drover/drover/applog"
	"github.com/drover/drover/deployments"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// fakeLogs is one region's log: a backlog, then what is sent on live.
type fakeLogs struct {
	region  string
	backlog []applog.Line
	live    chan applog.Line
	err     error
	got     chan applog.Query
}

func (f *fakeLogs) Logs(ctx context.Context, app string, q applog.Query, sink applog.Sink) error {
	if f.got != nil {
		f.got <- q
	}
	if f.err != nil {
		return f.err
	}
	if err := sink.Backlog(applog.Merge(q.Num, f.backlog)); err != nil {
		return err
	}
	if !q.Tail {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case l := <-f.live:
			if err := sink.Live(l); err != nil {
				return err
			}
		}
	}
}

var logT0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func logLine(region, dyno string, sec int, msg string) applog.Line {
	return applog.Line{Time: logT0.Add(time.Duration(sec) * time.Second), Source: "app", Dyno: dyno, Region: region, Message: msg}
}

func logsServer(t *testing.T, readers map[string]*fakeLogs) *httptest.Server {
	t.Helper()
	e, _, _ := newOpsServerWith(t, func(s *api.Server) {
		s.LogReaders = func(region string) (regions.LogReader, error) {
			r, ok := readers[region]
			if !ok {
				return nil, fmt.Errorf("region %s is not served here: %w", region, regions.ErrUnavailable)
			}
			return r, nil
		}
	})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}

func getLogs(t *testing.T, srv *httptest.Server, path, accept, tok string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestLogsEndpoint: the newest num lines of all the app's regions,
// merged in time order; filters reach the regions; a region that cannot
// be read is named while the other's lines come; a tail streams new
// lines as server-sent events; bad queries are 400; the read scope and
// the pipeline are checked.
func TestLogsEndpoint(t *testing.T) {
	a := &fakeLogs{region: "local-a", live: make(chan applog.Line), got: make(chan applog.Query, 4), backlog: []applog.Line{
		logLine("local-a", "web.1", 1, "a1"), logLine("local-a", "web.1", 3, "a3"), logLine("local-a", "web.1", 5, "a5"),
	}}
	b := &fakeLogs{region: "local-b", live: make(chan applog.Line), got: make(chan applog.Query, 4), backlog: []applog.Line{
		logLine("local-b", "web.1", 2, "b2"), logLine("local-b", "web.1", 4, "b4"),
	}}
	srv := logsServer(t, map[string]*fakeLogs{"local-a": a, "local-b": b})

	resp := getLogs(t, srv, "/api/v1/apps/hello/logs?num=3&dyno=web.1&source=app", api.ContentTypeNDJSON, token)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != api.ContentTypeNDJSON {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var msgs []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var l applog.Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		msgs = append(msgs, l.Region+":"+l.Message)
	}
	if got := strings.Join(msgs, " "); got != "local-a:a3 local-b:b4 local-a:a5" {
		t.Errorf("num=3 across regions = %s, want the newest three in time order", got)
	}
	if q := <-a.got; q.Num != 3 || q.Dyno != "web.1" || q.Source != "app" || q.Tail {
		t.Errorf("region got query %+v", q)
	}
	<-b.got

	// One region unreadable: it is named, the other's lines come.
	srv2 := logsServer(t, map[string]*fakeLogs{"local-a": {backlog: a.backlog}})
	resp = getLogs(t, srv2, "/api/v1/apps/hello/logs", api.ContentTypeNDJSON, token)
	body := readAll(t, resp)
	if !strings.Contains(body, `{"region":"local-b","error":"region local-b: region local-b is not served here: region unavailable"}`) || !strings.Contains(body, `"message":"a5"`) {
		t.Errorf("body with one region down:\n%s", body)
	}

	// A tail as server-sent events.
	resp = getLogs(t, srv, "/api/v1/apps/hello/logs?tail=1&num=1&region=local-a", "", token)
	if ct := resp.Header.Get("Content-Type"); ct != api.ContentTypeSSE {
		t.Fatalf("content type %q", ct)
	}
	if q := <-a.got; !q.Tail || q.Num != 1 {
		t.Errorf("tail query %+v", q)
	}
	r := bufio.NewReader(resp.Body)
	wantEvent := func(msg string) {
		t.Helper()
		for {
			s, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended before %q: %v", msg, err)
			}
			if strings.HasPrefix(s, "data: ") && strings.Contains(s, `"message":"`+msg+`"`) {
				return
			}
		}
	}
	wantEvent("a5")
	a.live <- logLine("local-a", "web.1", 9, "new line")
	wantEvent("new line")
	resp.Body.Close()

	for _, tt := range []struct{ path, tok, want string }{
		{"/api/v1/apps/hello/logs?num=x", token, `num \"x\"`},
		{"/api/v1/apps/hello/logs?num=20000", token, "want 0 to 10000"},
		{"/api/v1/apps/hello/logs?source=router", token, "want app or drover"},
		{"/api/v1/apps/hello/logs?dyno=../x", token, "like web.2"},
		{"/api/v1/apps/hello/logs?region=mars", token, `does not run in region \"mars\"`},
		{"/api/v1/apps/hello/logs?tail=yes", token, "want 1 or 0"},
		{"/api/v1/apps/nope/logs", token, "not found"},
		{"/api/v1/apps/hello/logs", "other-token", "not allowed on pipeline"},
		{"/api/v1/apps/hello/logs", "config-token", "lacks the read scope"},
	} {
		resp := getLogs(t, srv, tt.path, "", tt.tok)
		if body := readAll(t, resp); resp.StatusCode < 400 || !strings.Contains(body, tt.want) {
			t.Errorf("GET %s = %d %s, want an error saying %q", tt.path, resp.StatusCode, body, tt.want)
		}
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	return b.String()
}

// TestLogsOfADynoTheAppLacks: a dyno or process type the current
// release does not run, or a one-off that never ran, is a 404 saying
// what there is, not an empty log.
func TestLogsOfADynoTheAppLacks(t *testing.T) {
	reader := &fakeLogs{backlog: []applog.Line{logLine("local-a", "web.2", 1, "hi")}}
	e, _, st := newOpsServerWith(t, func(s *api.Server) {
		s.LogReaders = func(string) (regions.LogReader, error) { return reader, nil }
	})
	ctx := context.Background()
	rel, err := st.CreateRelease(ctx, deployments.NewRelease{App: "hello", Slug: "s", Regions: []string{"local-a", "local-b"},
		Procfile: pipelines.Procfile{{Type: "web", Command: "bin/web"}, {Type: "worker", Command: "bin/worker"}}, Formation: pipelines.Formation{"web": 2, "worker": 1}})
	if err != nil {
		t.Fatal(err)
	}
	st.FinishRelease(ctx, "hello", rel.Version, pipelines.ReleaseSucceeded, "")
	st.StartRun(ctx, pipelines.Run{App: "hello", Command: "x", By: "admin", Region: "local-a", Release: 1})
	for _, tt := range []struct {
		query string
		code  int
		want  string
	}{
		{"dyno=web.2", 200, `"message":"hi"`},
		{"dyno=run.1", 200, ""},
		{"type=worker", 200, ""},
		{"dyno=web.3", 404, "app hello has no dyno web.3; v1 runs web.1, web.2, worker.1"},
		{"type=clock", 404, `no process type \"clock\"; its Procfile has web, worker`},
		{"dyno=run.2", 404, "has no one-off run.2"},
	} {
		w := do(e, "GET", "/api/v1/apps/hello/logs?"+tt.query, "Bearer "+token, "")
		if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.want) {
			t.Errorf("logs?%s = %d %s, want %d %q", tt.query, w.Code, w.Body.String(), tt.code, tt.want)
		}
	}
}
