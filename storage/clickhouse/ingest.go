package clickhouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"postbox/audit"
	"postbox/storage/sqldb"
)

// IngestConfig describes one ingest measurement (MeasureIngest).
type IngestConfig struct {
	Events int           // backlog to ship (default 1,000,000)
	Batch  int           // shipper read batch; 0 takes audit.Shipper's production default
	Insert int           // events per ClickHouse INSERT; 0 takes the production default
	Stall  time.Duration // fail when nothing is shipped for this long (default 1 min)
	// CPU, when set, is read right before and after shipping; the
	// difference goes to IngestResult.CPU (see LocalCPU).
	CPU func() (map[string]time.Duration, error)
	// Keep leaves the generated events in both databases; by default they
	// are deleted afterwards (outbox rows at once, ClickHouse rows by an
	// asynchronous mutation).
	Keep bool
}

// IngestResult is what MeasureIngest measured. Read, Append and Mark are
// the summed times of the shipper's three steps; they overlap, so the
// busiest one bounds the rate.
type IngestResult struct {
	Events             int
	Batch, Insert      int           // read batch and INSERT size in effect
	Elapsed            time.Duration // first read to last mark
	PerSecond          float64
	Read, Append, Mark time.Duration
	Fill               time.Duration // queuing the backlog (not part of the rate)
	Tenant             string        // the generated tenant id
	// CPU time used while shipping, per process group (IngestConfig.CPU).
	CPU map[string]time.Duration
	// PeakHeap is the most heap memory in live and unswept objects seen
	// while shipping (sampled every 20 ms; the whole process).
	PeakHeap uint64
}

// heapPeak samples the process's heap objects until stop is closed.
func heapPeak(stop <-chan struct{}, peak *atomic.Uint64) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		metrics.Read(s)
		if v := s[0].Value.Uint64(); v > peak.Load() {
			peak.Store(v)
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// MeasureIngest measures the sustained ingest rate from the PostgreSQL
// outbox to ClickHouse: it queues a backlog of synthetic events of a fresh
// tenant (FillOutbox), runs the production shipper (audit.Shipper.Run)
// until every one is marked shipped, and checks that ClickHouse holds each
// exactly once by id. db must be PostgreSQL and ch migrated. Use scratch
// databases: the backlog goes through the real outbox.
func MeasureIngest(ctx context.Context, db *sqldb.Store, ch *Store, cfg IngestConfig) (IngestResult, error) {
	if db.Dialect() != sqldb.Postgres {
		return IngestResult{}, errors.New("measure ingest: the outbox must be PostgreSQL")
	}
	if cfg.Events <= 0 {
		cfg.Events = 1_000_000
	}
	if cfg.Stall <= 0 {
		cfg.Stall = time.Minute
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	res := IngestResult{Events: cfg.Events, Batch: cfg.Batch, Tenant: "ingest-" + hex.EncodeToString(b[:])}
	t0 := time.Now()
	if err := FillOutbox(ctx, db, res.Tenant, 0, cfg.Events); err != nil {
		return res, err
	}
	res.Fill = time.Since(t0)
	if !cfg.Keep {
		defer func() {
			ctx := context.WithoutCancel(ctx)
			_, _ = db.DB().ExecContext(ctx, `DELETE FROM audit_ship_queue q USING audit_outbox o WHERE o.id = q.id AND o.tenant_id = $1`, res.Tenant)
			_, _ = db.DB().ExecContext(ctx, `DELETE FROM audit_outbox WHERE tenant_id = $1`, res.Tenant)
			_ = ch.conn.Exec(ctx, `ALTER TABLE `+ch.db+`.audit_trail DELETE WHERE tenant_id = ?`, res.Tenant)
		}()
	}

	ob, st := &timedOutbox{Store: db}, &timedStore{Store: ch}
	shipped := make(chan int, 1000)
	sh := &audit.Shipper{Outbox: ob, Store: st, Batch: cfg.Batch, Insert: cfg.Insert, Shipped: func(k int) { shipped <- k },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	res.Batch, res.Insert = sh.BatchSize(), sh.InsertSize()
	var cpu0 map[string]time.Duration
	if cfg.CPU != nil {
		var err error
		if cpu0, err = cfg.CPU(); err != nil {
			return res, fmt.Errorf("measure ingest: cpu: %w", err)
		}
	}
	runtime.GC() // the fill's garbage is not the shipper's
	var peak atomic.Uint64
	stopPeak, peakDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(peakDone); heapPeak(stopPeak, &peak) }()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	t0 = time.Now()
	go func() { defer close(done); sh.Run(runCtx) }()
	stall := time.NewTimer(cfg.Stall)
	var err error
	for got := 0; got < cfg.Events && err == nil; {
		select {
		case k := <-shipped:
			got += k
			stall.Reset(cfg.Stall)
		case <-stall.C:
			err = fmt.Errorf("measure ingest: shipped %d of %d, then nothing for %v", got, cfg.Events, cfg.Stall)
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	res.Elapsed = time.Since(t0)
	if cfg.CPU != nil && err == nil {
		cpu1, cerr := cfg.CPU()
		if cerr != nil {
			err = fmt.Errorf("measure ingest: cpu: %w", cerr)
		}
		res.CPU = map[string]time.Duration{}
		for k, v := range cpu1 {
			res.CPU[k] = v - cpu0[k]
		}
	}
	cancel()
	<-done
	close(stopPeak)
	<-peakDone
	res.PeakHeap = peak.Load()
	if err != nil {
		return res, err
	}
	res.PerSecond = float64(cfg.Events) / res.Elapsed.Seconds()
	res.Read, res.Append, res.Mark = time.Duration(ob.read.Load()), time.Duration(st.append.Load()), time.Duration(ob.mark.Load())
	var n uint64
	if err := ch.conn.QueryRow(ctx, `SELECT uniqExact(id) FROM `+ch.db+`.audit_trail WHERE tenant_id = ?`, res.Tenant).Scan(&n); err != nil {
		return res, fmt.Errorf("measure ingest: count: %w", err)
	}
	if n != uint64(cfg.Events) {
		return res, fmt.Errorf("measure ingest: ClickHouse holds %d distinct events of %d shipped", n, cfg.Events)
	}
	return res, nil
}

// FillOutbox queues n synthetic events of tenant (seq from+1 … from+n) in
// the PostgreSQL outbox and ship queue with one INSERT … SELECT each,
// bypassing RecordEvent: shipping does not look at the chain. Ids grow with
// time like RecordEvent's UUIDv7, so the outbox's primary key is read in
// order as in production; the rows have production sizes (64-character
// hashes, a small details object).
func FillOutbox(ctx context.Context, db *sqldb.Store, tenant string, from, n int) error {
	_, err := db.DB().ExecContext(ctx, `INSERT INTO audit_outbox (id, tenant_id, seq, ts, actor_id, actor_role, type,
		subject_type, subject_id, outcome, client_hash, request_id, details, prev_hash, hash)
		SELECT lpad(to_hex($2 + i * 1000), 16, '0') || '-' || substr(md5($1 || i), 1, 19), $1, i, $2 + i * 1000, 'acc-' || (i % 200), 'caseworker',
			(ARRAY['auth.login','vorgang.status.changed','mailbox.message.sent','intake.upload.completed'])[1 + i % 4],
			'vorgang', 'v-' || (i % 10000), 'success', md5(i::text), 'req-' || i, '{"from":"eingegangen","to":"in_bearbeitung"}',
			md5((i - 1)::text) || md5((i - 1)::text), md5(i::text) || md5(i::text)
		FROM generate_series($3::bigint, $4::bigint) AS i`, tenant, time.Now().Add(-time.Hour).UnixMicro(), from+1, from+n)
	if err != nil {
		return fmt.Errorf("fill outbox: %w", err)
	}
	_, err = db.DB().ExecContext(ctx, `INSERT INTO audit_ship_queue (id, ts)
		SELECT id, ts FROM audit_outbox WHERE tenant_id = $1 AND seq BETWEEN $2 AND $3`, tenant, from+1, from+n)
	if err != nil {
		return fmt.Errorf("fill ship queue: %w", err)
	}
	if _, err := db.DB().ExecContext(ctx, `ANALYZE audit_outbox, audit_ship_queue`); err != nil {
		return fmt.Errorf("fill outbox: analyze: %w", err)
	}
	return nil
}

// timedOutbox and timedStore sum the time of each shipper step.
type timedOutbox struct {
	*sqldb.Store
	read, mark atomic.Int64
}

func (o *timedOutbox) PendingEventsAfter(ctx context.Context, after *audit.Cursor, limit int) ([]audit.Event, error) {
	t0 := time.Now()
	defer func() { o.read.Add(int64(time.Since(t0))) }()
	return o.Store.PendingEventsAfter(ctx, after, limit)
}

func (o *timedOutbox) MarkBatchShipped(ctx context.Context, batch []audit.Cursor) error {
	t0 := time.Now()
	defer func() { o.mark.Add(int64(time.Since(t0))) }()
	return o.Store.MarkBatchShipped(ctx, batch)
}

// timedStore times appends: whole Appends, or for streams from opening to
// the end of Commit.
type timedStore struct {
	*Store
	append atomic.Int64
}

func (s *timedStore) Append(ctx context.Context, evs []audit.Event) error {
	t0 := time.Now()
	defer func() { s.append.Add(int64(time.Since(t0))) }()
	return s.Store.Append(ctx, evs)
}

func (s *timedStore) OpenAppend(ctx context.Context) (audit.AppendStream, error) {
	st, err := s.Store.OpenAppend(ctx)
	if err != nil {
		return nil, err
	}
	return &timedStream{AppendStream: st, s: s, t0: time.Now()}, nil
}

type timedStream struct {
	audit.AppendStream
	s  *timedStore
	t0 time.Time
}

func (t *timedStream) Commit(ctx context.Context) error {
	defer func() { t.s.append.Add(int64(time.Since(t.t0))) }()
	return t.AppendStream.Commit(ctx)
}
