package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/drover/drover/pipelines"
)

// StartRun records a one-off run of r.App and gives it the app's next
// number (run.N). The App, Command, By, Region, Release and Attached
// fields are kept; the rest are set here.
func (s *Store) StartRun(ctx context.Context, r pipelines.Run) (pipelines.Run, error) {
	r.StartedAt, r.EndedAt, r.ExitCode = s.now(), nil, nil
	err := s.tx(ctx, func(c conn) error {
		if err := c.lockApp(ctx, r.App); err != nil {
			return err
		}
		if err := c.queryRow(ctx, `SELECT COALESCE(MAX(number), 0) + 1 FROM runs WHERE app = ?`, r.App).Scan(&r.Number); err != nil {
			return err
		}
		_, err := c.exec(ctx, `INSERT INTO runs (app, number, command, requested_by, region, release, attached, started_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, r.App, r.Number, r.Command, r.By, r.Region, r.Release, r.Attached, r.StartedAt)
		return err
	})
	if err != nil {
		return r, fmt.Errorf("record run of %s: %w", r.App, err)
	}
	return r, nil
}

// FinishRun records how run.number of app ended. A run already finished
// keeps its first end.
func (s *Store) FinishRun(ctx context.Context, app string, number, exitCode int) error {
	res, err := s.conn().exec(ctx, `UPDATE runs SET ended_at = ?, exit_code = ? WHERE app = ? AND number = ? AND ended_at IS NULL`,
		s.now(), exitCode, app, number)
	if err != nil {
		return fmt.Errorf("record end of run.%d of %s: %w", number, app, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.Run(ctx, app, number); err != nil {
			return err
		}
	}
	return nil
}

// Run returns run.number of app, or an error matching pipelines.ErrNotFound.
func (s *Store) Run(ctx context.Context, app string, number int) (pipelines.Run, error) {
	runs, err := s.queryRuns(ctx, `WHERE app = ? AND number = ?`, app, number)
	if err != nil {
		return pipelines.Run{}, err
	}
	if len(runs) == 0 {
		return pipelines.Run{}, fmt.Errorf("run.%d of %s: %w", number, app, pipelines.ErrNotFound)
	}
	return runs[0], nil
}

// Runs returns app's newest runs, newest first, at most limit.
func (s *Store) Runs(ctx context.Context, app string, limit int) ([]pipelines.Run, error) {
	return s.queryRuns(ctx, `WHERE app = ? ORDER BY number DESC LIMIT ?`, app, limit)
}

func (s *Store) queryRuns(ctx context.Context, where string, args ...any) ([]pipelines.Run, error) {
	rows, err := s.conn().query(ctx, `SELECT app, number, command, requested_by, region, release, attached, started_at, ended_at, exit_code FROM runs `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	defer rows.Close()
	out := []pipelines.Run{}
	for rows.Next() {
		var r pipelines.Run
		var ended sql.NullTime
		var code sql.NullInt64
		if err := rows.Scan(&r.App, &r.Number, &r.Command, &r.By, &r.Region, &r.Release, &r.Attached, &r.StartedAt, &ended, &code); err != nil {
			return nil, fmt.Errorf("read runs: %w", err)
		}
		r.StartedAt = r.StartedAt.UTC()
		if ended.Valid {
			t := ended.Time.UTC()
			r.EndedAt = &t
		}
		if code.Valid {
			c := int(code.Int64)
			r.ExitCode = &c
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	return out, nil
}
