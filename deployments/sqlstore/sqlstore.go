// Package sqlstore implements deployments.Store over database/sql, on
// SQLite (pure Go, modernc.org/sqlite), the embedded default, and on
// PostgreSQL (pgx), for production. The SQL is what both speak; the few
// differences (placeholders, row locks) live in dialect.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/drover/drover/deployments"
	"github.com/drover/drover/pipelines"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver
)

// maxOutput bounds stored build and release-phase output; the tail is kept,
// since that is where failures show.
const maxOutput = 1 << 20

// Store is a deployments.Store on SQLite or PostgreSQL.
type Store struct {
	db      *sql.DB
	dialect dialect
	now     func() time.Time
	// sealer, when set, encrypts config vars at rest.
	sealer deployments.Sealer
}

// dialect is what differs between the two databases.
type dialect struct {
	name string
	// forUpdate locks the rows a read-modify-write transaction read.
	// SQLite has one writer at a time and no such clause.
	forUpdate string
	// lockApp serialises writers of one app's version numbers.
	lockApp string
	// numbered placeholders ($1) instead of ?.
	numbered bool
}

var (
	sqliteDialect   = dialect{name: "sqlite"}
	postgresDialect = dialect{name: "postgres", forUpdate: " FOR UPDATE", lockApp: `SELECT pg_advisory_xact_lock(hashtext(?))`, numbered: true}
)

// Open opens the store named by dsn: a postgres:// or postgresql:// URL
// for PostgreSQL, anything else a SQLite file path.
func Open(ctx context.Context, dsn string) (*Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return OpenPostgres(ctx, dsn)
	}
	return OpenSQLite(ctx, dsn)
}

// OpenPostgres connects to PostgreSQL at url and migrates its schema.
func OpenPostgres(ctx context.Context, url string) (*Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	db.SetMaxOpenConns(10)
	s := &Store{db: db, dialect: postgresDialect, now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres store: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate postgres store: %w", err)
	}
	return s, nil
}

var _ deployments.Store = (*Store)(nil)

// OpenSQLite opens (creating if needed) the SQLite database at path and
// migrates its schema.
func OpenSQLite(ctx context.Context, path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create store dir: %w", err)
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// One connection serialises writers, which is what SQLite does anyway,
	// and makes "next version" allocation inside a transaction race-free.
	db.SetMaxOpenConns(1)
	s := &Store{db: db, dialect: sqliteDialect, now: func() time.Time { return time.Now().UTC() }}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate store %s: %w", path, err)
	}
	return s, nil
}

const schema = `
CREATE TABLE IF NOT EXISTS apps (
	name       TEXT PRIMARY KEY,
	pipeline   TEXT NOT NULL,
	stage      TEXT NOT NULL,
	repo       TEXT NOT NULL,
	branch     TEXT NOT NULL,
	regions    TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS releases (
	app            TEXT NOT NULL,
	version        INTEGER NOT NULL,
	status         TEXT NOT NULL,
	slug           TEXT NOT NULL,
	commit_sha     TEXT NOT NULL,
	config_version INTEGER NOT NULL,
	formation      TEXT NOT NULL,
	procfile       TEXT NOT NULL,
	description    TEXT NOT NULL,
	operation      TEXT NOT NULL,
	reason         TEXT NOT NULL,
	output         TEXT NOT NULL,
	regions        TEXT NOT NULL,
	created_at     TIMESTAMP NOT NULL,
	updated_at     TIMESTAMP NOT NULL,
	PRIMARY KEY (app, version)
);
CREATE INDEX IF NOT EXISTS releases_operation ON releases (app, operation);
CREATE TABLE IF NOT EXISTS config_vars (
	app        TEXT NOT NULL,
	version    INTEGER NOT NULL,
	vars       TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	PRIMARY KEY (app, version)
);
CREATE TABLE IF NOT EXISTS builds (
	repo       TEXT NOT NULL,
	commit_sha TEXT NOT NULL,
	slug       TEXT NOT NULL,
	buildpack  TEXT NOT NULL,
	procfile   TEXT NOT NULL,
	output     TEXT NOT NULL,
	created_at TIMESTAMP NOT NULL,
	PRIMARY KEY (repo, commit_sha)
);
CREATE TABLE IF NOT EXISTS review_apps (
	app          TEXT PRIMARY KEY,
	pipeline     TEXT NOT NULL,
	repo         TEXT NOT NULL,
	pr           INTEGER NOT NULL,
	title        TEXT NOT NULL,
	branch       TEXT NOT NULL,
	commit_sha   TEXT NOT NULL,
	url          TEXT NOT NULL,
	fork         BOOLEAN NOT NULL,
	created_at   TIMESTAMP NOT NULL,
	deployed_at  TIMESTAMP NULL,
	destroyed_at TIMESTAMP NULL,
	reason       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS review_apps_pipeline ON review_apps (pipeline);
CREATE TABLE IF NOT EXISTS deliveries (
	id          TEXT PRIMARY KEY,
	event       TEXT NOT NULL,
	received_at TIMESTAMP NOT NULL
);
`

func (s *Store) migrate(ctx context.Context) error {
	for _, stmt := range strings.Split(schema, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := s.conn().exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", strings.TrimSpace(stmt)[:30], err)
		}
	}
	return nil
}

// SetSealer makes the store keep config vars encrypted with sealer. Rows
// written before, in clear, are still read, and sealed on the next change.
func (s *Store) SetSealer(sealer deployments.Sealer) { s.sealer = sealer }

// sealedPrefix marks a sealed vars column: base64 of nonce || ciphertext.
const sealedPrefix = "sealed:v1:"

func (s *Store) encodeVars(vars map[string]string) (string, error) {
	plain, err := json.Marshal(vars)
	if err != nil {
		return "", err
	}
	if s.sealer == nil {
		return string(plain), nil
	}
	sealed, err := s.sealer.Seal(plain)
	if err != nil {
		return "", err
	}
	return sealedPrefix + base64.StdEncoding.EncodeToString(sealed), nil
}

func (s *Store) decodeVars(data string, into *map[string]string) error {
	plain := []byte(data)
	if rest, ok := strings.CutPrefix(data, sealedPrefix); ok {
		if s.sealer == nil {
			return fmt.Errorf("config vars are encrypted and this store has no key: %w", deployments.ErrUnseal)
		}
		sealed, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return deployments.ErrUnseal
		}
		if plain, err = s.sealer.Open(sealed); err != nil {
			return err
		}
	}
	return json.Unmarshal(plain, into)
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

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

const releaseColumns = `app, version, status, slug, commit_sha, config_version, formation, procfile, description, operation, reason, output, regions, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanRelease(sc scanner) (pipelines.Release, error) {
	var r pipelines.Release
	var formation, procfile, regions string
	err := sc.Scan(&r.App, &r.Version, &r.Status, &r.Slug, &r.Commit, &r.ConfigVersion, &formation, &procfile,
		&r.Description, &r.Operation, &r.Reason, &r.Output, &regions, &r.CreatedAt, &r.UpdatedAt)
	if err != nil {
		return r, err
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
		_, err := tx.exec(ctx, `INSERT INTO releases (`+releaseColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '', ?, ?, ?)`,
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

func (s *Store) FinishRelease(ctx context.Context, app string, version int, status pipelines.ReleaseStatus, reason string) error {
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

func (s *Store) ConfigVars(ctx context.Context, app string) (pipelines.ConfigVars, error) {
	return s.configVars(ctx, `SELECT version, vars FROM config_vars WHERE app = ? ORDER BY version DESC LIMIT 1`, app)
}

func (s *Store) ConfigVarsAt(ctx context.Context, app string, version int) (pipelines.ConfigVars, error) {
	if version == 0 {
		return pipelines.ConfigVars{Vars: map[string]string{}}, nil
	}
	cv, err := s.configVars(ctx, `SELECT version, vars FROM config_vars WHERE app = ? AND version = ?`, app, version)
	if err == nil && cv.Version == 0 {
		return cv, fmt.Errorf("config v%d of %q: %w", version, app, pipelines.ErrNotFound)
	}
	return cv, err
}

func (s *Store) configVars(ctx context.Context, q string, args ...any) (pipelines.ConfigVars, error) {
	cv := pipelines.ConfigVars{Vars: map[string]string{}}
	var data string
	err := s.conn().queryRow(ctx, q, args...).Scan(&cv.Version, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return cv, nil
	}
	if err != nil {
		return cv, fmt.Errorf("config vars: %w", err)
	}
	if err := s.decodeVars(data, &cv.Vars); err != nil {
		return cv, fmt.Errorf("config vars: %w", err)
	}
	return cv, nil
}

func (s *Store) SetConfigVars(ctx context.Context, app string, set map[string]string, unset []string) (pipelines.ConfigVars, error) {
	var out pipelines.ConfigVars
	err := s.tx(ctx, func(tx conn) error {
		cur := pipelines.ConfigVars{Vars: map[string]string{}}
		var data string
		if err := tx.lockApp(ctx, app); err != nil {
			return err
		}
		err := tx.queryRow(ctx, `SELECT version, vars FROM config_vars WHERE app = ? ORDER BY version DESC LIMIT 1`, app).Scan(&cur.Version, &data)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			if err := s.decodeVars(data, &cur.Vars); err != nil {
				return err
			}
		}
		for k, v := range set {
			cur.Vars[k] = v
		}
		for _, k := range unset {
			delete(cur.Vars, k)
		}
		cur.Version++
		enc, err := s.encodeVars(cur.Vars)
		if err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `INSERT INTO config_vars (app, version, vars, created_at) VALUES (?, ?, ?, ?)`,
			app, cur.Version, string(enc), s.now()); err != nil {
			return err
		}
		out = cur
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("set config vars of %q: %w", app, err)
	}
	return out, nil
}

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
	return nil
}

func (s *Store) RecordDelivery(ctx context.Context, id, event string) (bool, error) {
	res, err := s.conn().exec(ctx, `INSERT INTO deliveries (id, event, received_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		id, event, s.now())
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", id, err)
	}
	return n == 1, nil
}

func (s *Store) ForgetDelivery(ctx context.Context, id string) error {
	if _, err := s.conn().exec(ctx, `DELETE FROM deliveries WHERE id = ?`, id); err != nil {
		return fmt.Errorf("forget delivery %s: %w", id, err)
	}
	return nil
}

func (s *Store) tx(ctx context.Context, fn func(conn) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(conn{q: tx, d: s.dialect}); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// lockApp makes concurrent writers of app's numbered rows (releases,
// config versions) take turns, so "next version" is never given twice.
func (c conn) lockApp(ctx context.Context, app string) error {
	if c.d.lockApp == "" {
		return nil
	}
	_, err := c.exec(ctx, c.d.lockApp, app)
	return err
}

type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// conn runs queries written with ? placeholders on either database.
type conn struct {
	q querier
	d dialect
}

func (s *Store) conn() conn { return conn{q: s.db, d: s.dialect} }

func (c conn) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return c.q.ExecContext(ctx, c.d.rebind(q), args...)
}

func (c conn) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return c.q.QueryContext(ctx, c.d.rebind(q), args...)
}

func (c conn) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return c.q.QueryRowContext(ctx, c.d.rebind(q), args...)
}

// rebind turns ? placeholders into $1, $2, … for PostgreSQL. No query
// here has a ? inside a string literal.
func (d dialect) rebind(q string) string {
	if !d.numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func mustAffect(res sql.Result, err error, format string, args ...any) error {
	if err != nil {
		return fmt.Errorf(format+": %w", append(args, err)...)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf(format+": %w", append(args, pipelines.ErrNotFound)...)
	}
	return nil
}

func tail(s string) string {
	if len(s) <= maxOutput {
		return s
	}
	return "…" + s[len(s)-maxOutput:]
}
