package sqlstore

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover/drover/deployments"
)

// settledTTL is how long what the store found of a pushed commit (the
// app released it, or is deploying it) answers further pushes of it
// without a read. It bounds how stale a duplicate's answer may be after
// another process's write ends the push (a worker failing the release);
// this store's own such writes forget every answer at once. A storm of
// one commit then costs one read each settledTTL, not one a delivery.
const settledTTL = 50 * time.Millisecond

// maxSettled bounds the commits remembered; past it, all are forgotten.
const maxSettled = 4096

// settledPushes remembers, per app and commit, a push's settled outcome.
type settledPushes struct {
	// gen counts the writes that may have ended a push; an answer found
	// before the latest is not used.
	gen atomic.Uint64
	mu  sync.RWMutex
	m   map[appCommit]settledPush
}

type settledPush struct {
	out deployments.PushIntake
	gen uint64
	at  time.Time
}

// generation is to be read before the read or transaction whose outcome
// is put under it.
func (c *settledPushes) generation() uint64 { return c.gen.Load() }

// forget makes every answer found so far unusable. Writers call it after
// their write commits: a read that began before it then carries the
// older generation.
func (c *settledPushes) forget() { c.gen.Add(1) }

func (c *settledPushes) get(k appCommit, now time.Time) (deployments.PushIntake, bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || e.gen != c.gen.Load() || now.Sub(e.at) >= settledTTL || now.Before(e.at) {
		return deployments.PushIntake{}, false
	}
	return e.out, true
}

// put remembers out, a released or in-flight verdict, found at now.
func (c *settledPushes) put(k appCommit, out deployments.PushIntake, gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxSettled {
		c.m = map[appCommit]settledPush{}
	}
	c.m[k] = settledPush{out: out, gen: gen, at: now}
}

// putIntake remembers what an intake transaction settled: a push it
// queued is in flight for the next.
func (c *settledPushes) putIntake(k appCommit, out deployments.PushIntake, gen uint64, now time.Time) {
	switch out.Verdict {
	case deployments.PushQueued:
		out.Verdict = deployments.PushInFlight
	case deployments.PushInFlight, deployments.PushReleased:
	default:
		return
	}
	c.put(k, out, gen, now)
}
