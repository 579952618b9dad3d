package sqlstore

import (
	"context"
	"fmt"
	"time"
)

// KeptSlugs returns the slugs the ledger still needs: those of each app's
// newest keep releases and of its current release, for every app but the
// review apps that were destroyed. A build's slug that no release uses
// yet is not among them; collectors give new slugs a grace period.
func (s *Store) KeptSlugs(ctx context.Context, keep int) (map[string]bool, error) {
	rows, err := s.conn().query(ctx, `
		SELECT slug FROM (
			SELECT app, slug, status, version,
				ROW_NUMBER() OVER (PARTITION BY app ORDER BY version DESC) AS age,
				MAX(CASE WHEN status = 'succeeded' THEN version END) OVER (PARTITION BY app) AS current
			FROM releases
		) r
		WHERE slug <> '' AND (age <= ? OR version = current)
			AND app NOT IN (SELECT app FROM review_apps WHERE destroyed_at IS NOT NULL)`, keep)
	if err != nil {
		return nil, fmt.Errorf("slugs the ledger keeps: %w", err)
	}
	defer rows.Close()
	kept := map[string]bool{}
	for rows.Next() {
		var slug string
		if err := rows.Scan(&slug); err != nil {
			return nil, fmt.Errorf("slugs the ledger keeps: %w", err)
		}
		kept[slug] = true
	}
	return kept, rows.Err()
}

// PruneBuilds forgets builds made before before whose slug is not kept:
// pushing such a commit again builds it again. It returns how many.
func (s *Store) PruneBuilds(ctx context.Context, kept map[string]bool, before time.Time) (int, error) {
	type key struct{ repo, commit string }
	rows, err := s.conn().query(ctx, `SELECT repo, commit_sha, slug FROM builds WHERE created_at < ?`, before)
	if err != nil {
		return 0, fmt.Errorf("prune builds: %w", err)
	}
	var stale []key
	for rows.Next() {
		var k key
		var slug string
		if err := rows.Scan(&k.repo, &k.commit, &slug); err != nil {
			rows.Close()
			return 0, fmt.Errorf("prune builds: %w", err)
		}
		if !kept[slug] {
			stale = append(stale, k)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("prune builds: %w", err)
	}
	for _, k := range stale {
		if _, err := s.conn().exec(ctx, `DELETE FROM builds WHERE repo = ? AND commit_sha = ? AND created_at < ?`, k.repo, k.commit, before); err != nil {
			return 0, fmt.Errorf("prune build of %s at %s: %w", k.repo, k.commit, err)
		}
	}
	return len(stale), nil
}

// PruneDeliveries forgets webhook deliveries received before before.
func (s *Store) PruneDeliveries(ctx context.Context, before time.Time) (int, error) {
	res, err := s.conn().exec(ctx, `DELETE FROM deliveries WHERE received_at < ?`, before)
	if err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	// Queued pushes that old are over whatever the ledger says.
	cutoff := s.now().Add(-QueuedPushTTL)
	if before.Before(cutoff) {
		cutoff = before
	}
	if _, err := s.conn().exec(ctx, `DELETE FROM queued_pushes WHERE queued_at < ?`, cutoff); err != nil {
		return 0, fmt.Errorf("prune queued pushes: %w", err)
	}
	s.settled.forget()
	if _, err := s.conn().exec(ctx, `DELETE FROM ci_waits WHERE since < ?`, s.now().Add(-CIWaitTTL)); err != nil {
		return 0, fmt.Errorf("prune waits for CI: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
