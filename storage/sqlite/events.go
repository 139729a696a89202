package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"postbox/audit"
)

// EventStore is the embedded default audit.EventStore: the audit_events
// table of migration 0002_events.sql.
type EventStore struct{ db *sql.DB }

var _ audit.EventStore = (*EventStore)(nil)

// NewEventStore uses db, which must already hold the audit_events table.
func NewEventStore(db *sql.DB) *EventStore { return &EventStore{db: db} }

const eventColumns = `id, tenant_id, seq, ts, actor_id, actor_role, type, subject_type, subject_id,
	outcome, client_hash, request_id, details, prev_hash, hash`

// Append inserts events in one transaction; an event whose ID is already
// stored is skipped, so a batch shipped twice is stored once.
func (s *EventStore) Append(ctx context.Context, events []audit.Event) (err error) {
	if len(events) == 0 {
		return nil
	}
	for _, e := range events {
		if err := e.ValidateStored(); err != nil {
			return fmt.Errorf("append audit events: %w", err)
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append audit events: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO audit_events (`+eventColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(id) DO NOTHING`)
	if err != nil {
		return fmt.Errorf("append audit events: %w", err)
	}
	defer stmt.Close()
	for _, e := range events {
		if _, err := stmt.ExecContext(ctx, e.ID, e.TenantID, e.Seq, e.Time.UnixMicro(), e.ActorID, e.ActorRole,
			e.Type, e.SubjectType, e.SubjectID, string(e.Outcome), e.ClientHash, e.RequestID, e.Details,
			e.PrevHash, e.Hash); err != nil {
			return fmt.Errorf("append audit event %s: %w", e.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append audit events: %w", err)
	}
	return nil
}

// ceilMicro is t in unix microseconds, rounded up: stored times are whole
// microseconds, so "ts >= ceil(From)" and "ts < ceil(To)" match the exact
// comparisons with From and To.
func ceilMicro(t time.Time) int64 {
	us := t.UnixMicro()
	if t.Nanosecond()%1000 != 0 {
		us++
	}
	return us
}

// where renders the filter's conditions except After and Limit.
func where(f audit.Filter) (string, []any) {
	conds, args := []string{"tenant_id = ?"}, []any{f.TenantID}
	add := func(cond string, arg any) {
		conds = append(conds, cond)
		args = append(args, arg)
	}
	if !f.From.IsZero() {
		add("ts >= ?", ceilMicro(f.From))
	}
	if !f.To.IsZero() {
		add("ts < ?", ceilMicro(f.To))
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

// Query returns the events matching f ordered by (Time, ID).
func (s *EventStore) Query(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	var out []audit.Event
	err := s.Scan(ctx, f, func(e audit.Event) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

// Scan streams the events matching f ordered by (Time, ID).
func (s *EventStore) Scan(ctx context.Context, f audit.Filter, fn func(audit.Event) error) error {
	if err := f.Validate(); err != nil {
		return err
	}
	cond, args := where(f)
	if f.After != nil {
		// Row values let SQLite seek the (…, ts, id) indexes to the cursor.
		cond += " AND (ts, id) > (?, ?)"
		args = append(args, f.After.Time.UnixMicro(), f.After.ID)
	}
	q := `SELECT ` + eventColumns + ` FROM audit_events WHERE ` + cond + ` ORDER BY ts, id`
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("query audit events of tenant %q: %w", f.TenantID, err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return fmt.Errorf("query audit events of tenant %q: %w", f.TenantID, err)
		}
		if err := fn(e); err != nil {
			return fmt.Errorf("query audit events of tenant %q at %s: %w", f.TenantID, e.ID, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("query audit events of tenant %q: %w", f.TenantID, err)
	}
	return nil
}

func scanEvent(rows *sql.Rows) (audit.Event, error) {
	var e audit.Event
	var ts int64
	var outcome string
	err := rows.Scan(&e.ID, &e.TenantID, &e.Seq, &ts, &e.ActorID, &e.ActorRole, &e.Type, &e.SubjectType,
		&e.SubjectID, &outcome, &e.ClientHash, &e.RequestID, &e.Details, &e.PrevHash, &e.Hash)
	e.Time = time.UnixMicro(ts).UTC()
	e.Outcome = audit.Outcome(outcome)
	return e, err
}

// Chain calls fn for the tenant's events ordered by (Seq, ID). fn must not
// use the store: the read stays open while fn runs.
func (s *EventStore) Chain(ctx context.Context, tenantID string, fn func(audit.Event) error) error {
	if tenantID == "" {
		return fmt.Errorf("%w: no tenant", audit.ErrInvalidFilter)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+eventColumns+` FROM audit_events
		WHERE tenant_id = ? ORDER BY seq, id`, tenantID)
	if err != nil {
		return fmt.Errorf("chain of tenant %q: %w", tenantID, err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return fmt.Errorf("chain of tenant %q: %w", tenantID, err)
		}
		if err := fn(e); err != nil {
			return fmt.Errorf("chain of tenant %q at seq %d: %w", tenantID, e.Seq, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("chain of tenant %q: %w", tenantID, err)
	}
	return nil
}

const microsPerDay = 86_400_000_000

// CountByDayAndType counts events matching f (After and Limit ignored) per
// UTC day and type. ts is never negative (see audit.Event.ValidateStored), so integer
// division gives the UTC day.
func (s *EventStore) CountByDayAndType(ctx context.Context, f audit.Filter) ([]audit.DayCount, error) {
	f.After, f.Limit = nil, 0
	if err := f.Validate(); err != nil {
		return nil, err
	}
	cond, args := where(f)
	rows, err := s.db.QueryContext(ctx, `SELECT ts / `+fmt.Sprint(int64(microsPerDay))+` AS day, type, COUNT(*)
		FROM audit_events WHERE `+cond+` GROUP BY day, type ORDER BY day, type`, args...)
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

// Ping checks that the database answers.
func (s *EventStore) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite event store: %w", err)
	}
	return nil
}
