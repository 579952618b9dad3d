package workflows

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// LiveOutputs keeps the output of running steps where those following
// their operations read it (the store).
type LiveOutputs interface {
	SetLiveOutput(ctx context.Context, step, output string, total int64) error
	EndLiveOutput(ctx context.Context, step string) error
}

// liveEvery is how often a step's output is written for its followers.
const liveEvery = 250 * time.Millisecond

// maxLive bounds the live output kept: its newest bytes.
const maxLive = 256 << 10

// liveOutput is an io.Writer that keeps a step's newest output in the
// store every liveEvery while the step runs, and forgets it at Close
// (the step's final output is recorded where it belongs).
type liveOutput struct {
	store LiveOutputs
	step  string
	log   *slog.Logger

	mu    sync.Mutex
	buf   []byte
	total int64
	dirty bool

	stop chan struct{}
	done chan struct{}
}

func startLiveOutput(store LiveOutputs, step string, log *slog.Logger) *liveOutput {
	l := &liveOutput{store: store, step: step, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

func (l *liveOutput) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) > 2*maxLive {
		l.buf = append(l.buf[:0], l.buf[len(l.buf)-maxLive:]...)
	}
	l.total += int64(len(p))
	l.dirty = true
	return len(p), nil
}

func (l *liveOutput) run() {
	defer close(l.done)
	tick := time.NewTicker(liveEvery)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
			l.flush()
		}
	}
}

func (l *liveOutput) flush() {
	l.mu.Lock()
	if !l.dirty {
		l.mu.Unlock()
		return
	}
	out := l.buf
	if len(out) > maxLive {
		out = out[len(out)-maxLive:]
	}
	text, total := string(out), l.total
	l.dirty = false
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.store.SetLiveOutput(ctx, l.step, text, total); err != nil {
		l.log.Debug("record live output", "step", l.step, "error", err)
	}
}

// Close stops writing and forgets the live output.
func (l *liveOutput) Close() {
	close(l.stop)
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.store.EndLiveOutput(ctx, l.step); err != nil {
		l.log.Debug("forget live output", "step", l.step, "error", err)
	}
}
