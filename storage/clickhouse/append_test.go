//go:build integration

package clickhouse

import (
	"context"
	"testing"
)

// TestAppendWritesOnePart: Append sends a batch as several blocks of one
// INSERT; the server must squash them into one part per month partition,
// or every batch would leave many small parts for the merges to rewrite.
// The batch is read back whole, each event once.
func TestAppendWritesOnePart(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// 3.5 chunks, all within one month of benchEvents' start.
	evs := benchEvents("parts", 0, 3*appendChunk+appendChunk/2)
	if err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	var parts, rows uint64
	if err := s.conn.QueryRow(ctx, `SELECT count(), sum(rows) FROM system.parts WHERE database = ? AND table = 'audit_trail' AND active`,
		s.db).Scan(&parts, &rows); err != nil {
		t.Fatal(err)
	}
	if parts != 1 || rows != uint64(len(evs)) {
		t.Errorf("one Append of %d events left %d active parts with %d rows, want 1 part with all of them", len(evs), parts, rows)
	}
	var distinct uint64
	if err := s.conn.QueryRow(ctx, `SELECT uniqExact(id) FROM `+s.db+`.audit_trail`).Scan(&distinct); err != nil {
		t.Fatal(err)
	}
	if distinct != uint64(len(evs)) {
		t.Errorf("%d distinct events stored, want %d", distinct, len(evs))
	}
}
