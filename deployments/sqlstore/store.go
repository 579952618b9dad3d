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
	"sync"
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
	db *sql.DB
	// read runs reads that need not wait for a writer: on SQLite, a pool
	// of query-only connections beside db's one, which WAL lets read
	// while db writes; on PostgreSQL, db itself.
	read    *sql.DB
	dialect dialect
	now     func() time.Time
	// sealer, when set, encrypts config vars at rest and opens rows
	// sealed under its previous keys.
	sealer *deployments.KeyRing

	// intake batches push deliveries into shared transactions (intake.go).
	intakeOnce sync.Once
	intake     chan intakeRequest
	intakeDone chan struct{}
	// intakeExited is closed when the intake loop has returned, having
	// written its last deferred deliveries; nil if it never started.
	intakeExited chan struct{}
	// deferred are the delivery rows of pushes answered without a
	// transaction, waiting for the intake loop's next one, and settled
	// what the store last found of pushed commits (intake.go, settled.go).
	deferred deferredDeliveries
	settled  settledPushes

	// stmts keeps statements prepared (SQLite only; see stmtCache), and
	// readStmts those of read.
	stmts, readStmts *stmtCache
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
	s := &Store{db: db, read: db, dialect: postgresDialect, now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }}
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
	// Readers of a WAL database see the last commit while the writer
	// writes: a webhook storm's duplicates are answered from them
	// without queueing behind the intake's transactions. query_only
	// keeps them readers.
	read, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=query_only(1)")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s for reading: %w", path, err)
	}
	read.SetMaxOpenConns(readConns)
	return &Store{db: db, read: read, dialect: sqliteDialect, now: func() time.Time { return time.Now().UTC() }, stmts: newStmtCache(), readStmts: newStmtCache()}, nil
}

// readConns bounds SQLite's reading connections: each answer from them
// is a few indexed lookups, and the machine has few cores to run more.
const readConns = 4

// Close closes the database, once the intake has written what it holds.
func (s *Store) Close() error {
	s.stopIntake()
	s.stmts.close()
	s.readStmts.close()
	err := s.db.Close()
	if s.read != s.db {
		if rerr := s.read.Close(); err == nil {
			err = rerr
		}
	}
	return err
}

type scanner interface{ Scan(dest ...any) error }

func (s *Store) tx(ctx context.Context, fn func(conn) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(conn{q: tx, tx: tx, d: s.dialect, stmts: s.stmts}); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	// The connection is free again: prepare what the transaction ran
	// unprepared, for the next one.
	s.stmts.prepareWanted(ctx, s.db)
	return nil
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
	// tx is q when conn runs inside a transaction.
	tx *sql.Tx
	// stmts, when set, keeps queries prepared across calls.
	stmts *stmtCache
}

func (s *Store) conn() conn { return conn{q: s.db, d: s.dialect, stmts: s.stmts} }

// reader is a conn for reads that may see the last commit rather than
// wait for a write in progress.
func (s *Store) reader() conn { return conn{q: s.read, d: s.dialect, stmts: s.readStmts} }

func (c conn) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := c.prepared(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return c.q.ExecContext(ctx, c.d.rebind(q), args...)
}

func (c conn) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := c.prepared(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.q.QueryContext(ctx, c.d.rebind(q), args...)
}

func (c conn) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st := c.prepared(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.q.QueryRowContext(ctx, c.d.rebind(q), args...)
}

// prepared is q's prepared statement for this conn, or nil to run q
// unprepared.
func (c conn) prepared(ctx context.Context, q string) *sql.Stmt {
	if c.stmts == nil {
		return nil
	}
	if c.tx != nil {
		st := c.stmts.lookup(q)
		if st == nil {
			return nil
		}
		return c.tx.StmtContext(ctx, st)
	}
	db, ok := c.q.(*sql.DB)
	if !ok {
		return nil
	}
	return c.stmts.prepare(ctx, db, q)
}

// stmtCache keeps SQLite's statements prepared: modernc.org/sqlite, like
// database/sql, parses a query each time it runs, which for the short
// queries of a webhook storm costs more than running them. (pgx caches
// PostgreSQL's statements per connection itself.)
//
// A statement is prepared on the database, never inside a transaction:
// with SQLite's one connection, preparing on the database while a
// transaction holds it would wait for ever. A query a transaction runs
// unprepared is noted, and prepared once the transaction ends.
type stmtCache struct {
	mu     sync.Mutex
	stmts  map[string]*sql.Stmt
	wanted map[string]bool
}

// maxStmts bounds the statements kept: the store's queries are a fixed
// set, well under it.
const maxStmts = 512

func newStmtCache() *stmtCache {
	return &stmtCache{stmts: map[string]*sql.Stmt{}, wanted: map[string]bool{}}
}

func (c *stmtCache) lookup(q string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stmts[q]
	if st == nil && len(c.stmts)+len(c.wanted) < maxStmts {
		c.wanted[q] = true
	}
	return st
}

func (c *stmtCache) prepare(ctx context.Context, db *sql.DB, q string) *sql.Stmt {
	c.mu.Lock()
	st, full := c.stmts[q], len(c.stmts) >= maxStmts
	c.mu.Unlock()
	if st != nil || full {
		return st
	}
	st, err := db.PrepareContext(ctx, q)
	if err != nil {
		return nil // run unprepared; the error, if real, shows there
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if had := c.stmts[q]; had != nil {
		st.Close()
		return had
	}
	c.stmts[q] = st
	delete(c.wanted, q)
	return st
}

func (c *stmtCache) prepareWanted(ctx context.Context, db *sql.DB) {
	if c == nil {
		return
	}
	c.mu.Lock()
	var qs []string
	for q := range c.wanted {
		qs = append(qs, q)
	}
	c.mu.Unlock()
	for _, q := range qs {
		c.prepare(ctx, db, q)
	}
}

func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.stmts {
		st.Close()
		delete(c.stmts, q)
	}
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
