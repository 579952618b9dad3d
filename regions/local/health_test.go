package local

import (
	"testing"
	"time"
)

// A starting release is looked at often while it is young and never
// later than an eighth of its wait, so a start is seen at most 12% late.
func TestHealthDelay(t *testing.T) {
	for _, tc := range []struct {
		waited, want time.Duration
	}{
		{0, 2 * time.Millisecond},
		{10 * time.Millisecond, 2 * time.Millisecond},
		{25 * time.Millisecond, 3125 * time.Microsecond},
		{48 * time.Millisecond, 6 * time.Millisecond},
		{400 * time.Millisecond, 50 * time.Millisecond},
		{5 * time.Second, 100 * time.Millisecond},
	} {
		if got := healthDelay(tc.waited); got != tc.want {
			t.Errorf("healthDelay(%v) = %v, want %v", tc.waited, got, tc.want)
		}
	}
}
