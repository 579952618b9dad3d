package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/drover/drover/pipelines"
)

func (s *Store) SyncApp(ctx context.Context, a pipelines.App) error {
	regions, _ := json.Marshal(a.Regions)
	_, err := s.conn().exec(ctx, `
		INSERT INTO apps (name, pipeline, stage, repo, branch, regions, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET pipeline = excluded.pipeline, stage = excluded.stage,
			repo = excluded.repo, branch = excluded.branch, regions = excluded.regions`,
		a.Name, a.Pipeline, a.Stage, a.Repo, a.Branch, string(regions), s.now())
	if err != nil {
		return fmt.Errorf("sync app %q: %w", a.Name, err)
	}
	return nil
}

func (s *Store) App(ctx context.Context, name string) (pipelines.App, error) {
	apps, err := s.queryApps(ctx, `WHERE name = ?`, name)
	if err != nil {
		return pipelines.App{}, err
	}
	if len(apps) == 0 {
		return pipelines.App{}, fmt.Errorf("app %q: %w", name, pipelines.ErrNotFound)
	}
	return apps[0], nil
}

func (s *Store) Apps(ctx context.Context) ([]pipelines.App, error) {
	return s.queryApps(ctx, `ORDER BY name`)
}

func (s *Store) queryApps(ctx context.Context, where string, args ...any) ([]pipelines.App, error) {
	rows, err := s.conn().query(ctx, `SELECT name, pipeline, stage, repo, branch, regions FROM apps `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	defer rows.Close()
	var out []pipelines.App
	for rows.Next() {
		var a pipelines.App
		var regions string
		if err := rows.Scan(&a.Name, &a.Pipeline, &a.Stage, &a.Repo, &a.Branch, &regions); err != nil {
			return nil, fmt.Errorf("scan app: %w", err)
		}
		if err := json.Unmarshal([]byte(regions), &a.Regions); err != nil {
			return nil, fmt.Errorf("app %q regions: %w", a.Name, err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
