package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"postbox/audit"
)

var _ audit.RetentionStore = (*EventStore)(nil)

func sqliteStartsWith(col, prefix string) string {
	return fmt.Sprintf("substr(%s, 1, %d) = '%s'", col, len(prefix), prefix)
}

var businessSQL = audit.BusinessPredicate(sqliteStartsWith)

// ChainPrefixEnd implements audit.RetentionStore.
func (s *EventStore) ChainPrefixEnd(ctx context.Context, tenantID string, before time.Time) (audit.Event, bool, error) {
	if tenantID == "" {
		return audit.Event{}, false, fmt.Errorf("%w: no tenant", audit.ErrInvalidFilter)
	}
	// The first event not older than before ends the prefix; without one
	// every stored event is old enough.
	var first sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MIN(seq) FROM audit_events WHERE tenant_id = ? AND ts >= ?`,
		tenantID, ceilMicro(before)).Scan(&first); err != nil {
		return audit.Event{}, false, fmt.Errorf("chain prefix of tenant %q: %w", tenantID, err)
	}
	q := `SELECT ` + eventColumns + ` FROM audit_events WHERE tenant_id = ? ORDER BY seq DESC, id LIMIT 1`
	args := []any{tenantID}
	if first.Valid {
		q = `SELECT ` + eventColumns + ` FROM audit_events WHERE tenant_id = ? AND seq < ? ORDER BY seq DESC, id LIMIT 1`
		args = append(args, first.Int64)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return audit.Event{}, false, fmt.Errorf("chain prefix of tenant %q: %w", tenantID, err)
	}
	defer rows.Close()
	if !rows.Next() {
		return audit.Event{}, false, rows.Err()
	}
	e, err := scanEvent(rows)
	if err != nil {
		return e, false, fmt.Errorf("chain prefix of tenant %q: %w", tenantID, err)
	}
	return e, true, nil
}

// DeleteChainPrefixes implements audit.RetentionStore.
func (s *EventStore) DeleteChainPrefixes(ctx context.Context, through map[string]int64) (int64, error) {
	var n int64
	for tenant, seq := range through {
		res, err := s.db.ExecContext(ctx, `DELETE FROM audit_events WHERE tenant_id = ? AND seq <= ?`, tenant, seq)
		if err != nil {
			return n, fmt.Errorf("delete expired events of tenant %q: %w", tenant, err)
		}
		k, _ := res.RowsAffected()
		n += k
	}
	return n, nil
}

// RedactBusiness implements audit.RetentionStore, in batches of one
// transaction each so the writer lock is never held for long.
func (s *EventStore) RedactBusiness(ctx context.Context, tenantID string, before time.Time) (int64, error) {
	if tenantID == "" {
		return 0, fmt.Errorf("%w: no tenant", audit.ErrInvalidFilter)
	}
	var total int64
	for {
		n, err := s.redactBatch(ctx, tenantID, ceilMicro(before), 1000)
		total += n
		if err != nil || n < 1000 {
			return total, err
		}
	}
}

func (s *EventStore) redactBatch(ctx context.Context, tenantID string, before int64, limit int) (n int64, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("redact events of tenant %q: %w", tenantID, err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	rows, err := tx.QueryContext(ctx, `SELECT `+eventColumns+` FROM audit_events
		WHERE tenant_id = ? AND ts < ? AND `+businessSQL+` AND substr(details, 1, ?) <> ?
		ORDER BY ts, id LIMIT ?`, tenantID, before, len(audit.RedactedPrefix), audit.RedactedPrefix, limit)
	if err != nil {
		return 0, fmt.Errorf("redact events of tenant %q: %w", tenantID, err)
	}
	var due []audit.Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("redact events of tenant %q: %w", tenantID, err)
		}
		due = append(due, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("redact events of tenant %q: %w", tenantID, err)
	}
	for _, e := range due {
		r := audit.Redact(e)
		if !r.Redacted() {
			return n, errors.New("redaction produced an unredacted event")
		}
		if _, err := tx.ExecContext(ctx, `UPDATE audit_events SET actor_id = ?, subject_id = ?, client_hash = ?, request_id = ?, details = ?
			WHERE id = ?`, r.ActorID, r.SubjectID, r.ClientHash, r.RequestID, r.Details, r.ID); err != nil {
			return n, fmt.Errorf("redact event %s: %w", e.ID, err)
		}
		n++
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("redact events of tenant %q: %w", tenantID, err)
	}
	return n, nil
}
