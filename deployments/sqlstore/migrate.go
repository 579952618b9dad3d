package sqlstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"path"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations are the schema's numbered migrations, one set that SQLite
// and PostgreSQL both speak, applied in order by goose, which records each
// in its version table (goose_db_version).
var migrations = func() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // a constant, valid path: cannot fail
	}
	return sub
}()

// Migrate opens the store named by dsn as Open does (a postgres:// or
// postgresql:// URL for PostgreSQL, anything else a SQLite file path),
// applies the migrations it has not had yet and returns their names in the
// order applied, such as "00002_add_x.sql"; none when it is up to date. It
// is the `drover migrate` command: Open migrates too, so a server needs no
// separate step, but an operator may want to migrate before a rollout.
//
// On PostgreSQL it migrates under a session advisory lock, so replicas that
// start at once take turns: one applies, the others wait (up to five
// minutes, or until ctx ends) and then find nothing to do. A replica that
// finds nothing pending takes no lock. (goose makes its version table
// before it locks, and retries if another replica makes it at the same
// moment.) log, or slog.Default() when nil, gets a line per migration
// applied.
//
// Errors name the database, never its password, and the migration that
// failed. Each migration runs in its own transaction, so a failed one
// leaves nothing behind; the names returned with an error are those
// applied before it.
func Migrate(ctx context.Context, dsn string, log *slog.Logger) ([]string, error) {
	return migrateDSN(ctx, dsn, migrations, log)
}

// migrateDSN is Migrate with the migrations in fsys, so tests can try a
// migration that fails.
func migrateDSN(ctx context.Context, dsn string, fsys fs.FS, log *slog.Logger) ([]string, error) {
	if log == nil {
		log = slog.Default()
	}
	s, err := openUnmigrated(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	applied, err := s.migrate(ctx, fsys, log, Redact(dsn))
	if err != nil {
		return applied, fmt.Errorf("migrate store %s: %w", Redact(dsn), err)
	}
	return applied, nil
}

// migrate applies the migrations in fsys that the database has not had and
// returns their names; database names it in log lines. An error names the
// migration that failed; the names returned with it were applied before.
func (s *Store) migrate(ctx context.Context, fsys fs.FS, log *slog.Logger, database string) ([]string, error) {
	opts := []goose.ProviderOption{
		// Only the files in fsys: a Go migration that some other package of
		// the binary registers with goose's global registry is not ours.
		goose.WithDisableGlobalRegistry(true),
	}
	if s.dialect.lockMigrations {
		// Poll for the lock every second rather than goose's default five,
		// so a replica waiting behind another starts soon after it; give up
		// after five minutes, as goose does by default.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(s.dialect.goose, s.db, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	// No p.Close: it would close s.db, which the Store goes on using.
	results, err := p.Up(ctx)
	var partial *goose.PartialError
	if errors.As(err, &partial) {
		results = partial.Applied
	}
	var applied []string
	for _, r := range results {
		name := path.Base(r.Source.Path)
		applied = append(applied, name)
		log.Info("applied migration", "database", database, "migration", name, "duration", r.Duration)
	}
	switch {
	case partial != nil:
		return applied, fmt.Errorf("apply migration %s: %w", path.Base(partial.Failed.Source.Path), partial.Err)
	case err != nil:
		return applied, fmt.Errorf("apply migrations: %w", err)
	}
	return applied, nil
}

// Redact returns dsn fit for errors, logs and banners: a SQLite path as it is, a
// PostgreSQL URL without its password, whether in its user info or in a
// password or sslpassword parameter.
func Redact(dsn string) string {
	if !isPostgres(dsn) {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		// Where its password is cannot be told, so none of it is shown.
		return "postgres database (unparseable URL)"
	}
	if q := u.Query(); q.Has("password") || q.Has("sslpassword") {
		for _, k := range []string{"password", "sslpassword"} {
			if q.Has(k) {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
