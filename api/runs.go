package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// RunLedger is the part of the store one-off runs use.
type RunLedger interface {
	StartRun(ctx context.Context, r pipelines.Run) (pipelines.Run, error)
	FinishRun(ctx context.Context, app string, number, exitCode int) error
	Runs(ctx context.Context, app string, limit int) ([]pipelines.Run, error)
	ConfigVarsAt(ctx context.Context, app string, version int) (pipelines.ConfigVars, error)
}

// RunRegions finds what runs one-offs in a region from this server, and
// where that region reads a release's slug from.
type RunRegions interface {
	Runner(region string) (regions.Runner, error)
	Slug(region, digest string) (regions.Slug, error)
}

// RunRequest is the body of POST /api/v1/apps/APP/runs, and the first
// message of an attached run's WebSocket: the command as the CLI's
// arguments (joined with spaces, as Heroku joins them; a first argument
// that names a Procfile process type runs that type's command with the
// rest as its arguments), and where.
type RunRequest struct {
	Args   []string `json:"args"`
	Region string   `json:"region,omitempty"`
	Size   string   `json:"size,omitempty"`
	// TTY, on an attached run, gives the command a terminal of Rows ×
	// Cols; its output then all comes as stdout.
	TTY  bool   `json:"tty,omitempty"`
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
}

// RunStarted answers a detached run: what runs and how to follow it.
type RunStarted struct {
	Run    pipelines.Run `json:"run"`
	Follow string        `json:"follow"`
}

// RunMessage is a text message on an attached run's WebSocket, from the
// server: started (with the run), exit (with its code) or error. Output
// comes as binary messages whose first byte is 1 (stdout) or 2 (stderr);
// input goes as binary messages, and a text message {"type":"eof"} closes
// the run's stdin.
type RunMessage struct {
	Type     string         `json:"type"`
	Run      *pipelines.Run `json:"run,omitempty"`
	ExitCode *int           `json:"exit_code,omitempty"`
	Error    string         `json:"error,omitempty"`
	// Rows and Cols, from the client ({"type":"resize"}), resize a TTY.
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
}

// Stream bytes of binary run messages.
const (
	RunStdout byte = 1
	RunStderr byte = 2
)

// registerRuns mounts the one-off run routes.
func (s *Server) registerRuns(read, deploy *gin.RouterGroup) {
	read.GET("/apps/:app/runs", s.listRuns)
	deploy.POST("/apps/:app/runs", s.startDetachedRun)
	deploy.GET("/apps/:app/run", s.attachRun)
}

func (s *Server) listRuns(c *gin.Context) {
	app, ok := s.app(c)
	if !ok {
		return
	}
	if s.Runs == nil {
		c.JSON(http.StatusOK, []pipelines.Run{})
		return
	}
	runs, err := s.Runs.Runs(c.Request.Context(), app.Name, 50)
	if err != nil {
		s.failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, runs)
}

// runError is a run that cannot start, with the HTTP status it calls for.
type runError struct {
	status int
	msg    string
}

func (e *runError) Error() string { return e.msg }

// prepareRun checks req and finds what the run needs: the region's
// runner, the current release's slug and config, and a new run.N.
func (s *Server) prepareRun(ctx context.Context, app pipelines.App, by string, req RunRequest) (regions.Runner, regions.OneOff, pipelines.Run, error) {
	var none regions.OneOff
	if s.Runs == nil || s.RunRegions == nil {
		return nil, none, pipelines.Run{}, &runError{http.StatusNotImplemented, "this server cannot run one-off processes"}
	}
	if len(req.Args) == 0 || strings.TrimSpace(strings.Join(req.Args, "")) == "" {
		return nil, none, pipelines.Run{}, &runError{http.StatusBadRequest, "no command: give one after the app, e.g. drover run " + app.Name + " -- bash"}
	}
	region := req.Region
	if region == "" && len(app.Regions) > 0 {
		region = app.Regions[0]
	}
	if !slices.Contains(app.Regions, region) {
		return nil, none, pipelines.Run{}, &runError{http.StatusBadRequest, fmt.Sprintf("app %s does not run in region %q; it runs in %s", app.Name, region, strings.Join(app.Regions, ", "))}
	}
	rel, err := s.Ledger.CurrentRelease(ctx, app.Name)
	if errors.Is(err, pipelines.ErrNotFound) {
		return nil, none, pipelines.Run{}, &runError{http.StatusConflict, fmt.Sprintf("app %s has no succeeded release to run from: deploy it first", app.Name)}
	}
	if err != nil {
		return nil, none, pipelines.Run{}, err
	}
	command := strings.Join(req.Args, " ")
	if procCmd, ok := rel.Procfile.Command(req.Args[0]); ok {
		command = strings.Join(append([]string{procCmd}, req.Args[1:]...), " ")
	}
	vars, err := s.Runs.ConfigVarsAt(ctx, app.Name, rel.ConfigVersion)
	if err != nil {
		return nil, none, pipelines.Run{}, err
	}
	runner, err := s.RunRegions.Runner(region)
	if err != nil {
		return nil, none, pipelines.Run{}, &runError{http.StatusServiceUnavailable, fmt.Sprintf("region %s: %v", region, err)}
	}
	slug, err := s.RunRegions.Slug(region, rel.Slug)
	if err != nil {
		return nil, none, pipelines.Run{}, fmt.Errorf("slug of v%d for region %s: %w", rel.Version, region, err)
	}
	run, err := s.Runs.StartRun(ctx, pipelines.Run{App: app.Name, Command: command, By: by, Region: region, Release: rel.Version})
	if err != nil {
		return nil, none, run, err
	}
	// The dyno metadata every process of the release has.
	env := make(map[string]string, len(vars.Vars)+4)
	for k, v := range vars.Vars {
		env[k] = v
	}
	env["DROVER_APP"], env["DROVER_RELEASE"], env["DROVER_COMMIT"], env["DROVER_REGION"] = rel.App, rel.Name(), rel.Commit, region
	return runner, regions.OneOff{App: app.Name, Release: rel.Version, Number: run.Number, Command: command, Slug: slug, Env: env, Size: req.Size}, run, nil
}

func (s *Server) failRun(c *gin.Context, err error) {
	var re *runError
	if errors.As(err, &re) {
		fail(c, re.status, http.StatusText(re.status), re.msg)
		return
	}
	s.failErr(c, err)
}

// startDetachedRun starts a detached one-off: POST /api/v1/apps/APP/runs.
// It answers 201 once the run has started, and records its exit code in
// the ledger when it ends.
func (s *Server) startDetachedRun(c *gin.Context) {
	app, ok := s.app(c)
	if !ok {
		return
	}
	var req RunRequest
	if err := json.NewDecoder(io.LimitReader(c.Request.Body, 1<<20)).Decode(&req); err != nil {
		fail(c, http.StatusBadRequest, "invalid", "body: want {\"args\": [...]}: "+err.Error())
		return
	}
	runner, oneOff, run, err := s.prepareRun(c.Request.Context(), app, caller(c).Name, req)
	if err != nil {
		s.failRun(c, err)
		return
	}
	wait, err := runner.StartRun(context.WithoutCancel(c.Request.Context()), oneOff, nil)
	if err != nil {
		s.Runs.FinishRun(context.WithoutCancel(c.Request.Context()), app.Name, run.Number, 127)
		s.failErr(c, err)
		return
	}
	go s.recordEnd(app.Name, run.Number, wait)
	c.JSON(http.StatusCreated, RunStarted{Run: run, Follow: fmt.Sprintf("drover logs %s --dyno %s --tail", app.Name, run.Dyno())})
}

// recordEnd waits for a run and records its exit code.
func (s *Server) recordEnd(app string, number int, wait func() (int, error)) int {
	code, err := wait()
	if err != nil {
		s.logger().Warn("one-off run", "app", app, "run", number, "error", err)
		return -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Runs.FinishRun(ctx, app, number, code); err != nil {
		s.logger().Warn("record end of one-off run", "app", app, "run", number, "error", err)
	}
	return code
}

var upgrader = websocket.Upgrader{
	ReadBufferSize: 32 << 10, WriteBufferSize: 32 << 10,
	// The CLI is not a browser: it sends no Origin. A browser's page on
	// another origin is refused, so a token in a cookie cannot be used
	// across sites.
	CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "" },
}

// attachRun runs an attached one-off over a WebSocket: GET
// /api/v1/apps/APP/run, upgraded; the client's first message is a
// RunRequest, then the streams (see RunMessage). When the client goes
// away, the run is killed.
func (s *Server) attachRun(c *gin.Context) {
	app, ok := s.app(c)
	if !ok {
		return
	}
	ws, err := upgrader.Upgrade(c.Writer, c.Request, nil)
	if err != nil {
		return // the upgrader answered
	}
	defer ws.Close()
	ws.SetReadLimit(1 << 20)
	var mu sync.Mutex
	send := func(kind int, b []byte) error {
		mu.Lock()
		defer mu.Unlock()
		ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
		return ws.WriteMessage(kind, b)
	}
	sendJSON := func(m RunMessage) {
		b, _ := json.Marshal(m)
		send(websocket.TextMessage, b)
	}
	var req RunRequest
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := ws.ReadJSON(&req); err != nil {
		sendJSON(RunMessage{Type: "error", Error: "first message: want a run request: " + err.Error()})
		return
	}
	ws.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithCancel(context.WithoutCancel(c.Request.Context()))
	defer cancel()
	runner, oneOff, run, err := s.prepareRun(ctx, app, caller(c).Name, req)
	if err != nil {
		sendJSON(RunMessage{Type: "error", Error: err.Error()})
		return
	}
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close()
	resize := make(chan regions.TermSize, 4)
	stdio := &regions.Stdio{Stdin: stdinR,
		Stdout: streamWriter{RunStdout, send}, Stderr: streamWriter{RunStderr, send},
		TTY: req.TTY, Size: regions.TermSize{Rows: req.Rows, Cols: req.Cols}, Resize: resize}
	wait, err := runner.StartRun(ctx, oneOff, stdio)
	if err != nil {
		s.Runs.FinishRun(context.WithoutCancel(ctx), app.Name, run.Number, 127)
		sendJSON(RunMessage{Type: "error", Error: err.Error()})
		return
	}
	sendJSON(RunMessage{Type: "started", Run: &run})
	go func() {
		// The client's input; its going away (an error) kills the run.
		defer cancel()
		defer close(resize)
		for {
			kind, b, err := ws.ReadMessage()
			if err != nil {
				stdinW.CloseWithError(io.EOF)
				return
			}
			switch kind {
			case websocket.BinaryMessage:
				if _, err := stdinW.Write(b); err != nil {
					continue // the run stopped reading; keep watching for a disconnect
				}
			case websocket.TextMessage:
				var m RunMessage
				if json.Unmarshal(b, &m) != nil {
					continue
				}
				switch m.Type {
				case "eof":
					stdinW.Close()
				case "resize":
					select {
					case resize <- regions.TermSize{Rows: m.Rows, Cols: m.Cols}:
					default: // a newer size follows
					}
				}
			}
		}
	}()
	code := s.recordEnd(app.Name, run.Number, wait)
	sendJSON(RunMessage{Type: "exit", ExitCode: &code})
	mu.Lock()
	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	mu.Unlock()
}

// streamWriter sends what a run writes as binary messages tagged with
// its stream.
type streamWriter struct {
	stream byte
	send   func(int, []byte) error
}

func (w streamWriter) Write(p []byte) (int, error) {
	if err := w.send(websocket.BinaryMessage, append([]byte{w.stream}, p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}
