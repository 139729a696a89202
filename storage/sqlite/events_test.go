package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"postbox/audit"
	"postbox/storage/sqlite"
	"postbox/storage/storagetest"
)

// newEventStore opens a fresh database with only the event migration, so
// this test does not depend on the rest of the schema.
func newEventStore(t *testing.T) audit.EventStore {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ddl, err := os.ReadFile(filepath.Join("migrations", "0002_events.sql"))
	if err != nil {
		t.Fatal(err)
	}
	// Twice: the migration must be idempotent on its own.
	for range 2 {
		if _, err := db.ExecContext(context.Background(), string(ddl)); err != nil {
			t.Fatalf("apply 0002_events.sql: %v", err)
		}
	}
	return sqlite.NewEventStore(db)
}

func TestEventStore(t *testing.T) {
	storagetest.TestEventStore(t, newEventStore)
}

func TestRetentionStore(t *testing.T) {
	storagetest.TestRetentionStore(t, newEventStore(t).(*sqlite.EventStore))
}
