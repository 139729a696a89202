package bench

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"postbox/audit"
	"postbox/storage/clickhouse"
)

const (
	historyVorgaenge = 200_000 // each gets n/200,000 events spread over the year
)

var historyYear = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// GenerateHistory appends up to n events of one tenant through the store's
// own Append (batches of 50,000 from two goroutines): one year, 200,000
// Vorgänge, full-length ids and hashes. It stops at the deadline and
// returns how many it wrote.
func GenerateHistory(ctx context.Context, store audit.EventStore, tenant string, n int64, deadline time.Time) (int64, error) {
	const batch = 50_000
	span := int64(365 * 24 * time.Hour / time.Microsecond)
	var next, written atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			evs := make([]audit.Event, 0, batch)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				start := next.Add(batch) - batch
				if start >= n {
					return
				}
				evs = evs[:0]
				for i := start; i < min(start+batch, n); i++ {
					h := sha256.Sum256([]byte(strconv.FormatInt(i, 10)))
					m := md5.Sum([]byte(tenant + strconv.FormatInt(i, 10)))
					evs = append(evs, audit.Event{
						ID: hex.EncodeToString(m[:]), TenantID: tenant, Seq: i + 1,
						Time:    historyYear.Add(time.Duration(i*(span/n)) * time.Microsecond),
						ActorID: "acc-" + strconv.FormatInt(i%500, 10), ActorRole: "caseworker", Type: "vorgang.status.changed",
						SubjectType: "vorgang", SubjectID: fmt.Sprintf("v-%07d", i%historyVorgaenge), Outcome: "success",
						ClientHash: hex.EncodeToString(m[:8]), RequestID: hex.EncodeToString(m[8:]),
						Details: `{"from":"eingegangen","to":"in_bearbeitung"}`, PrevHash: hex.EncodeToString(h[:]), Hash: hex.EncodeToString(h[:]),
					})
				}
				if err := store.Append(ctx, evs); err != nil {
					errs <- err
					return
				}
				written.Add(int64(len(evs)))
			}
		}()
	}
	wg.Wait()
	close(errs)
	return written.Load(), <-errs
}

// stepEvents: ingest outbox → ClickHouse through the shipper, and the
// auditor's query for one Vorgang's history over millions of events.
func stepEvents(ctx context.Context, r *run) error {
	backlog, history, genLimit := 200_000, int64(10_000_000), 150*time.Second
	if r.opts.Quick {
		backlog, history, genLimit = 5_000, 200_000, 20*time.Second
	}
	db, err := r.freshStore(ctx)
	if err != nil {
		return err
	}
	ch, err := clickhouse.Open(ctx, r.opts.Services.ClickHouseAddr, r.freshClickHouse())
	if err != nil {
		return err
	}
	r.defer_(func() { ch.Close() })
	if _, err := ch.Migrate(ctx); err != nil {
		return err
	}

	// Ingest: the audit engineer's measurement (clickhouse.MeasureIngest:
	// fill the outbox, run the production shipper until all is marked,
	// check ClickHouse holds each event once), one fresh backlog per run.
	var rates, cpuPerEvent []float64
	for range r.runs() {
		res, err := clickhouse.MeasureIngest(ctx, db, ch, clickhouse.IngestConfig{Events: backlog, CPU: clickhouse.LocalCPU})
		if err != nil {
			return err
		}
		rates = append(rates, res.PerSecond)
		var cpu time.Duration
		for _, d := range res.CPU {
			cpu += d
		}
		cpuPerEvent = append(cpuPerEvent, float64(cpu.Microseconds())/float64(res.Events))
		r.logf("shipped %d events in %v: %.0f/s (read %v, append %v, mark %v; CPU %v)", res.Events, res.Elapsed.Round(time.Millisecond),
			res.PerSecond, res.Read.Round(time.Millisecond), res.Append.Round(time.Millisecond), res.Mark.Round(time.Millisecond), res.CPU)
	}
	r.figure(fmt.Sprintf("ingest outbox → ClickHouse (%s-event backlog)", num(float64(backlog))), "events/s", rates,
		"≥ 100,000", func(m float64) bool { return m >= 100_000 }, "clickhouse.MeasureIngest: audit.Shipper, PostgreSQL → ClickHouse")
	r.figure("CPU per shipped event (shipper + PostgreSQL + ClickHouse)", "µs", cpuPerEvent, "", nil,
		"all postgres/clickhouse processes on the machine: other users of the shared servers count too")

	t0 := time.Now()
	got, err := GenerateHistory(ctx, ch, "bench", history, time.Now().Add(genLimit))
	if err != nil {
		return err
	}
	genDur := time.Since(t0).Round(time.Second)
	r.logf("generated %d of %d events in %v", got, history, genDur)
	if got == 0 {
		return fmt.Errorf("no events generated within %v", genLimit)
	}
	vorgaenge := min(got, historyVorgaenge)
	var p50s, p95s []float64
	for run := range r.runs() {
		var ds []time.Duration
		for i := range 20 {
			id := fmt.Sprintf("v-%07d", (int64(run*20+i)*7919)%vorgaenge)
			q0 := time.Now()
			evs, err := ch.Query(ctx, audit.Filter{TenantID: "bench", SubjectType: "vorgang", SubjectID: id})
			if err != nil {
				return err
			}
			ds = append(ds, time.Since(q0))
			if len(evs) == 0 {
				return fmt.Errorf("no history for %s", id)
			}
		}
		slices.Sort(ds)
		p50s = append(p50s, ms(ds[len(ds)/2]))
		p95s = append(p95s, ms(ds[min(len(ds)-1, len(ds)*95/100)]))
	}
	label := fmt.Sprintf("query p95: one Vorgang's history over %s events", num(float64(got)))
	r.figure(label, "ms", p95s, "", nil, "20 queries per run through the Go store")
	r.figure(fmt.Sprintf("query p50: one Vorgang's history over %s events", num(float64(got))), "ms", p50s, "", nil, "")
	r.rep.note("Events: each run queues a fresh %s-event backlog in the outbox (INSERT … SELECT, not timed) and times the production shipper until all "+
		"are marked shipped (clickhouse.MeasureIngest). The query data set is written through the ClickHouse store's own Append (%s events wanted, bounded to %v; %s written "+
		"in %v), one tenant, one year, 200,000 Vorgänge.", num(float64(backlog)), num(float64(history)), genLimit, num(float64(got)), genDur)
	return nil
}
