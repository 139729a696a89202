//go:build integration

package clickhouse

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"postbox/audit"
	"postbox/storage/postgres"
	"postbox/storage/sqldb"
	"postbox/storage/storagetest"
)

func openPG(tb testing.TB) *sqldb.Store {
	tb.Helper()
	db, err := postgres.Open(context.Background(), storagetest.FreshPostgres(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// TestMarkBatchShippedKeepsLateEvents: marking a batch by the range it
// spans must not take an event that committed into that range after the
// batch was read (its ts was taken before a slower commit); it stays
// queued. A batch partly marked already (by another shipper) is marked
// without error.
func TestMarkBatchShippedKeepsLateEvents(t *testing.T) {
	ctx := context.Background()
	db := openPG(t)
	if err := FillOutbox(ctx, db, "late", 0, 100); err != nil {
		t.Fatal(err)
	}
	batch, err := db.PendingEventsAfter(ctx, nil, 50)
	if err != nil || len(batch) != 50 {
		t.Fatalf("read %d events (%v), want 50", len(batch), err)
	}
	// A late commit between the batch's 10th and 11th event.
	late := batch[10]
	late.ID, late.Seq = batch[10].ID+"-late", 1000
	if _, err := db.DB().ExecContext(ctx, `INSERT INTO audit_outbox (id, tenant_id, seq, ts, actor_id, actor_role, type,
		subject_type, subject_id, outcome, client_hash, request_id, details, prev_hash, hash)
		SELECT $1, tenant_id, $2, ts, actor_id, actor_role, type, subject_type, subject_id, outcome, client_hash, request_id,
		details, prev_hash, hash FROM audit_outbox WHERE id = $3`, late.ID, late.Seq, batch[10].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DB().ExecContext(ctx, `INSERT INTO audit_ship_queue (id, ts) SELECT id, ts FROM audit_outbox WHERE id = $1`, late.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkEventsShipped(ctx, []string{batch[0].ID, batch[49].ID}); err != nil { // another shipper was quicker
		t.Fatal(err)
	}
	if err := db.MarkBatchShipped(ctx, cursors(batch)); err != nil {
		t.Fatal(err)
	}
	left, err := db.PendingEvents(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, e := range left {
		ids[e.ID] = true
	}
	if len(left) != 51 || !ids[late.ID] {
		t.Errorf("after marking the batch %d events are queued (late event queued: %v), want the 50 unread and the late one", len(left), ids[late.ID])
	}
	for _, e := range batch {
		if ids[e.ID] {
			t.Errorf("event %s of the marked batch is still queued", e.ID)
		}
	}
	// Without a late event the range alone marks the next batch.
	next, err := db.PendingEventsAfter(ctx, &audit.Cursor{Time: late.Time, ID: late.ID}, 20)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.MarkBatchShipped(ctx, cursors(next)); err != nil {
		t.Fatal(err)
	}
	if n, _, err := db.OutboxDepth(ctx); err != nil || n != 31 {
		t.Errorf("outbox depth %d (%v), want 31", n, err)
	}
}

func cursors(evs []audit.Event) []audit.Cursor {
	out := make([]audit.Cursor, len(evs))
	for i, e := range evs {
		out[i] = e.Cursor()
	}
	return out
}

// BenchmarkShipOutboxToClickHouse ships a backlog of 1M events (or
// POSTBOX_BENCH_SHIP_EVENTS) from the PostgreSQL outbox to ClickHouse
// through audit.Shipper.Run, end to end, with MeasureIngest (which the
// bench command calls too). read-s, append-s and mark-s are the time each
// step took in all; with the steps overlapped, the busiest one bounds the
// rate. POSTBOX_BENCH_SHIP_BATCH and POSTBOX_BENCH_SHIP_INSERT override
// the shipper's read batch and INSERT size.
func BenchmarkShipOutboxToClickHouse(b *testing.B) {
	ctx := context.Background()
	ch := openTestStore(b)
	if _, err := ch.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	db := openPG(b)
	cfg := IngestConfig{Events: envInt(b, "POSTBOX_BENCH_SHIP_EVENTS", 1_000_000), Batch: envInt(b, "POSTBOX_BENCH_SHIP_BATCH", 0),
		Insert: envInt(b, "POSTBOX_BENCH_SHIP_INSERT", 0),
		CPU:    LocalCPU}
	var sum IngestResult
	for b.Loop() {
		res, err := MeasureIngest(ctx, db, ch, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("batch %d, insert %d: %d events in %v: %.0f/s (read %v, append %v, mark %v; fill %v); CPU s: go %.1f, postgres %.1f, clickhouse %.1f; peak heap %d MiB",
			res.Batch, res.Insert, res.Events, res.Elapsed.Round(time.Millisecond), res.PerSecond, res.Read.Round(time.Millisecond),
			res.Append.Round(time.Millisecond), res.Mark.Round(time.Millisecond), res.Fill.Round(time.Millisecond),
			res.CPU["go"].Seconds(), res.CPU["postgres"].Seconds(), res.CPU["clickhouse"].Seconds(), res.PeakHeap>>20)
		sum.Events += res.Events
		sum.Elapsed += res.Elapsed
		sum.Read, sum.Append, sum.Mark = sum.Read+res.Read, sum.Append+res.Append, sum.Mark+res.Mark
	}
	b.ReportMetric(float64(sum.Events)/sum.Elapsed.Seconds(), "events/s")
	b.ReportMetric(sum.Read.Seconds()/float64(b.N), "read-s")
	b.ReportMetric(sum.Append.Seconds()/float64(b.N), "append-s")
	b.ReportMetric(sum.Mark.Seconds()/float64(b.N), "mark-s")
}

func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return n
}

// BenchmarkRecordEvent measures the producing side: one event per
// transaction through tx.RecordEvent on PostgreSQL, as the services write
// them, from 8 goroutines on 8 tenants (chains do not contend) and on one
// tenant (every writer waits for the chain head).
func BenchmarkRecordEvent(b *testing.B) {
	db := openPG(b)
	for _, tc := range []struct {
		name    string
		tenants int
	}{{"8Tenants", 8}, {"1Tenant", 1}} {
		b.Run(tc.name, func(b *testing.B) {
			var next atomic.Int64
			b.SetParallelism(4) // 8 goroutines on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				tenant := fmt.Sprintf("rec-%s-%d", tc.name, next.Add(1)%int64(tc.tenants))
				ctx := context.Background()
				for pb.Next() {
					err := db.InTx(ctx, func(tx *sqldb.Tx) error {
						_, err := tx.RecordEvent(ctx, audit.Event{TenantID: tenant, ActorID: "acc-1", ActorRole: "caseworker",
							Type: "vorgang.status.changed", SubjectType: "vorgang", SubjectID: "v-1", Details: `{"from":"eingegangen","to":"in_bearbeitung"}`})
						return err
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
