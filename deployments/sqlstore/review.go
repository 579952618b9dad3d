package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/drover/drover/pipelines"
)

func (s *Store) PutReviewApp(ctx context.Context, r pipelines.ReviewApp) error {
	var deployed any
	if r.DeployedAt != nil {
		deployed = r.DeployedAt.UTC()
	}
	// A destroyed app made again (its pull request reopened) starts anew.
	_, err := s.conn().exec(ctx, `
		INSERT INTO review_apps (app, pipeline, repo, pr, title, branch, commit_sha, url, fork, created_at, deployed_at, destroyed_at, reason)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, '')
		ON CONFLICT (app) DO UPDATE SET pipeline = excluded.pipeline, repo = excluded.repo, pr = excluded.pr,
			title = excluded.title, branch = excluded.branch, commit_sha = excluded.commit_sha, url = excluded.url,
			fork = excluded.fork, deployed_at = excluded.deployed_at,
			created_at = CASE WHEN review_apps.destroyed_at IS NULL THEN review_apps.created_at ELSE excluded.created_at END,
			destroyed_at = NULL, reason = ''`,
		r.App, r.Pipeline, r.Repo, r.PR, r.Title, r.Branch, r.Commit, r.URL, r.Fork, s.now(), deployed)
	if err != nil {
		return fmt.Errorf("record review app %s: %w", r.App, err)
	}
	return nil
}

const reviewColumns = `app, pipeline, repo, pr, title, branch, commit_sha, url, fork, created_at, deployed_at, destroyed_at, reason`

func scanReviewApp(sc scanner) (pipelines.ReviewApp, error) {
	var r pipelines.ReviewApp
	var deployed, destroyed sql.NullTime
	if err := sc.Scan(&r.App, &r.Pipeline, &r.Repo, &r.PR, &r.Title, &r.Branch, &r.Commit, &r.URL, &r.Fork,
		&r.CreatedAt, &deployed, &destroyed, &r.Reason); err != nil {
		return r, err
	}
	r.CreatedAt = r.CreatedAt.UTC()
	if deployed.Valid {
		t := deployed.Time.UTC()
		r.DeployedAt = &t
	}
	if destroyed.Valid {
		t := destroyed.Time.UTC()
		r.DestroyedAt = &t
	}
	return r, nil
}

func (s *Store) ReviewApp(ctx context.Context, app string) (pipelines.ReviewApp, error) {
	r, err := scanReviewApp(s.conn().queryRow(ctx, `SELECT `+reviewColumns+` FROM review_apps WHERE app = ?`, app))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("review app %q: %w", app, pipelines.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("review app %q: %w", app, err)
	}
	return r, nil
}

func (s *Store) ReviewApps(ctx context.Context, pipeline string) ([]pipelines.ReviewApp, error) {
	rows, err := s.conn().query(ctx, `SELECT `+reviewColumns+` FROM review_apps WHERE pipeline = ? AND destroyed_at IS NULL ORDER BY pr`, pipeline)
	if err != nil {
		return nil, fmt.Errorf("review apps of %s: %w", pipeline, err)
	}
	defer rows.Close()
	var out []pipelines.ReviewApp
	for rows.Next() {
		r, err := scanReviewApp(rows)
		if err != nil {
			return nil, fmt.Errorf("review apps of %s: %w", pipeline, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *Store) DestroyReviewApp(ctx context.Context, app, reason string) error {
	err := s.tx(ctx, func(tx conn) error {
		if err := tx.lockApp(ctx, app); err != nil {
			return err
		}
		res, err := tx.exec(ctx, `UPDATE review_apps SET destroyed_at = ?, reason = ? WHERE app = ? AND destroyed_at IS NULL`, s.now(), reason, app)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if _, err := scanReviewApp(tx.queryRow(ctx, `SELECT `+reviewColumns+` FROM review_apps WHERE app = ?`, app)); errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("review app %q: %w", app, pipelines.ErrNotFound)
			}
			return nil
		}
		// Its secrets go with it.
		if _, err := tx.exec(ctx, `DELETE FROM config_vars WHERE app = ?`, app); err != nil {
			return err
		}
		_, err = tx.exec(ctx, `DELETE FROM apps WHERE name = ?`, app)
		return err
	})
	if err != nil {
		return fmt.Errorf("destroy review app %s: %w", app, err)
	}
	return nil
}
