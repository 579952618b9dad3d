package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/drover/drover/deployments"
	"github.com/drover/drover/pipelines"
)

// maxIntakeBatch bounds how many push deliveries share one transaction.
const maxIntakeBatch = 256

// intakeTimeout bounds one batch's transaction.
const intakeTimeout = 10 * time.Second

type intakeRequest struct {
	ctx   context.Context
	push  deployments.Push
	reply chan intakeReply
}

type intakeReply struct {
	out deployments.PushIntake
	err error
}

// AcceptPush records a push delivery and queues its commit (see
// deployments.Store).
//
// A push of a commit the app released or is deploying, the bulk of any
// storm, is answered from what the store last found of that commit (at
// most settledTTL old, and forgotten when this store writes anything
// that could end the push), or else from a read, which on SQLite does
// not wait for the one writer. Its delivery ID is written by the intake's
// next transaction, after the answer, which does not depend on it. A
// redelivery of that ID in the meantime is answered the same way, as a
// duplicate commit; were the process to die before the write, a later
// redelivery would find the commit released or in flight just the same
// (or, after a failed deploy, queue it again, as a new push of it would).
//
// Other deliveries that arrive together share one transaction (group
// commit): a storm of thousands a second costs one commit per batch,
// where a transaction each would queue them behind SQLite's one writer.
// A batch that fails is retried one push at a time, so one bad row fails
// only its own delivery.
func (s *Store) AcceptPush(ctx context.Context, p deployments.Push) (deployments.PushIntake, error) {
	s.intakeOnce.Do(func() {
		s.intake = make(chan intakeRequest)
		s.intakeDone = make(chan struct{})
		s.intakeExited = make(chan struct{})
		s.deferred.kick = make(chan struct{}, 1)
		go s.intakeLoop()
	})
	if out, ok := s.alreadySettled(ctx, p); ok {
		return out, nil
	}
	req := intakeRequest{ctx: ctx, push: p, reply: make(chan intakeReply, 1)}
	select {
	case s.intake <- req:
	case <-ctx.Done():
		return deployments.PushIntake{}, fmt.Errorf("accept push of %s to %s: %w", p.Commit, p.App, ctx.Err())
	case <-s.intakeDone:
		return deployments.PushIntake{}, fmt.Errorf("accept push of %s to %s: store closed", p.Commit, p.App)
	}
	// The reply always comes: a request taken into a batch is answered
	// whether or not its caller still waits.
	r := <-req.reply
	if r.err != nil {
		return r.out, fmt.Errorf("accept push of %s to %s: %w", p.Commit, p.App, r.err)
	}
	return r.out, nil
}

// alreadySettled answers a push of a commit the app released or is
// deploying, without a transaction. Anything else, and any error (the
// transaction reports it), is left to the intake's transaction.
func (s *Store) alreadySettled(ctx context.Context, p deployments.Push) (deployments.PushIntake, bool) {
	key, now := appCommit{p.App, p.Commit}, s.now()
	out, ok := s.settled.get(key, now)
	if !ok {
		gen := s.settled.generation()
		var err error
		out, ok, err = s.reader().settledPush(ctx, p, now)
		if err != nil || !ok {
			return deployments.PushIntake{}, false
		}
		s.settled.put(key, out, gen, now)
	}
	if p.Delivery != "" && !s.deferred.add(deliveryRow{id: p.Delivery, event: p.Event, at: now}, s.intakeDone) {
		return deployments.PushIntake{}, false
	}
	return out, true
}

// maxDeferred bounds the delivery rows waiting to be written. A database
// that cannot keep up, or is down, fills it; then duplicates go through
// the transaction too, and are refused with it.
const maxDeferred = 50000

// deferredDeliveries are the delivery rows of pushes answered without a
// transaction, for the intake's next one.
type deferredDeliveries struct {
	mu      sync.Mutex
	waiting []deliveryRow
	kick    chan struct{}
}

type deliveryRow struct {
	id, event string
	at        time.Time
}

// add queues r, unless the queue is full or the intake has stopped.
func (d *deferredDeliveries) add(r deliveryRow, stopped <-chan struct{}) bool {
	select {
	case <-stopped:
		return false
	default:
	}
	d.mu.Lock()
	if len(d.waiting) >= maxDeferred {
		d.mu.Unlock()
		return false
	}
	d.waiting = append(d.waiting, r)
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
	return true
}

// take hands the waiting rows to a transaction.
func (d *deferredDeliveries) take() []deliveryRow {
	d.mu.Lock()
	defer d.mu.Unlock()
	rows := d.waiting
	d.waiting = nil
	return rows
}

func (s *Store) intakeLoop() {
	defer close(s.intakeExited)
	for {
		var batch []intakeRequest
		select {
		case first := <-s.intake:
			batch = append(batch, first)
		case <-s.deferred.kick:
		case <-s.intakeDone:
			// The last deferred deliveries, before Close closes the
			// database.
			s.runIntake(nil, s.deferred.take())
			return
		}
	drain:
		for len(batch) < maxIntakeBatch {
			select {
			case r := <-s.intake:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.runIntake(batch, s.deferred.take())
	}
}

// runIntake writes deferred delivery rows and a batch of pushes in one
// transaction.
func (s *Store) runIntake(batch []intakeRequest, rows []deliveryRow) {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.reply <- intakeReply{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 && len(rows) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), intakeTimeout)
	defer cancel()
	outs := make([]deployments.PushIntake, len(live))
	gen := s.settled.generation()
	err := s.tx(ctx, func(c conn) error {
		// The deferred rows go first: a delivery answered without a
		// transaction and sent again is a redelivery to this one.
		if err := c.recordDeliveries(ctx, rows); err != nil {
			return err
		}
		settled := map[appCommit]deployments.PushIntake{}
		for i, r := range live {
			out, err := c.acceptPush(ctx, r.push, s.now(), settled)
			if err != nil {
				return err
			}
			outs[i] = out
		}
		return nil
	})
	if err == nil {
		for i, r := range live {
			s.settled.putIntake(appCommit{r.push.App, r.push.Commit}, outs[i], gen, s.now())
			r.reply <- intakeReply{out: outs[i]}
		}
		return
	}
	// Each on its own, so one bad row fails only itself. Deferred rows
	// that still fail are dropped: they belong to duplicates, already
	// answered, whose redelivery is answered from the commit's state.
	if len(rows) > 0 {
		_ = s.tx(ctx, func(c conn) error { return c.recordDeliveries(ctx, rows) })
	}
	if len(live) == 1 {
		live[0].reply <- intakeReply{err: err}
		return
	}
	for _, r := range live {
		var out deployments.PushIntake
		err := s.tx(ctx, func(c conn) error {
			var err error
			out, err = c.acceptPush(ctx, r.push, s.now(), nil)
			return err
		})
		r.reply <- intakeReply{out: out, err: err}
	}
}

// recordDeliveries writes deferred delivery rows; one already there (a
// redelivery that raced its first) is left as it is.
func (c conn) recordDeliveries(ctx context.Context, rows []deliveryRow) error {
	for _, r := range rows {
		if _, err := c.exec(ctx, insertDelivery, r.id, r.event, r.at); err != nil {
			return fmt.Errorf("record delivery %s: %w", r.id, err)
		}
	}
	return nil
}

const insertDelivery = `INSERT INTO deliveries (id, event, received_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`

// appCommit is a commit pushed to an app.
type appCommit struct{ app, commit string }

// acceptPush is one push's intake inside a transaction. settled, when
// not nil, holds what earlier pushes of the same transaction found of
// their commits: a storm of one commit puts hundreds of deliveries in one
// batch, and after the first nothing about the commit can change but its
// queueing (the first queued it, so the rest find it in flight). They
// cost the delivery's insert alone, not four more statements each.
func (c conn) acceptPush(ctx context.Context, p deployments.Push, now time.Time, settled map[appCommit]deployments.PushIntake) (deployments.PushIntake, error) {
	if p.Delivery != "" {
		res, err := c.exec(ctx, insertDelivery, p.Delivery, p.Event, now)
		if err != nil {
			return deployments.PushIntake{}, fmt.Errorf("record delivery %s: %w", p.Delivery, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return deployments.PushIntake{Verdict: deployments.PushRedelivered}, nil
		}
	}
	key := appCommit{p.App, p.Commit}
	if prev, ok := settled[key]; ok {
		if prev.Verdict == deployments.PushQueued {
			prev.Verdict = deployments.PushInFlight
		}
		return prev, nil
	}
	out, err := c.settlePush(ctx, p, now)
	if err == nil && settled != nil {
		settled[key] = out
	}
	return out, err
}

// settlePush is what a fresh delivery of a push does: nothing for a
// commit the app released or is deploying, else queue it.
func (c conn) settlePush(ctx context.Context, p deployments.Push, now time.Time) (deployments.PushIntake, error) {
	// A delivery ID is not signed: a signed push replayed under a new one
	// must start nothing for a commit the app already released.
	if rel, ok, err := c.releasedCommit(ctx, p.App, p.Commit); err != nil || ok {
		return deployments.PushIntake{Verdict: deployments.PushReleased, Release: rel}, err
	}
	fresh, err := c.queuePush(ctx, p.App, p.Repo, p.Commit, now)
	if err != nil {
		return deployments.PushIntake{}, fmt.Errorf("queue push: %w", err)
	}
	if !fresh {
		return deployments.PushIntake{Verdict: deployments.PushInFlight}, nil
	}
	return deployments.PushIntake{Verdict: deployments.PushQueued}, nil
}

// settledPush is what a push finds without writing: a commit the app
// released, or one it is deploying (settled); anything else is for
// settlePush, in a transaction.
func (c conn) settledPush(ctx context.Context, p deployments.Push, now time.Time) (deployments.PushIntake, bool, error) {
	if rel, ok, err := c.releasedCommit(ctx, p.App, p.Commit); err != nil || ok {
		return deployments.PushIntake{Verdict: deployments.PushReleased, Release: rel}, ok, err
	}
	queued, inFlight, err := c.queuedPush(ctx, p.App, p.Repo, p.Commit, now)
	if err != nil || !queued || !inFlight {
		return deployments.PushIntake{}, false, err
	}
	return deployments.PushIntake{Verdict: deployments.PushInFlight}, true, nil
}

// releasedCommit is app's latest successful release of commit, if any.
func (c conn) releasedCommit(ctx context.Context, app, commit string) (pipelines.Release, bool, error) {
	rel, err := scanRelease(c.queryRow(ctx, `SELECT `+releaseColumns+` FROM releases WHERE app = ? AND commit_sha = ? AND status = ? ORDER BY version DESC LIMIT 1`,
		app, commit, pipelines.ReleaseSucceeded))
	switch {
	case err == nil:
		return rel, true, nil
	case errors.Is(err, sql.ErrNoRows):
		return pipelines.Release{}, false, nil
	}
	return pipelines.Release{}, false, fmt.Errorf("release of %s at %s: %w", app, commit, err)
}

// stopIntake ends the intake loop, once it has written the deferred
// deliveries; pushes after it are refused.
func (s *Store) stopIntake() {
	s.intakeOnce.Do(func() { s.intakeDone = make(chan struct{}) })
	select {
	case <-s.intakeDone:
	default:
		close(s.intakeDone)
	}
	if s.intakeExited != nil {
		<-s.intakeExited
	}
}
