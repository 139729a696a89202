//go:build integration

package main

import (
	"context"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"postbox/storage/postgres"
	"postbox/storage/storagetest"
)

// crashed is a lease holder that dies: it never releases its lease.
type crashed struct{ jobLeases }

func (crashed) ReleaseLease(context.Context, string, string) error { return nil }

// TestPeriodicJobRunsOnOneReplica: two replicas (each with its own
// connection pool) run the same periodic job against one PostgreSQL. Per
// period the job runs once, not once per replica; when the holder stops
// the other takes over at its next period, and when a holder dies without
// releasing, the other takes over once the lease expired.
func TestPeriodicJobRunsOnOneReplica(t *testing.T) {
	t.Parallel()
	dsn := storagetest.FreshPostgres(t)
	open := func() jobLeases {
		s, err := postgres.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	const every = 400 * time.Millisecond
	type run struct {
		who string
		at  time.Time
	}
	var mu sync.Mutex
	var runs []run
	start := func(who string, leases jobLeases) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		p := &periodic{leases: leases, holder: who, log: log}
		go func() {
			defer close(done)
			p.run(ctx, "test-job", 0, every, func(context.Context) {
				mu.Lock()
				runs = append(runs, run{who, time.Now()})
				mu.Unlock()
			})
		}()
		return func() { cancel(); <-done }
	}
	ranBy := func(who string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range runs {
			if r.who == who {
				n++
			}
		}
		return n
	}
	// checkOnce asserts no two runs (of any replica) fell into one period.
	checkOnce := func(phase string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		sort.Slice(runs, func(i, j int) bool { return runs[i].at.Before(runs[j].at) })
		for i := 1; i < len(runs); i++ {
			if gap := runs[i].at.Sub(runs[i-1].at); gap < every/2 {
				t.Fatalf("%s: the job ran twice within %v (%s, then %s): both replicas did the work", phase, gap, runs[i-1].who, runs[i].who)
			}
		}
	}

	stopA := start("a", open())
	time.Sleep(every / 4) // a takes the lease first
	stopB := start("b", crashed{open()})
	time.Sleep(8 * every)
	checkOnce("two replicas")
	if a, b := ranBy("a"), ranBy("b"); a < 4 || b != 0 {
		t.Fatalf("two replicas over 8 periods: a ran %d times, b %d; want a about 8 times and b never", a, b)
	}

	// a stops (a rolling update): it releases, b takes over at its next
	// period (which may come sooner than a's would have) and keeps it.
	stopA()
	eventually(t, 4*every, "b did not take over after a stopped", func() bool { return ranBy("b") > 0 })
	mu.Lock()
	runs = nil
	mu.Unlock()
	time.Sleep(4 * every)
	checkOnce("b alone")
	if n := ranBy("b"); n < 2 {
		t.Fatalf("b ran %d times in 4 periods after taking over", n)
	}

	// b dies without releasing; a new replica c takes over after the
	// lease (1.5 periods) expired, not before.
	stopB()
	mu.Lock()
	died := time.Now()
	mu.Unlock()
	stopC := start("c", open())
	defer stopC()
	eventually(t, 6*every, "c did not take over after b died", func() bool { return ranBy("c") > 0 })
	mu.Lock()
	var first time.Time
	for _, r := range runs {
		if r.who == "c" && (first.IsZero() || r.at.Before(first)) {
			first = r.at
		}
	}
	mu.Unlock()
	if first.Sub(died) < every/2 {
		t.Fatalf("c ran %v after b died, before b's lease could expire", first.Sub(died))
	}
	t.Logf("c took over %v after b died", first.Sub(died).Round(10*time.Millisecond))
	checkOnce("after b died")
}
