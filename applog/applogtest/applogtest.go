// Package applogtest collects what log readers send, for tests.
package applogtest

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/applog"
)

// Collector gathers a reader's backlog and live lines, in order.
type Collector struct {
	mu    sync.Mutex
	lines []applog.Line
}

// Sink is the applog.Sink that adds to c.
func (c *Collector) Sink() applog.Sink {
	add := func(ls ...applog.Line) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.lines = append(c.lines, ls...)
		return nil
	}
	return applog.Sink{Backlog: func(ls []applog.Line) error { return add(ls...) }, Live: func(l applog.Line) error { return add(l) }}
}

// Lines is a copy of what c has gathered.
func (c *Collector) Lines() []applog.Line {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]applog.Line(nil), c.lines...)
}

// Short is each line as "source[dyno]: message".
func (c *Collector) Short() []string {
	var out []string
	for _, l := range c.Lines() {
		out = append(out, l.Source+"["+l.Dyno+"]: "+l.Message)
	}
	return out
}

// WaitFor waits up to timeout for a line that match accepts and returns
// it, or fails tb saying what (a description of the line) and what came.
func (c *Collector) WaitFor(tb testing.TB, timeout time.Duration, what string, match func(applog.Line) bool) applog.Line {
	tb.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(10 * time.Millisecond) {
		for _, l := range c.Lines() {
			if match(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			break
		}
	}
	var got []string
	for _, l := range c.Lines() {
		got = append(got, l.String())
	}
	tb.Fatalf("no line %s within %v; got:\n%s", what, timeout, strings.Join(got, "\n"))
	return applog.Line{}
}

// Saying matches a line of source (any when "") and dyno (any when "")
// whose message contains text.
func Saying(source, dyno, text string) func(applog.Line) bool {
	return func(l applog.Line) bool {
		return (source == "" || l.Source == source) && (dyno == "" || l.Dyno == dyno) && strings.Contains(l.Message, text)
	}
}
