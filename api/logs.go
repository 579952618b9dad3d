package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/drover/drover/applog"
	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/regions"
)

// LogReaders finds what reads a region's logs from this server. It
// returns an error saying why when it cannot (a local region whose apps
// run on another machine's worker).
type LogReaders func(region string) (regions.LogReader, error)

// LogError is a region's log that could not be read, sent in the stream
// while the other regions' lines carry on.
type LogError struct {
	Region string `json:"region"`
	Error  string `json:"error"`
}

// Formats of GET /api/v1/apps/APP/logs, chosen by the Accept header.
const (
	ContentTypeNDJSON = "application/x-ndjson"
	ContentTypeSSE    = "text/event-stream"
)

// LogKeepAlive is how often a quiet log stream sends a keep-alive, so
// proxies do not close it.
var LogKeepAlive = 15 * time.Second

// logs streams the app's log lines: GET /api/v1/apps/APP/logs with num
// (default 100), tail=1, dyno, type (the process type), source (app or
// drover) and region. The newest num lines of every region come first,
// merged in time order, then, with tail, new lines as they are written.
// It answers text/event-stream (events "line" and "error"), or
// newline-delimited JSON when Accept asks for application/x-ndjson (one
// Line, or one LogError, a line). A region that cannot be read is named
// in an error event and the others go on.
func (s *Server) logs(c *gin.Context) {
	app, ok := s.app(c)
	if !ok {
		return
	}
	q := applog.Query{Num: applog.DefaultNum, Dyno: c.Query("dyno"), Type: c.Query("type"), Source: c.Query("source")}
	if v := c.Query("num"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			fail(c, http.StatusBadRequest, "invalid", fmt.Sprintf("num %q: want a number of lines", v))
			return
		}
		q.Num = n
	}
	switch c.Query("tail") {
	case "", "0", "false":
	case "1", "true":
		q.Tail = true
	default:
		fail(c, http.StatusBadRequest, "invalid", fmt.Sprintf("tail %q: want 1 or 0", c.Query("tail")))
		return
	}
	if err := q.Validate(); err != nil {
		fail(c, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	if err := s.checkDyno(c.Request.Context(), app.Name, q); err != nil {
		s.failErr(c, err)
		return
	}
	names := app.Regions
	if r := c.Query("region"); r != "" {
		if !slices.Contains(app.Regions, r) {
			fail(c, http.StatusBadRequest, "invalid", fmt.Sprintf("app %s does not run in region %q; it runs in %s", app.Name, r, strings.Join(app.Regions, ", ")))
			return
		}
		names = []string{r}
	}
	if s.LogReaders == nil {
		fail(c, http.StatusNotImplemented, "unsupported", "this server cannot read app logs")
		return
	}
	w := newLogWriter(c)
	ctx, cancel := context.WithCancel(c.Request.Context())
	defer cancel()

	type backlog struct {
		lines []applog.Line
		err   *LogError
	}
	backlogs := make(chan backlog, len(names))
	live := make(chan applog.Line, 256)
	errs := make(chan LogError, len(names))
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Go(func() {
			delivered := false
			reader, err := s.LogReaders(name)
			if err == nil {
				err = reader.Logs(ctx, app.Name, q, applog.Sink{
					Backlog: func(lines []applog.Line) error {
						delivered = true
						backlogs <- backlog{lines: lines}
						return nil
					},
					Live: func(l applog.Line) error {
						select {
						case live <- l:
							return nil
						case <-ctx.Done():
							return ctx.Err()
						}
					},
				})
			}
			if err == nil || ctx.Err() != nil {
				if !delivered {
					backlogs <- backlog{}
				}
				return
			}
			e := LogError{Region: name, Error: fmt.Sprintf("region %s: %v", name, err)}
			if !delivered {
				backlogs <- backlog{err: &e}
				return
			}
			errs <- e
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	// The backlog: every region's newest lines, merged, the newest num.
	var all [][]applog.Line
	for range names {
		b := <-backlogs
		if b.err != nil {
			w.error(*b.err)
			continue
		}
		all = append(all, b.lines)
	}
	for _, l := range applog.Merge(q.Num, all...) {
		w.line(l)
	}
	w.flush()
	if !q.Tail {
		return
	}
	keepAlive := time.NewTicker(LogKeepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case l := <-live:
			w.line(l)
			// Lines that came together go out together.
			for more := true; more; {
				select {
				case l := <-live:
					w.line(l)
				default:
					more = false
				}
			}
			w.flush()
		case e := <-errs:
			w.error(e)
			w.flush()
		case <-keepAlive.C:
			w.keepAlive()
		case <-done:
			return
		case <-ctx.Done():
			return
		}
	}
}

// checkDyno refuses a dyno or process type the app does not have, so a
// typo is an error rather than a log that stays empty: the current
// release's formation names its dynos (web.1 to web.N), the runs ledger
// its one-offs (run.N). An app with no release yet has none to check.
func (s *Server) checkDyno(ctx context.Context, app string, q applog.Query) error {
	if q.Dyno == "" && q.Type == "" {
		return nil
	}
	if n, ok := strings.CutPrefix(q.Dyno, "run."); ok {
		if s.Runs == nil {
			return nil
		}
		number, err := strconv.Atoi(n)
		if err != nil {
			return fmt.Errorf("dyno %q: want run.N: %w", q.Dyno, pipelines.ErrInvalid)
		}
		runs, err := s.Runs.Runs(ctx, app, 1)
		if err != nil {
			return err
		}
		if len(runs) == 0 || number > runs[0].Number || number < 1 {
			return fmt.Errorf("app %s has no one-off %s (`drover ps %s` lists its runs): %w", app, q.Dyno, app, pipelines.ErrNotFound)
		}
		return nil
	}
	rel, err := s.Ledger.CurrentRelease(ctx, app)
	if errors.Is(err, pipelines.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var dynos []string
	for _, typ := range rel.Formation.Types() {
		for i := 1; i <= rel.Formation[typ]; i++ {
			dynos = append(dynos, typ+"."+strconv.Itoa(i))
		}
	}
	typ := q.Type
	if q.Dyno != "" {
		typ = applog.TypeOf(q.Dyno)
	}
	_, known := rel.Procfile.Command(typ)
	if !known && typ != pipelines.ReleaseProcess {
		return fmt.Errorf("app %s has no process type %q; its Procfile has %s: %w", app, typ, strings.Join(rel.Procfile.Types(), ", "), pipelines.ErrNotFound)
	}
	if q.Dyno != "" && typ != pipelines.ReleaseProcess && !slices.Contains(dynos, q.Dyno) {
		return fmt.Errorf("app %s has no dyno %s; %s runs %s: %w", app, q.Dyno, rel.Name(), strings.Join(dynos, ", "), pipelines.ErrNotFound)
	}
	return nil
}

// logWriter writes a log stream in the format the caller asked for.
type logWriter struct {
	c      *gin.Context
	ndjson bool
}

func newLogWriter(c *gin.Context) *logWriter {
	w := &logWriter{c: c, ndjson: strings.Contains(c.GetHeader("Accept"), ContentTypeNDJSON)}
	h := c.Writer.Header()
	if w.ndjson {
		h.Set("Content-Type", ContentTypeNDJSON)
	} else {
		h.Set("Content-Type", ContentTypeSSE)
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	c.Writer.WriteHeaderNow()
	return w
}

func (w *logWriter) line(l applog.Line) { w.event("line", l) }
func (w *logWriter) error(e LogError)   { w.event("error", e) }
func (w *logWriter) flush()             { w.c.Writer.Flush() }
func (w *logWriter) keepAlive()         { w.write(":\n\n", "\n"); w.flush() }
func (w *logWriter) write(sse, nd string) {
	if w.ndjson {
		w.c.Writer.WriteString(nd)
	} else {
		w.c.Writer.WriteString(sse)
	}
}

func (w *logWriter) event(name string, v any) {
	b, _ := json.Marshal(v)
	if w.ndjson {
		w.c.Writer.Write(append(b, '\n'))
		return
	}
	fmt.Fprintf(w.c.Writer, "event: %s\ndata: %s\n\n", name, b)
}
