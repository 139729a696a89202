package sqlite_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"postbox/audit"
	"postbox/storage/sqldb"
	"postbox/storage/sqlite"
)

// TestShipperOnTheEmbeddedStore runs the pipelined shipper as the embedded
// default does: outbox and event table in one SQLite file, the queue read
// with a cursor (row values) while earlier batches are appended and marked.
func TestShipperOnTheEmbeddedStore(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "postbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var want []audit.Event
	record := func(n int) {
		for i := 0; i < n; i++ {
			err := db.InTx(ctx, func(tx *sqldb.Tx) error {
				e, err := tx.RecordEvent(ctx, audit.Event{TenantID: []string{"k1", "k2"}[i%2], Type: "vorgang.status.changed",
					ActorID: "acc-1", ActorRole: "caseworker", SubjectType: "vorgang", SubjectID: fmt.Sprint(i)})
				want = append(want, e)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	record(250)
	events := sqlite.NewEventStore(db.DB())
	sh := &audit.Shipper{Outbox: db, Store: events, Batch: 40, Interval: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { sh.Run(runCtx); close(done) }()
	record(60) // more arrive while it ships
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, _, err := db.OutboxDepth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events still queued", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	<-done
	for _, tenant := range []string{"k1", "k2"} {
		res, err := audit.Verify(ctx, events, tenant)
		if err != nil || !res.OK() || res.Checked != 155 {
			t.Errorf("tenant %s: %+v %v", tenant, res, err)
		}
	}
	got, err := events.Query(ctx, audit.Filter{TenantID: "k1"})
	if err != nil || len(got) != 155 {
		t.Fatalf("k1 holds %d events, %v", len(got), err)
	}
}
