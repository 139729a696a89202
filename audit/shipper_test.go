package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"
)

// memOutbox is a queue ordered by (Time, ID), like the SQL outbox.
type memOutbox struct {
	mu         sync.Mutex
	batchMarks int // MarkBatchShipped calls
	queued     map[string]Event
	reads      int
	readErr    error
}

func (o *memOutbox) add(evs ...Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range evs {
		o.queued[e.ID] = e
	}
}

func (o *memOutbox) PendingEvents(ctx context.Context, limit int) ([]Event, error) {
	return o.PendingEventsAfter(ctx, nil, limit)
}

func (o *memOutbox) PendingEventsAfter(_ context.Context, after *Cursor, limit int) ([]Event, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reads++
	if o.readErr != nil {
		return nil, o.readErr
	}
	var out []Event
	for _, e := range o.queued {
		if after == nil || e.Time.After(after.Time) || e.Time.Equal(after.Time) && e.ID > after.ID {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].ID < out[j].ID
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (o *memOutbox) MarkEventsShipped(_ context.Context, ids []string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, id := range ids {
		delete(o.queued, id)
	}
	return nil
}

func (o *memOutbox) MarkBatchShipped(ctx context.Context, batch []Cursor) error {
	o.mu.Lock()
	o.batchMarks++
	o.mu.Unlock()
	ids := make([]string, len(batch))
	for i, c := range batch {
		ids[i] = c.ID
	}
	return o.MarkEventsShipped(ctx, ids)
}

func (o *memOutbox) left() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.queued)
}

// flakyStore counts appends per event id and fails while down is set.
type flakyStore struct {
	EventStore
	mu       sync.Mutex
	down     bool
	got      map[string]int
	appends  int
	failures int
	maxBatch int
}

func (s *flakyStore) Append(_ context.Context, evs []Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		s.failures++
		return errors.New("connection refused")
	}
	s.appends++
	s.maxBatch = max(s.maxBatch, len(evs))
	for _, e := range evs {
		s.got[e.ID]++
	}
	return nil
}

func (s *flakyStore) setDown(d bool) {
	s.mu.Lock()
	s.down = d
	s.mu.Unlock()
}

func events(from, n int, at time.Time) []Event {
	out := make([]Event, n)
	for i := range out {
		out[i] = Event{ID: fmt.Sprintf("e-%07d", from+i), TenantID: "k", Type: "x.y.z", Time: at.Add(time.Duration(from+i) * time.Microsecond)}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestShipperRunPipelinedRetriesAndShipsEverything(t *testing.T) {
	ob := &memOutbox{queued: map[string]Event{}}
	st := &flakyStore{got: map[string]int{}}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ob.add(events(0, 2500, t0)...)
	st.setDown(true)
	var shipped sync.Map
	sh := &Shipper{Outbox: ob, Store: st, Batch: 1000, Interval: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Shipped: func(n int) { shipped.Store(time.Now(), n) }}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { sh.Run(ctx); close(stopped) }()

	// While the store is down nothing is marked; events keep coming.
	waitFor(t, "retries", func() bool { st.mu.Lock(); defer st.mu.Unlock(); return st.failures >= 4 })
	ob.add(events(2500, 700, t0)...)
	if ob.left() != 3200 {
		t.Fatalf("events marked while the store was down: %d left", ob.left())
	}
	st.setDown(false)
	waitFor(t, "outbox drained", func() bool { return ob.left() == 0 })

	// A late commit: an event older than everything shipped so far.
	late := Event{ID: "late", TenantID: "k", Type: "x.y.z", Time: t0.Add(-time.Hour)}
	ob.add(late)
	waitFor(t, "late event", func() bool { return ob.left() == 0 })
	cancel()
	<-stopped

	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.got) != 3201 {
		t.Fatalf("store got %d distinct events, want 3201", len(st.got))
	}
	if st.maxBatch > 1000 {
		t.Errorf("a batch of %d events, limit 1000", st.maxBatch)
	}
	if st.got["late"] != 1 {
		t.Errorf("late event appended %d times", st.got["late"])
	}
	n := 0
	shipped.Range(func(_, v any) bool { n += v.(int); return true })
	if n < 3201 {
		t.Errorf("Shipped reported %d events", n)
	}
}

func TestShipperBacksOffWhileTheOutboxIsDown(t *testing.T) {
	ob := &memOutbox{queued: map[string]Event{}, readErr: errors.New("database down")}
	st := &flakyStore{got: map[string]int{}}
	sh := &Shipper{Outbox: ob, Store: st, Interval: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	sh.Run(ctx)
	// 10+20+40+40+... ms: about a dozen reads in 500 ms, not hundreds.
	if ob.reads < 5 || ob.reads > 20 {
		t.Errorf("%d reads in 500 ms with backoff 10..40 ms", ob.reads)
	}
}

func TestShipperSequentialWithoutCursor(t *testing.T) {
	ob := &memOutbox{queued: map[string]Event{}}
	ob.add(events(0, 25, time.Now())...)
	st := &flakyStore{got: map[string]int{}}
	sh := &Shipper{Outbox: struct{ Outbox }{ob}, Store: st, Batch: 10, Interval: 5 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for deadline := time.Now().Add(10 * time.Second); ob.left() > 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	sh.Run(ctx)
	if len(st.got) != 25 || st.appends != 3 {
		t.Errorf("got %d events in %d appends", len(st.got), st.appends)
	}
}

// TestShipOnceMarksByBatch: ShipOnce (postbox audit verify ships what is
// pending with it) marks a CursorOutbox's batch as one range, batch by
// batch, until nothing is left.
func TestShipOnceMarksByBatch(t *testing.T) {
	ob := &memOutbox{queued: map[string]Event{}}
	st := &flakyStore{got: map[string]int{}}
	ob.add(events(0, 5, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))...)
	sh := &Shipper{Outbox: ob, Store: st, Batch: 3}
	for _, want := range []int{3, 2, 0} {
		n, err := sh.ShipOnce(context.Background())
		if err != nil || n != want {
			t.Fatalf("ShipOnce shipped %d (%v), want %d", n, err, want)
		}
	}
	if ob.left() != 0 || ob.batchMarks != 2 || len(st.got) != 5 {
		t.Errorf("%d left, %d batch marks, %d events stored; want 0, 2, 5", ob.left(), ob.batchMarks, len(st.got))
	}
}

// streamStore is flakyStore as a StreamStore: a stream's events count as
// stored only when Commit succeeds; while down, opening, adding or
// committing fails (the last stream fails at Commit).
type streamStore struct {
	*flakyStore
	inserts []int // events per committed stream
}

type memStream struct {
	s   *streamStore
	evs []Event
}

func (s *streamStore) OpenAppend(context.Context) (AppendStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		s.failures++
		return nil, errors.New("connection refused")
	}
	return &memStream{s: s}, nil
}

func (m *memStream) Add(_ context.Context, evs []Event) error {
	m.evs = append(m.evs, evs...)
	return nil
}

func (m *memStream) Commit(context.Context) error {
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	if m.s.down {
		m.s.failures++
		return errors.New("connection reset")
	}
	for _, e := range m.evs {
		m.s.got[e.ID]++
	}
	m.s.inserts = append(m.s.inserts, len(m.evs))
	return nil
}

func (m *memStream) Abort() {}

// TestShipperStreamsBatchesIntoLargeInserts: with a StreamStore, read
// batches of 100 go into streams of up to 500; a stream that fails is read
// again from the outbox (its events were not kept), so every event
// arrives, including those that were in flight when the store went down.
func TestShipperStreamsBatchesIntoLargeInserts(t *testing.T) {
	ob := &memOutbox{queued: map[string]Event{}}
	st := &streamStore{flakyStore: &flakyStore{got: map[string]int{}}}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ob.add(events(0, 2000, t0)...)
	sh := &Shipper{Outbox: ob, Store: st, Batch: 100, Insert: 500, Interval: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { sh.Run(ctx); close(stopped) }()
	waitFor(t, "outbox drained", func() bool { return ob.left() == 0 })

	st.setDown(true)
	ob.add(events(2000, 1234, t0)...)
	waitFor(t, "failed streams", func() bool { st.mu.Lock(); defer st.mu.Unlock(); return st.failures >= 3 })
	if ob.left() != 1234 {
		t.Fatalf("events marked while the store was down: %d left of 1234", ob.left())
	}
	st.setDown(false)
	waitFor(t, "outbox drained again", func() bool { return ob.left() == 0 })
	cancel()
	<-stopped

	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.got) != 3234 {
		t.Fatalf("store got %d distinct events, want 3234", len(st.got))
	}
	largest := 0
	for _, n := range st.inserts {
		if n > 500 {
			t.Errorf("a stream of %d events, limit 500", n)
		}
		largest = max(largest, n)
	}
	if largest != 500 {
		t.Errorf("largest stream %d events, want 500 (five read batches)", largest)
	}
}
