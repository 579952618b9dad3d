package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// SetAutoDeployPause records why app's auto-deploy is paused, or with an
// empty reason that it is not.
func (s *Store) SetAutoDeployPause(ctx context.Context, app, reason string) error {
	var err error
	if reason == "" {
		_, err = s.conn().exec(ctx, `DELETE FROM autodeploy_pauses WHERE app = ?`, app)
	} else {
		_, err = s.conn().exec(ctx, `INSERT INTO autodeploy_pauses (app, reason, paused_at) VALUES (?, ?, ?)
			ON CONFLICT (app) DO UPDATE SET reason = excluded.reason, paused_at = excluded.paused_at`, app, reason, s.now())
	}
	if err != nil {
		return fmt.Errorf("record auto-deploy pause of %s: %w", app, err)
	}
	return nil
}

// AutoDeployPause returns why app's auto-deploy is paused, or "" if it is
// not.
func (s *Store) AutoDeployPause(ctx context.Context, app string) (string, error) {
	var reason string
	err := s.conn().queryRow(ctx, `SELECT reason FROM autodeploy_pauses WHERE app = ?`, app).Scan(&reason)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read auto-deploy pause of %s: %w", app, err)
	}
	return reason, nil
}
