// Package sqlite opens the embedded default database: one SQLite file
// (modernc.org/sqlite, pure Go) holding the transactional state and, in the
// embedded default, the audit event table.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"net/url"
	"os"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"postbox/storage/sqldb"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Migrations returns the portable migrations plus SQLite's own.
func Migrations() ([]sqldb.Migration, error) { return sqldb.Migrations(migrationsFS, "migrations") }

// Open opens (creating if needed) the database file at path and migrates it.
// WAL lets readers work while one writer commits; immediate transactions
// take the write lock up front so two writers wait instead of failing with
// SQLITE_BUSY halfway through.
func Open(ctx context.Context, path string) (*sqldb.Store, error) {
	// The file holds personal data: create it readable by the service only.
	if f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600); err == nil {
		f.Close()
	}
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(1)", "synchronous(NORMAL)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	s := sqldb.New(db, sqldb.SQLite)
	ms, err := Migrations()
	if err != nil {
		db.Close()
		return nil, err
	}
	if _, err := s.Migrate(ctx, ms); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}
