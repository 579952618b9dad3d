package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/drover/drover/deployments"
	"github.com/drover/drover/pipelines"
)

func (s *Store) FindBuild(ctx context.Context, repo, commit string) (deployments.Build, error) {
	b := deployments.Build{Repo: repo, Commit: commit}
	var procfile string
	err := s.conn().queryRow(ctx, `SELECT slug, buildpack, procfile, output, created_at FROM builds WHERE repo = ? AND commit_sha = ?`,
		strings.ToLower(repo), commit).Scan(&b.Slug, &b.Buildpack, &procfile, &b.Output, &b.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return b, fmt.Errorf("build of %s at %s: %w", repo, commit, pipelines.ErrNotFound)
	}
	if err != nil {
		return b, fmt.Errorf("build of %s at %s: %w", repo, commit, err)
	}
	if err := json.Unmarshal([]byte(procfile), &b.Procfile); err != nil {
		return b, fmt.Errorf("build of %s at %s: %w", repo, commit, err)
	}
	return b, nil
}

func (s *Store) RecordBuild(ctx context.Context, b deployments.Build) error {
	procfile, _ := json.Marshal(b.Procfile)
	created := b.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	_, err := s.conn().exec(ctx, `INSERT INTO builds (repo, commit_sha, slug, buildpack, procfile, output, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (repo, commit_sha) DO UPDATE SET slug = excluded.slug, buildpack = excluded.buildpack,
			procfile = excluded.procfile, output = excluded.output, created_at = excluded.created_at
		WHERE builds.slug = ''`,
		strings.ToLower(b.Repo), b.Commit, b.Slug, b.Buildpack, string(procfile), tail(b.Output), created)
	if err != nil {
		return fmt.Errorf("record build of %s at %s: %w", b.Repo, b.Commit, err)
	}
	s.settled.forget() // a failed build ends the pushes of its commit
	return nil
}
