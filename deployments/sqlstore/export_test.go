package sqlstore

import (
	"testing"
	"time"
)

// RawConfigVars returns the vars column as stored, for tests of what is at rest.
func (s *Store) RawConfigVars(t *testing.T, app string, version int) string {
	t.Helper()
	var raw string
	if err := s.conn().queryRow(t.Context(), `SELECT vars FROM config_vars WHERE app = ? AND version = ?`, app, version).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	return raw
}

// MigrateFS is Migrate with other migrations than the embedded ones, for
// tests of a migration that fails.
var MigrateFS = migrateDSN

// Migrations are the embedded migrations, for tests that apply some of them.
var Migrations = migrations

// SetRawConfigVars overwrites the vars column as stored, for tests of rows
// moved or written by hand.
func (s *Store) SetRawConfigVars(t *testing.T, app string, version int, raw string) {
	t.Helper()
	if _, err := s.conn().exec(t.Context(), `UPDATE config_vars SET vars = ? WHERE app = ? AND version = ?`, raw, app, version); err != nil {
		t.Fatal(err)
	}
}

// SetClock makes the store read the time from now, for tests of what
// depends on when.
func (s *Store) SetClock(now func() time.Time) { s.now = now }

// SettledTTL is how long a settled push's answer is reused.
const SettledTTL = settledTTL
