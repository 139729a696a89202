package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"postbox/storage/sqldb"
	"postbox/storage/storagetest"
)

func TestContract(t *testing.T) {
	storagetest.TestSQLStore(t, func(t *testing.T) (*sqldb.Store, []sqldb.Migration) {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "postbox.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		ms, err := Migrations()
		if err != nil {
			t.Fatal(err)
		}
		return s, ms
	})
}
