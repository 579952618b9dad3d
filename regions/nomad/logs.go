package nomad

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/drover/drover/applog"
	"github.com/drover/drover/regions"
)

var _ regions.LogReader = (*Region)(nil)

// logBacklogPerLine is how many bytes of a task's log Logs asks Nomad for
// per line of -n: Nomad serves logs by bytes from the end, not by lines.
const logBacklogPerLine = 512

// logRecent is how long after it stopped an allocation's lines still
// count for the backlog (the release just replaced), while Nomad keeps it.
const logRecent = 30 * time.Minute

// Logs reads the app's log from the allocations of its job: each task's
// stdout and stderr through the client's log API (AllocFS().Logs, origin
// end with an offset of bytes for -n), as app lines stamped with the time
// they were received (Nomad's frames carry none), and the task events
// (started, terminated with the exit code, restarting, killed) as drover
// lines with Nomad's own times. With q.Tail it follows each task's logs
// and the job's allocations, with blocking queries, so a deployment's new
// allocations stream as they start. A Nomad that cannot be reached gives
// an error matching regions.ErrUnavailable.
func (r *Region) Logs(ctx context.Context, app string, q applog.Query, sink applog.Sink) error {
	if err := q.Validate(); err != nil {
		return fmt.Errorf("logs of %s: %w", app, err)
	}
	if err := r.resolve(ctx); err != nil {
		return err
	}
	// A one-off's lines are its own job's (RunJobID).
	job, dynoOf := app, allocDyno
	if n, ok := runNumber(q.Dyno); ok {
		job = RunJobID(app, n)
		dynoOf = func(*api.AllocationListStub) string { return q.Dyno }
	}
	allocs, meta, err := r.client.Jobs().Allocations(job, false, r.queryOpts(ctx))
	if err != nil && !isNotFound(err) {
		return r.wrap(ctx, fmt.Sprintf("list allocations of %q", job), err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := &logTail{r: r, q: q, dynoOf: dynoOf, live: make(chan applog.Line, 1024), seen: map[string]bool{}, events: map[string]int{}}
	defer t.wg.Wait()
	defer cancel()

	// The backlog: the newest lines of each wanted allocation, merged.
	var backlog [][]applog.Line
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, a := range logAllocs(allocs, time.Now()) {
		dyno := dynoOf(a)
		if !q.MatchDyno(dyno) {
			continue
		}
		t.seen[a.ID] = true
		backlog = append(backlog, t.newEvents(a, dyno))
		if q.Source == applog.SourceDrover {
			continue
		}
		for _, typ := range []string{api.FSLogNameStdout, api.FSLogNameStderr} {
			// The follow starts before the backlog is read and skips what
			// the backlog read, so no line is lost or shown twice.
			// It asks for as much as the backlog does, so whichever of
			// the two Nomad serves first, nothing falls between them.
			var from chan logPos
			if q.Tail {
				from = make(chan logPos, 1)
				t.follow(ctx, a, dyno, typ, api.OriginEnd, backlogBytes(q), from)
			}
			wg.Go(func() {
				lines, end := r.logBacklog(ctx, a, dyno, typ, q)
				mu.Lock()
				backlog = append(backlog, lines)
				mu.Unlock()
				if from != nil {
					from <- end
				}
			})
		}
	}
	wg.Wait()
	if err := sink.Backlog(applog.Merge(q.Num, backlog...)); err != nil {
		return err
	}
	if !q.Tail {
		return nil
	}
	index := uint64(0)
	if meta != nil {
		index = meta.LastIndex
	}
	t.wg.Go(func() { t.watchAllocs(ctx, job, index) })
	for {
		select {
		case <-ctx.Done():
			return nil
		case l := <-t.live:
			if err := sink.Live(l); err != nil {
				return err
			}
		}
	}
}

// logAllocs are the allocations whose lines count: those Nomad wants
// running and those that stopped recently, oldest first.
func logAllocs(allocs []*api.AllocationListStub, now time.Time) []*api.AllocationListStub {
	var out []*api.AllocationListStub
	for _, a := range allocs {
		if a.DesiredStatus == api.AllocDesiredStatusRun || now.Sub(time.Unix(0, a.ModifyTime)) < logRecent {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(x, y *api.AllocationListStub) int { return int(x.CreateTime - y.CreateTime) })
	return out
}

// runNumber reads N of a one-off's dyno name, run.N.
func runNumber(dyno string) (int, bool) {
	rest, ok := strings.CutPrefix(dyno, "run.")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n > 0
}

// allocDyno names an allocation as a dyno: web.1 for index 0 of group web.
func allocDyno(a *api.AllocationListStub) string {
	index := 0
	if m := allocIndexRE.FindStringSubmatch(a.Name); m != nil {
		index, _ = strconv.Atoi(m[1])
	}
	return a.TaskGroup + "." + strconv.Itoa(index+1)
}

// logPos is where a task's log was read to: the file Nomad read (its logs
// rotate as <task>.<type>.<n>) and the offset in it.
type logPos struct {
	file   string
	offset int64
}

// after reports whether a frame that ends at (file, offset) ends after p.
func (p logPos) after(file string, offset int64) bool {
	if p.file == "" || file != p.file {
		return logFileIndex(file) >= logFileIndex(p.file)
	}
	return offset > p.offset
}

func logFileIndex(file string) int {
	n, _ := strconv.Atoi(file[strings.LastIndexByte(file, '.')+1:])
	return n
}

// logBacklog reads the newest lines of one task log and where it ended.
func (r *Region) logBacklog(ctx context.Context, a *api.AllocationListStub, dyno, typ string, q applog.Query) ([]applog.Line, logPos) {
	var pos logPos
	if q.Num == 0 {
		// Only what comes next: read nothing, follow from the end.
		return nil, pos
	}
	cancel := make(chan struct{})
	defer close(cancel)
	alloc := &api.Allocation{ID: a.ID, NodeID: a.NodeID, Namespace: a.Namespace}
	offset := backlogBytes(q)
	frames, errCh := r.client.AllocFS().Logs(alloc, false, a.TaskGroup, typ, api.OriginEnd, offset, cancel, r.queryOpts(ctx))
	var data []byte
	now := time.Now()
	for done := false; !done; {
		select {
		case f, ok := <-frames:
			if !ok {
				done = true
				break
			}
			data = append(data, f.Data...)
			if f.File != "" {
				pos = logPos{file: f.File, offset: f.Offset}
			}
		case err := <-errCh:
			if err != nil && ctx.Err() == nil {
				r.log.Debug("read task log", "alloc", a.ID, "log", typ, "err", err)
			}
			done = true
		case <-ctx.Done():
			return nil, pos
		}
	}
	// The first line may be cut by the byte offset; drop it unless the
	// read began at the start of the log.
	if int64(len(data)) >= offset {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	var lines []applog.Line
	if len(data) > 0 {
		for _, raw := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
			lines = appendAppLines(lines, raw, now, dyno, r.Name(), q)
		}
	}
	if len(lines) > q.Num {
		lines = lines[len(lines)-q.Num:]
	}
	return lines, pos
}

func appendAppLines(lines []applog.Line, raw []byte, at time.Time, dyno, region string, q applog.Query) []applog.Line {
	for _, msg := range applog.Split(bytes.ToValidUTF8(raw, []byte("\uFFFD"))) {
		l := applog.Line{Time: at, Source: applog.SourceApp, Dyno: dyno, Region: region, Message: msg}
		if q.Match(l) {
			lines = append(lines, l)
		}
	}
	return lines
}

// backlogBytes is how much of each task log the backlog reads.
func backlogBytes(q applog.Query) int64 {
	if q.Num == 0 {
		return 0
	}
	return int64(q.Num * logBacklogPerLine)
}

// logTail follows an app's logs and allocations.
type logTail struct {
	r      *Region
	q      applog.Query
	dynoOf func(*api.AllocationListStub) string
	live   chan applog.Line
	wg     sync.WaitGroup

	mu     sync.Mutex
	seen   map[string]bool // allocations followed
	events map[string]int  // task events already emitted, per allocation
}

func (t *logTail) send(ctx context.Context, l applog.Line) bool {
	select {
	case t.live <- l:
		return true
	case <-ctx.Done():
		return false
	}
}

// follow streams one task log from origin (its start for an allocation
// that is new, its end otherwise). Frames wait for fromCh, where the
// backlog's reader says where it stopped; what it read already is
// skipped. A stream that Nomad ends or refuses (an allocation whose task
// has not started has no log yet) is opened again, from where it got
// to, for as long as the tail lasts, a second apart.
func (t *logTail) follow(ctx context.Context, a *api.AllocationListStub, dyno, typ, origin string, offset int64, fromCh <-chan logPos) {
	t.wg.Go(func() {
		var from logPos
		if fromCh != nil {
			select {
			case from = <-fromCh:
			case <-ctx.Done():
				return
			}
		}
		var pending []byte
		for ctx.Err() == nil {
			got, err := t.stream(ctx, a, dyno, typ, origin, offset, &from, &pending)
			if err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
				t.r.log.Debug("follow task log", "alloc", a.ID, "log", typ, "err", err)
			}
			if got.file != "" {
				// Carry on after what was read: from the start, skipping it.
				origin, offset, from = api.OriginStart, 0, got
			}
			if sleep(ctx, time.Second) != nil {
				return
			}
		}
	})
}

// stream reads one follow stream of a task log until it ends, sending
// its lines, and returns how far it read.
func (t *logTail) stream(ctx context.Context, a *api.AllocationListStub, dyno, typ, origin string, offset int64, from *logPos, pending *[]byte) (logPos, error) {
	cancel := make(chan struct{})
	defer close(cancel)
	alloc := &api.Allocation{ID: a.ID, NodeID: a.NodeID, Namespace: a.Namespace}
	frames, errCh := t.r.client.AllocFS().Logs(alloc, true, a.TaskGroup, typ, origin, offset, cancel, t.r.queryOpts(ctx))
	read := *from
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				return read, nil
			}
			data := f.Data
			if from.file != "" && f.File != "" && !from.after(f.File, f.Offset) {
				continue // read already
			}
			if from.file != "" && f.File == from.file && f.Offset-int64(len(data)) < from.offset {
				data = data[int64(len(data))-(f.Offset-from.offset):]
			}
			*from = logPos{}
			if f.File != "" {
				read = logPos{file: f.File, offset: f.Offset}
			}
			*pending = append(*pending, data...)
			now := time.Now()
			for {
				i := bytes.IndexByte(*pending, '\n')
				if i < 0 {
					break
				}
				for _, l := range appendAppLines(nil, (*pending)[:i], now, dyno, t.r.Name(), t.q) {
					if !t.send(ctx, l) {
						return read, ctx.Err()
					}
				}
				*pending = (*pending)[i+1:]
			}
		case err := <-errCh:
			return read, err
		case <-ctx.Done():
			return read, ctx.Err()
		}
	}
}

// watchAllocs follows the allocations of job (the app's, or a one-off's)
// with blocking queries: a new allocation's logs are followed from their
// start, and new task events
// of every allocation become drover lines. A Nomad that stops answering
// is retried; the streams already open carry on.
func (t *logTail) watchAllocs(ctx context.Context, job string, index uint64) {
	for ctx.Err() == nil {
		allocs, meta, err := t.r.client.Jobs().Allocations(job, false, t.r.blockingOpts(ctx, index, t.r.wait))
		if err != nil && !isNotFound(err) {
			t.r.log.Debug("watch allocations for logs", "job", job, "err", err)
			if sleep(ctx, t.r.poll) != nil {
				return
			}
			continue
		}
		if meta != nil {
			index = meta.LastIndex
		}
		for _, a := range logAllocs(allocs, time.Now()) {
			dyno := t.dynoOf(a)
			if !t.q.MatchDyno(dyno) {
				continue
			}
			for _, l := range t.newEvents(a, dyno) {
				if !t.send(ctx, l) {
					return
				}
			}
			t.mu.Lock()
			isNew := !t.seen[a.ID]
			t.seen[a.ID] = true
			t.mu.Unlock()
			if isNew && t.q.Source != applog.SourceDrover {
				for _, typ := range []string{api.FSLogNameStdout, api.FSLogNameStderr} {
					t.follow(ctx, a, dyno, typ, api.OriginStart, 0, nil)
				}
			}
		}
		if err != nil && sleep(ctx, t.r.poll) != nil { // the job is gone: wait for it
			return
		}
	}
}

// newEvents are the allocation's task events not emitted before, as
// drover lines, when the query wants drover lines.
func (t *logTail) newEvents(a *api.AllocationListStub, dyno string) []applog.Line {
	if t.q.Source == applog.SourceApp {
		return nil
	}
	var evs []*api.TaskEvent
	for _, name := range slices.Sorted(maps.Keys(a.TaskStates)) {
		evs = append(evs, a.TaskStates[name].Events...)
	}
	t.mu.Lock()
	from := t.events[a.ID]
	t.events[a.ID] = len(evs)
	t.mu.Unlock()
	var out []applog.Line
	for _, ev := range evs[min(from, len(evs)):] {
		if ev == nil {
			continue
		}
		l := applog.Line{Time: time.Unix(0, ev.Time).UTC(), Source: applog.SourceDrover, Dyno: dyno, Region: t.r.Name(), Message: eventLine(ev)}
		if t.q.Match(l) {
			out = append(out, l)
		}
	}
	return out
}

// eventLine says a task event as a drover line, in Heroku's words
// where there are some.
func eventLine(ev *api.TaskEvent) string {
	msg := ev.DisplayMessage
	switch ev.Type {
	case api.TaskTerminated:
		code := ev.ExitCode
		if s, ok := ev.Details["exit_code"]; ok {
			code, _ = strconv.Atoi(s)
		}
		return fmt.Sprintf("Process exited with status %d", code)
	case api.TaskStarted:
		return "State changed from starting to up"
	case api.TaskKilling:
		return "Stopping process: " + msg
	}
	if msg == "" {
		return ev.Type
	}
	return ev.Type + ": " + msg
}
