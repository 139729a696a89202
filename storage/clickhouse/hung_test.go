//go:build integration

package clickhouse

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"postbox/storage/storagetest"
)

// TestAppendToFrozenServerFailsWithinReadTimeout: the ClickHouse host
// freezes (SIGSTOP) while the shipper holds a pooled connection. The next
// INSERT must fail within the read timeout, so the events wait in the outbox
// and the shipper retries, instead of waiting for clickhouse-go's default
// of 5 minutes; after the thaw appends work again.
func TestAppendToFrozenServerFailsWithinReadTimeout(t *testing.T) {
	ctx := context.Background()
	chs := storagetest.NewPrivateClickHouse(t)
	chs.Start()
	store, err := Open(ctx, chs.Addr, "postbox_frozen", WithReadTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	tenant := "frozen-" + time.Now().Format("150405")
	from := 0
	next := func() int { from += 3; return from - 3 }
	if err := store.Append(ctx, benchEvents(tenant, next(), 3)); err != nil {
		t.Fatalf("append before the freeze: %v", err)
	}

	chs.Pause()
	start := time.Now()
	err = store.Append(ctx, benchEvents(tenant, next(), 3))
	took := time.Since(start)
	chs.Resume()
	if err == nil {
		t.Fatal("an append to a frozen server succeeded")
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("append failed with %v, want the read deadline", err)
	}
	if took > 20*time.Second {
		t.Errorf("append failed only after %v, want within a few read timeouts of 2 s", took.Round(time.Second))
	}
	t.Logf("append to the frozen server failed after %v: %v", took.Round(100*time.Millisecond), err)

	deadline := time.Now().Add(30 * time.Second)
	for {
		err := store.Append(ctx, benchEvents(tenant, next(), 3))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("append after the thaw: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
