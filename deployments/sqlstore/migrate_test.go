package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	neturl "net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pressly/goose/v3/lock"

	"github.com/drover/drover/deployments"
	"github.com/drover/drover/deployments/sqlstore"
	"github.com/drover/drover/pipelines"
)

// legacySchema is the schema drover made before it had numbered
// migrations, copied from sqlstore.go as it was then, when OpenSQLite and
// OpenPostgres applied it statement by statement at every start. It is the
// fixture for a database that code made; migrations/00001_schema.sql must
// adopt such a database and keep its rows.
const legacySchema = `
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

// createLegacy makes at dsn the database drover made before it had
// numbered migrations: legacySchema, applied as that code applied it, and
// legacyRows in every table, written as that code wrote them (JSON
// columns, time.Time arguments).
func createLegacy(t *testing.T, dsn string) {
	t.Helper()
	ctx := context.Background()
	db := mustRawDB(t, dsn)
	for _, stmt := range strings.Split(legacySchema, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("legacy schema: %v", err)
		}
	}
	l := legacyRows
	a := l.app
	exec := func(q string, args ...any) {
		t.Helper()
		// $n placeholders: both PostgreSQL and SQLite read them.
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("legacy row %.40s…: %v", q, err)
		}
	}
	exec(`INSERT INTO apps (name, pipeline, stage, repo, branch, regions, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		a.Name, a.Pipeline, a.Stage, a.Repo, a.Branch, mustJSON(t, a.Regions), l.at)
	for _, r := range l.releases {
		exec(`INSERT INTO releases (app, version, status, slug, commit_sha, config_version, formation, procfile, description, operation, reason, output, regions, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			r.App, r.Version, r.Status, r.Slug, r.Commit, r.ConfigVersion, mustJSON(t, r.Formation), mustJSON(t, r.Procfile),
			r.Description, r.Operation, r.Reason, r.Output, mustJSON(t, r.Regions), r.CreatedAt, r.UpdatedAt)
	}
	for _, cv := range l.config {
		exec(`INSERT INTO config_vars (app, version, vars, created_at) VALUES ($1, $2, $3, $4)`, a.Name, cv.Version, mustJSON(t, cv.Vars), l.at)
	}
	b := l.build
	exec(`INSERT INTO builds (repo, commit_sha, slug, buildpack, procfile, output, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		b.Repo, b.Commit, b.Slug, b.Buildpack, mustJSON(t, b.Procfile), b.Output, b.CreatedAt)
	for _, r := range l.reviewApps {
		var deployed, destroyed any
		if r.DeployedAt != nil {
			deployed = *r.DeployedAt
		}
		if r.DestroyedAt != nil {
			destroyed = *r.DestroyedAt
		}
		exec(`INSERT INTO review_apps (app, pipeline, repo, pr, title, branch, commit_sha, url, fork, created_at, deployed_at, destroyed_at, reason)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			r.App, r.Pipeline, r.Repo, r.PR, r.Title, r.Branch, r.Commit, r.URL, r.Fork, r.CreatedAt, deployed, destroyed, r.Reason)
	}
	exec(`INSERT INTO deliveries (id, event, received_at) VALUES ($1, $2, $3)`, l.delivery, "push", l.at)
}

// legacyRows are the rows createLegacy writes, as the Store must read them.
var legacyRows = func() (l struct {
	at         time.Time
	app        pipelines.App
	releases   []pipelines.Release
	config     []pipelines.ConfigVars
	build      deployments.Build
	reviewApps []pipelines.ReviewApp
	delivery   string
}) {
	l.at = time.Date(2026, 3, 1, 9, 30, 0, 123456000, time.UTC)
	later := l.at.Add(90 * time.Second)
	l.app = pipelines.App{Name: "hello-staging", Pipeline: "hello", Stage: "staging", Repo: "octo-org/hello", Branch: "main", Regions: []string{"eu", "us"}}
	procfile := pipelines.Procfile{{Type: "web", Command: "./hello"}, {Type: "release", Command: "./migrate"}}
	l.releases = []pipelines.Release{{
		App: l.app.Name, Version: 1, Status: pipelines.ReleaseSucceeded, Slug: "sha256:aa", Commit: "c1", ConfigVersion: 1,
		Formation: pipelines.Formation{"web": 2}, Procfile: procfile, Description: "deploy c1; approved by alice",
		Operation: "deploy/hello-staging/c1@run-1", Output: "migrated 3 tables",
		Regions: []pipelines.RegionState{
			{Region: "eu", Status: pipelines.RegionSuccessful, URL: "http://eu.hello", UpdatedAt: later},
			{Region: "us", Status: pipelines.RegionSuccessful, Message: "healthy", UpdatedAt: later},
		},
		CreatedAt: l.at, UpdatedAt: later,
	}, {
		App: l.app.Name, Version: 2, Status: pipelines.ReleaseFailed, Slug: "sha256:bb", Commit: "c2", ConfigVersion: 2,
		Formation: pipelines.Formation{"web": 2}, Procfile: procfile, Operation: "deploy/hello-staging/c2@run-1",
		Reason: "release phase failed", Output: "exit status 1",
		Regions:   []pipelines.RegionState{{Region: "eu", Status: pipelines.RegionPending, UpdatedAt: later}, {Region: "us", Status: pipelines.RegionPending, UpdatedAt: later}},
		CreatedAt: later, UpdatedAt: later,
	}}
	l.config = []pipelines.ConfigVars{{Version: 1, Vars: map[string]string{"A": "1"}}, {Version: 2, Vars: map[string]string{"A": "2", "B": "x y"}}}
	l.build = deployments.Build{Repo: "octo-org/hello", Commit: "c1", Slug: "sha256:aa", Buildpack: "go", Procfile: procfile, Output: "go build ./...", CreatedAt: l.at}
	l.reviewApps = []pipelines.ReviewApp{
		{App: "hello-pr-42", Pipeline: "hello", Repo: "octo-org/hello", PR: 42, Title: "Add login", Branch: "login", Commit: "c3",
			URL: "http://pr-42.hello", Fork: true, CreatedAt: l.at, DeployedAt: &later},
		{App: "hello-pr-7", Pipeline: "hello", Repo: "octo-org/hello", PR: 7, Title: "Old", Branch: "old", CreatedAt: l.at,
			DestroyedAt: &later, Reason: "pull request closed"},
	}
	l.delivery = "delivery-1"
	return l
}()

func TestMigrateUpgradesLegacySchema(t *testing.T) { databases(t, testMigrateUpgradesLegacySchema) }

func testMigrateUpgradesLegacySchema(t *testing.T, dsn string) {
	ctx := context.Background()
	createLegacy(t, dsn)
	s := mustOpen(t, dsn)
	if got, want := gooseVersions(t, dsn), allVersions(t); !slices.Equal(got, want) {
		t.Fatalf("goose versions after Open = %v, want %v: 00001 recorded as applied", got, want)
	}
	l := legacyRows

	apps, err := s.Apps(ctx)
	if err != nil || !reflect.DeepEqual(apps, []pipelines.App{l.app}) {
		t.Errorf("Apps = %+v, %v; want %+v", apps, err, l.app)
	}
	releases, err := s.Releases(ctx, l.app.Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(l.releases)
	slices.Reverse(want) // newest first
	if !reflect.DeepEqual(utcReleases(releases), want) {
		t.Errorf("Releases =\n%+v\nwant\n%+v", releases, want)
	}
	if cur, err := s.CurrentRelease(ctx, l.app.Name); err != nil || cur.Version != 1 {
		t.Errorf("CurrentRelease = v%d, %v; want v1, the last that succeeded", cur.Version, err)
	}
	if r, err := s.ReleaseByOperation(ctx, l.app.Name, "deploy/hello-staging/c2"); err != nil || r.Version != 2 {
		t.Errorf("ReleaseByOperation = v%d, %v; want v2", r.Version, err)
	}
	for _, cv := range l.config {
		got, err := s.ConfigVarsAt(ctx, l.app.Name, cv.Version)
		if err != nil || !reflect.DeepEqual(got, cv) {
			t.Errorf("ConfigVarsAt(v%d) = %+v, %v; want %+v", cv.Version, got, err, cv)
		}
	}
	if got, err := s.ConfigVars(ctx, l.app.Name); err != nil || got.Version != 2 {
		t.Errorf("ConfigVars = %+v, %v; want v2", got, err)
	}
	build, err := s.FindBuild(ctx, l.build.Repo, l.build.Commit)
	build.CreatedAt = build.CreatedAt.UTC()
	if err != nil || !reflect.DeepEqual(build, l.build) {
		t.Errorf("FindBuild = %+v, %v; want %+v", build, err, l.build)
	}
	for _, want := range l.reviewApps {
		got, err := s.ReviewApp(ctx, want.App)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ReviewApp(%s) = %+v, %v; want %+v", want.App, got, err, want)
		}
	}
	if live, err := s.ReviewApps(ctx, "hello"); err != nil || len(live) != 1 || live[0].PR != 42 {
		t.Errorf("ReviewApps = %+v, %v; want only PR 42, the one not destroyed", live, err)
	}
	if fresh, err := s.RecordDelivery(ctx, l.delivery, "push"); err != nil || fresh {
		t.Errorf("RecordDelivery(%s) = %v, %v; want false, it was recorded before", l.delivery, fresh, err)
	}

	// The upgraded ledger goes on where it stopped.
	if r, err := s.CreateRelease(ctx, deployments.NewRelease{App: l.app.Name, Operation: "op-3"}); err != nil || r.Version != 3 {
		t.Errorf("CreateRelease after the upgrade = v%d, %v; want v3", r.Version, err)
	}
	if cv, err := s.SetConfigVars(ctx, l.app.Name, map[string]string{"C": "3"}, nil); err != nil || cv.Version != 3 || cv.Vars["B"] != "x y" {
		t.Errorf("SetConfigVars after the upgrade = %+v, %v; want v3 keeping B", cv, err)
	}
}

// TestMigrationMatchesLegacySchema checks that migrations make, on an empty
// database, the same tables, columns and indexes as legacySchema did, so a
// database made either way is the same to the code.
func TestMigrationMatchesLegacySchema(t *testing.T) {
	databases(t, func(t *testing.T, dsn string) {
		createLegacy(t, dsn)
		legacy := describeSchema(t, dsn)

		fresh := dsn + "-fresh"
		if strings.HasPrefix(dsn, "postgres") {
			fresh = freshPostgresDB(t, os.Getenv(postgresEnv))
		}
		// 00001 is the legacy schema; later migrations change it.
		first := fstest.MapFS{}
		b, err := fs.ReadFile(sqlstore.Migrations, "00001_schema.sql")
		if err != nil {
			t.Fatal(err)
		}
		first["00001_schema.sql"] = &fstest.MapFile{Data: b}
		if _, err := sqlstore.MigrateFS(context.Background(), fresh, first, testLogger(t)); err != nil {
			t.Fatal(err)
		}
		if got := describeSchema(t, fresh); !slices.Equal(got, legacy) {
			t.Fatalf("migrated schema:\n%s\nlegacy schema:\n%s", strings.Join(got, "\n"), strings.Join(legacy, "\n"))
		}
		if len(legacy) < 6 {
			t.Fatalf("schema description %q is too short to mean anything", legacy)
		}
	})
}

// describeSchema lists the columns and indexes of drover's tables at dsn,
// one line each, leaving out goose's version table (and, on SQLite, the
// sqlite_sequence table its AUTOINCREMENT key makes).
func describeSchema(t *testing.T, dsn string) []string {
	t.Helper()
	queries := []string{
		`SELECT m.name || '.' || p.name || ' ' || p.type || ' notnull=' || p."notnull" || ' pk=' || p.pk || ' default=' || COALESCE(p.dflt_value, '')
		FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT IN ('goose_db_version', 'sqlite_sequence') ORDER BY m.name, p.cid`,
		`SELECT name || ' ON ' || tbl_name || ': ' || COALESCE(sql, '(automatic)') FROM sqlite_master
		WHERE type = 'index' AND tbl_name <> 'goose_db_version' ORDER BY name`,
	}
	if strings.HasPrefix(dsn, "postgres") {
		queries = []string{
			`SELECT table_name || '.' || column_name || ' ' || data_type || ' nullable=' || is_nullable || ' default=' || COALESCE(column_default, '')
			FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name <> 'goose_db_version' ORDER BY table_name, ordinal_position`,
			`SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename <> 'goose_db_version' ORDER BY indexname`,
		}
	}
	db := mustRawDB(t, dsn)
	var out []string
	for _, q := range queries {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatalf("describe schema: %v", err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			out = append(out, line)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out
}

// TestMigrate runs Migrate on databases in each state it may find one in.
func TestMigrate(t *testing.T) {
	all := migrationNames(t)
	for _, tc := range []struct {
		name   string
		before func(t *testing.T, dsn string)
		want   []string // the migrations Migrate applies
	}{
		{"fresh database", func(*testing.T, string) {}, all},
		{"already migrated", func(t *testing.T, dsn string) {
			if _, err := sqlstore.Migrate(context.Background(), dsn, testLogger(t)); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"migrated by Open", func(t *testing.T, dsn string) { mustOpen(t, dsn).Close() }, nil},
		// 00001 is recorded as applied; it finds its tables already there.
		{"made before numbered migrations", createLegacy, all},
	} {
		t.Run(tc.name, func(t *testing.T) {
			databases(t, func(t *testing.T, dsn string) {
				tc.before(t, dsn)
				var logs bytes.Buffer
				got, err := sqlstore.Migrate(context.Background(), dsn, slog.New(slog.NewTextHandler(&logs, nil)))
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("Migrate applied %q, want %q", got, tc.want)
				}
				if v := gooseVersions(t, dsn); !slices.Equal(v, allVersions(t)) {
					t.Errorf("goose versions = %v, want %v, each once", v, allVersions(t))
				}
				for _, name := range tc.want {
					if !strings.Contains(logs.String(), "migration="+name) {
						t.Errorf("logs do not say %s was applied:\n%s", name, logs.String())
					}
				}
				if u := mustParseURL(t, dsn); u != nil && u.User != nil {
					if pw, ok := u.User.Password(); ok && strings.Contains(logs.String(), ":"+pw+"@") {
						t.Errorf("logs show the database password:\n%s", logs.String())
					}
				}
				if again, err := sqlstore.Migrate(context.Background(), dsn, testLogger(t)); err != nil || len(again) != 0 {
					t.Errorf("Migrate again applied %q, %v; want nothing", again, err)
				}
				// And the store works on what it made.
				s := mustOpen(t, dsn)
				if _, err := s.CreateRelease(context.Background(), deployments.NewRelease{App: "x", Operation: "op"}); err != nil {
					t.Errorf("CreateRelease on the migrated store: %v", err)
				}
			})
		})
	}
}

// TestConcurrentMigrateOnPostgres starts two "processes" (two Migrate
// calls, each with its own pool) on one fresh database at once, as replicas
// rolled out together do: the advisory lock lets one apply the migrations
// while the other waits and then finds nothing to do.
func TestConcurrentMigrateOnPostgres(t *testing.T) {
	url := os.Getenv(postgresEnv)
	if url == "" {
		t.Skipf("%s is not set: concurrent migration needs PostgreSQL (.ci/run sets it)", postgresEnv)
	}
	all := migrationNames(t)
	for round := range 3 {
		dsn := freshPostgresDB(t, url)
		start := make(chan struct{})
		results := make([][]string, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() {
				<-start
				results[i], errs[i] = sqlstore.Migrate(context.Background(), dsn, testLogger(t))
			})
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		slices.SortFunc(results, func(a, b []string) int { return len(b) - len(a) })
		if !slices.Equal(results[0], all) || len(results[1]) != 0 {
			t.Fatalf("round %d: the two Migrate calls applied %q and %q; want %q once and nothing", round, results[0], results[1], all)
		}
		if v := gooseVersions(t, dsn); !slices.Equal(v, allVersions(t)) {
			t.Fatalf("round %d: goose versions = %v, want %v, each once", round, v, allVersions(t))
		}
	}
}

// TestMigrateWaitsForAdvisoryLock shows that the lock is what orders
// concurrent migrations: while another session holds goose's advisory lock,
// Migrate applies nothing; once it is released, Migrate goes ahead.
func TestMigrateWaitsForAdvisoryLock(t *testing.T) {
	url := os.Getenv(postgresEnv)
	if url == "" {
		t.Skipf("%s is not set: the advisory lock is PostgreSQL's (.ci/run sets it)", postgresEnv)
	}
	ctx := context.Background()
	dsn := freshPostgresDB(t, url)
	db := mustRawDB(t, dsn)
	holder, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lock.DefaultLockID); err != nil {
		t.Fatal(err)
	}

	type result struct {
		applied []string
		err     error
	}
	done := make(chan result, 1)
	go func() {
		// Not testLogger: this may outlive the test if it fails.
		applied, err := sqlstore.Migrate(ctx, dsn, slog.New(slog.DiscardHandler))
		done <- result{applied, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("Migrate returned %q, %v while another session held the migration lock", r.applied, r.err)
	case <-time.After(2500 * time.Millisecond):
	}
	// goose looks for pending migrations before it takes the lock, making
	// its version table if need be (it retries if another replica makes it
	// at the same moment), but applies none.
	if v := gooseVersions(t, dsn); !slices.Equal(v, []int64{0}) {
		t.Fatalf("goose versions while Migrate waited for the lock = %v, want [0]: nothing applied", v)
	}
	var apps sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT to_regclass('apps')::text`).Scan(&apps); err != nil || apps.Valid {
		t.Fatalf("table apps = %v, %v while Migrate waited for the lock; want none yet", apps, err)
	}
	if _, err := holder.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, lock.DefaultLockID); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || !slices.Equal(r.applied, migrationNames(t)) {
			t.Fatalf("Migrate after the lock was released = %q, %v; want %q", r.applied, r.err, migrationNames(t))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Migrate did not go ahead within 30s of the lock's release")
	}
	var held int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&held); err != nil || held != 0 {
		t.Fatalf("%d advisory locks held after Migrate returned, %v; want it to release its lock", held, err)
	}
}

// TestMigrateErrors checks that a failed migration is named, with the
// database and never its password, and that what ran before it stays.
func TestMigrateErrors(t *testing.T) {
	schema, err := os.ReadFile("migrations/00001_schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	broken := fstest.MapFS{
		"00001_schema.sql": {Data: schema},
		"00002_broken.sql": {Data: []byte("-- +goose Up\nCREATE TABLE broken (id INTEGER PRIMARY KEY);\nCREATE TABLE broken (id INTEGER PRIMARY KEY);\n")},
	}
	databases(t, func(t *testing.T, dsn string) {
		applied, err := sqlstore.MigrateFS(context.Background(), dsn, broken, testLogger(t))
		if err == nil {
			t.Fatal("Migrate with a broken migration succeeded")
		}
		t.Logf("error: %v", err)
		for _, want := range []string{"00002_broken.sql", sqlstore.Redact(dsn)} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
		}
		if strings.HasPrefix(dsn, "postgres") && strings.Contains(err.Error(), dsn) {
			t.Errorf("error %q shows the database URL with its password", err)
		}
		if !slices.Equal(applied, []string{"00001_schema.sql"}) {
			t.Errorf("applied before the failure = %q, want 00001_schema.sql", applied)
		}
		// 00002 ran in a transaction: it left no table and no version behind.
		if v := gooseVersions(t, dsn); !slices.Equal(v, []int64{0, 1}) {
			t.Errorf("goose versions = %v, want [0 1]", v)
		}
	})
	t.Run("unreachable postgres", func(t *testing.T) {
		for _, dsn := range []string{
			"postgres://drover:hunter2@127.0.0.1:1/drover?connect_timeout=5",
			"postgresql://drover@127.0.0.1:1/drover?password=hunter2&connect_timeout=5",
		} {
			_, err := sqlstore.Migrate(context.Background(), dsn, testLogger(t))
			if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "127.0.0.1:1/drover") {
				t.Errorf("Migrate(%s) = %v; want an error naming the database without its password", sqlstore.Redact(dsn), err)
			}
		}
	})
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"/var/lib/drover/drover.db", "/var/lib/drover/drover.db"},
		{"postgres://drover:hunter2@db:5432/drover?sslmode=require", "postgres://drover:xxxxx@db:5432/drover?sslmode=require"},
		{"postgresql://drover@db/drover?password=hunter2&sslpassword=hunter3", "postgresql://drover@db/drover?password=xxxxx&sslpassword=xxxxx"},
		{"postgres://db/drover", "postgres://db/drover"},
		{"postgres://drover:hunter2%zz@db/drover", "postgres database (unparseable URL)"},
	} {
		if got := sqlstore.Redact(tc.dsn); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
}

// migrationNames returns the embedded migrations' file names, in order.
func migrationNames(tb testing.TB) []string {
	tb.Helper()
	entries, err := os.ReadDir("migrations")
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names
}

// allVersions is what goose's version table holds once every migration is
// applied: its own version 0, then each migration's, each once.
func allVersions(tb testing.TB) []int64 {
	tb.Helper()
	versions := []int64{0}
	for _, name := range migrationNames(tb) {
		n, _, _ := strings.Cut(name, "_")
		v, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			tb.Fatalf("migration %s: %v", name, err)
		}
		versions = append(versions, v)
	}
	return versions
}

// gooseVersions returns the versions goose's table at dsn records, in the
// order they were applied.
func gooseVersions(tb testing.TB, dsn string) []int64 {
	tb.Helper()
	rows, err := mustRawDB(tb, dsn).Query(`SELECT version_id FROM goose_db_version WHERE is_applied ORDER BY id`)
	if err != nil {
		tb.Fatalf("goose versions: %v", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			tb.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// mustRawDB opens the database at dsn without the store, for plain SQL.
func mustRawDB(tb testing.TB, dsn string) *sql.DB {
	tb.Helper()
	driver := "sqlite"
	if strings.HasPrefix(dsn, "postgres") {
		driver = "pgx"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(data)
}

func mustParseURL(tb testing.TB, dsn string) *neturl.URL {
	tb.Helper()
	if !strings.HasPrefix(dsn, "postgres") {
		return nil
	}
	u, err := neturl.Parse(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// utcReleases puts every time of rs in UTC, as legacyRows has them, since
// drivers hand times back in a location of their choosing.
func utcReleases(rs []pipelines.Release) []pipelines.Release {
	for i := range rs {
		rs[i].CreatedAt, rs[i].UpdatedAt = rs[i].CreatedAt.UTC(), rs[i].UpdatedAt.UTC()
		for j := range rs[i].Regions {
			rs[i].Regions[j].UpdatedAt = rs[i].Regions[j].UpdatedAt.UTC()
		}
	}
	return rs
}

// testLogger sends log lines to t.Log, shown when a test fails.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
