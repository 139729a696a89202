package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"postbox/audit"
)

var _ audit.EventStore = (*Store)(nil)

const eventColumns = `id, tenant_id, seq, ts_unix_us, actor_id, actor_role, type, subject_type, subject_id,
	outcome, client_hash, request_id, details, prev_hash, hash`

// Append inserts events in one batch. Events already stored are inserted
// again; reads skip the copies and merges remove them.
// The whole batch is validated first, so a bad event sends nothing.
func (s *Store) Append(ctx context.Context, events []audit.Event) error {
	if len(events) == 0 {
		return nil
	}
	if err := validate(events); err != nil {
		return err
	}
	st, err := s.openAppend(ctx)
	if err != nil {
		return err
	}
	defer st.batch.Close()
	if err := st.Add(ctx, events); err != nil {
		return err
	}
	return st.Commit(ctx)
}

func validate(events []audit.Event) error {
	for _, e := range events {
		if err := e.ValidateStored(); err != nil {
			return fmt.Errorf("append audit events: %w", err)
		}
	}
	return nil
}

var _ audit.StreamStore = (*Store)(nil)

// OpenAppend implements audit.StreamStore: one INSERT that Add feeds and
// Commit ends. The shipper puts several read batches into one INSERT this
// way, so ClickHouse gets large inserts while the shipper holds only the
// batch it is adding.
func (s *Store) OpenAppend(ctx context.Context) (audit.AppendStream, error) {
	st, err := s.openAppend(ctx)
	if err != nil {
		return nil, err // not a nil *appendStream in a non-nil interface
	}
	return st, nil
}

func (s *Store) openAppend(ctx context.Context) (*appendStream, error) {
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO `+s.db+`.audit_trail (ts, `+eventColumns+`)`)
	if err != nil {
		return nil, fmt.Errorf("append audit events to clickhouse %s: %w", s.addr, err)
	}
	return &appendStream{s: s, batch: batch}, nil
}

// appendStream sends events as blocks of appendChunk rows within one
// INSERT: each Flush sends a block and keeps the column buffers for the
// next, so they grow once to a chunk's size instead of step by step to the
// whole batch's (measured: that growth was a fifth of the shipper's CPU).
// The server squashes the blocks of one INSERT into one part
// (min_insert_block_size_rows), and Send acknowledges them together.
type appendStream struct {
	s     *Store
	batch driver.Batch
	c     columns
	n     int
}

// Add sends events (validated first, so a bad one sends nothing of them).
// The context is the one OpenAppend was given.
func (a *appendStream) Add(_ context.Context, events []audit.Event) error {
	if err := validate(events); err != nil {
		return err
	}
	for len(events) > 0 {
		chunk := events[:min(len(events), appendChunk)]
		events = events[len(chunk):]
		if err := a.c.append(a.batch, chunk); err != nil {
			return err
		}
		if err := a.batch.Flush(); err != nil {
			return fmt.Errorf("append audit events to clickhouse %s: %w", a.s.addr, err)
		}
		a.n += len(chunk)
	}
	return nil
}

// Commit ends the INSERT; nil means ClickHouse acknowledged every event
// added.
func (a *appendStream) Commit(context.Context) error {
	if err := a.batch.Send(); err != nil {
		return fmt.Errorf("append %d audit events to clickhouse %s: %w", a.n, a.s.addr, err)
	}
	return nil
}

// Abort drops the connection without ending the INSERT. Blocks already
// sent may still be stored; the shipper sends them again, which reads
// deduplicate.
func (a *appendStream) Abort() { _ = a.batch.Abort() }

const appendChunk = 2000

// columns are the per-column slices of one chunk, reused across chunks.
// Column by column: one slice per column instead of 16 reflected values
// per row (measured: rows/s several times the row-wise Append).
type columns struct {
	ts      []time.Time
	seq, us []int64
	str     [13][]string
}

func (c *columns) append(batch driver.Batch, events []audit.Event) error {
	n := len(events)
	c.ts, c.seq, c.us = c.ts[:0], c.seq[:0], c.us[:0]
	for j := range c.str {
		c.str[j] = c.str[j][:0]
	}
	for _, e := range events {
		u := e.Time.UnixMicro()
		c.ts, c.us, c.seq = append(c.ts, time.Unix(u/1e6, 0).UTC()), append(c.us, u), append(c.seq, e.Seq)
		for j, v := range [...]string{e.ID, e.TenantID, e.ActorID, e.ActorRole, e.Type, e.SubjectType, e.SubjectID,
			string(e.Outcome), e.ClientHash, e.RequestID, e.Details, e.PrevHash, e.Hash} {
			c.str[j] = append(c.str[j], v)
		}
	}
	// Order of the INSERT: ts, id, tenant_id, seq, ts_unix_us, then the rest.
	values := []any{c.ts, c.str[0], c.str[1], c.seq, c.us}
	for _, col := range c.str[2:] {
		values = append(values, col)
	}
	for i, v := range values {
		if err := batch.Column(i).Append(v); err != nil {
			return fmt.Errorf("append %d audit events, column %d: %w", n, i, err)
		}
	}
	return nil
}

func ceilMicro(t time.Time) int64 {
	us := t.UnixMicro()
	if t.Nanosecond()%1000 != 0 {
		us++
	}
	return us
}

// where renders f without Limit. Values are bound client-side by the driver
// (18.16 has no server-side parameters), which quotes and escapes strings.
// Each time bound is given three times: exactly on ts_unix_us, and coarsely
// on ts and on toDate(ts). 18.16 prunes month partitions by the ts
// condition; toDate(ts) served 0001's key (tenant, day, ...) and costs
// nothing now. The key of audit_trail (0002) starts with tenant and subject,
// so a subject condition narrows the read to a few granules per partition.
// toDate(ts) is the UTC day because ts is DateTime('UTC').
func where(f audit.Filter) (string, []any) {
	conds, args := []string{"tenant_id = ?"}, []any{f.TenantID}
	add := func(cond string, a ...any) {
		conds = append(conds, cond)
		args = append(args, a...)
	}
	if !f.From.IsZero() {
		us := ceilMicro(f.From)
		add("ts >= toDateTime(?) AND toDate(ts) >= toDate(?) AND ts_unix_us >= ?", floorSec(us), utcDay(us), us)
	}
	if !f.To.IsZero() {
		us := ceilMicro(f.To)
		add("ts <= toDateTime(?) AND toDate(ts) <= toDate(?) AND ts_unix_us < ?", floorSec(us), utcDay(us), us)
	}
	if f.After != nil {
		us := f.After.Time.UnixMicro()
		add("ts >= toDateTime(?) AND toDate(ts) >= toDate(?) AND (ts_unix_us > ? OR (ts_unix_us = ? AND id > ?))",
			floorSec(us), utcDay(us), us, us, f.After.ID)
	}
	if f.Type != "" {
		add("type = ?", f.Type)
	}
	if f.ActorID != "" {
		add("actor_id = ?", f.ActorID)
	}
	if f.SubjectType != "" {
		add("subject_type = ?", f.SubjectType)
	}
	if f.SubjectID != "" {
		add("subject_id = ?", f.SubjectID)
	}
	if f.Outcome != "" {
		add("outcome = ?", string(f.Outcome))
	}
	return strings.Join(conds, " AND "), args
}

func floorSec(us int64) int64 { return us / 1e6 } // us >= 0, see audit.Event.ValidateStored

func utcDay(us int64) string { return time.UnixMicro(us).UTC().Format(time.DateOnly) }

// Query returns the events matching f ordered by (Time, ID).
//
// Copies of an event shipped twice stay visible until a background merge
// collapses them. The sort puts copies next to each other, so the scan drops
// them (see copies) instead of the server: on 18.16 both FINAL and LIMIT 1 BY
// id stop ORDER BY ... LIMIT n from sorting only the top n rows, and FINAL
// also merges in a single stream. Measured with 0001's key
// (BenchmarkSubjectHistory, 1M events of one tenant, 2 shared cores): a
// 100-event page of one day took 13-16 ms plain, 43-45 ms with LIMIT 1 BY,
// 54-58 ms with FINAL; one subject's history 65-87 ms plain or with LIMIT 1
// BY, 0.6-1 s with FINAL. BENCHMARKS.md has the numbers for 0002's key.
// A page that lost rows to copies is topped up from its last event.
func (s *Store) Query(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	var out []audit.Event
	err := s.Scan(ctx, f, func(e audit.Event) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

// Scan streams what Query returns (see there for the deduplication): rows
// go to fn as the server sends them, nothing is collected.
func (s *Store) Scan(ctx context.Context, f audit.Filter, fn func(audit.Event) error) error {
	if err := f.Validate(); err != nil {
		return err
	}
	var c copies
	var last audit.Event // the last event passed on; the next page starts after it
	sent := 0
	for {
		cond, args := where(f)
		q := `SELECT ` + eventColumns + ` FROM ` + s.db + `.audit_trail WHERE ` + cond + ` ORDER BY ts_unix_us, id, ` + redactedFirst
		want := 0
		if f.Limit > 0 {
			want = f.Limit - sent
			q += fmt.Sprintf(" LIMIT %d", want)
		}
		n, err := s.scan(ctx, q, args, func(e audit.Event) error {
			if !c.fresh(e) {
				return nil
			}
			sent, last = sent+1, e
			return fn(e)
		})
		if err != nil {
			return fmt.Errorf("query audit events of tenant %q: %w", f.TenantID, err)
		}
		if want == 0 || n < want || sent == f.Limit {
			return nil
		}
		f.After = &audit.Cursor{Time: last.Time, ID: last.ID}
	}
}

// redactedFirst ends every ORDER BY that copies reads: among rows of one
// id, a redacted row comes before the original it replaces.
var redactedFirst = fmt.Sprintf("startsWith(details, '%s') DESC", audit.RedactedPrefix)

// copies recognises copies of an event among rows sorted by a key that
// ends in id, redactedFirst. A copy is an identical row (an event shipped
// twice) or the original of a redacted row already passed on: retention
// appends the redacted form and deletes the original by a mutation, and
// until that finishes both are stored (RedactBusiness). So every reader
// sees one row per event, the redacted one as soon as it exists, whatever
// parts the rows are in. A row that shares an id but differs otherwise is
// kept, so tampering shows instead of being deduplicated away (Verify then
// reports the event stored twice).
type copies struct{ run []audit.Event } // rows of the current id

func (c *copies) fresh(e audit.Event) bool {
	if len(c.run) > 0 && c.run[0].ID != e.ID {
		c.run = c.run[:0]
	}
	for _, r := range c.run {
		if r == e || r.Redacted() && !e.Redacted() && audit.Redact(e) == r {
			return false
		}
	}
	c.run = append(c.run, e)
	return true
}

// scan runs q and calls fn for every row; it returns the number of rows.
func (s *Store) scan(ctx context.Context, q string, args []any, fn func(audit.Event) error) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the server streaming the rest when fn fails
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
		e, err := scanEvent(rows)
		if err != nil {
			return n, err
		}
		if err := fn(e); err != nil {
			return n, err
		}
	}
	return n, rows.Err()
}

func scanEvent(rows driver.Rows) (audit.Event, error) {
	var e audit.Event
	var us int64
	var outcome string
	err := rows.Scan(&e.ID, &e.TenantID, &e.Seq, &us, &e.ActorID, &e.ActorRole, &e.Type, &e.SubjectType,
		&e.SubjectID, &outcome, &e.ClientHash, &e.RequestID, &e.Details, &e.PrevHash, &e.Hash)
	e.Time = time.UnixMicro(us).UTC()
	e.Outcome = audit.Outcome(outcome)
	return e, err
}

// Chain calls fn for the tenant's events ordered by (Seq, ID), skipping exact
// copies. Deduplicating in the scan keeps the server's memory flat however
// long the chain is; LIMIT 1 BY id would hold every id.
func (s *Store) Chain(ctx context.Context, tenantID string, fn func(audit.Event) error) error {
	if tenantID == "" {
		return fmt.Errorf("%w: no tenant", audit.ErrInvalidFilter)
	}
	var c copies
	var seq int64
	_, err := s.scan(ctx, `SELECT `+eventColumns+` FROM `+s.db+`.audit_trail
		WHERE tenant_id = ? ORDER BY seq, id, `+redactedFirst, []any{tenantID}, func(e audit.Event) error {
		if !c.fresh(e) {
			return nil
		}
		seq = e.Seq
		return fn(e)
	})
	if err != nil {
		return fmt.Errorf("chain of tenant %q at seq %d: %w", tenantID, seq, err)
	}
	return nil
}

// CountByDayAndType counts events matching f (After and Limit ignored) per
// UTC day and type. uniqExact(id) counts copies not yet merged once; the
// day comes from ts_unix_us, so the server's time zone cannot shift it.
func (s *Store) CountByDayAndType(ctx context.Context, f audit.Filter) ([]audit.DayCount, error) {
	f.After, f.Limit = nil, 0
	if err := f.Validate(); err != nil {
		return nil, err
	}
	cond, args := where(f)
	rows, err := s.conn.Query(ctx, `SELECT toInt64(intDiv(ts_unix_us, 86400000000)) AS day, type, toInt64(uniqExact(id))
		FROM `+s.db+`.audit_trail WHERE `+cond+` GROUP BY day, type ORDER BY day, type`, args...)
	if err != nil {
		return nil, fmt.Errorf("count audit events of tenant %q: %w", f.TenantID, err)
	}
	defer rows.Close()
	var out []audit.DayCount
	for rows.Next() {
		var day int64
		var c audit.DayCount
		if err := rows.Scan(&day, &c.Type, &c.Count); err != nil {
			return nil, fmt.Errorf("count audit events of tenant %q: %w", f.TenantID, err)
		}
		c.Day = time.Unix(day*86400, 0).UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count audit events of tenant %q: %w", f.TenantID, err)
	}
	return out, nil
}
