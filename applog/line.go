// Package applog owns an app's log lines: Heroku's line shape, the split
// of over-long lines, the size-rotated files the local driver keeps, and
// reading them back, newest last, or following them as they grow.
package applog

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Sources of log lines.
const (
	// SourceApp is what a process wrote to its stdout and stderr.
	SourceApp = "app"
	// SourceDrover is drover's own events about the app: a process
	// started, crashed with its exit code, was stopped; a release was
	// deployed.
	SourceDrover = "drover"
)

// MaxLineBytes bounds one line's message; a longer line is split into
// pieces of at most this many bytes, as Heroku's router and Logplex do.
const MaxLineBytes = 10000

// TimeLayout is the time stamp of a line, as Heroku prints it:
// 2026-12-01T10:00:00.123456+00:00.
const TimeLayout = "2006-01-02T15:04:05.000000-07:00"

// Line is one line of an app's log.
type Line struct {
	Time   time.Time `json:"time"`
	Source string    `json:"source"`
	// Dyno is the process the line is about (web.1, run.3), or the part
	// of drover that wrote it (release) for drover lines about no
	// process.
	Dyno    string `json:"dyno"`
	Region  string `json:"region,omitempty"`
	Message string `json:"message"`
}

// String is the line in Heroku's shape:
// `2026-12-01T10:00:00.123456+00:00 app[web.1]: message`.
func (l Line) String() string {
	return l.Time.UTC().Format(TimeLayout) + " " + l.Source + "[" + l.Dyno + "]: " + l.Message
}

// ErrMalformed is Parse's error for text not in a Line's shape.
var ErrMalformed = errors.New("not a log line")

// Parse reads a line back from its String form.
func Parse(s string) (Line, error) {
	ts, rest, ok := strings.Cut(s, " ")
	if !ok {
		return Line{}, fmt.Errorf("%w: %.40q", ErrMalformed, s)
	}
	t, err := time.Parse(TimeLayout, ts)
	if err != nil {
		return Line{}, fmt.Errorf("%w: time %.40q", ErrMalformed, ts)
	}
	open := strings.IndexByte(rest, '[')
	end := strings.Index(rest, "]: ")
	if open <= 0 || end < open {
		// A message may be empty: "app[web.1]:" with nothing after.
		if strings.HasSuffix(rest, "]:") && open > 0 {
			end = len(rest) - 2
		} else {
			return Line{}, fmt.Errorf("%w: %.40q", ErrMalformed, s)
		}
	}
	l := Line{Time: t, Source: rest[:open], Dyno: rest[open+1 : end]}
	if end+3 <= len(rest) {
		l.Message = rest[end+3:]
	}
	return l, nil
}

// Split cuts one line of output (without its newline) into messages of at
// most MaxLineBytes, never inside a UTF-8 sequence; a trailing carriage
// return is dropped.
func Split(b []byte) []string {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	if len(b) <= MaxLineBytes {
		return []string{string(b)}
	}
	var out []string
	for len(b) > MaxLineBytes {
		cut := MaxLineBytes
		for cut > MaxLineBytes-utf8.UTFMax && !utf8.RuneStart(b[cut]) {
			cut--
		}
		out = append(out, string(b[:cut]))
		b = b[cut:]
	}
	return append(out, string(b))
}

// Query says which lines a reader wants.
type Query struct {
	// Num is how many of the newest lines to show first; 0 shows none
	// (a tail of only what comes next).
	Num int
	// Tail keeps following: new lines as they are written, and the
	// lines of processes that start after the query.
	Tail bool
	// Source, Dyno and Type keep only lines of that source (app, drover),
	// dyno (web.2) or process type (web); "" keeps all.
	Source string
	Dyno   string
	Type   string
}

// DefaultNum is how many lines `drover logs` shows without -n, as Heroku.
const DefaultNum = 100

// MaxNum bounds Query.Num.
const MaxNum = 10000

// Validate checks q's fields.
func (q Query) Validate() error {
	switch {
	case q.Num < 0 || q.Num > MaxNum:
		return fmt.Errorf("num %d: want 0 to %d lines", q.Num, MaxNum)
	case q.Source != "" && q.Source != SourceApp && q.Source != SourceDrover:
		return fmt.Errorf("source %q: want %s or %s", q.Source, SourceApp, SourceDrover)
	case q.Dyno != "" && !validName(q.Dyno, true):
		return fmt.Errorf("dyno %q: want a process type and number, like web.2", q.Dyno)
	case q.Type != "" && !validName(q.Type, false):
		return fmt.Errorf("process type %q: want a Procfile process type, like web", q.Type)
	}
	return nil
}

func validName(s string, dotted bool) bool {
	if len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || (dotted && r == '.')) {
			return false
		}
	}
	return s != ""
}

// Match reports whether l is one q wants.
func (q Query) Match(l Line) bool {
	switch {
	case q.Source != "" && l.Source != q.Source:
		return false
	case q.Dyno != "" && l.Dyno != q.Dyno:
		return false
	case q.Type != "" && TypeOf(l.Dyno) != q.Type:
		return false
	}
	return true
}

// MatchDyno reports whether lines of dyno (and, for drover lines, the
// region's own events) can match q, so readers can skip whole files.
func (q Query) MatchDyno(dyno string) bool {
	return (q.Dyno == "" || dyno == q.Dyno) && (q.Type == "" || TypeOf(dyno) == q.Type)
}

// TypeOf is the process type of a dyno name: web of web.2.
func TypeOf(dyno string) string {
	if i := strings.LastIndexByte(dyno, '.'); i > 0 {
		return dyno[:i]
	}
	return dyno
}

// Sort orders lines by time, keeping the order of lines with the same
// time (a batch read at once).
func Sort(lines []Line) {
	slices.SortStableFunc(lines, func(a, b Line) int { return a.Time.Compare(b.Time) })
}

// Merge merges streams, each in time order, into one in time order, and
// keeps the newest n (all when n < 0). Equal times keep their stream's
// order, streams earlier in the list first.
func Merge(n int, streams ...[]Line) []Line {
	var out []Line
	for _, s := range streams {
		out = append(out, s...)
	}
	Sort(out)
	if n >= 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// Sink receives what a log reader reads: the backlog once, in time
// order (possibly empty), then, when following, each new line.
type Sink struct {
	Backlog func([]Line) error
	Live    func(Line) error
}

// Lines is a Sink for readers that do not follow: it gathers the backlog.
func Lines(out *[]Line) Sink {
	return Sink{
		Backlog: func(l []Line) error { *out = append(*out, l...); return nil },
		Live:    func(l Line) error { *out = append(*out, l); return nil },
	}
}
