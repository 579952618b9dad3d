package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/drover/drover/pipelines"
)

// SetLiveOutput records the output so far of a running step: its newest
// bytes, and how many it has written in all (so a follower asking from
// an offset knows what it missed).
func (s *Store) SetLiveOutput(ctx context.Context, step, output string, total int64) error {
	_, err := s.conn().exec(ctx, `INSERT INTO live_output (step, output, total, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (step) DO UPDATE SET output = excluded.output, total = excluded.total, updated_at = excluded.updated_at`,
		step, output, total, s.now())
	if err != nil {
		return fmt.Errorf("record output of %s: %w", step, err)
	}
	return nil
}

// LiveOutput returns what SetLiveOutput recorded last for step, or an
// error matching pipelines.ErrNotFound when the step is not running.
func (s *Store) LiveOutput(ctx context.Context, step string) (string, int64, error) {
	var out string
	var total int64
	err := s.conn().queryRow(ctx, `SELECT output, total FROM live_output WHERE step = ?`, step).Scan(&out, &total)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, fmt.Errorf("output of %s: %w", step, pipelines.ErrNotFound)
	}
	if err != nil {
		return "", 0, fmt.Errorf("read output of %s: %w", step, err)
	}
	return out, total, nil
}

// EndLiveOutput forgets a step's live output once it ended.
func (s *Store) EndLiveOutput(ctx context.Context, step string) error {
	if _, err := s.conn().exec(ctx, `DELETE FROM live_output WHERE step = ?`, step); err != nil {
		return fmt.Errorf("forget output of %s: %w", step, err)
	}
	return nil
}
