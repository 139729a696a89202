//go:build integration

package clickhouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"postbox/audit"
	"postbox/storage/storagetest"
)

const addrEnv = "POSTBOX_TEST_CLICKHOUSE_ADDR"

// openTestStore opens a fresh database (dropped again when the test passes;
// kept for inspection when it fails) and migrates it twice.
func openTestStore(t testing.TB) *Store {
	t.Helper()
	ctx := context.Background()
	addr := storagetest.Service(t, addrEnv)
	b := make([]byte, 6)
	rand.Read(b)
	s, err := Open(ctx, addr, "postbox_test_"+hex.EncodeToString(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			if err := s.conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+s.db); err != nil {
				t.Errorf("drop %s: %v", s.db, err)
			}
		} else {
			t.Logf("kept database %s for inspection", s.db)
		}
		s.Close()
	})
	return s
}

func TestMigrateIdempotent(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	ms, err := loadMigrations(migrationsFS, s.db)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.Migrate(ctx); err != nil || n != len(ms) {
		t.Fatalf("first Migrate: applied %d, err %v; want %d", n, err, len(ms))
	}
	if n, err := s.Migrate(ctx); err != nil || n != 0 {
		t.Fatalf("second Migrate: applied %d, err %v; want 0", n, err)
	}
	// Even when the record is lost, re-running every statement must work.
	for _, m := range ms {
		for _, q := range m.stmts {
			if err := s.exec(ctx, q); err != nil {
				t.Errorf("statement of %04d_%s is not idempotent: %v", m.version, m.name, err)
			}
		}
	}
	var rows uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+s.db+".schema_migrations").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != uint64(len(ms)) {
		t.Errorf("schema_migrations holds %d rows, want %d", rows, len(ms))
	}
}

// TestMigrationKeepsEventsOf0001 writes events into the table of 0001, as
// a server migrated before 0002 holds them, and expects 0002 to move them
// into audit_trail: same events, same chain.
func TestMigrationKeepsEventsOf0001(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	ms, err := loadMigrations(migrationsFS, s.db)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+s.db); err != nil {
		t.Fatal(err)
	}
	for _, q := range ms[0].stmts {
		if err := s.exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.conn.Exec(ctx, `CREATE TABLE `+s.db+`.schema_migrations (version UInt32, name String, applied_at DateTime('UTC'))
		ENGINE = ReplacingMergeTree ORDER BY version`); err != nil {
		t.Fatal(err)
	}
	if err := s.recordVersion(ctx, ms[0]); err != nil {
		t.Fatal(err)
	}
	tenantID := "old-" + s.db
	var evs []audit.Event
	var prev *audit.Event
	for i := 0; i < 10; i++ {
		e := audit.Link(prev, audit.Event{ID: fmt.Sprintf("%s-%d", tenantID, i), TenantID: tenantID,
			Time: time.Now().UTC().Add(time.Duration(i) * time.Second), Type: "auth.login", ActorID: "acc-1",
			SubjectType: "account", SubjectID: "acc-1", Outcome: audit.OutcomeSuccess, Details: "{}"})
		evs = append(evs, e)
		prev = &evs[len(evs)-1]
	}
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO `+s.db+`.audit_events (ts, `+eventColumns+`)`)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		us := e.Time.UnixMicro()
		if err := batch.Append(time.Unix(us/1e6, 0).UTC(), e.ID, e.TenantID, e.Seq, us, e.ActorID, e.ActorRole, e.Type,
			e.SubjectType, e.SubjectID, string(e.Outcome), e.ClientHash, e.RequestID, e.Details, e.PrevHash, e.Hash); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Migrate(ctx); err != nil || n != len(ms)-1 {
		t.Fatalf("Migrate over 0001: applied %d, %v", n, err)
	}
	got, err := s.Query(ctx, audit.Filter{TenantID: tenantID})
	if err != nil || len(got) != len(evs) {
		t.Fatalf("after 0002: %d events, %v", len(got), err)
	}
	if res, err := audit.Verify(ctx, s, tenantID); err != nil || !res.OK() || res.Checked != 10 {
		t.Fatalf("verify after 0002: %+v %v", res, err)
	}
	var old uint8
	if err := s.conn.QueryRow(ctx, "EXISTS TABLE "+s.db+".audit_events").Scan(&old); err != nil || old != 0 {
		t.Errorf("0001's table still exists (%d, %v)", old, err)
	}
}

func TestOpenRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	for _, addr := range []string{"localhost", "127.0.0.1:", ":9000", "127.0.0.1:port", "127.0.0.1:70000"} {
		_, err := Open(ctx, addr, "postbox")
		if err == nil || !strings.Contains(err.Error(), addr) {
			t.Errorf("Open(%q): err %v, want an error naming the address", addr, err)
		}
	}
	// Port 1 on loopback refuses at once; the error must say where it tried.
	if _, err := Open(ctx, "127.0.0.1:1", "postbox"); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("Open of a closed port: err %v, want an error naming the address", err)
	}
	if _, err := Open(ctx, "127.0.0.1:9000", "x; DROP DATABASE y"); err == nil {
		t.Error("Open accepted a database name that is not an identifier")
	}
}

func TestEventStore(t *testing.T) {
	s := openTestStore(t)
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Without merges every copy of a twice-shipped event stays in its own
	// part, so the contract's duplicate cases really test the reads.
	if err := s.conn.Exec(context.Background(), "SYSTEM STOP MERGES "+s.db+".audit_trail"); err != nil {
		t.Fatal(err)
	}
	storagetest.TestEventStore(t, func(t *testing.T) audit.EventStore { return s })
}

// TestRetentionStore runs the retention contract on a database of its own:
// it drops partitions, and mutations need merges running.
func TestRetentionStore(t *testing.T) {
	s := openTestStore(t)
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	storagetest.TestRetentionStore(t, s)
	// Partitions that held only expired rows are gone, not just emptied.
	var parts uint64
	if err := s.conn.QueryRow(context.Background(), `SELECT count() FROM system.parts
		WHERE database = ? AND table = 'audit_trail' AND active AND partition < '2016'`, s.db).Scan(&parts); err != nil {
		t.Fatal(err)
	}
	if parts != 0 {
		t.Errorf("%d active parts of partitions before 2016 left; expired months should be dropped", parts)
	}
}

// TestVerifyDetectsTamperedRow changes one stored event behind the store's
// back, the way someone with database access would, and expects Verify to
// name exactly that event.
func TestVerifyDetectsTamperedRow(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	tenantID := "tamper-" + s.db
	var evs []audit.Event
	var prev *audit.Event
	start := time.Now().UTC().Add(-time.Hour)
	for i := 0; i < 20; i++ {
		e := audit.Link(prev, audit.Event{
			ID: fmt.Sprintf("%s-%02d", tenantID, i), TenantID: tenantID,
			Time: start.Add(time.Duration(i) * time.Second), ActorID: "user-1", ActorRole: "admin",
			Type: "kasse.settings.changed", SubjectType: "kasse", SubjectID: "k-1",
			Outcome: audit.OutcomeSuccess, Details: `{"field":"retention_days"}`,
		})
		evs = append(evs, e)
		prev = &evs[len(evs)-1]
	}
	if err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if res, err := audit.Verify(ctx, s, tenantID); err != nil || !res.OK() {
		t.Fatalf("before tampering: %+v, %v", res, err)
	}

	victim := evs[12]
	if err := s.conn.Exec(ctx, "ALTER TABLE "+s.db+".audit_trail UPDATE actor_id = 'someone-else' WHERE id = ?", victim.ID); err != nil {
		t.Fatal(err)
	}
	waitForMutations(t, s)
	got, err := s.Query(ctx, audit.Filter{TenantID: tenantID, ActorID: "someone-else"})
	if err != nil || len(got) != 1 || got[0].ID != victim.ID {
		t.Fatalf("mutation not visible: %v, %v", got, err)
	}

	res, err := audit.Verify(ctx, s, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() {
		t.Fatal("Verify passed a chain with a changed event")
	}
	p := res.Problem
	if p.Kind != audit.ProblemChanged || p.EventID != victim.ID || p.Seq != victim.Seq || !strings.Contains(p.Detail, victim.ID) {
		t.Fatalf("problem %+v, want %s at %s (seq %d)", p, audit.ProblemChanged, victim.ID, victim.Seq)
	}
	t.Logf("Verify: %s", p)
}

// TestForgedCopyIsNotHidden inserts a second row with an existing event's id
// but other content. Reads drop only exact copies, so Verify sees both rows
// instead of whichever one deduplication happened to keep.
func TestForgedCopyIsNotHidden(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	tenantID := "forged-" + s.db
	var evs []audit.Event
	var prev *audit.Event
	for i := 0; i < 5; i++ {
		e := audit.Link(prev, audit.Event{
			ID: fmt.Sprintf("%s-%d", tenantID, i), TenantID: tenantID, Time: time.Now().Add(time.Duration(i) * time.Second),
			Type: "auth.login", ActorID: "user-1", Outcome: audit.OutcomeSuccess, Details: `{}`,
		})
		evs = append(evs, e)
		prev = &evs[len(evs)-1]
	}
	forged := evs[2]
	forged.Outcome = audit.OutcomeDenied // hash left as it was
	if err := s.Append(ctx, append(evs, evs[2], forged)); err != nil {
		t.Fatal(err)
	}
	res, err := audit.Verify(ctx, s, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || res.Problem.EventID != forged.ID {
		t.Fatalf("Verify: %+v, want a problem at %s", res.Problem, forged.ID)
	}
	t.Logf("Verify: %s", res.Problem)
}

// waitForMutations polls system.mutations: ALTER ... UPDATE returns before
// the parts are rewritten.
func waitForMutations(t testing.TB, s *Store) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pending uint64
		err := s.conn.QueryRow(context.Background(), `SELECT count() FROM system.mutations
			WHERE database = ? AND table = 'audit_trail' AND is_done = 0`, s.db).Scan(&pending)
		if err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d mutations still running after 30 s", pending)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// benchEvents returns n events of tenantID spread over 30 days, with 10k
// subjects of 5 types, like a busy Kasse's history.
func benchEvents(tenantID string, from, n int) []audit.Event {
	types := []string{"auth.login", "intake.upload.created", "vorgang.status.changed", "message.read", "kasse.settings.changed"}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]audit.Event, n)
	for i := range out {
		k := from + i
		out[i] = audit.Event{
			ID: fmt.Sprintf("%s-%09d", tenantID, k), TenantID: tenantID, Seq: int64(k + 1),
			Time:    start.Add(time.Duration(k) * 2591 * time.Millisecond), // 1M events ≈ 30 days
			ActorID: fmt.Sprintf("user-%d", k%200), ActorRole: "sachbearbeiter",
			Type: types[k%len(types)], SubjectType: "vorgang", SubjectID: fmt.Sprintf("V-%05d", k%10000),
			Outcome: audit.OutcomeSuccess, ClientHash: "3f9a1c", RequestID: fmt.Sprintf("req-%d", k),
			Details: `{"status":"in_bearbeitung"}`, PrevHash: strings.Repeat("a", 64), Hash: strings.Repeat("b", 64),
		}
	}
	return out
}

// BenchmarkAppend10k measures batch inserts of 10k events.
func BenchmarkAppend10k(b *testing.B) {
	ctx := context.Background()
	s := openTestStore(b)
	if _, err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	rows := 0
	for b.Loop() {
		b.StopTimer()
		evs := benchEvents("bench", rows, 10000)
		b.StartTimer()
		if err := s.Append(ctx, evs); err != nil {
			b.Fatal(err)
		}
		rows += len(evs)
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkSubjectHistory measures one subject's history (≈100 events)
// within one tenant of 1M events, the auditor's most common question.
func BenchmarkSubjectHistory(b *testing.B) {
	ctx := context.Background()
	s := openTestStore(b)
	if _, err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	const total = 1_000_000
	for i := 0; i < total; i += 10000 {
		if err := s.Append(ctx, benchEvents("bench", i, 10000)); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Append(ctx, benchEvents("other", 0, 10000)); err != nil {
		b.Fatal(err)
	}
	f := audit.Filter{TenantID: "bench", SubjectType: "vorgang", SubjectID: "V-04711"}
	// One day of the tenant (≈33k events), as an auditor's list view pages it.
	page := audit.Filter{TenantID: "bench", From: time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC)}
	page.To = page.From.Add(24 * time.Hour)
	check := func(b *testing.B, n int) {
		if n != total/10000 {
			b.Fatalf("got %d events, want %d", n, total/10000)
		}
	}
	b.Run("Subject", func(b *testing.B) {
		for b.Loop() {
			evs, err := s.Query(ctx, f)
			if err != nil {
				b.Fatal(err)
			}
			check(b, len(evs))
		}
	})
	b.Run("SubjectLast7Days", func(b *testing.B) {
		f := f
		f.From = time.Date(2026, 1, 24, 0, 0, 0, 0, time.UTC)
		for b.Loop() {
			if _, err := s.Query(ctx, f); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("TenantDayPage100", func(b *testing.B) {
		f := page
		f.Limit = 100
		for b.Loop() {
			if evs, err := s.Query(ctx, f); err != nil || len(evs) != 100 {
				b.Fatal(len(evs), err)
			}
		}
	})
	// The alternatives the comment on Query argues against.
	for _, alt := range []struct{ name, from, suffix string }{
		{"SubjectFinal", " FINAL", ""},
		{"SubjectLimitBy", "", " LIMIT 1 BY id"},
		{"TenantDayPage100Final", " FINAL", " LIMIT 100"},
		{"TenantDayPage100LimitBy", "", " LIMIT 1 BY id LIMIT 100"},
	} {
		b.Run(alt.name, func(b *testing.B) {
			cond, args := where(f)
			want := total / 10000
			if strings.HasPrefix(alt.name, "TenantDay") {
				cond, args = where(page)
				want = 100
			}
			q := `SELECT ` + eventColumns + ` FROM ` + s.db + `.audit_trail` + alt.from + ` WHERE ` + cond +
				` ORDER BY ts_unix_us, id` + alt.suffix
			for b.Loop() {
				n, err := s.scan(ctx, q, args, func(audit.Event) error { return nil })
				if err != nil || n != want {
					b.Fatalf("%d rows, %v; want %d", n, err, want)
				}
			}
		})
	}
	b.Run("Count", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.CountByDayAndType(ctx, audit.Filter{TenantID: "bench"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
