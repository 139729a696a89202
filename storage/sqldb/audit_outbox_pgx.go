package sqldb

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"postbox/audit"
)

// withPgx runs fn on a pool connection's pgx connection; ok is false
// (and fn not run) when the pool's driver is not pgx.
func (s *Store) withPgx(ctx context.Context, fn func(*pgx.Conn) error) (ok bool, err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return true, err
	}
	defer conn.Close()
	ok = true
	err = conn.Raw(func(dc any) error {
		sc, isPgx := dc.(*stdlib.Conn)
		if !isPgx {
			ok = false
			return nil
		}
		return fn(sc.Conn())
	})
	return ok, err
}

// pendingEventsPgx reads a batch of the ship queue through pgx itself when
// the pool's driver is pgx (it is for PostgreSQL; ok is false otherwise).
// database/sql makes one string per column as the driver hands the row
// over; here each row's text columns become one string that the event's
// fields slice, one allocation per event instead of thirteen. In the
// ingest benchmark that scanning was a third of the shipper's own CPU,
// most of it allocation and garbage collection.
func (s *Store) pendingEventsPgx(ctx context.Context, q string, args []any, limit int) (out []audit.Event, ok bool, err error) {
	ok, err = s.withPgx(ctx, func(c *pgx.Conn) error {
		tx, err := c.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // read-only; after Commit a no-op
		if _, err := tx.Exec(ctx, `SET LOCAL max_parallel_workers_per_gather = 0`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		if n := len(rows.FieldDescriptions()); n != 15 {
			return fmt.Errorf("%d columns, want 15", n)
		}
		binaryInt := [2]bool{rows.FieldDescriptions()[2].Format == pgx.BinaryFormatCode, rows.FieldDescriptions()[3].Format == pgx.BinaryFormatCode}
		out = make([]audit.Event, 0, min(limit, 10000))
		var b strings.Builder
		for rows.Next() {
			raw := rows.RawValues()
			size := 0
			for i, v := range raw {
				if i != 2 && i != 3 {
					size += len(v)
				}
			}
			b.Reset()
			b.Grow(size)
			var ends [15]int
			for i, v := range raw {
				if i != 2 && i != 3 {
					b.Write(v)
				}
				ends[i] = b.Len()
			}
			row := b.String()
			field := func(i int) string { return row[ends[i-1]:ends[i]] }
			seq, err := int8Value(raw[2], binaryInt[0])
			if err != nil {
				return fmt.Errorf("seq: %w", err)
			}
			ts, err := int8Value(raw[3], binaryInt[1])
			if err != nil {
				return fmt.Errorf("ts: %w", err)
			}
			out = append(out, audit.Event{
				ID: row[:ends[0]], TenantID: field(1), Seq: seq, Time: fromMicros(ts),
				ActorID: field(4), ActorRole: field(5), Type: field(6), SubjectType: field(7), SubjectID: field(8),
				Outcome: audit.Outcome(field(9)), ClientHash: field(10), RequestID: field(11), Details: field(12),
				PrevHash: field(13), Hash: field(14),
			})
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		return nil, true, fmt.Errorf("pending events: %w", err)
	}
	return out, ok, nil
}

// markRangePgx is markRange on the pgx connection: the returned ids are
// looked up as bytes, not made into strings first.
func (s *Store) markRangePgx(ctx context.Context, batch []audit.Cursor, in map[string]struct{}) (marked, ok bool, err error) {
	lo, hi := batch[0], batch[len(batch)-1]
	ok, err = s.withPgx(ctx, func(c *pgx.Conn) error {
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // after Commit a no-op
		rows, err := tx.Query(ctx, markRangeSQL, micros(lo.Time), lo.ID, micros(hi.Time), hi.ID)
		if err != nil {
			return err
		}
		foreign := false
		for rows.Next() {
			if _, mine := in[string(rows.RawValues()[0])]; !mine {
				foreign = true
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil || foreign {
			return err // foreign: rolled back by the deferred Rollback
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		marked = true
		return nil
	})
	return marked, ok, err
}

// int8Value decodes a BIGINT column in pgx's wire format.
func int8Value(v []byte, binaryFormat bool) (int64, error) {
	if !binaryFormat {
		return strconv.ParseInt(string(v), 10, 64)
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("binary bigint of %d bytes", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}
