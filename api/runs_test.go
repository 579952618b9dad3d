package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/drover/drover/api"
	"github.com/drover/drover/deployments"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// fakeRunner runs a one-off in the test: it echoes stdin to stdout
// (attached) and exits with the code named by the command's last word.
type fakeRunner struct {
	mu     sync.Mutex
	got    []regions.OneOff
	killed chan struct{}
}

func (f *fakeRunner) StartRun(ctx context.Context, o regions.OneOff, stdio *regions.Stdio) (func() (int, error), error) {
	f.mu.Lock()
	f.got = append(f.got, o)
	f.mu.Unlock()
	var code int
	fmt.Sscanf(o.Command[strings.LastIndexByte(o.Command, ' ')+1:], "%d", &code)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if stdio == nil {
			return
		}
		if strings.HasPrefix(o.Command, "tty") {
			sz := <-stdio.Resize
			fmt.Fprintf(stdio.Stdout, "tty=%v %dx%d then %dx%d", stdio.TTY, stdio.Size.Rows, stdio.Size.Cols, sz.Rows, sz.Cols)
			return
		}
		if strings.HasPrefix(o.Command, "hang") {
			<-ctx.Done()
			code = 137
			close(f.killed)
			return
		}
		b, _ := io.ReadAll(stdio.Stdin)
		fmt.Fprintf(stdio.Stdout, "got %s", b)
		fmt.Fprint(stdio.Stderr, "to stderr")
	}()
	return func() (int, error) { <-done; return code, nil }, nil
}

type fakeRunRegions struct{ r *fakeRunner }

func (f fakeRunRegions) Runner(region string) (regions.Runner, error) {
	if region == "local-b" {
		return nil, fmt.Errorf("served elsewhere: %w", regions.ErrUnavailable)
	}
	return f.r, nil
}
func (f fakeRunRegions) Slug(region, digest string) (regions.Slug, error) {
	return regions.Slug{Digest: digest, Path: "/slugs/" + digest}, nil
}

// TestRuns: a detached run starts from the current release with its
// config and is recorded with its exit code; a Procfile type as the first
// word runs its command; an attached run streams over a WebSocket, its
// exit code is the answer, and a client that goes away kills it; an app
// with no succeeded release, a region it does not run in and a region
// this server cannot run in are refused saying so.
func TestRuns(t *testing.T) {
	runner := &fakeRunner{killed: make(chan struct{})}
	e, _, store := newOpsServerWith(t, func(s *api.Server) {
		s.RunRegions = fakeRunRegions{runner}
	})
	srv := httptest.NewServer(e)
	defer srv.Close()
	ctx := context.Background()
	post := func(body string) (int, string) {
		w := do(e, "POST", "/api/v1/apps/hello/runs", "Bearer "+token, body)
		return w.Code, w.Body.String()
	}
	if code, body := post(`{"args":["rake","cleanup"]}`); code != http.StatusConflict || !strings.Contains(body, "no succeeded release") {
		t.Fatalf("run before any release = %d %s", code, body)
	}
	if _, err := store.SetConfigVars(ctx, "hello", map[string]string{"GREETING": "hi"}, nil); err != nil {
		t.Fatal(err)
	}
	rel, err := store.CreateRelease(ctx, deployments.NewRelease{App: "hello", Slug: "abc", ConfigVersion: 1, Regions: []string{"local-a", "local-b"},
		Procfile: pipelines.Procfile{{Type: "web", Command: "bin/web"}, {Type: "worker", Command: "bin/worker --queue"}}})
	if err != nil {
		t.Fatal(err)
	}
	store.FinishRelease(ctx, "hello", rel.Version, pipelines.ReleaseSucceeded, "")

	code, body := post(`{"args":["worker","42"]}`)
	if code != http.StatusCreated || !strings.Contains(body, `"follow":"drover logs hello --dyno run.1 --tail"`) {
		t.Fatalf("detached run = %d %s", code, body)
	}
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		runs, _ := store.Runs(ctx, "hello", 5)
		if len(runs) == 1 && runs[0].ExitCode != nil {
			if *runs[0].ExitCode != 42 || runs[0].Command != "bin/worker --queue 42" || runs[0].By != "admin" || runs[0].Release != rel.Version {
				t.Errorf("recorded run = %+v", runs[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the detached run's end was not recorded: %+v", runs)
		}
	}
	o := runner.got[0]
	if o.Env["GREETING"] != "hi" || o.Env["DROVER_APP"] != "hello" || o.Env["DROVER_RELEASE"] != "v1" || o.Slug.Path != "/slugs/abc" || o.Number != 1 {
		t.Errorf("one-off = %+v env %v", o, o.Env)
	}
	for _, tt := range []struct{ body, want string }{
		{`{"args":[]}`, "no command"},
		{`{"args":["x"],"region":"mars"}`, `does not run in region \"mars\"`},
		{`{"args":["x"],"region":"local-b"}`, "served elsewhere"},
		{`not json`, "body"},
	} {
		if code, body := post(tt.body); code < 400 || !strings.Contains(body, tt.want) {
			t.Errorf("run %s = %d %s, want an error saying %q", tt.body, code, body, tt.want)
		}
	}
	if w := do(e, "POST", "/api/v1/apps/hello/runs", "Bearer read-token", `{"args":["x"]}`); w.Code != http.StatusForbidden {
		t.Errorf("a read token ran a command: %d", w.Code)
	}

	// Attached, over the WebSocket.
	dial := func() *websocket.Conn {
		h := http.Header{"Authorization": {"Bearer " + token}}
		ws, resp, err := websocket.DefaultDialer.Dial(strings.Replace(srv.URL, "http", "ws", 1)+"/api/v1/apps/hello/run", h)
		if err != nil {
			t.Fatalf("dial: %v (%v)", err, resp)
		}
		return ws
	}
	ws := dial()
	defer ws.Close()
	ws.WriteJSON(api.RunRequest{Args: []string{"cat", "5"}})
	ws.WriteMessage(websocket.BinaryMessage, []byte("input"))
	ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"eof"}`))
	var stdout, stderr bytes.Buffer
	var exit *int
	for exit == nil {
		kind, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("read: %v (stdout %q)", err, stdout.String())
		}
		if kind == websocket.BinaryMessage {
			map[byte]*bytes.Buffer{api.RunStdout: &stdout, api.RunStderr: &stderr}[b[0]].Write(b[1:])
			continue
		}
		var m api.RunMessage
		json.Unmarshal(b, &m)
		if m.Type == "error" {
			t.Fatal(m.Error)
		}
		exit = m.ExitCode
	}
	if *exit != 5 || stdout.String() != "got input" || stderr.String() != "to stderr" {
		t.Errorf("attached run: exit %d, stdout %q, stderr %q", *exit, stdout.String(), stderr.String())
	}

	// A terminal of the client's size, resized as the client's is.
	ws3 := dial()
	defer ws3.Close()
	ws3.WriteJSON(api.RunRequest{Args: []string{"tty"}, TTY: true, Rows: 24, Cols: 80})
	ws3.ReadMessage() // started
	ws3.WriteJSON(api.RunMessage{Type: "resize", Rows: 50, Cols: 132})
	_, b, err := ws3.ReadMessage()
	if err != nil || string(b) != "\x01tty=true 24x80 then 50x132" {
		t.Errorf("tty run wrote %q, %v", b, err)
	}

	// A client that goes away kills its run.
	ws2 := dial()
	ws2.WriteJSON(api.RunRequest{Args: []string{"hang"}})
	ws2.ReadMessage() // started
	ws2.Close()
	select {
	case <-runner.killed:
	case <-time.After(5 * time.Second):
		t.Fatal("the run of a client that went away was not killed")
	}
}
