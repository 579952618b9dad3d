package workflows_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover/drover/workflows"
)

// TestAwaitResult: a wait for a workflow's result whose close the server
// dropped (the long poll sleeps on) is asked again once the workflow is
// seen closed for a whole interval; a wait that answers is not; a
// running workflow's wait goes on; the caller giving up ends it.
func TestAwaitResult(t *testing.T) {
	const interval = 20 * time.Millisecond
	failed := errors.New("workflow failed")
	for _, tc := range []struct {
		name string
		// answerOn is the call of get that answers (1 for the first);
		// the calls before it sleep until cancelled, as a poll whose
		// close was dropped does.
		answerOn  int32
		answer    error
		closed    bool
		giveUp    time.Duration // the caller's own deadline, if any
		wantErr   error
		wantCalls int32
	}{
		{name: "answers at once", answerOn: 1, answer: nil, closed: true, wantCalls: 1},
		{name: "fails at once", answerOn: 1, answer: failed, closed: true, wantErr: failed, wantCalls: 1},
		{name: "close dropped, asked again", answerOn: 2, closed: true, wantCalls: 2},
		{name: "close dropped twice", answerOn: 3, closed: true, wantCalls: 3},
		{name: "still running", answerOn: 2, closed: false, giveUp: 10 * interval, wantErr: context.DeadlineExceeded, wantCalls: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.giveUp > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.giveUp)
				defer cancel()
			}
			var calls atomic.Int32
			get := func(ctx context.Context) error {
				if calls.Add(1) >= tc.answerOn {
					return tc.answer
				}
				<-ctx.Done()
				return ctx.Err()
			}
			closed := func(context.Context) (bool, error) { return tc.closed, nil }
			done := make(chan error, 1)
			go func() { done <- workflows.AwaitResult(ctx, interval, get, closed) }()
			select {
			case err := <-done:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the wait did not end: a dropped close kept it waiting")
			}
			if n := calls.Load(); n != tc.wantCalls {
				t.Fatalf("get called %d times, want %d", n, tc.wantCalls)
			}
		})
	}
}
