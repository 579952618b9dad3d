package local

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/drover/drover/pipelines"
	"github.com/drover/drover/sandbox"
)

// proc is one running instance of a process type (a dyno).
type proc struct {
	Type  string `json:"type"`
	Index int    `json:"index"`
	PID   int    `json:"pid"`
	PGID  int    `json:"pgid"`
	Port  int    `json:"port"`
	// StartTime is the kernel's start time of PID (/proc/<pid>/stat field
	// 22), so a pid the kernel reused for another program is never taken
	// for ours.
	StartTime uint64 `json:"start_time"`
	// Started is when drover started it, for `drover ps`.
	Started time.Time `json:"started,omitzero"`

	app      string // for drover's log lines; "" for adopted processes
	logPath  string // the raw output file
	logStart int64  // size of the output before this run, so its tail is ours

	// done is closed once a process this Region started has been reaped,
	// after exit is set; nil for adopted processes, which are not our
	// children.
	done     chan struct{}
	exit     *os.ProcessState
	exitAt   time.Time
	stopping atomic.Bool // an exit from now on is expected, not a crash
}

func (p *proc) name() string { return p.Type + "." + strconv.Itoa(p.Index) }

// procStat is what we read about a pid from the kernel.
type procStat struct {
	state byte   // 'Z' for a zombie
	pgrp  int    // process group; 0 where unknown
	start uint64 // clock ticks after boot; 0 where unknown
}

// alive reports whether p is still the process we started and has not exited.
func alive(p *proc) bool {
	if reaped(p) {
		return false
	}
	st, err := readProcStat(p.PID)
	return err == nil && st.start == p.StartTime && st.state != 'Z'
}

func allAlive(rel *release) bool {
	for _, p := range rel.Procs {
		if !alive(p) {
			return false
		}
	}
	return true
}

// ownsGroup reports whether p's process group still exists and is ours.
// The kernel does not hand out a pid while a group of that number has
// members, so if the number now belongs to a different process, our group
// is gone.
func ownsGroup(p *proc) bool {
	if p.PGID <= 1 || p.PGID == syscall.Getpgrp() {
		return false
	}
	if st, err := readProcStat(p.PGID); err == nil && st.start != p.StartTime {
		return false
	}
	return groupAlive(p.PGID)
}

// signalGroup signals p's whole group, so children of `sh -c` and of the
// app go too. It reports whether there was a group to signal.
func signalGroup(p *proc, sig syscall.Signal) bool {
	if !ownsGroup(p) {
		return false
	}
	return syscall.Kill(-p.PGID, sig) == nil
}

// startSpec is one process to start.
type startSpec struct {
	app     string
	version int
	typ     string
	index   int
	command string
	dir     string // working dir: the unpacked slug
	logPath string
	env     []string
	port    int
}

// startProc starts one process detached from drover: its own process group
// (so signals to drover's group do not reach it, and it can be stopped as a
// whole) and no parent-death signal, so it outlives a crashed drover and can
// be adopted. Its output goes straight to the log file, not through a pipe
// that would die with drover.
func (r *Region) startProc(s startSpec) (*proc, error) {
	f, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	dyno := s.typ + "." + strconv.Itoa(s.index)
	r.droverLog(s.app, dyno, "Starting process with command `%s` (v%d, port %d)", s.command, s.version, s.port)
	// Its own session and group, and detached: the next drover adopts it.
	cmd, err := r.sandbox.Command(context.Background(), sandbox.Spec{
		Args: pipelines.DynoArgs(".", s.command), Dir: s.dir, Env: s.env,
		// It serves PORT on the host's loopback, where the proxy dials it.
		Network: true, Detach: true,
	})
	if err != nil {
		return nil, fmt.Errorf("start %s.%d: %w", s.typ, s.index, err)
	}
	cmd.Stdout = f
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s.%d: %w", s.typ, s.index, err)
	}
	pid := cmd.Process.Pid
	// The child is ours until we Wait, so its /proc entry exists even if it
	// has already exited.
	st, err := readProcStat(pid)
	if err != nil {
		syscall.Kill(-pid, syscall.SIGKILL)
		cmd.Wait()
		return nil, fmt.Errorf("start %s.%d: read process start time: %w", s.typ, s.index, err)
	}
	p := &proc{
		Type: s.typ, Index: s.index, PID: pid, PGID: pid, Port: s.port, StartTime: st.start, Started: time.Now().UTC(),
		app: s.app, logPath: s.logPath, logStart: fi.Size(), done: make(chan struct{}),
	}
	r.addPump(s.logPath)
	go func() {
		cmd.Wait()
		p.exitAt = time.Now().UTC()
		p.exit = cmd.ProcessState
		// The exit is logged before done closes: whoever waits for done
		// (a stop, which then may delete the app's dir) finds the line
		// written, and no write comes after.
		log := r.log.With("app", s.app, "release", s.version, "proc", p.name(), "pid", pid)
		code, _ := exitCode(p.exit)
		if p.stopping.Load() {
			log.Debug("process stopped", "status", p.exit.String())
			r.droverLog(s.app, dyno, "Process exited with status %d", code)
		} else {
			log.Warn("process exited", "status", p.exit.String(), "log", s.logPath)
			r.droverLog(s.app, dyno, "Process exited with status %d", code)
			r.droverLog(s.app, dyno, "State changed from up to crashed")
		}
		close(p.done)
	}()
	return p, nil
}

// stopRelease stops rel's processes and removes its record.
func (r *Region) stopRelease(rel *release) {
	r.stopProcs(rel.Procs)
	if err := removeRecord(rel); err != nil {
		r.log.Warn("stop release", "app", rel.App, "release", rel.Version, "error", err)
	}
}

// stopProcs stops processes as Heroku stops dynos: SIGTERM to each group,
// up to stopGrace to exit, then SIGKILL. It returns once they are gone (or,
// for a group stuck in the kernel, shortly after SIGKILL).
func (r *Region) stopProcs(procs []*proc) {
	var live []*proc
	for _, p := range procs {
		p.stopping.Store(true)
		if signalGroup(p, syscall.SIGTERM) {
			live = append(live, p)
			if p.app != "" {
				r.droverLog(p.app, p.name(), "Stopping process with SIGTERM")
			}
		}
	}
	deadline := time.Now().Add(stopGrace)
	// Our own children's leaders are gone when the reaper closes done:
	// wait for that, which wakes the stop at once, rather than sleeping
	// between looks. (A sandboxed app's inner processes usually outlive
	// their leader by a moment, so the looks below still read /proc for
	// them once or twice.)
	grace := time.NewTimer(time.Until(deadline))
	defer grace.Stop()
wait:
	for _, p := range live {
		if p.done == nil {
			continue
		}
		select {
		case <-p.done:
		case <-grace.C:
			break wait
		}
	}
	// Then the group's other members, and adopted processes: most exit
	// within milliseconds of SIGTERM, and a deploy waits for the old
	// release to go, so look at once, then less often.
	for delay := time.Millisecond; ; delay = min(2*delay, 25*time.Millisecond) {
		live = slices.DeleteFunc(live, func(p *proc) bool { return !ownsGroup(p) })
		if len(live) == 0 || !time.Now().Before(deadline) {
			break
		}
		time.Sleep(min(delay, time.Until(deadline)))
	}
	for _, p := range live {
		r.log.Warn("process ignored SIGTERM; killing it", "proc", p.name(), "pid", p.PID)
		signalGroup(p, syscall.SIGKILL)
	}
	// Wait for our own children to be reaped, so a caller that returns
	// finds them gone rather than lingering as zombies.
	reaped := time.After(2 * time.Second)
	for _, p := range procs {
		if p.done == nil {
			continue
		}
		select {
		case <-p.done:
		case <-reaped:
			return
		}
	}
}

// exitReason says how p ended, with the end of its log: what a user needs
// to see why a release failed.
func exitReason(p *proc) string {
	var how string
	if p.done != nil {
		select {
		case <-p.done:
		case <-time.After(time.Second): // seen dead in /proc, not reaped yet
		}
	}
	switch {
	case p.exit == nil:
		how = p.name() + " exited"
	case p.exit.Exited():
		how = fmt.Sprintf("%s exited with code %d", p.name(), p.exit.ExitCode())
	default:
		if ws, ok := p.exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			how = fmt.Sprintf("%s was killed by signal %d (%s)", p.name(), ws.Signal(), ws.Signal())
		} else {
			how = fmt.Sprintf("%s ended: %s", p.name(), p.exit)
		}
	}
	return withTail(how, p)
}

func withTail(msg string, p *proc) string {
	if tail := logTail(p.logPath, p.logStart, 10, 2000); tail != "" {
		return msg + ": " + tail
	}
	return msg
}

// logTail returns the last lines of a log written after offset, without our
// own header lines.
func logTail(path string, offset int64, lines, maxBytes int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	from := max(offset, fi.Size()-int64(4*maxBytes))
	b, err := io.ReadAll(io.NewSectionReader(f, from, fi.Size()-from))
	if err != nil {
		return ""
	}
	var keep []string
	// Output the log pump has freed reads as NULs.
	b = bytes.Trim(b, "\x00")
	for _, l := range strings.Split(string(bytes.TrimSpace(b)), "\n") {
		if l = strings.TrimRight(l, "\r "); l != "" && !strings.HasPrefix(l, "--- drover: ") {
			keep = append(keep, l)
		}
	}
	keep = keep[max(0, len(keep)-lines):]
	out := strings.Join(keep, "\n")
	if len(out) > maxBytes {
		out = "…" + out[len(out)-maxBytes:]
	}
	return out
}

// baseEnv is the little of drover's environment an app gets, as on a dyno:
// enough to find programs and pick a locale, nothing of drover's secrets.
// HOME is the app's dir (the sandbox sets it).
func baseEnv() []string {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	for _, k := range []string{"PATH", "LANG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// processEnv is baseEnv, then config vars, then extra; exec keeps the last
// of duplicate keys, so an app cannot override PORT or DYNO by config.
func processEnv(vars map[string]string, extra ...string) []string {
	env := baseEnv()
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		env = append(env, k+"="+vars[k])
	}
	return append(env, extra...)
}

// freePort returns a port on r.host that nothing listens on. The kernel may
// offer a port again as soon as it is closed, and an app takes a moment to
// bind it, so ports handed out in the last minute are skipped.
func (r *Region) freePort() (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp", net.JoinHostPort(r.host, "0"))
		if err != nil {
			return 0, fmt.Errorf("find a free port on %s: %w", r.host, err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		r.mu.Lock()
		now := time.Now()
		maps.DeleteFunc(r.ports, func(_ int, t time.Time) bool { return now.Sub(t) > time.Minute })
		_, taken := r.ports[port]
		if !taken {
			r.ports[port] = now
		}
		r.mu.Unlock()
		if !taken {
			return port, nil
		}
	}
	return 0, fmt.Errorf("find a free port on %s: every port offered was handed out recently", r.host)
}

// tailBuffer keeps the last max bytes written to it. It is safe for
// concurrent writes, so a task's stdout and stderr can share it.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if len(p) >= b.max {
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		b.dropped = true
		return n, nil
	}
	b.buf = append(b.buf, p...)
	// Trim only when twice over, so trimming costs O(1) per byte written.
	if len(b.buf) > 2*b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
		b.dropped = true
	}
	return n, nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.buf
	if len(out) > b.max {
		out = out[len(out)-b.max:]
		b.dropped = true
	}
	if !b.dropped {
		return string(out)
	}
	// Do not start in the middle of a UTF-8 sequence.
	for n := 0; n < utf8.UTFMax-1 && len(out) > 0 && !utf8.RuneStart(out[0]); n++ {
		out = out[1:]
	}
	return fmt.Sprintf("[drover: output truncated to its last %d bytes]\n", b.max) + string(out)
}

// exitCode is how a shell reports st: the code, or 128 + the signal that
// killed it (with signalled true).
func exitCode(st *os.ProcessState) (code int, signalled bool) {
	if st == nil {
		return -1, false
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), true
	}
	return st.ExitCode(), false
}
