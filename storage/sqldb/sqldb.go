// Package sqldb is the transactional store shared by the SQLite and the
// PostgreSQL backend. Both speak the same plain SQL; the few differences
// (placeholders, locking) are handled here, so every query exists once.
// storage/sqlite and storage/postgres open the connection and bring their
// migrations.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Dialect names the SQL backend.
type Dialect int

const (
	SQLite Dialect = iota + 1
	Postgres
)

func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return "unknown"
}

// Store wraps one database. Queries are written with $1, $2 placeholders.
type Store struct {
	db      *sql.DB
	dialect Dialect
	now     func() time.Time
}

// New wraps an open database.
func New(db *sql.DB, d Dialect) *Store {
	return &Store{db: db, dialect: d, now: func() time.Time { return time.Now().UTC() }}
}

// DB returns the underlying handle, for adapters that live next to the store
// (e.g. the embedded event table).
func (s *Store) DB() *sql.DB { return s.db }

// Dialect reports the backend.
func (s *Store) Dialect() Dialect { return s.dialect }

// SetClock replaces the clock; tests use it to move time.
func (s *Store) SetClock(now func() time.Time) { s.now = now }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping tells whether the database answers (for /readyz).
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return s.db.PingContext(ctx)
}

var dollarParam = regexp.MustCompile(`\$(\d+)`)

// rebind turns $N into ?N for SQLite, which binds ?N by number.
func (s *Store) rebind(q string) string {
	if s.dialect == SQLite {
		return dollarParam.ReplaceAllString(q, "?$1")
	}
	return q
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Tx is one database transaction. A state change, its audit events and its
// notification jobs go through the same Tx, so they commit or fail together.
type Tx struct {
	s  *Store
	tx *sql.Tx
}

func (t *Tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.s.rebind(q), args...)
}

func (t *Tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.s.rebind(q), args...)
}

func (t *Tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.s.rebind(q), args...)
}

// Now is the store's clock, so a whole transaction uses one notion of time.
func (t *Tx) Now() time.Time { return t.s.now() }

// TxTimeout bounds a transaction whose context has no deadline of its own
// (an upload's, a worker's), so a database that hangs without refusing
// (frozen host) ends in an error the caller can answer (503) or retry.
// Migrations are exempt (longTx): building an index may take longer.
const TxTimeout = time.Minute

// StatementTimeout bounds a single statement outside a transaction when
// its context has no deadline: upload requests stream their body and get
// no request deadline, yet their session, lease and upload lookups must
// not wait forever on a frozen database host.
const StatementTimeout = 15 * time.Second

// bounded returns ctx, or ctx with StatementTimeout when it has no
// deadline. Only for calls that are done when they return (Exec, or
// QueryRow with its Scan inside the call).
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, StatementTimeout)
}

type longTxKey struct{}

// longTx marks a context whose transactions InTx does not bound.
func longTx(ctx context.Context) context.Context { return context.WithValue(ctx, longTxKey{}, true) }

// InTx runs fn in a transaction and commits when fn returns nil.
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) (err error) {
	if _, ok := ctx.Deadline(); !ok && ctx.Value(longTxKey{}) == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, TxTimeout)
		defer cancel()
	}
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	tx := &Tx{s: s, tx: sqlTx}
	defer func() {
		if p := recover(); p != nil {
			_ = sqlTx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = sqlTx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// micros stores times as integer microseconds since the epoch (UTC) in both
// backends: exact, sortable and free of time zone surprises.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func nullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromNullMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromMicros(n.Int64)
}

// isUniqueViolation recognises a unique-constraint error of either backend
// without importing the drivers here.
func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	var coded interface{ SQLState() string }
	if errors.As(err, &coded) {
		return coded.SQLState() == "23505"
	}
	return uniqueMessage.MatchString(err.Error())
}

var uniqueMessage = regexp.MustCompile(`UNIQUE constraint failed|duplicate key value`)

// collect scans every row of rows with scan, closes rows and returns the
// values (nil for no rows).
func collect[T any](rows *sql.Rows, scan func(interface{ Scan(...any) error }) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// scanString reads a row of one text column.
func scanString(row interface{ Scan(...any) error }) (string, error) {
	var v string
	err := row.Scan(&v)
	return v, err
}
