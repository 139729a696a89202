package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"postbox/audit"
)

var _ audit.AnchorStore = (*Store)(nil)

// ChainAnchor returns where retention cut the tenant's chain.
func (s *Store) ChainAnchor(ctx context.Context, tenantID string) (audit.Anchor, bool, error) {
	var a audit.Anchor
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT seq, hash FROM audit_chain_anchors WHERE tenant_id = $1`), tenantID).Scan(&a.Seq, &a.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return a, false, nil
	}
	if err != nil {
		return a, false, fmt.Errorf("chain anchor: %w", err)
	}
	return a, true, nil
}

// SetChainAnchor moves the tenant's anchor forward; an older anchor than
// the stored one is ignored, so a late or repeated run cannot move it back.
func (s *Store) SetChainAnchor(ctx context.Context, tenantID string, a audit.Anchor) error {
	_, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO audit_chain_anchors (tenant_id, seq, hash, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, updated_at = excluded.updated_at
		WHERE audit_chain_anchors.seq < excluded.seq`), tenantID, a.Seq, a.Hash, micros(s.now()))
	if err != nil {
		return fmt.Errorf("set chain anchor: %w", err)
	}
	return nil
}

// PurgeShippedEvents deletes outbox rows older than before that were
// shipped (no longer queued), in batches so no transaction runs long. The
// event store holds them; the outbox keeps them only as a window for
// re-shipping after an event store loss.
func (s *Store) PurgeShippedEvents(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		res, err := s.db.ExecContext(ctx, s.rebind(`DELETE FROM audit_outbox WHERE id IN (
			SELECT o.id FROM audit_outbox o WHERE o.ts < $1
			AND NOT EXISTS (SELECT 1 FROM audit_ship_queue q WHERE q.id = o.id) LIMIT 10000)`), micros(before))
		if err != nil {
			return total, fmt.Errorf("purge shipped events: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < 10000 {
			return total, nil
		}
	}
}

// RequeueEvents queues a tenant's outbox events from since on again, to
// ship them once more (after the event store lost data). Events already
// queued stay queued once; the store deduplicates what it already has.
func (s *Store) RequeueEvents(ctx context.Context, tenantID string, since time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.rebind(`INSERT INTO audit_ship_queue (id, ts)
		SELECT id, ts FROM audit_outbox WHERE tenant_id = $1 AND ts >= $2
		ON CONFLICT (id) DO NOTHING`), tenantID, micros(since))
	if err != nil {
		return 0, fmt.Errorf("requeue events: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// AuditRecorder records single events in a transaction of their own (an
// auditor's query, a retention run): audit.Recorder.
func (s *Store) AuditRecorder() audit.Recorder { return recorder{s} }

type recorder struct{ s *Store }

func (r recorder) Record(ctx context.Context, e audit.Event) error {
	return r.s.InTx(ctx, func(tx *Tx) error {
		_, err := tx.RecordEvent(ctx, e)
		return err
	})
}
