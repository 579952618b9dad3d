package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
// deployments.Store). Deliveries that arrive together share one
// transaction (group commit): a storm of thousands a second costs one
// commit per batch, where a transaction each would queue them behind
// SQLite's one writer. A batch that fails is retried one push at a time,
// so one bad row fails only its own delivery.
func (s *Store) AcceptPush(ctx context.Context, p deployments.Push) (deployments.PushIntake, error) {
	s.intakeOnce.Do(func() {
		s.intake = make(chan intakeRequest)
		s.intakeDone = make(chan struct{})
		go s.intakeLoop()
	})
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

func (s *Store) intakeLoop() {
	for {
		var first intakeRequest
		select {
		case first = <-s.intake:
		case <-s.intakeDone:
			return
		}
		batch := []intakeRequest{first}
	drain:
		for len(batch) < maxIntakeBatch {
			select {
			case r := <-s.intake:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.runIntake(batch)
	}
}

func (s *Store) runIntake(batch []intakeRequest) {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.reply <- intakeReply{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), intakeTimeout)
	defer cancel()
	outs := make([]deployments.PushIntake, len(live))
	err := s.tx(ctx, func(c conn) error {
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
			r.reply <- intakeReply{out: outs[i]}
		}
		return
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
		res, err := c.exec(ctx, `INSERT INTO deliveries (id, event, received_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`, p.Delivery, p.Event, now)
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
	rel, err := scanRelease(c.queryRow(ctx, `SELECT `+releaseColumns+` FROM releases WHERE app = ? AND commit_sha = ? AND status = ? ORDER BY version DESC LIMIT 1`,
		p.App, p.Commit, pipelines.ReleaseSucceeded))
	switch {
	case err == nil:
		return deployments.PushIntake{Verdict: deployments.PushReleased, Release: rel}, nil
	case !errors.Is(err, sql.ErrNoRows):
		return deployments.PushIntake{}, fmt.Errorf("release of %s at %s: %w", p.App, p.Commit, err)
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

// stopIntake ends the intake loop; pushes after it are refused.
func (s *Store) stopIntake() {
	s.intakeOnce.Do(func() { s.intakeDone = make(chan struct{}) })
	select {
	case <-s.intakeDone:
	default:
		close(s.intakeDone)
	}
}
