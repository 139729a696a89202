//go:build integration

package postgres

import (
	"context"
	"testing"

	"postbox/storage/sqldb"
	"postbox/storage/storagetest"
)

func TestContract(t *testing.T) {
	storagetest.TestSQLStore(t, func(t *testing.T) (*sqldb.Store, []sqldb.Migration) {
		s, err := Open(context.Background(), storagetest.FreshPostgres(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		ms, err := sqldb.Migrations(nil, "")
		if err != nil {
			t.Fatal(err)
		}
		return s, ms
	})
}
