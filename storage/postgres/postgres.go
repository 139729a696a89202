// Package postgres opens the server-mode database: PostgreSQL through pgx.
// The queries themselves live in storage/sqldb, shared with SQLite.
package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"postbox/storage/sqldb"
)

// ParseDSN validates a connection string without connecting, so a broken
// setting stops the binary at start with a clear message.
func ParseDSN(dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return err
	}
	if cfg.Database == "" {
		return fmt.Errorf("no database name")
	}
	return nil
}

// Open connects, checks the server answers and applies migrations.
func Open(ctx context.Context, dsn string) (*sqldb.Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres dsn: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		// A frozen server accepts the TCP connection but never answers the
		// start-up; without a bound a new connection waits forever.
		cfg.ConnectTimeout = 10 * time.Second
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect postgres %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	return migrate(ctx, db)
}

func migrate(ctx context.Context, db *sql.DB) (*sqldb.Store, error) {
	s := sqldb.New(db, sqldb.Postgres)
	ms, err := sqldb.Migrations(nil, "")
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
