package storagetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"postbox/storage/sqldb"
)

// testLeases: a periodic job's lease is held by one replica at a time; the
// holder renews it, another takes it only once it expired or was released;
// of many replicas asking at once exactly one wins.
func testLeases(t *testing.T, newStore func(t *testing.T) (*sqldb.Store, []sqldb.Migration)) {
	ctx := context.Background()
	s, _ := newStore(t)
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	s.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	job := "job-" + uuid.NewString()
	take := func(holder string, want bool) {
		t.Helper()
		got, err := s.TryLease(ctx, job, holder, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%s takes the lease at %s: %v, want %v", holder, now.Format(time.TimeOnly), got, want)
		}
	}
	take("a", true)
	take("b", false) // held by a
	advance(50 * time.Second)
	take("a", true) // a renews: now valid until 09:01:50
	advance(30 * time.Second)
	take("b", false) // a's renewed lease still runs
	advance(31 * time.Second)
	take("b", true) // a stopped renewing (died): expired, b takes over
	take("a", false)
	if err := s.ReleaseLease(ctx, job, "a"); err != nil { // not a's any more: no effect
		t.Fatal(err)
	}
	take("a", false)
	if err := s.ReleaseLease(ctx, job, "b"); err != nil {
		t.Fatal(err)
	}
	take("a", true) // released: free at once
	if got, err := s.TryLease(ctx, "other-"+job, "b", time.Minute); err != nil || !got {
		t.Fatalf("a lease of another job: %v %v, want it free", got, err)
	}

	// Many replicas at once on a fresh job: exactly one wins.
	race := "race-" + uuid.NewString()
	var wg sync.WaitGroup
	wins := make(chan string, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := string(rune('a' + i))
			got, err := s.TryLease(ctx, race, holder, time.Minute)
			if err != nil {
				t.Error(err)
			}
			if got {
				wins <- holder
			}
		}()
	}
	wg.Wait()
	close(wins)
	if n := len(wins); n != 1 {
		t.Fatalf("%d replicas won the same lease at once, want 1", n)
	}
}
