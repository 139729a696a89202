//go:build integration

package auth_test

import (
	"context"
	"testing"

	"postbox/storage/postgres"
	"postbox/storage/sqldb"
	"postbox/storage/storagetest"
)

// With the integration tag every service test runs on the embedded SQLite
// and on the real PostgreSQL server; a missing server fails the test.
var backends = []backend{{"sqlite", openSQLite}, {"postgres", openPostgres}}

// openPostgres opens an empty database of its own on the shared server
// (POSTBOX_TEST_PG_DSN), dropped when the test ends.
func openPostgres(t *testing.T) *sqldb.Store {
	t.Helper()
	db, err := postgres.Open(context.Background(), storagetest.FreshPostgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
