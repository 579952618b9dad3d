package sqlstore_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	neturl "net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/deployments"
	"github.com/drover/drover/deployments/sqlstore"
	"github.com/drover/drover/pipelines"
)

// postgresEnv names a PostgreSQL URL to run every store test on as well;
// .ci/run starts a server and sets it.
const postgresEnv = "DROVER_TEST_POSTGRES_URL"

// backends runs fn once per database: SQLite always, PostgreSQL when
// postgresEnv is set, each on a fresh, empty database. open reopens the
// same database, to check what survives a restart.
func backends(t *testing.T, fn func(t *testing.T, open func() *sqlstore.Store)) {
	databases(t, func(t *testing.T, dsn string) {
		fn(t, func() *sqlstore.Store { return mustOpen(t, dsn) })
	})
}

// databases is backends for tests that need the database's DSN, to reach
// it with plain SQL or through Migrate: a SQLite file path, or a
// PostgreSQL URL.
func databases(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, filepath.Join(t.TempDir(), "drover.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		url := os.Getenv(postgresEnv)
		if url == "" {
			t.Skipf("%s is not set: the PostgreSQL store is not tested here (.ci/run sets it)", postgresEnv)
		}
		fn(t, freshPostgresDB(t, url))
	})
}

// freshPostgresDB creates an empty database for one test and drops it after.
func freshPostgresDB(t *testing.T, url string) string {
	t.Helper()
	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := fmt.Sprintf("drover_test_%d", time.Now().UnixNano())
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", url)
		if err != nil {
			return
		}
		defer a.Close()
		a.Exec("DROP DATABASE " + name + " WITH (FORCE)")
	})
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func mustOpen(tb testing.TB, dsn string) *sqlstore.Store {
	tb.Helper()
	s, err := sqlstore.Open(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestLedger(t *testing.T) { backends(t, testLedger) }

func testLedger(t *testing.T, open func() *sqlstore.Store) {
	ctx := context.Background()
	s := open()
	app := pipelines.App{Name: "hello-staging", Pipeline: "hello", Stage: "staging", Repo: "octo-org/hello", Branch: "main", Regions: []string{"a", "b"}}
	if err := s.SyncApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CurrentRelease(ctx, app.Name); !errors.Is(err, pipelines.ErrNotFound) {
		t.Fatalf("CurrentRelease of new app: %v, want ErrNotFound", err)
	}
	r1, err := s.CreateRelease(ctx, deployments.NewRelease{App: app.Name, Slug: "s1", Commit: "c1", Operation: "op1", Regions: app.Regions,
		Formation: pipelines.Formation{"web": 1}, Procfile: pipelines.Procfile{{Type: "web", Command: "x"}}})
	if err != nil || r1.Version != 1 || r1.Status != pipelines.ReleasePending || len(r1.Regions) != 2 {
		t.Fatalf("first release = %+v, %v", r1, err)
	}
	again, err := s.CreateRelease(ctx, deployments.NewRelease{App: app.Name, Slug: "s1", Commit: "c1", Operation: "op1"})
	if err != nil || again.Version != 1 {
		t.Fatalf("retried CreateRelease made v%d, %v; want v1 again", again.Version, err)
	}
	if err := s.SetRegionState(ctx, app.Name, 1, pipelines.RegionState{Region: "a", Status: pipelines.RegionSuccessful, URL: "http://x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRelease(ctx, app.Name, 1, pipelines.ReleaseSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRelease(ctx, app.Name, 1, pipelines.ReleaseSucceeded, ""); err != nil {
		t.Fatalf("finishing twice with the same status: %v", err)
	}
	if err := s.FinishRelease(ctx, app.Name, 1, pipelines.ReleaseFailed, "x"); !errors.Is(err, pipelines.ErrConflict) {
		t.Fatalf("changing a final status: %v, want ErrConflict", err)
	}
	for range 2 {
		if err := s.NoteRelease(ctx, app.Name, 1, "approved by alice"); err != nil {
			t.Fatal(err)
		}
	}
	if r, _ := s.Release(ctx, app.Name, 1); r.Description != "approved by alice" {
		t.Fatalf("noted description = %q; the same note twice is kept once", r.Description)
	}
	if err := s.NoteRelease(ctx, app.Name, 9, "x"); !errors.Is(err, pipelines.ErrNotFound) {
		t.Fatalf("note on v9: %v", err)
	}
	if r, err := s.ReleaseByOperation(ctx, app.Name, "op"); !errors.Is(err, pipelines.ErrNotFound) {
		t.Fatalf("ReleaseByOperation(op) = v%d, %v; an operation ID is not a prefix match", r.Version, err)
	}
	r2, err := s.CreateRelease(ctx, deployments.NewRelease{App: app.Name, Slug: "s2", Commit: "c2", Operation: "rollback/x_1@run-9"})
	if err != nil || r2.Version != 2 {
		t.Fatalf("second release = v%d, %v", r2.Version, err)
	}
	if r, err := s.ReleaseByOperation(ctx, app.Name, "rollback/x_1"); err != nil || r.Version != 2 {
		t.Fatalf("ReleaseByOperation = v%d, %v; want v2", r.Version, err)
	}
	cur, err := s.CurrentRelease(ctx, app.Name)
	if err != nil || cur.Version != 1 || cur.Regions[0].URL != "http://x" || cur.Formation["web"] != 1 {
		t.Fatalf("current = %+v, %v; want v1 with its URL while v2 is pending", cur, err)
	}
	rs, err := s.Releases(ctx, app.Name, 0)
	if err != nil || len(rs) != 2 || rs[0].Version != 2 {
		t.Fatalf("Releases = %v, %v; want v2, v1", rs, err)
	}
	if _, err := s.Release(ctx, app.Name, 9); !errors.Is(err, pipelines.ErrNotFound) {
		t.Fatalf("Release(v9): %v", err)
	}

	// Reopen: everything is still there.
	s.Close()
	s = open()
	rs, err = s.Releases(ctx, app.Name, 0)
	if err != nil || len(rs) != 2 {
		t.Fatalf("after reopen: %d releases, %v", len(rs), err)
	}
	got, err := s.App(ctx, app.Name)
	if err != nil || got.Branch != "main" || len(got.Regions) != 2 {
		t.Fatalf("App after reopen = %+v, %v", got, err)
	}
}

func TestConcurrentReleasesGetDistinctVersions(t *testing.T) {
	backends(t, testConcurrentReleases)
}

// testConcurrentReleases numbers releases made at once through four
// stores on one database, as four drover processes would: one pool
// alone (SQLite's is one connection) would serialise them and prove
// nothing.
func testConcurrentReleases(t *testing.T, open func() *sqlstore.Store) {
	stores := []*sqlstore.Store{open(), open(), open(), open()}
	ctx := context.Background()
	var wg sync.WaitGroup
	versions := make(chan int, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := stores[i%len(stores)].CreateRelease(ctx, deployments.NewRelease{App: "a", Operation: string(rune('a' + i))})
			if err != nil {
				t.Error(err)
				return
			}
			versions <- r.Version
		}()
	}
	wg.Wait()
	close(versions)
	seen := map[int]bool{}
	for v := range versions {
		if seen[v] {
			t.Fatalf("version %d given twice", v)
		}
		seen[v] = true
	}
	if len(seen) != 20 {
		t.Fatalf("%d versions, want 20", len(seen))
	}
}

func TestConfigVars(t *testing.T) { backends(t, testConfigVars) }

func testConfigVars(t *testing.T, open func() *sqlstore.Store) {
	s := open()
	ctx := context.Background()
	cv, err := s.ConfigVars(ctx, "a")
	if err != nil || cv.Version != 0 || len(cv.Vars) != 0 {
		t.Fatalf("empty config = %+v, %v", cv, err)
	}
	if _, err := s.SetConfigVars(ctx, "a", map[string]string{"A": "1", "B": "2"}, nil); err != nil {
		t.Fatal(err)
	}
	cv, err = s.SetConfigVars(ctx, "a", map[string]string{"A": "3"}, []string{"B"})
	if err != nil || cv.Version != 2 || cv.Vars["A"] != "3" || len(cv.Vars) != 1 {
		t.Fatalf("v2 = %+v, %v", cv, err)
	}
	old, err := s.ConfigVarsAt(ctx, "a", 1)
	if err != nil || old.Vars["A"] != "1" || old.Vars["B"] != "2" {
		t.Fatalf("v1 = %+v, %v", old, err)
	}
	if _, err := s.ConfigVarsAt(ctx, "a", 7); !errors.Is(err, pipelines.ErrNotFound) {
		t.Fatalf("v7: %v", err)
	}
}

func TestBuildsAndDeliveries(t *testing.T) { backends(t, testBuildsAndDeliveries) }

func testBuildsAndDeliveries(t *testing.T, open func() *sqlstore.Store) {
	s := open()
	ctx := context.Background()
	if _, err := s.FindBuild(ctx, "o/r", "c"); !errors.Is(err, pipelines.ErrNotFound) {
		t.Fatalf("FindBuild before: %v", err)
	}
	// A failed build is replaced by the next build of the commit ...
	if err := s.RecordBuild(ctx, deployments.Build{Repo: "o/r", Commit: "c", Output: "compile error"}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.FindBuild(ctx, "o/r", "c"); err != nil || got.Slug != "" || got.Output != "compile error" {
		t.Fatalf("failed build = %+v, %v", got, err)
	}
	// ... and a successful one is kept for good.
	b := deployments.Build{Repo: "O/R", Commit: "c", Slug: "d1", Buildpack: "go", Procfile: pipelines.Procfile{{Type: "web", Command: "x"}}, Output: "ok"}
	if err := s.RecordBuild(ctx, b); err != nil {
		t.Fatal(err)
	}
	b.Slug = "d2"
	if err := s.RecordBuild(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := s.FindBuild(ctx, "o/r", "c")
	if err != nil || got.Slug != "d1" || got.Procfile[0].Command != "x" {
		t.Fatalf("FindBuild = %+v, %v; want the first build kept", got, err)
	}
	for i, want := range []bool{true, false} {
		fresh, err := s.RecordDelivery(ctx, "d-1", "push")
		if err != nil || fresh != want {
			t.Fatalf("RecordDelivery #%d = %v, %v; want %v", i, fresh, err, want)
		}
	}
	if err := s.ForgetDelivery(ctx, "d-1"); err != nil {
		t.Fatal(err)
	}
	if fresh, _ := s.RecordDelivery(ctx, "d-1", "push"); !fresh {
		t.Fatal("a forgotten delivery must be fresh again")
	}
}

func TestConfigVarsSealedAtRest(t *testing.T) { backends(t, testConfigVarsSealed) }

func testConfigVarsSealed(t *testing.T, open func() *sqlstore.Store) {
	ctx := context.Background()
	key := make([]byte, deployments.KeySize)
	key[0] = 7
	sealer, err := deployments.NewAESGCM(key)
	if err != nil {
		t.Fatal(err)
	}
	// A row written in clear before encryption was turned on ...
	s := open()
	if _, err := s.SetConfigVars(ctx, "a", map[string]string{"OLD": "clear"}, nil); err != nil {
		t.Fatal(err)
	}
	s.SetSealer(sealer)
	// ... is refused, naming the row and what to do, whether read or
	// changed ...
	if _, err := s.ConfigVars(ctx, "a"); !errors.Is(err, deployments.ErrPlaintext) || !strings.Contains(err.Error(), `config v1 of "a" is stored in clear`) || !strings.Contains(err.Error(), "drover keys rotate") {
		t.Fatalf("plaintext row read = %v, want ErrPlaintext naming a v1 and drover keys rotate", err)
	}
	if _, err := s.SetConfigVars(ctx, "a", map[string]string{"NEW": "x"}, nil); !errors.Is(err, deployments.ErrPlaintext) {
		t.Fatalf("change over a plaintext row = %v, want ErrPlaintext", err)
	}
	// ... until it is sealed, keeping its values; the next version is sealed too.
	if res, err := s.ResealConfigVars(ctx, nil); err != nil || res.Resealed != 1 {
		t.Fatalf("reseal = %+v, %v; want the one plaintext row sealed", res, err)
	}
	if raw := s.RawConfigVars(t, "a", 1); strings.Contains(raw, "clear") || !strings.HasPrefix(raw, "sealed:v2:"+sealer.KeyID()+":") {
		t.Fatalf("resealed v1 = %q", raw)
	}
	cv, err := s.SetConfigVars(ctx, "a", map[string]string{"DATABASE_URL": "postgres://user:hunter2@db/app"}, nil)
	if err != nil || cv.Vars["OLD"] != "clear" {
		t.Fatalf("v2 = %+v, %v", cv, err)
	}
	if raw := s.RawConfigVars(t, "a", 2); strings.Contains(raw, "hunter2") || !strings.HasPrefix(raw, "sealed:v2:"+sealer.KeyID()+":") {
		t.Fatalf("stored config vars %q: the secret is readable at rest", raw)
	}
	got, err := s.ConfigVarsAt(ctx, "a", 2)
	if err != nil || got.Vars["DATABASE_URL"] != "postgres://user:hunter2@db/app" {
		t.Fatalf("read back = %+v, %v", got, err)
	}
	// A value sealed for app a does not open as app b's, nor as another
	// version of a's.
	if _, err := s.SetConfigVars(ctx, "b", map[string]string{"X": "1"}, nil); err != nil {
		t.Fatal(err)
	}
	s.SetRawConfigVars(t, "b", 1, s.RawConfigVars(t, "a", 2))
	if _, err := s.ConfigVarsAt(ctx, "b", 1); !errors.Is(err, deployments.ErrUnseal) {
		t.Fatalf("a's sealed vars read as b's: %v, want ErrUnseal", err)
	}
	s.SetRawConfigVars(t, "a", 1, s.RawConfigVars(t, "a", 2))
	if _, err := s.ConfigVarsAt(ctx, "a", 1); !errors.Is(err, deployments.ErrUnseal) {
		t.Fatalf("a's v2 read as its v1: %v, want ErrUnseal", err)
	}
	// A row sealed before associated data and key IDs existed still opens.
	legacy, _ := sealer.Seal([]byte(`{"LEGACY":"yes"}`), nil)
	s.SetRawConfigVars(t, "a", 1, "sealed:v1:"+base64.StdEncoding.EncodeToString(legacy))
	if cv, err := s.ConfigVarsAt(ctx, "a", 1); err != nil || cv.Vars["LEGACY"] != "yes" {
		t.Fatalf("legacy sealed row = %+v, %v", cv, err)
	}
	// Another key cannot read them, and says which key sealed them.
	other, _ := deployments.NewAESGCM(make([]byte, deployments.KeySize))
	s.SetSealer(other)
	if _, err := s.ConfigVars(ctx, "a"); !errors.Is(err, deployments.ErrUnseal) || !strings.Contains(err.Error(), "sealed with key "+sealer.KeyID()) {
		t.Fatalf("wrong key: %v, want ErrUnseal naming the key", err)
	}
}

func mustSealer(tb testing.TB, seed byte) *deployments.AESGCM {
	tb.Helper()
	key := make([]byte, deployments.KeySize)
	key[0] = seed
	s, err := deployments.NewAESGCM(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestConfigKeyRotation(t *testing.T) { backends(t, testConfigKeyRotation) }

func testConfigKeyRotation(t *testing.T, open func() *sqlstore.Store) {
	ctx := context.Background()
	oldKey, newKey, strange := mustSealer(t, 1), mustSealer(t, 2), mustSealer(t, 3)
	s := open()
	s.SetSealer(oldKey)
	for app, n := range map[string]int{"a": 3, "b": 1} {
		for v := 1; v <= n; v++ {
			if _, err := s.SetConfigVars(ctx, app, map[string]string{"V": fmt.Sprint(v)}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Rows of every kind: a v1 in clear from before sealing, a v2 sealed
	// before key IDs, a v3 and b v1 under the old key.
	s.SetRawConfigVars(t, "a", 1, `{"N":"1"}`)
	s.SetRawConfigVars(t, "a", 2, "sealed:v1:"+base64.StdEncoding.EncodeToString(mustSeal(t, oldKey, `{"N":"2"}`)))
	want := map[string]map[int]string{"a": {1: "1", 2: "2"}, "b": {}}

	// The new key seals; the old one still opens what it sealed.
	s.SetSealer(deployments.NewKeyRing(newKey, oldKey))
	if cv, err := s.ConfigVarsAt(ctx, "a", 3); err != nil || cv.Vars["V"] != "3" {
		t.Fatalf("a v3 under the old key, read with it as previous = %+v, %v", cv, err)
	}
	var lines []string
	res, err := s.ResealConfigVars(ctx, func(app string, resealed, rows int) {
		lines = append(lines, fmt.Sprintf("%s %d/%d", app, resealed, rows))
	})
	if err != nil {
		t.Fatal(err)
	}
	if res != (sqlstore.ResealResult{Apps: 2, Rows: 4, Resealed: 4}) || strings.Join(lines, ",") != "a 3/3,b 1/1" {
		t.Fatalf("reseal = %+v, progress %q; want all 4 rows of a (3) and b (1)", res, lines)
	}
	// Every row now opens with the new key alone.
	s.SetSealer(newKey)
	for app, versions := range map[string]int{"a": 3, "b": 1} {
		for v := 1; v <= versions; v++ {
			raw := s.RawConfigVars(t, app, v)
			if !strings.HasPrefix(raw, "sealed:v2:"+newKey.KeyID()+":") {
				t.Errorf("%s v%d at rest = %.40q, want sealed under %s", app, v, raw, newKey.KeyID())
			}
			cv, err := s.ConfigVarsAt(ctx, app, v)
			if err != nil {
				t.Fatalf("%s v%d with the new key only: %v", app, v, err)
			}
			if n, ok := want[app][v]; ok && cv.Vars["N"] != n {
				t.Errorf("%s v%d = %v, want N=%s kept", app, v, cv.Vars, n)
			}
		}
	}
	// Again: nothing left to do.
	if res, err := s.ResealConfigVars(ctx, nil); err != nil || res != (sqlstore.ResealResult{Apps: 2, Rows: 4}) {
		t.Fatalf("second reseal = %+v, %v; want every row skipped", res, err)
	}

	// A row under a key drover was not given names that key, read or
	// re-sealed, and its app's other rows are left as they were.
	other := open()
	other.SetSealer(strange)
	if _, err := other.SetConfigVars(ctx, "c", map[string]string{"Y": "1"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := other.SetConfigVars(ctx, "c", map[string]string{"Y": "2"}, nil); err != nil {
		t.Fatal(err)
	}
	other.SetSealer(newKey)
	if _, err := other.SetConfigVars(ctx, "c", map[string]string{"Y": "3"}, nil); !errors.Is(err, deployments.ErrUnseal) {
		t.Fatalf("change over a row under an unknown key = %v, want ErrUnseal", err)
	}
	s.SetRawConfigVars(t, "c", 1, "sealed:v1:"+base64.StdEncoding.EncodeToString(mustSeal(t, newKey, `{"Y":"1"}`)))
	before := s.RawConfigVars(t, "c", 1)
	if _, err := s.ConfigVarsAt(ctx, "c", 2); !errors.Is(err, deployments.ErrUnseal) || !strings.Contains(err.Error(), `config v2 of "c" was sealed with key `+strange.KeyID()) {
		t.Fatalf("read under an unknown key = %v, want ErrUnseal naming key %s", err, strange.KeyID())
	}
	if _, err := s.ResealConfigVars(ctx, nil); err == nil || !strings.Contains(err.Error(), `config v2 of "c" was sealed with key `+strange.KeyID()) {
		t.Fatalf("reseal over an unknown key = %v, want an error naming c v2 and key %s", err, strange.KeyID())
	}
	if after := s.RawConfigVars(t, "c", 1); after != before {
		t.Fatal("a failed reseal of c changed c's v1: it must be one transaction")
	}
}

func mustSeal(tb testing.TB, s deployments.Sealer, plain string) []byte {
	tb.Helper()
	b, err := s.Seal([]byte(plain), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestReviewApps(t *testing.T) { backends(t, testReviewApps) }

func testReviewApps(t *testing.T, open func() *sqlstore.Store) {
	ctx := context.Background()
	s := open()
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	pr42 := pipelines.ReviewApp{App: "hello-pr-42", Pipeline: "hello", Repo: "octo-org/hello", PR: 42, Title: "Add login", Branch: "login"}
	if err := s.PutReviewApp(ctx, pr42); err != nil {
		t.Fatal(err)
	}
	if err := s.PutReviewApp(ctx, pipelines.ReviewApp{App: "hello-pr-7", Pipeline: "hello", Repo: "octo-org/hello", PR: 7, Fork: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.SyncApp(ctx, pipelines.App{Name: "hello-pr-42", Pipeline: "hello", Stage: "review", Repo: "octo-org/hello", Regions: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetConfigVars(ctx, "hello-pr-42", map[string]string{"SECRET_KEY_BASE": "generated"}, nil); err != nil {
		t.Fatal(err)
	}
	// A deploy records its commit, URL and time.
	pr42.Commit, pr42.URL, pr42.DeployedAt = "c1", "http://127.0.0.1:4000", &at
	if err := s.PutReviewApp(ctx, pr42); err != nil {
		t.Fatal(err)
	}
	s = open() // survives a restart
	got, err := s.ReviewApp(ctx, "hello-pr-42")
	if err != nil {
		t.Fatal(err)
	}
	if got.Commit != "c1" || got.URL != "http://127.0.0.1:4000" || got.DeployedAt == nil || !got.DeployedAt.Equal(at) ||
		got.CreatedAt.IsZero() || got.DestroyedAt != nil || got.Title != "Add login" || !got.LastActive().Equal(at) {
		t.Fatalf("review app = %+v", got)
	}
	list, err := s.ReviewApps(ctx, "hello")
	if err != nil || len(list) != 2 || list[0].PR != 7 || !list[0].Fork || list[1].PR != 42 {
		t.Fatalf("ReviewApps = %+v, %v", list, err)
	}
	if list, _ := s.ReviewApps(ctx, "other"); len(list) != 0 {
		t.Fatalf("another pipeline's review apps = %+v", list)
	}

	// Destroying keeps the record, drops its config and its app entry.
	if err := s.DestroyReviewApp(ctx, "hello-pr-42", "pull request closed"); err != nil {
		t.Fatal(err)
	}
	if err := s.DestroyReviewApp(ctx, "hello-pr-42", "again"); err != nil {
		t.Fatalf("destroying twice: %v", err)
	}
	got, _ = s.ReviewApp(ctx, "hello-pr-42")
	if got.DestroyedAt == nil || got.Reason != "pull request closed" {
		t.Fatalf("destroyed review app = %+v", got)
	}
	if cv, _ := s.ConfigVars(ctx, "hello-pr-42"); len(cv.Vars) != 0 {
		t.Fatalf("config of a destroyed review app = %v", cv.Vars)
	}
	if _, err := s.App(ctx, "hello-pr-42"); !errors.Is(err, pipelines.ErrNotFound) {
		t.Fatalf("app of a destroyed review app: %v", err)
	}
	if list, _ := s.ReviewApps(ctx, "hello"); len(list) != 1 || list[0].PR != 7 {
		t.Fatalf("live review apps = %+v", list)
	}
	if err := s.DestroyReviewApp(ctx, "hello-pr-9", "x"); !errors.Is(err, pipelines.ErrNotFound) {
		t.Fatalf("destroying an unknown review app: %v", err)
	}
	// Reopened: made again, live, with no deploy yet.
	if err := s.PutReviewApp(ctx, pipelines.ReviewApp{App: "hello-pr-42", Pipeline: "hello", Repo: "octo-org/hello", PR: 42}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.ReviewApp(ctx, "hello-pr-42")
	if got.DestroyedAt != nil || got.Reason != "" || got.DeployedAt != nil {
		t.Fatalf("reopened review app = %+v", got)
	}
}

func TestReleaseOfCommit(t *testing.T) { backends(t, testReleaseOfCommit) }

func testReleaseOfCommit(t *testing.T, open func() *sqlstore.Store) {
	s := open()
	ctx := context.Background()
	s.SyncApp(ctx, pipelines.App{Name: "a", Pipeline: "p", Stage: "staging", Repo: "o/r", Regions: []string{"x"}})
	op := 0
	mk := func(commit string, st pipelines.ReleaseStatus) {
		op++
		r, err := s.CreateRelease(ctx, deployments.NewRelease{App: "a", Slug: strings.Repeat("a", 64), Commit: commit, Operation: fmt.Sprint("op-", op), Regions: []string{"x"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.FinishRelease(ctx, "a", r.Version, st, ""); err != nil {
			t.Fatal(err)
		}
	}
	mk("c1", pipelines.ReleaseSucceeded)
	mk("c2", pipelines.ReleaseFailed)
	mk("c1", pipelines.ReleaseSucceeded)
	if r, err := s.ReleaseOfCommit(ctx, "a", "c1"); err != nil || r.Version != 3 {
		t.Fatalf("release of c1 = v%d, %v; want the newest, v3", r.Version, err)
	}
	for _, c := range []string{"c2", "c3"} {
		if _, err := s.ReleaseOfCommit(ctx, "a", c); !errors.Is(err, pipelines.ErrNotFound) {
			t.Fatalf("release of %s: err = %v, want ErrNotFound (failed or never released)", c, err)
		}
	}
}

func TestAutoDeployPause(t *testing.T) { backends(t, testAutoDeployPause) }

func testAutoDeployPause(t *testing.T, open func() *sqlstore.Store) {
	ctx := context.Background()
	s := open()
	if r, err := s.AutoDeployPause(ctx, "a"); r != "" || err != nil {
		t.Fatalf("fresh app: %q, %v", r, err)
	}
	for _, reason := range []string{"paused by a manual rollback", "paused again"} {
		if err := s.SetAutoDeployPause(ctx, "a", reason); err != nil {
			t.Fatal(err)
		}
	}
	// It survives a restart, and is per app.
	s2 := open()
	if r, err := s2.AutoDeployPause(ctx, "a"); r != "paused again" || err != nil {
		t.Fatalf("after reopening: %q, %v", r, err)
	}
	if r, _ := s2.AutoDeployPause(ctx, "b"); r != "" {
		t.Fatalf("another app: %q", r)
	}
	if err := s2.SetAutoDeployPause(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	if r, err := s2.AutoDeployPause(ctx, "a"); r != "" || err != nil {
		t.Fatalf("resumed: %q, %v", r, err)
	}
}

func TestCollection(t *testing.T) { backends(t, testCollection) }

// testCollection: the ledger keeps the slugs of each app's newest
// releases and of its current one, however old, and lets go of a
// destroyed review app's; builds of slugs let go of, and old deliveries,
// are pruned.
func testCollection(t *testing.T, open func() *sqlstore.Store) {
	s := open()
	ctx := context.Background()
	release := func(app, slug string, status pipelines.ReleaseStatus) {
		t.Helper()
		r, err := s.CreateRelease(ctx, deployments.NewRelease{App: app, Slug: slug, Regions: []string{"a"}})
		if err == nil {
			err = s.FinishRelease(ctx, app, r.Version, status, "")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// a: v1 succeeded (current), then eleven failed releases.
	release("a", "s1", pipelines.ReleaseSucceeded)
	for i := 2; i <= 12; i++ {
		release("a", fmt.Sprintf("s%d", i), pipelines.ReleaseFailed)
	}
	release("hello-pr-1", "r1", pipelines.ReleaseSucceeded)
	s.PutReviewApp(ctx, pipelines.ReviewApp{App: "hello-pr-1", Pipeline: "hello", Repo: "o/r", PR: 1})
	if err := s.DestroyReviewApp(ctx, "hello-pr-1", "closed"); err != nil {
		t.Fatal(err)
	}
	release("hello-pr-2", "r2", pipelines.ReleaseSucceeded)
	kept, err := s.KeptSlugs(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for slug := range kept {
		got = append(got, slug)
	}
	slices.Sort(got)
	if want := "r2 s1 s10 s11 s12 s3 s4 s5 s6 s7 s8 s9"; strings.Join(got, " ") != want {
		t.Fatalf("kept %v; want %s (s2 and the destroyed review app's r1 let go)", got, want)
	}

	for _, b := range []deployments.Build{{Repo: "o/r", Commit: "c1", Slug: "s1"}, {Repo: "o/r", Commit: "c2", Slug: "s2"}, {Repo: "o/r", Commit: "c3"}} {
		if err := s.RecordBuild(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.PruneBuilds(ctx, kept, time.Now().Add(-time.Hour)); n != 0 || err != nil {
		t.Fatalf("builds pruned within the grace period: %d, %v", n, err)
	}
	if n, err := s.PruneBuilds(ctx, kept, time.Now().Add(time.Hour)); n != 2 || err != nil {
		t.Fatalf("builds pruned: %d, %v; want 2 (s2's, and the failed one)", n, err)
	}
	if _, err := s.FindBuild(ctx, "o/r", "c1"); err != nil {
		t.Fatalf("the kept slug's build: %v", err)
	}
	if _, err := s.FindBuild(ctx, "o/r", "c2"); !errors.Is(err, pipelines.ErrNotFound) {
		t.Fatalf("the let-go slug's build: %v", err)
	}

	s.RecordDelivery(ctx, "d-1", "push")
	if n, err := s.PruneDeliveries(ctx, time.Now().Add(-time.Hour)); n != 0 || err != nil {
		t.Fatalf("young delivery pruned: %d, %v", n, err)
	}
	if n, err := s.PruneDeliveries(ctx, time.Now().Add(time.Hour)); n != 1 || err != nil {
		t.Fatalf("old delivery: %d, %v", n, err)
	}
	if fresh, _ := s.RecordDelivery(ctx, "d-1", "push"); !fresh {
		t.Fatal("a pruned delivery ID is still remembered")
	}
}

func TestRuns(t *testing.T) { backends(t, testRuns) }

// testRuns: runs are numbered per app from 1, concurrent starts get
// distinct numbers, an end is recorded once, and they read back newest
// first.
func testRuns(t *testing.T, open func() *sqlstore.Store) {
	ctx := context.Background()
	s := open()
	first, err := s.StartRun(ctx, pipelines.Run{App: "a", Command: "rake db:migrate", By: "admin", Region: "local-a", Release: 3, Attached: true})
	if err != nil || first.Number != 1 || first.StartedAt.IsZero() {
		t.Fatalf("first run = %+v, %v", first, err)
	}
	if other, _ := s.StartRun(ctx, pipelines.Run{App: "b", Command: "x", By: "ci", Region: "local-a", Release: 1}); other.Number != 1 {
		t.Fatalf("another app's first run is run.%d", other.Number)
	}
	var wg sync.WaitGroup
	numbers := make(chan int, 8)
	for range 8 {
		wg.Go(func() {
			r, err := s.StartRun(ctx, pipelines.Run{App: "a", Command: "echo", By: "admin", Region: "local-a", Release: 3})
			if err != nil {
				t.Error(err)
			}
			numbers <- r.Number
		})
	}
	wg.Wait()
	close(numbers)
	seen := map[int]bool{}
	for n := range numbers {
		if seen[n] || n < 2 || n > 9 {
			t.Errorf("run number %d given twice or out of 2..9", n)
		}
		seen[n] = true
	}
	if err := s.FinishRun(ctx, "a", 1, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRun(ctx, "a", 1, 137); err != nil {
		t.Fatal(err)
	}
	got, err := s.Run(ctx, "a", 1)
	if err != nil || got.ExitCode == nil || *got.ExitCode != 3 || got.EndedAt == nil || got.Command != "rake db:migrate" || !got.Attached || got.Dyno() != "run.1" {
		t.Fatalf("run.1 = %+v, %v; want exit 3 kept", got, err)
	}
	if err := s.FinishRun(ctx, "a", 99, 0); !errors.Is(err, pipelines.ErrNotFound) {
		t.Errorf("finishing an unknown run: %v", err)
	}
	runs, err := s.Runs(ctx, "a", 3)
	if err != nil || len(runs) != 3 || runs[0].Number != 9 || runs[0].ExitCode != nil {
		t.Fatalf("Runs = %+v, %v", runs, err)
	}
}

func TestLiveOutput(t *testing.T) { backends(t, testLiveOutput) }

// testLiveOutput: a running step's output is replaced as it grows, read
// with its total, and gone once the step ends.
func testLiveOutput(t *testing.T, open func() *sqlstore.Store) {
	ctx := context.Background()
	s := open()
	step := deployments.BuildStep("octo/hello", "abc")
	if _, _, err := s.LiveOutput(ctx, step); !errors.Is(err, pipelines.ErrNotFound) {
		t.Fatalf("before: %v", err)
	}
	s.SetLiveOutput(ctx, step, "-----> Go app detected\n", 23)
	if err := s.SetLiveOutput(ctx, step, "-----> Go app detected\n       $ go build\n", 42); err != nil {
		t.Fatal(err)
	}
	out, total, err := s.LiveOutput(ctx, step)
	if err != nil || total != 42 || !strings.HasSuffix(out, "$ go build\n") {
		t.Fatalf("LiveOutput = %q, %d, %v", out, total, err)
	}
	if err := s.EndLiveOutput(ctx, step); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.LiveOutput(ctx, step); !errors.Is(err, pipelines.ErrNotFound) {
		t.Fatalf("after the end: %v", err)
	}
}

func TestQueuedPushes(t *testing.T) { backends(t, testQueuedPushes) }

// testQueuedPushes: a commit queued for an app is news once; while its
// deploy is in flight it is not; once it ended without a release (a
// failed build or release, superseded, skipped) it may be pushed again;
// a forgotten push, or one past the TTL, is news again.
func testQueuedPushes(t *testing.T, open func() *sqlstore.Store) {
	ctx := context.Background()
	s := open()
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	queue := func(app, commit string) bool {
		t.Helper()
		in, err := s.AcceptPush(ctx, deployments.Push{App: app, Repo: "octo/hello", Commit: commit})
		if err != nil {
			t.Fatal(err)
		}
		return in.Verdict == deployments.PushQueued
	}
	a, b := strings.Repeat("a", 40), strings.Repeat("b", 40)
	if !queue("hello", a) || queue("hello", a) || queue("hello", a) {
		t.Fatal("a commit is news once while its deploy is in flight")
	}
	if !queue("other", a) {
		t.Fatal("the same commit for another app is news")
	}
	// Its build fails: the push is over; pushing it again is news, and
	// in flight again.
	now = now.Add(time.Minute)
	s.RecordBuild(ctx, deployments.Build{Repo: "octo/hello", Commit: a, Output: "broken"})
	if !queue("hello", a) || queue("hello", a) {
		t.Fatal("after its build failed, a push is news once")
	}
	// The old failure does not end the new push; a release that fails
	// after it does.
	now = now.Add(time.Minute)
	r, err := s.CreateRelease(ctx, deployments.NewRelease{App: "hello", Commit: a, Slug: "s", Regions: []string{"local-a"}})
	if err != nil {
		t.Fatal(err)
	}
	if queue("hello", a) {
		t.Fatal("a push whose release is pending is in flight")
	}
	now = now.Add(time.Minute)
	s.FinishRelease(ctx, "hello", r.Version, pipelines.ReleaseFailed, "boom")
	if !queue("hello", a) {
		t.Fatal("after its release failed, a push is news")
	}
	// Forgotten (Temporal could not take it): news again.
	if !queue("hello", b) {
		t.Fatal("b is news")
	}
	if err := s.ForgetPush(ctx, "hello", b); err != nil {
		t.Fatal(err)
	}
	if !queue("hello", b) {
		t.Fatal("a forgotten push is news")
	}
	// A push the ledger never heard of again is over after the TTL.
	now = now.Add(sqlstore.QueuedPushTTL + time.Minute)
	if !queue("hello", b) {
		t.Fatal("a push past the TTL is news")
	}
}

func TestAcceptPushStorm(t *testing.T) { backends(t, testAcceptPushStorm) }

// testAcceptPushStorm: 400 deliveries of one commit at once, half of them
// redeliveries of the other half's IDs, queue the push once; every other
// is a duplicate (in flight, or a redelivery when its twin's row was
// written first), and every delivery ID is recorded once the store has
// closed, however they were batched. A released commit is answered with
// its release.
func testAcceptPushStorm(t *testing.T, open func() *sqlstore.Store) {
	ctx := context.Background()
	s := open()
	commit := strings.Repeat("c", 40)
	// storm offers every push at once and counts the verdicts.
	storm := func(pushes []deployments.Push) map[deployments.PushVerdict]int {
		var mu sync.Mutex
		verdicts := map[deployments.PushVerdict]int{}
		var wg sync.WaitGroup
		for _, p := range pushes {
			wg.Go(func() {
				in, err := s.AcceptPush(ctx, p)
				if err != nil {
					t.Error(err)
					return
				}
				if in.Verdict == deployments.PushReleased && in.Release.Commit != p.Commit {
					t.Errorf("push of %s answered with the release of %s", p.Commit, in.Release.Commit)
				}
				mu.Lock()
				verdicts[in.Verdict]++
				mu.Unlock()
			})
		}
		wg.Wait()
		return verdicts
	}
	var pushes []deployments.Push
	for i := range 400 {
		pushes = append(pushes, deployments.Push{Delivery: fmt.Sprintf("d-%d", i/2), Event: "push", App: "hello", Repo: "octo/hello", Commit: commit})
	}
	verdicts := storm(pushes)
	if verdicts[deployments.PushQueued] != 1 || verdicts[deployments.PushInFlight]+verdicts[deployments.PushRedelivered] != 399 ||
		verdicts[deployments.PushInFlight] < 199 {
		t.Fatalf("verdicts %v, want 1 queued and the rest in flight or redelivered (at least 199 in flight)", verdicts)
	}
	// Closing writes the deliveries answered without a transaction.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	for i := range 200 {
		if fresh, err := s.RecordDelivery(ctx, fmt.Sprintf("d-%d", i), "push"); err != nil || fresh {
			t.Fatalf("delivery d-%d, which AcceptPush answered, is new to RecordDelivery: %v %v", i, fresh, err)
		}
	}
	if in, err := s.AcceptPush(ctx, deployments.Push{Delivery: "d-9", Event: "push", App: "hello", Repo: "octo/hello", Commit: strings.Repeat("9", 40)}); err != nil || in.Verdict != deployments.PushRedelivered {
		t.Fatalf("a recorded delivery of another commit: %+v %v", in, err)
	}
	r, err := s.CreateRelease(ctx, deployments.NewRelease{App: "hello", Commit: commit, Slug: "s", Regions: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRelease(ctx, "hello", r.Version, pipelines.ReleaseSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	in, err := s.AcceptPush(ctx, deployments.Push{Delivery: "late", Event: "push", App: "hello", Repo: "octo/hello", Commit: commit})
	if err != nil || in.Verdict != deployments.PushReleased || in.Release.Version != r.Version {
		t.Fatalf("a released commit: %+v %v", in, err)
	}
	// A storm mixing the released commit with a new one, and with another
	// app's push of it: each commit of each app is settled on its own,
	// however the deliveries share batches.
	other := strings.Repeat("e", 40)
	pushes = nil
	for i := range 300 {
		p := deployments.Push{Delivery: fmt.Sprintf("m-%d", i), Event: "push", App: "hello", Repo: "octo/hello", Commit: commit}
		switch i % 3 {
		case 1:
			p.Commit = other
		case 2:
			p.App, p.Commit = "hello-2", commit
		}
		pushes = append(pushes, p)
	}
	verdicts = storm(pushes)
	want := map[deployments.PushVerdict]int{deployments.PushReleased: 100, deployments.PushQueued: 2, deployments.PushInFlight: 198}
	if fmt.Sprint(verdicts) != fmt.Sprint(want) {
		t.Fatalf("mixed storm: verdicts %v, want %v", verdicts, want)
	}
	// A caller that gave up is answered with its context's error, and its
	// push is not queued.
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.AcceptPush(gone, deployments.Push{Delivery: "gone", App: "hello", Repo: "octo/hello", Commit: strings.Repeat("d", 40)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled intake: %v", err)
	}
	if in, err := s.AcceptPush(ctx, deployments.Push{Delivery: "gone", App: "hello", Repo: "octo/hello", Commit: strings.Repeat("d", 40)}); err != nil || in.Verdict != deployments.PushQueued {
		t.Fatalf("after a cancelled intake: %+v %v", in, err)
	}
}

func TestDuplicatePushesWhileTheWriterIsBusy(t *testing.T) {
	databases(t, testDuplicatePushesWhileTheWriterIsBusy)
}

// testDuplicatePushesWhileTheWriterIsBusy: while another connection holds
// the deliveries table's writes (SQLite's write lock, a PostgreSQL table
// lock), duplicates of a commit in flight, and of one released, are
// answered at once, their delivery IDs are recorded once the writer lets
// go, and a push of a new commit waits for it and is queued.
func testDuplicatePushesWhileTheWriterIsBusy(t *testing.T, dsn string) {
	ctx := context.Background()
	s := mustOpen(t, dsn)
	inFlight, released, fresh := strings.Repeat("a", 40), strings.Repeat("b", 40), strings.Repeat("c", 40)
	push := func(id, commit string) deployments.Push {
		return deployments.Push{Delivery: id, Event: "push", App: "hello", Repo: "octo/hello", Commit: commit}
	}
	for _, c := range []string{inFlight, released} {
		if in, err := s.AcceptPush(ctx, push("first-"+c[:1], c)); err != nil || in.Verdict != deployments.PushQueued {
			t.Fatalf("first push of %s: %+v %v", c, in, err)
		}
	}
	r, err := s.CreateRelease(ctx, deployments.NewRelease{App: "hello", Commit: released, Slug: "s", Regions: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRelease(ctx, "hello", r.Version, pipelines.ReleaseSucceeded, ""); err != nil {
		t.Fatal(err)
	}

	// Another writer takes the lock and keeps it until the test says.
	var db *sql.DB
	var lock string
	if strings.HasPrefix(dsn, "postgres") {
		db, lock = mustSQL(t, "pgx", dsn), `LOCK TABLE deliveries IN EXCLUSIVE MODE`
	} else {
		db, lock = mustSQL(t, "sqlite", "file:"+dsn+"?_pragma=busy_timeout(10000)&_txlock=immediate"), `INSERT INTO deliveries (id, event, received_at) VALUES ('held', 'push', CURRENT_TIMESTAMP)`
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, lock); err != nil {
		t.Fatal(err)
	}
	held := true
	defer func() {
		if held {
			tx.Rollback()
		}
	}()

	queued := make(chan deployments.PushIntake, 1)
	go func() {
		in, err := s.AcceptPush(ctx, push("new", fresh))
		if err != nil {
			t.Error(err)
		}
		queued <- in
	}()
	for i, tc := range []struct {
		commit string
		want   deployments.PushVerdict
	}{{inFlight, deployments.PushInFlight}, {released, deployments.PushReleased}, {inFlight, deployments.PushInFlight}} {
		done := make(chan deployments.PushIntake, 1)
		go func() {
			in, err := s.AcceptPush(ctx, push(fmt.Sprintf("dup-%d", i), tc.commit))
			if err != nil {
				t.Error(err)
			}
			done <- in
		}()
		select {
		case in := <-done:
			if in.Verdict != tc.want {
				t.Fatalf("duplicate %d: verdict %v, want %v", i, in.Verdict, tc.want)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("duplicate %d of %s waited for the busy writer", i, tc.commit[:1])
		}
	}
	select {
	case in := <-queued:
		t.Fatalf("a new commit's push was answered (%+v) without its transaction", in)
	case <-time.After(100 * time.Millisecond):
	}
	held = false
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if in := <-queued; in.Verdict != deployments.PushQueued {
		t.Fatalf("new commit's push: %+v, want queued", in)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dsn)
	for i := range 3 {
		if fresh, err := s.RecordDelivery(ctx, fmt.Sprintf("dup-%d", i), "push"); err != nil || fresh {
			t.Fatalf("dup-%d was not recorded: %v %v", i, fresh, err)
		}
	}
}

func TestSettledPushesAcrossStores(t *testing.T) { databases(t, testSettledPushesAcrossStores) }

// testSettledPushesAcrossStores: two stores on one database, as two
// drover servers. A push the other store ended (its release failed) is
// still answered as in flight by the first for at most SettledTTL, then
// queued again; a push the first store itself ended is queued at once.
func testSettledPushesAcrossStores(t *testing.T, dsn string) {
	ctx := context.Background()
	a, b := mustOpen(t, dsn), mustOpen(t, dsn)
	now := time.Now().UTC()
	a.SetClock(func() time.Time { return now })
	commit := strings.Repeat("a", 40)
	push := func(id string) deployments.PushVerdict {
		t.Helper()
		in, err := a.AcceptPush(ctx, deployments.Push{Delivery: id, Event: "push", App: "hello", Repo: "octo/hello", Commit: commit})
		if err != nil {
			t.Fatal(err)
		}
		return in.Verdict
	}
	fail := func(s *sqlstore.Store) {
		t.Helper()
		r, err := s.CreateRelease(ctx, deployments.NewRelease{App: "hello", Commit: commit, Slug: "s", Regions: []string{"a"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.FinishRelease(ctx, "hello", r.Version, pipelines.ReleaseFailed, "boom"); err != nil {
			t.Fatal(err)
		}
	}
	if v := push("1"); v != deployments.PushQueued {
		t.Fatalf("first push: %v", v)
	}
	if v := push("2"); v != deployments.PushInFlight {
		t.Fatalf("second push: %v", v)
	}
	fail(b) // on b's own clock, just after a's

	if v := push("3"); v != deployments.PushInFlight {
		t.Fatalf("within SettledTTL of the other store's write: %v, want in flight", v)
	}
	now = now.Add(sqlstore.SettledTTL)
	if v := push("4"); v != deployments.PushQueued {
		t.Fatalf("SettledTTL after the other store's write: %v, want queued", v)
	}
	if v := push("5"); v != deployments.PushInFlight {
		t.Fatalf("after it was queued again: %v", v)
	}
	now = now.Add(time.Second)
	fail(a)
	if v := push("6"); v != deployments.PushQueued {
		t.Fatalf("after this store's own write: %v, want queued", v)
	}
}

func mustSQL(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestCIWaits(t *testing.T) { backends(t, testCIWaits) }

// testCIWaits: waits are found by repository (in any case) and commit,
// forgotten one workflow at a time, and pruned after CIWaitTTL.
func testCIWaits(t *testing.T, open func() *sqlstore.Store) {
	ctx := context.Background()
	s := open()
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	a, b := strings.Repeat("a", 40), strings.Repeat("b", 40)
	for _, w := range []struct{ id, repo, commit string }{
		{"deploy-staging-a", "Octo/Hello", a}, {"deploy-pr-2-a", "octo/hello", a}, {"deploy-staging-b", "octo/hello", b}, {"deploy-other-a", "octo/other", a},
	} {
		if err := s.WaitingForCI(ctx, w.id, w.repo, w.commit); err != nil {
			t.Fatal(err)
		}
	}
	// Recording a wait again (each CI read does) keeps one row.
	if err := s.WaitingForCI(ctx, "deploy-staging-a", "octo/hello", a); err != nil {
		t.Fatal(err)
	}
	waiters := func(repo, commit string) string {
		t.Helper()
		ids, err := s.CIWaiters(ctx, repo, commit)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(ids, ",")
	}
	if got := waiters("OCTO/hello", a); got != "deploy-pr-2-a,deploy-staging-a" {
		t.Fatalf("waiters of a = %q", got)
	}
	if err := s.CIWaitOver(ctx, "deploy-staging-a"); err != nil {
		t.Fatal(err)
	}
	if got := waiters("octo/hello", a); got != "deploy-pr-2-a" {
		t.Fatalf("after one wait is over = %q", got)
	}
	now = now.Add(sqlstore.CIWaitTTL + time.Hour)
	if _, err := s.PruneDeliveries(ctx, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := waiters("octo/hello", b); got != "" {
		t.Fatalf("a wait past its TTL = %q", got)
	}
}

func TestRanBefore(t *testing.T) { backends(t, testRanBefore) }

// testRanBefore: a release counts as proven only when an earlier one
// succeeded with the same slug and config version.
func testRanBefore(t *testing.T, open func() *sqlstore.Store) {
	ctx := context.Background()
	s := open()
	mk := func(slug string, cv int, st pipelines.ReleaseStatus) int {
		t.Helper()
		r, err := s.CreateRelease(ctx, deployments.NewRelease{App: "p", Slug: slug, ConfigVersion: cv, Regions: []string{"a"}})
		if err != nil {
			t.Fatal(err)
		}
		if st != pipelines.ReleasePending {
			s.FinishRelease(ctx, "p", r.Version, st, "")
		}
		return r.Version
	}
	mk("s1", 1, pipelines.ReleaseSucceeded)     // v1
	mk("s2", 1, pipelines.ReleaseFailed)        // v2
	v3 := mk("s1", 1, pipelines.ReleasePending) // a rollback to v1's slug and config
	v4 := mk("s2", 1, pipelines.ReleasePending) // s2 never succeeded
	v5 := mk("s1", 2, pipelines.ReleasePending) // new config
	for _, tt := range []struct {
		version int
		slug    string
		cv      int
		want    bool
	}{{v3, "s1", 1, true}, {v4, "s2", 1, false}, {v5, "s1", 2, false}, {1, "s1", 1, false}} {
		if got, err := s.RanBefore(ctx, "p", tt.version, tt.slug, tt.cv); err != nil || got != tt.want {
			t.Errorf("RanBefore(v%d, %s, config %d) = %v, %v; want %v", tt.version, tt.slug, tt.cv, got, err, tt.want)
		}
	}
}
