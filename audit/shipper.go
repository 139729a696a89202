package audit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
)

// Outbox is the transactional side of event shipping.
type Outbox interface {
	PendingEvents(ctx context.Context, limit int) ([]Event, error)
	MarkEventsShipped(ctx context.Context, ids []string) error
}

// AppendStream is one append of several batches that the store
// acknowledges at once (one ClickHouse INSERT): Add sends events and keeps
// nothing of them, Commit reports whether every event added is stored.
// After a failed Add or Commit, or instead of Commit, Abort; events added
// to an aborted stream may or may not be stored.
type AppendStream interface {
	Add(ctx context.Context, events []Event) error
	Commit(ctx context.Context) error
	Abort()
}

// StreamStore is an event store that can append as a stream; with it the
// pipelined shipper reads small batches and still inserts large ones.
type StreamStore interface {
	OpenAppend(ctx context.Context) (AppendStream, error)
}

// CursorOutbox can read its queue from a position, in the order of
// PendingEvents ((Time, ID) of the events). With it, Run reads the next
// batch while the previous one is appended and marked.
type CursorOutbox interface {
	Outbox
	PendingEventsAfter(ctx context.Context, after *Cursor, limit int) ([]Event, error)
	// MarkBatchShipped is MarkEventsShipped for one result of
	// PendingEventsAfter, given as the events' cursors in its order, so
	// the outbox can mark it by the range it spans.
	MarkBatchShipped(ctx context.Context, batch []Cursor) error
}

// Cursor is the event's position in (Time, ID) order.
func (e Event) Cursor() Cursor { return Cursor{Time: e.Time, ID: e.ID} }

// Shipper moves events from the outbox to the event store. It is
// at-least-once: a crash between Append and MarkEventsShipped appends the
// batch again, which the store's dedupe by event id absorbs.
type Shipper struct {
	Outbox   Outbox
	Store    EventStore
	Batch    int           // events per read, and per Append of a store that cannot stream (default DefaultShipBatch)
	Insert   int           // events per stream append of a StreamStore (default DefaultShipInsert)
	Interval time.Duration // pause when the outbox is empty (default 1 s)
	// MaxBackoff caps the pause between retries while the store or the
	// database is down (default 30 s); the pause starts at Interval and
	// doubles.
	MaxBackoff time.Duration
	Logger     *slog.Logger
	// Shipped, when set, is told how many events each marked batch held.
	Shipped func(n int)
}

// DefaultShipBatch is the shipper's default read batch, and its append
// batch for a store that cannot stream. DefaultShipInsert is how many
// events go into one append of a StreamStore (ClickHouse), in several
// read batches. ClickHouse pays per INSERT and per part its merges
// rewrite. Measured over a 1M backlog PostgreSQL → ClickHouse on the
// shared 2-core machine (BENCHMARKS.md) with inserts of one read batch:
// ClickHouse's CPU per 1M events was 4.4-6.6 s with 10,000 events per
// INSERT, 3.6-3.9 s with 20,000, 2.6-3.6 s with 30,000 and 2.1-2.6 s with
// 50,000; but a read batch of 30,000 meant a peak heap of 83-102 MiB (two
// batches in the pipeline) against 31-34 MiB with 10,000. Streaming gets
// the large INSERT at the small batch's memory: 149k-197k events/s at
// load 3-4 with a peak heap of 35-40 MiB.
const (
	DefaultShipBatch  = 10000
	DefaultShipInsert = 50000
)

func (s *Shipper) batch() int {
	if s.Batch > 0 {
		return s.Batch
	}
	return DefaultShipBatch
}

// BatchSize is the number of events per read in effect.
func (s *Shipper) BatchSize() int { return s.batch() }

// InsertSize is the number of events per stream append in effect (for a
// StreamStore).
func (s *Shipper) InsertSize() int { return s.insertSize() }

func (s *Shipper) insertSize() int {
	if s.Insert > 0 {
		return max(s.Insert, s.batch())
	}
	return max(DefaultShipInsert, s.batch())
}

func (s *Shipper) interval() time.Duration {
	if s.Interval > 0 {
		return s.Interval
	}
	return time.Second
}

func (s *Shipper) maxBackoff() time.Duration {
	if s.MaxBackoff > 0 {
		return s.MaxBackoff
	}
	return 30 * time.Second
}

func (s *Shipper) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// ShipOnce ships up to one batch and reports how many events it shipped.
func (s *Shipper) ShipOnce(ctx context.Context) (int, error) {
	events, err := s.Outbox.PendingEvents(ctx, s.batch())
	if err != nil || len(events) == 0 {
		return 0, err
	}
	if err := s.Store.Append(ctx, events); err != nil {
		return 0, fmt.Errorf("append %d events: %w", len(events), err)
	}
	// PendingEvents reads in the queue's order, so a CursorOutbox can mark
	// the batch by its range (see CursorOutbox.MarkBatchShipped).
	mark := func() error { return s.Outbox.MarkEventsShipped(ctx, ids(events)) }
	if co, ok := s.Outbox.(CursorOutbox); ok {
		mark = func() error { return co.MarkBatchShipped(ctx, cursors(events)) }
	}
	if err := mark(); err != nil {
		return 0, fmt.Errorf("mark %d events shipped: %w", len(events), err)
	}
	if s.Shipped != nil {
		s.Shipped(len(events))
	}
	return len(events), nil
}

func cursors(events []Event) []Cursor {
	out := make([]Cursor, len(events))
	for i, e := range events {
		out[i] = e.Cursor()
	}
	return out
}

func ids(events []Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

// Run ships until ctx ends. While the store or the database is down it
// retries with a growing pause (Interval doubling up to MaxBackoff); events
// wait safely in the outbox meanwhile. With a CursorOutbox the three steps
// overlap: reading batch n+1, appending batch n and marking batch n-1 run
// at once, so the slowest step alone sets the rate.
func (s *Shipper) Run(ctx context.Context) {
	if co, ok := s.Outbox.(CursorOutbox); ok {
		s.runPipelined(ctx, co)
		return
	}
	backoff := s.retry()
	for {
		n, err := s.ShipOnce(ctx)
		wait := s.interval()
		switch {
		case err != nil && ctx.Err() == nil:
			wait = backoff.next()
			s.log().Warn("audit event shipping failed, will retry", "err", err, "retry_in", wait.String())
		case n > 0:
			backoff.reset()
			wait = 0 // more may be waiting
		default:
			backoff.reset()
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

type backoff struct{ cur, start, max time.Duration }

func (s *Shipper) retry() *backoff {
	return &backoff{cur: s.interval(), start: s.interval(), max: s.maxBackoff()}
}

func (b *backoff) next() time.Duration {
	d := b.cur
	b.cur = min(b.cur*2, b.max)
	return d
}

func (b *backoff) reset() { b.cur = b.start }

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// runPipelined: a reader walks the queue with a cursor and hands batches to
// an appender, which hands their cursors to a marker. The hand-over to the
// appender is unbuffered, so at most two batches of events are in memory:
// the one being appended and the one read ahead. Events that commit late with an earlier time
// than the cursor are found when the reader reaches the end of the queue:
// it then waits until every batch in flight is marked and starts over.
func (s *Shipper) runPipelined(ctx context.Context, co CursorOutbox) {
	// toAppend carries read batches; nil asks a streaming appender to
	// commit what it holds now (the reader is about to wait for it).
	toAppend := make(chan []Event)
	toMark := make(chan marking, 1)
	var inflight atomic.Int64 // batches read but not yet marked
	var restart atomic.Bool   // a stream failed: its batches must be read again
	done := make(chan struct{}, 2)

	if ss, ok := s.Store.(StreamStore); ok {
		go func() {
			defer func() { done <- struct{}{} }()
			s.appendStreams(ctx, ss, toAppend, toMark, &inflight, &restart)
		}()
	} else {
		go func() {
			defer func() { done <- struct{}{} }()
			s.appendBatches(ctx, toAppend, toMark)
		}()
	}
	go func() { // marker
		defer func() { done <- struct{}{} }()
		for {
			var m marking
			select {
			case m = <-toMark:
			case <-ctx.Done():
				return
			}
			if !s.until(ctx, "mark shipped", len(m.cursors), func() error { return co.MarkBatchShipped(ctx, m.cursors) }) {
				return
			}
			inflight.Add(-int64(m.batches))
			if s.Shipped != nil {
				s.Shipped(len(m.cursors))
			}
		}
	}()
	defer func() {
		close(toAppend)
		<-done
		<-done
	}()

	// commit has a streaming appender commit what it holds now.
	commit := func() bool {
		select {
		case toAppend <- nil:
			return true
		case <-ctx.Done():
			return false
		}
	}
	// drained commits and waits until every batch handed on is marked (or
	// dropped by a failed stream).
	drained := func() bool {
		if !commit() {
			return false
		}
		for inflight.Load() > 0 {
			if !sleep(ctx, 2*time.Millisecond) {
				return false
			}
		}
		return true
	}
	batch := s.batch()
	backoff := s.retry()
	var after *Cursor
	for ctx.Err() == nil {
		if restart.Swap(false) { // read the failed stream's events again
			after = nil
			if !drained() {
				return
			}
		}
		evs, err := co.PendingEventsAfter(ctx, after, batch)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// An open stream would otherwise wait for the database.
			if !commit() {
				return
			}
			wait := backoff.next()
			s.log().Warn("reading audit outbox failed, will retry", "err", err, "retry_in", wait.String())
			sleep(ctx, wait)
			continue
		}
		backoff.reset()
		if len(evs) == 0 {
			if after != nil { // end of a pass: start over for late commits
				after = nil
				if !drained() {
					return
				}
				continue
			}
			sleep(ctx, s.interval())
			continue
		}
		inflight.Add(1)
		select {
		case toAppend <- evs:
		case <-ctx.Done():
			return
		}
		last := evs[len(evs)-1]
		after = &Cursor{Time: last.Time, ID: last.ID}
		if len(evs) < batch {
			after = nil
			if !drained() {
				return
			}
		}
	}
}

// marking is what the marker gets: the cursors of one or more
// consecutive batches, in queue order.
type marking struct {
	cursors []Cursor
	batches int
}

// keep copies the positions of evs onto cs: only they go on to the
// marker, so the events can be freed. The ids are copied because a store
// may slice them from one larger string per event.
func keep(cs []Cursor, evs []Event) []Cursor {
	for _, e := range evs {
		cs = append(cs, Cursor{Time: e.Time, ID: strings.Clone(e.ID)})
	}
	return cs
}

// appendBatches appends each batch on its own, retrying it until the
// store takes it.
func (s *Shipper) appendBatches(ctx context.Context, toAppend <-chan []Event, toMark chan<- marking) {
	for evs := range toAppend {
		if evs == nil {
			continue
		}
		if !s.until(ctx, "append", len(evs), func() error { return s.Store.Append(ctx, evs) }) {
			return
		}
		select {
		case toMark <- marking{cursors: keep(nil, evs), batches: 1}:
		case <-ctx.Done():
			return
		}
	}
}

// appendStreams puts consecutive batches into one stream until it holds
// InsertSize events or the reader asks for a commit, then hands the
// cursors on. A batch is not kept once added, so a failed stream cannot be
// retried: its batches are dropped from the count in flight and the
// reader starts over at the head of the queue, where they still wait.
func (s *Shipper) appendStreams(ctx context.Context, ss StreamStore, toAppend <-chan []Event, toMark chan<- marking,
	inflight *atomic.Int64, restart *atomic.Bool) {
	b := s.retry()
	insert := s.insertSize()
	for {
		var first []Event
		for first == nil {
			var ok bool
			select {
			case first, ok = <-toAppend:
				if !ok {
					return
				}
			case <-ctx.Done():
				return
			}
		}
		m := marking{batches: 1}
		st, err := ss.OpenAppend(ctx)
		if err == nil {
			err = st.Add(ctx, first)
		}
		m.cursors = keep(make([]Cursor, 0, insert), first)
		first = nil
		for err == nil && len(m.cursors) < insert {
			evs, ok := <-toAppend
			if !ok {
				st.Abort()
				return
			}
			if evs == nil {
				break // the reader waits for this stream
			}
			m.batches++
			err = st.Add(ctx, evs)
			m.cursors = keep(m.cursors, evs)
		}
		if err == nil {
			err = st.Commit(ctx)
		}
		if err != nil {
			if st != nil {
				st.Abort()
			}
			inflight.Add(-int64(m.batches))
			restart.Store(true)
			if ctx.Err() != nil {
				return
			}
			wait := b.next()
			s.log().Warn("audit event shipping failed, will read the events again", "step", "append", "events", len(m.cursors),
				"err", err, "retry_in", wait.String())
			if !sleep(ctx, wait) {
				return
			}
			continue
		}
		b.reset()
		select {
		case toMark <- m:
		case <-ctx.Done():
			return
		}
	}
}

// until retries fn with backoff until it succeeds (true) or ctx ends.
func (s *Shipper) until(ctx context.Context, what string, n int, fn func() error) bool {
	b := s.retry()
	for {
		err := fn()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		wait := b.next()
		s.log().Warn("audit event shipping failed, will retry", "step", what, "events", n, "err", err, "retry_in", wait.String())
		if !sleep(ctx, wait) {
			return false
		}
	}
}
