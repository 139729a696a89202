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

// fillOutbox writes n events of tenant into the PostgreSQL outbox with one
// INSERT … SELECT, bypassing RecordEvent: shipping does not look at the
// chain, and the benchmark measures shipping, not producing. Ids grow with
// time like RecordEvent's UUIDv7, so the outbox's primary key is read in
// order as in production.
func fillOutbox(tb testing.TB, db *sqldb.Store, tenant string, from, n int) {
	tb.Helper()
	_, err := db.DB().ExecContext(context.Background(), `INSERT INTO audit_outbox (id, tenant_id, seq, ts, actor_id, actor_role, type,
		subject_type, subject_id, outcome, client_hash, request_id, details, prev_hash, hash)
		SELECT lpad(to_hex($2 + i * 1000), 16, '0') || '-' || substr(md5($1 || i), 1, 19), $1, i, $2 + i * 1000, 'acc-' || (i % 200), 'caseworker',
			(ARRAY['auth.login','vorgang.status.changed','mailbox.message.sent','intake.upload.completed'])[1 + i % 4],
			'vorgang', 'v-' || (i % 10000), 'success', md5(i::text), 'req-' || i, '{"from":"eingegangen","to":"in_bearbeitung"}',
			md5((i - 1)::text) || md5((i - 1)::text), md5(i::text) || md5(i::text)
		FROM generate_series($3::bigint, $4::bigint) AS i`, tenant, time.Now().Add(-time.Hour).UnixMicro(), from+1, from+n)
	if err != nil {
		tb.Fatal(err)
	}
	_, err = db.DB().ExecContext(context.Background(), `INSERT INTO audit_ship_queue (id, ts)
		SELECT id, ts FROM audit_outbox WHERE tenant_id = $1 AND seq BETWEEN $2 AND $3`, tenant, from+1, from+n)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := db.DB().ExecContext(context.Background(), `ANALYZE audit_outbox, audit_ship_queue`); err != nil {
		tb.Fatal(err)
	}
}

func openPG(tb testing.TB) *sqldb.Store {
	tb.Helper()
	db, err := postgres.Open(context.Background(), storagetest.FreshPostgres(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// stage timers: how long the shipper's three steps took in all, to see
// which one limits the rate.
type timedOutbox struct {
	*sqldb.Store
	read, mark atomic.Int64
}

func (o *timedOutbox) PendingEventsAfter(ctx context.Context, after *audit.Cursor, limit int) ([]audit.Event, error) {
	t0 := time.Now()
	defer func() { o.read.Add(int64(time.Since(t0))) }()
	return o.Store.PendingEventsAfter(ctx, after, limit)
}

func (o *timedOutbox) MarkEventsShipped(ctx context.Context, ids []string) error {
	t0 := time.Now()
	defer func() { o.mark.Add(int64(time.Since(t0))) }()
	return o.Store.MarkEventsShipped(ctx, ids)
}

type timedStore struct {
	*Store
	append atomic.Int64
}

func (s *timedStore) Append(ctx context.Context, evs []audit.Event) error {
	t0 := time.Now()
	defer func() { s.append.Add(int64(time.Since(t0))) }()
	return s.Store.Append(ctx, evs)
}

// BenchmarkShipOutboxToClickHouse ships a backlog of 1M events (or
// POSTBOX_BENCH_SHIP_EVENTS) from the PostgreSQL outbox to ClickHouse
// through audit.Shipper.Run, end to end: read, append, mark, overlapped.
// read-s, append-s and mark-s are the time each step took in all; with
// the steps overlapped, the busiest one bounds the rate.
func BenchmarkShipOutboxToClickHouse(b *testing.B) {
	ctx := context.Background()
	ch := openTestStore(b)
	if _, err := ch.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	db := openPG(b)
	n := 1_000_000 // a backlog big enough to measure a sustained rate
	if v := os.Getenv("POSTBOX_BENCH_SHIP_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	ob, st := &timedOutbox{Store: db}, &timedStore{Store: ch}
	total := 0
	for b.Loop() {
		b.StopTimer()
		fillOutbox(b, db, "bench", total, n)
		shipped := make(chan int, 1000)
		sh := &audit.Shipper{Outbox: ob, Store: st, Batch: 10000, Shipped: func(k int) { shipped <- k }}
		ctx, cancel := context.WithCancel(ctx)
		b.StartTimer()
		go sh.Run(ctx)
		for got := 0; got < n; {
			select {
			case k := <-shipped:
				got += k
			case <-time.After(time.Minute):
				b.Fatalf("shipped %d of %d, then nothing for a minute", got, n)
			}
		}
		b.StopTimer()
		cancel()
		total += n
		b.StartTimer()
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
	for name, d := range map[string]int64{"read-s": ob.read.Load(), "append-s": st.append.Load(), "mark-s": ob.mark.Load()} {
		b.ReportMetric(time.Duration(d).Seconds(), name)
	}
	var rows uint64
	if err := ch.conn.QueryRow(ctx, "SELECT uniqExact(id) FROM "+ch.db+".audit_trail").Scan(&rows); err != nil || rows != uint64(total) {
		b.Fatalf("clickhouse holds %d distinct events, want %d (%v)", rows, total, err)
	}
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
