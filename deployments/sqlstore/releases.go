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

const releaseColumns = `app, version, status, slug, commit_sha, config_version, formation, procfile, description, operation, reason, output, regions, created_at, updated_at, release_phase_exit`

func scanRelease(sc scanner) (pipelines.Release, error) {
	var r pipelines.Release
	var formation, procfile, regions string
	var exit sql.NullInt64
	err := sc.Scan(&r.App, &r.Version, &r.Status, &r.Slug, &r.Commit, &r.ConfigVersion, &formation, &procfile,
		&r.Description, &r.Operation, &r.Reason, &r.Output, &regions, &r.CreatedAt, &r.UpdatedAt, &exit)
	if err != nil {
		return r, err
	}
	if exit.Valid {
		code := int(exit.Int64)
		r.ReleasePhaseExit = &code
	}
	for _, f := range []struct {
		data string
		into any
	}{{formation, &r.Formation}, {procfile, &r.Procfile}, {regions, &r.Regions}} {
		if err := json.Unmarshal([]byte(f.data), f.into); err != nil {
			return r, fmt.Errorf("release %s v%d: %w", r.App, r.Version, err)
		}
	}
	return r, nil
}

func (s *Store) CreateRelease(ctx context.Context, nr deployments.NewRelease) (pipelines.Release, error) {
	var out pipelines.Release
	err := s.tx(ctx, func(tx conn) error {
		if err := tx.lockApp(ctx, nr.App); err != nil {
			return err
		}
		if nr.Operation != "" {
			r, err := scanRelease(tx.queryRow(ctx,
				`SELECT `+releaseColumns+` FROM releases WHERE app = ? AND operation = ?`, nr.App, nr.Operation))
			if err == nil {
				out = r
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		var version int
		if err := tx.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM releases WHERE app = ?`, nr.App).Scan(&version); err != nil {
			return err
		}
		now := s.now()
		status := nr.Status
		if status == "" {
			status = pipelines.ReleasePending
		}
		states := make([]pipelines.RegionState, 0, len(nr.Regions))
		for _, name := range nr.Regions {
			states = append(states, pipelines.RegionState{Region: name, Status: pipelines.RegionPending, UpdatedAt: now})
		}
		formation, _ := json.Marshal(orEmpty(nr.Formation))
		procfile, _ := json.Marshal(nr.Procfile)
		regions, _ := json.Marshal(states)
		_, err := tx.exec(ctx, `INSERT INTO releases (`+releaseColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '', ?, ?, ?, NULL)`,
			nr.App, version, status, nr.Slug, nr.Commit, nr.ConfigVersion, string(formation), string(procfile),
			nr.Description, nr.Operation, string(regions), now, now)
		if err != nil {
			return err
		}
		out, err = scanRelease(tx.queryRow(ctx, `SELECT `+releaseColumns+` FROM releases WHERE app = ? AND version = ?`, nr.App, version))
		return err
	})
	if err != nil {
		return pipelines.Release{}, fmt.Errorf("create release of %q: %w", nr.App, err)
	}
	return out, nil
}

func orEmpty(f pipelines.Formation) pipelines.Formation {
	if f == nil {
		return pipelines.Formation{}
	}
	return f
}

func (s *Store) Release(ctx context.Context, app string, version int) (pipelines.Release, error) {
	r, err := scanRelease(s.conn().queryRow(ctx, `SELECT `+releaseColumns+` FROM releases WHERE app = ? AND version = ?`, app, version))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("release %s v%d: %w", app, version, pipelines.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("release %s v%d: %w", app, version, err)
	}
	return r, nil
}

func (s *Store) Releases(ctx context.Context, app string, limit int) ([]pipelines.Release, error) {
	q := `SELECT ` + releaseColumns + ` FROM releases WHERE app = ? ORDER BY version DESC`
	args := []any{app}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.conn().query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("releases of %q: %w", app, err)
	}
	defer rows.Close()
	var out []pipelines.Release
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return nil, fmt.Errorf("releases of %q: %w", app, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *Store) ReleaseByOperation(ctx context.Context, app, operation string) (pipelines.Release, error) {
	// Operation is stored as "<workflow ID>@<run ID>".
	prefix := operation + "@"
	r, err := scanRelease(s.conn().queryRow(ctx, `SELECT `+releaseColumns+` FROM releases WHERE app = ? AND substr(operation, 1, ?) = ? ORDER BY version DESC LIMIT 1`,
		app, len(prefix), prefix))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("release of operation %s: %w", operation, pipelines.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("release of operation %s: %w", operation, err)
	}
	return r, nil
}

func (s *Store) CurrentRelease(ctx context.Context, app string) (pipelines.Release, error) {
	r, err := scanRelease(s.conn().queryRow(ctx, `SELECT `+releaseColumns+` FROM releases WHERE app = ? AND status = ? ORDER BY version DESC LIMIT 1`,
		app, pipelines.ReleaseSucceeded))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("current release of %q: %w", app, pipelines.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("current release of %q: %w", app, err)
	}
	return r, nil
}

func (s *Store) ReleaseOfCommit(ctx context.Context, app, commit string) (pipelines.Release, error) {
	r, err := scanRelease(s.conn().queryRow(ctx, `SELECT `+releaseColumns+` FROM releases WHERE app = ? AND commit_sha = ? AND status = ? ORDER BY version DESC LIMIT 1`,
		app, commit, pipelines.ReleaseSucceeded))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("release of %q at %s: %w", app, commit, pipelines.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("release of %q at %s: %w", app, commit, err)
	}
	return r, nil
}

func (s *Store) FinishRelease(ctx context.Context, app string, version int, status pipelines.ReleaseStatus, reason string) error {
	// A push of the release's commit is over, or released, from now on.
	defer s.settled.forget()
	return s.tx(ctx, func(tx conn) error {
		var cur pipelines.ReleaseStatus
		if err := lockedColumn(ctx, tx, "status", app, version, &cur); err != nil {
			return fmt.Errorf("finish release %s v%d: %w", app, version, err)
		}
		if cur == status {
			return nil
		}
		if cur.Terminal() {
			return fmt.Errorf("finish release %s v%d as %s: already %s: %w", app, version, status, cur, pipelines.ErrConflict)
		}
		_, err := tx.exec(ctx, `UPDATE releases SET status = ?, reason = ?, updated_at = ? WHERE app = ? AND version = ?`,
			status, reason, s.now(), app, version)
		return err
	})
}

func (s *Store) NoteRelease(ctx context.Context, app string, version int, note string) error {
	return s.tx(ctx, func(tx conn) error {
		var desc string
		if err := lockedColumn(ctx, tx, "description", app, version, &desc); err != nil {
			return fmt.Errorf("note release %s v%d: %w", app, version, err)
		}
		if strings.HasSuffix(desc, note) {
			return nil
		}
		if desc != "" {
			desc += "; "
		}
		_, err := tx.exec(ctx, `UPDATE releases SET description = ?, updated_at = ? WHERE app = ? AND version = ?`, desc+note, s.now(), app, version)
		return err
	})
}

// lockedColumn reads one column of app's release vN, locking the row for
// the rest of tx (on PostgreSQL; SQLite has one writer anyway). It returns
// pipelines.ErrNotFound when there is no such release.
func lockedColumn(ctx context.Context, tx conn, column, app string, version int, dst any) error {
	err := tx.queryRow(ctx, `SELECT `+column+` FROM releases WHERE app = ? AND version = ?`+tx.d.forUpdate, app, version).Scan(dst)
	if errors.Is(err, sql.ErrNoRows) {
		return pipelines.ErrNotFound
	}
	return err
}

func (s *Store) SetReleaseOutput(ctx context.Context, app string, version int, output string) error {
	res, err := s.conn().exec(ctx, `UPDATE releases SET output = ?, updated_at = ? WHERE app = ? AND version = ?`,
		tail(output), s.now(), app, version)
	return mustAffect(res, err, "set output of release %s v%d", app, version)
}

func (s *Store) SetReleasePhaseResult(ctx context.Context, app string, version, exitCode int, output string) error {
	res, err := s.conn().exec(ctx, `UPDATE releases SET release_phase_exit = ?, output = ?, updated_at = ? WHERE app = ? AND version = ?`,
		exitCode, tail(output), s.now(), app, version)
	return mustAffect(res, err, "record the release phase of %s v%d", app, version)
}

func (s *Store) SetRegionState(ctx context.Context, app string, version int, st pipelines.RegionState) error {
	return s.tx(ctx, func(tx conn) error {
		var data string
		if err := lockedColumn(ctx, tx, "regions", app, version, &data); err != nil {
			return fmt.Errorf("region state of %s v%d: %w", app, version, err)
		}
		var states []pipelines.RegionState
		if err := json.Unmarshal([]byte(data), &states); err != nil {
			return err
		}
		if st.UpdatedAt.IsZero() {
			st.UpdatedAt = s.now()
		}
		found := false
		for i := range states {
			if states[i].Region == st.Region {
				if st.URL == "" {
					st.URL = states[i].URL
				}
				states[i], found = st, true
			}
		}
		if !found {
			states = append(states, st)
		}
		out, _ := json.Marshal(states)
		_, err := tx.exec(ctx, `UPDATE releases SET regions = ?, updated_at = ? WHERE app = ? AND version = ?`, string(out), s.now(), app, version)
		return err
	})
}

// RanBefore reports whether a release of app before version succeeded
// with this slug and config version: the same code and config proven
// healthy (a rollback, a revert, a scale change). One indexed query,
// however long the ledger.
func (s *Store) RanBefore(ctx context.Context, app string, version int, slug string, configVersion int) (bool, error) {
	var one int
	err := s.conn().queryRow(ctx, `SELECT 1 FROM releases WHERE app = ? AND version < ? AND status = ? AND slug = ? AND config_version = ? LIMIT 1`,
		app, version, pipelines.ReleaseSucceeded, slug, configVersion).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("earlier releases of %q: %w", app, err)
	}
	return true, nil
}
