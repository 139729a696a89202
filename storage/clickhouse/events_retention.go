package clickhouse

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"postbox/audit"
)

var _ audit.RetentionStore = (*Store)(nil)

var businessSQL = audit.BusinessPredicate(func(col, prefix string) string {
	return fmt.Sprintf("startsWith(%s, '%s')", col, prefix)
})

// notRedacted selects rows that still hold their payload.
var notRedacted = fmt.Sprintf("NOT startsWith(details, '%s')", audit.RedactedPrefix)

// MutationTimeout bounds how long retention waits for a DELETE mutation.
var MutationTimeout = 30 * time.Minute

// ChainPrefixEnd implements audit.RetentionStore.
func (s *Store) ChainPrefixEnd(ctx context.Context, tenantID string, before time.Time) (audit.Event, bool, error) {
	if tenantID == "" {
		return audit.Event{}, false, fmt.Errorf("%w: no tenant", audit.ErrInvalidFilter)
	}
	us := ceilMicro(before)
	var (
		first int64
		n     uint64
	)
	// min() of no rows is 0 in ClickHouse, so count() tells "none".
	if err := s.conn.QueryRow(ctx, `SELECT toInt64(min(seq)), count() FROM `+s.db+`.audit_trail
		WHERE tenant_id = ? AND ts >= toDateTime(?) AND ts_unix_us >= ?`, tenantID, floorSec(us), us).Scan(&first, &n); err != nil {
		return audit.Event{}, false, fmt.Errorf("chain prefix of tenant %q: %w", tenantID, err)
	}
	q := `SELECT ` + eventColumns + ` FROM ` + s.db + `.audit_trail WHERE tenant_id = ?`
	args := []any{tenantID}
	if n > 0 {
		// Every event before the first young one is old: ts bounds the scan.
		q += ` AND seq < ? AND ts <= toDateTime(?)`
		args = append(args, first, floorSec(us))
	}
	var out audit.Event
	found := false
	_, err := s.scan(ctx, q+` ORDER BY seq DESC, id LIMIT 1`, args, func(e audit.Event) error {
		out, found = e, true
		return nil
	})
	if err != nil {
		return audit.Event{}, false, fmt.Errorf("chain prefix of tenant %q: %w", tenantID, err)
	}
	return out, found, nil
}

// DeleteChainPrefixes implements audit.RetentionStore. A month partition
// whose rows are all due, for every tenant in it, is dropped whole (cheap,
// immediate); for the rest a DELETE mutation per tenant rewrites the parts
// that hold due rows. It waits for the mutations to finish.
func (s *Store) DeleteChainPrefixes(ctx context.Context, through map[string]int64) (int64, error) {
	if len(through) == 0 {
		return 0, nil
	}
	type cell struct {
		maxSeq int64
		rows   uint64
	}
	parts := map[uint32]map[string]cell{}
	rows, err := s.conn.Query(ctx, `SELECT toYYYYMM(ts) AS p, tenant_id, toInt64(max(seq)), count()
		FROM `+s.db+`.audit_trail GROUP BY p, tenant_id`)
	if err != nil {
		return 0, fmt.Errorf("retention: partitions: %w", err)
	}
	for rows.Next() {
		var (
			p      uint32
			tenant string
			c      cell
		)
		if err := rows.Scan(&p, &tenant, &c.maxSeq, &c.rows); err != nil {
			rows.Close()
			return 0, fmt.Errorf("retention: partitions: %w", err)
		}
		if parts[p] == nil {
			parts[p] = map[string]cell{}
		}
		parts[p][tenant] = c
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("retention: partitions: %w", err)
	}
	var drop []uint32
	var deleted int64
	for p, tenants := range parts {
		whole := true
		var n uint64
		for tenant, c := range tenants {
			seq, ok := through[tenant]
			if !ok || c.maxSeq > seq {
				whole = false
				break
			}
			n += c.rows
		}
		if whole {
			drop = append(drop, p)
			deleted += int64(n)
		}
	}
	sort.Slice(drop, func(i, j int) bool { return drop[i] < drop[j] })
	for _, p := range drop {
		if err := s.conn.Exec(ctx, `ALTER TABLE `+s.db+`.audit_trail DROP PARTITION `+strconv.FormatUint(uint64(p), 10)); err != nil {
			return deleted, fmt.Errorf("retention: drop partition %d: %w", p, err)
		}
	}
	tenants := make([]string, 0, len(through))
	for t := range through {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	mutated := false
	for _, tenant := range tenants {
		var n uint64
		if err := s.conn.QueryRow(ctx, `SELECT count() FROM `+s.db+`.audit_trail WHERE tenant_id = ? AND seq <= ?`,
			tenant, through[tenant]).Scan(&n); err != nil {
			return deleted, fmt.Errorf("retention: count expired events of %q: %w", tenant, err)
		}
		if n == 0 {
			continue
		}
		if err := s.conn.Exec(ctx, `ALTER TABLE `+s.db+`.audit_trail DELETE WHERE tenant_id = ? AND seq <= ?`,
			tenant, through[tenant]); err != nil {
			return deleted, fmt.Errorf("retention: delete expired events of %q: %w", tenant, err)
		}
		deleted += int64(n)
		mutated = true
	}
	if mutated {
		return deleted, s.waitMutations(ctx)
	}
	return deleted, nil
}

// RedactBusiness implements audit.RetentionStore. Key columns (subject id)
// cannot be updated in ClickHouse, so the redacted form of each due event
// is appended and the originals are then deleted by one mutation. Until it
// finishes both rows are stored; reads pass on the redacted one only
// (copies), so queries and Verify see one row per event throughout. A
// crash in between is repaired by the next run, which finds the originals
// again and appends exact copies of the redacted rows (deduplicated on
// read).
func (s *Store) RedactBusiness(ctx context.Context, tenantID string, before time.Time) (int64, error) {
	if tenantID == "" {
		return 0, fmt.Errorf("%w: no tenant", audit.ErrInvalidFilter)
	}
	us := ceilMicro(before)
	cond := `tenant_id = ? AND ts <= toDateTime(?) AND ts_unix_us < ? AND ` + businessSQL + ` AND ` + notRedacted
	args := []any{tenantID, floorSec(us), us}
	var (
		batch []audit.Event
		n     int64
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.Append(ctx, batch)
		batch = batch[:0]
		return err
	}
	var c copies // sorted by id, copies of an event shipped twice are adjacent
	_, err := s.scan(ctx, `SELECT `+eventColumns+` FROM `+s.db+`.audit_trail WHERE `+cond+` ORDER BY id`, args, func(e audit.Event) error {
		if !c.fresh(e) {
			return nil
		}
		batch = append(batch, audit.Redact(e))
		n++
		if len(batch) == 10000 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return 0, fmt.Errorf("redact events of tenant %q: %w", tenantID, err)
	}
	if n == 0 {
		return 0, nil
	}
	if err := s.conn.Exec(ctx, `ALTER TABLE `+s.db+`.audit_trail DELETE WHERE `+cond, args...); err != nil {
		return n, fmt.Errorf("redact events of tenant %q: delete originals: %w", tenantID, err)
	}
	return n, s.waitMutations(ctx)
}

// waitMutations polls system.mutations until the table has none running:
// ALTER ... DELETE returns before the parts are rewritten.
func (s *Store) waitMutations(ctx context.Context) error {
	deadline := time.Now().Add(MutationTimeout)
	for {
		var pending uint64
		if err := s.conn.QueryRow(ctx, `SELECT count() FROM system.mutations
			WHERE database = ? AND table = 'audit_trail' AND is_done = 0`, s.db).Scan(&pending); err != nil {
			return fmt.Errorf("wait for mutations: %w", err)
		}
		if pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d mutations of %s.audit_trail still running after %v", pending, s.db, MutationTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
