package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// CIWaitTTL is how long a wait for CI is kept whatever became of its
// workflow (a deploy superseded or timed out ends without forgetting it):
// longer than any CI timeout drover allows.
const CIWaitTTL = 7 * 24 * time.Hour

// WaitingForCI records that workflow waits for CI of repo's commit.
func (s *Store) WaitingForCI(ctx context.Context, workflow, repo, commit string) error {
	_, err := s.conn().exec(ctx, `INSERT INTO ci_waits (workflow_id, repo, commit_sha, since) VALUES (?, ?, ?, ?)
		ON CONFLICT (workflow_id) DO UPDATE SET repo = excluded.repo, commit_sha = excluded.commit_sha`,
		workflow, strings.ToLower(repo), commit, s.now())
	if err != nil {
		return fmt.Errorf("record %s waiting for CI of %s: %w", workflow, commit, err)
	}
	return nil
}

// CIWaiters names the workflows waiting for CI of repo's commit.
func (s *Store) CIWaiters(ctx context.Context, repo, commit string) ([]string, error) {
	rows, err := s.reader().query(ctx, `SELECT workflow_id FROM ci_waits WHERE commit_sha = ? AND repo = ? ORDER BY workflow_id`, commit, strings.ToLower(repo))
	if err != nil {
		return nil, fmt.Errorf("deploys waiting for CI of %s: %w", commit, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("deploys waiting for CI of %s: %w", commit, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("deploys waiting for CI of %s: %w", commit, err)
	}
	return ids, nil
}

// CIWaitOver forgets workflow's wait for CI.
func (s *Store) CIWaitOver(ctx context.Context, workflow string) error {
	if _, err := s.conn().exec(ctx, `DELETE FROM ci_waits WHERE workflow_id = ?`, workflow); err != nil {
		return fmt.Errorf("forget %s waiting for CI: %w", workflow, err)
	}
	return nil
}
