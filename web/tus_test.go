package web

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"

	"postbox/intake"
	"postbox/storage/fsblob"
	"postbox/storage/sqldb"
	"postbox/storage/sqlite"
)

// embeddedBackend is the default setup: SQLite file and encrypted blobs on
// disk, both reopenable as a restarted process would.
func embeddedBackend(t *testing.T) tusBackend {
	dir := t.TempDir()
	key := make([]byte, fsblob.KeySize)
	rand.Read(key)
	open := func(t *testing.T) (*sqldb.Store, intake.BlobStore) {
		db, err := sqlite.Open(context.Background(), filepath.Join(dir, "postbox.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		blobs, err := fsblob.New(filepath.Join(dir, "blobs"), key)
		if err != nil {
			t.Fatal(err)
		}
		return db, blobs
	}
	db, blobs := open(t)
	return tusBackend{DB: db, Blobs: blobs, Reopen: open}
}

func TestTusProtocolEmbedded(t *testing.T) {
	runTusProtocolCases(t, embeddedBackend)
}
