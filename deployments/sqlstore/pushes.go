package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drover/drover/pipelines"
)

// QueuedPushTTL is how long a queued push counts as in flight when the
// ledger says nothing of how it ended: longer than any deploy, CI wait
// or approval, so only a deploy whose workflow vanished is retried.
const QueuedPushTTL = 24 * time.Hour

// queuePush records, inside AcceptPush's transaction, that app is to
// deploy commit of repo and reports whether it is news. It is not (false)
// while an earlier push of the commit is in flight: queued, building,
// waiting for CI or rolling out. An earlier push that ended without a
// release of it (its build failed after it was queued, or its release
// failed, was superseded or skipped) is over, and the commit may be
// pushed again.
func (c conn) queuePush(ctx context.Context, app, repo, commit string, now time.Time) (bool, error) {
	res, err := c.exec(ctx, `INSERT INTO queued_pushes (app, commit_sha, queued_at) VALUES (?, ?, ?) ON CONFLICT (app, commit_sha) DO NOTHING`, app, commit, now)
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	queued, inFlight, err := c.queuedPush(ctx, app, repo, commit, now)
	switch {
	case err != nil || inFlight:
		return false, err
	case !queued: // forgotten since the insert, by another transaction
		return false, fmt.Errorf("push of %s to %s was forgotten while it was queued; redeliver it", commit, app)
	}
	_, err = c.exec(ctx, `UPDATE queued_pushes SET queued_at = ? WHERE app = ? AND commit_sha = ?`, now, app, commit)
	return err == nil, err
}

// queuedPush reports whether app has a queued push of commit, and
// whether it is still in flight (see queuePush).
func (c conn) queuedPush(ctx context.Context, app, repo, commit string, now time.Time) (queued, inFlight bool, err error) {
	var at time.Time
	switch err := c.queryRow(ctx, `SELECT queued_at FROM queued_pushes WHERE app = ? AND commit_sha = ?`, app, commit).Scan(&at); {
	case errors.Is(err, sql.ErrNoRows):
		return false, false, nil
	case err != nil:
		return false, false, err
	}
	over, err := c.pushEnded(ctx, app, repo, commit, at.UTC(), now)
	return true, !over, err
}

// pushEnded reports whether the push of commit queued at queued ended
// without a release the ledger would name (see QueuePush).
func (c conn) pushEnded(ctx context.Context, app, repo, commit string, queued, now time.Time) (bool, error) {
	if now.Sub(queued) > QueuedPushTTL {
		return true, nil
	}
	var status string
	var updated time.Time
	err := c.queryRow(ctx, `SELECT status, updated_at FROM releases WHERE app = ? AND commit_sha = ? ORDER BY version DESC LIMIT 1`, app, commit).Scan(&status, &updated)
	switch {
	case err == nil:
		st := pipelines.ReleaseStatus(status)
		if st.Terminal() && st != pipelines.ReleaseSucceeded && updated.UTC().After(queued) {
			return true, nil
		}
	case !errors.Is(err, sql.ErrNoRows):
		return false, err
	}
	var slug string
	var built time.Time
	err = c.queryRow(ctx, `SELECT slug, created_at FROM builds WHERE repo = ? AND commit_sha = ?`, strings.ToLower(repo), commit).Scan(&slug, &built)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, err
	}
	return slug == "" && built.UTC().After(queued), nil
}

// ForgetPush drops a queued push that could not be handed to its app's
// queue, so the next delivery of it queues it.
func (s *Store) ForgetPush(ctx context.Context, app, commit string) error {
	if _, err := s.conn().exec(ctx, `DELETE FROM queued_pushes WHERE app = ? AND commit_sha = ?`, app, commit); err != nil {
		return fmt.Errorf("forget push of %s to %s: %w", commit, app, err)
	}
	s.settled.forget()
	return nil
}
