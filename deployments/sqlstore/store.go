// Package sqlstore implements deployments.Store over database/sql, on
// SQLite (pure Go, modernc.org/sqlite), the embedded default, and on
// PostgreSQL (pgx), for production. The SQL is what both speak; the few
// differences (placeholders, row locks) live in dialect. The schema is
// numbered migrations under migrations/, applied by goose (migrate.go).
//
// One file per entity: apps.go, releases.go, config.go, builds.go,
// review.go, deliveries.go.
package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pressly/goose/v3"

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
	// sealer, when set, encrypts config vars at rest and opens rows
	// sealed under its previous keys.
	sealer *deployments.KeyRing
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
	// goose is goose's name for the database, for its version table.
	goose goose.Dialect
	// lockMigrations makes replicas that start at once take turns at
	// migrating, under a session advisory lock. SQLite needs none: its file
	// is one drover dev's own, and SQLite lets one writer at a time at it.
	lockMigrations bool
}

var (
	sqliteDialect   = dialect{name: "sqlite", goose: goose.DialectSQLite3}
	postgresDialect = dialect{name: "postgres", forUpdate: " FOR UPDATE", lockApp: `SELECT pg_advisory_xact_lock(hashtext(?))`, numbered: true,
		goose: goose.DialectPostgres, lockMigrations: true}
)

// Open opens the store named by dsn: a postgres:// or postgresql:// URL
// for PostgreSQL, anything else a SQLite file path. It applies pending
// migrations first, as Migrate does, logging each to slog.Default().
// Errors name the database, never its password.
func Open(ctx context.Context, dsn string) (*Store, error) {
	if isPostgres(dsn) {
		return OpenPostgres(ctx, dsn)
	}
	return OpenSQLite(ctx, dsn)
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// openUnmigrated opens the store named by dsn as Open does, leaving its
// schema as it finds it.
func openUnmigrated(ctx context.Context, dsn string) (*Store, error) {
	if isPostgres(dsn) {
		return openPostgres(ctx, dsn)
	}
	return openSQLite(dsn)
}

// OpenPostgres connects to PostgreSQL at url and migrates its schema,
// under an advisory lock (see Migrate). Errors name the database, never
// its password.
func OpenPostgres(ctx context.Context, url string) (*Store, error) {
	s, err := openPostgres(ctx, url)
	if err != nil {
		return nil, err
	}
	if _, err := s.migrate(ctx, migrations, slog.Default(), Redact(url)); err != nil {
		s.Close()
		return nil, fmt.Errorf("migrate postgres store %s: %w", Redact(url), err)
	}
	return s, nil
}

func openPostgres(ctx context.Context, url string) (*Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("open postgres store %s: %w", Redact(url), err)
	}
	db.SetMaxOpenConns(10)
	s := &Store{db: db, dialect: postgresDialect, now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres store %s: %w", Redact(url), err)
	}
	return s, nil
}

var _ deployments.Store = (*Store)(nil)

// OpenSQLite opens (creating if needed) the SQLite database at path and
// migrates its schema. Errors name path.
func OpenSQLite(ctx context.Context, path string) (*Store, error) {
	s, err := openSQLite(path)
	if err != nil {
		return nil, err
	}
	if _, err := s.migrate(ctx, migrations, slog.Default(), path); err != nil {
		s.Close()
		return nil, fmt.Errorf("migrate store %s: %w", path, err)
	}
	return s, nil
}

func openSQLite(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create store dir: %w", err)
	}
	// Transactions take the write lock when they begin (_txlock=immediate):
	// a deferred one that reads then writes cannot wait out another
	// process's write (SQLite answers SQLITE_BUSY at once, whatever the
	// busy timeout), so two processes on one file (drover dev and a
	// drover command) would fail each other's releases.
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// One connection serialises writers, which is what SQLite does anyway,
	// and makes "next version" allocation inside a transaction race-free.
	db.SetMaxOpenConns(1)
	return &Store{db: db, dialect: sqliteDialect, now: func() time.Time { return time.Now().UTC() }}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

type scanner interface{ Scan(dest ...any) error }

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

// Ping returns an error when the database does not answer, for a
// readiness probe.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("%s store: %w", s.dialect.name, err)
	}
	return nil
}
