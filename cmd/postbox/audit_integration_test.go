//go:build integration

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"postbox/kasse"
	"postbox/storage/storagetest"
)

// tamperEnv is server mode on the real PostgreSQL and ClickHouse, with a
// database of the test's own in each; it returns a raw ClickHouse
// connection to tamper with, as someone with database access could.
func tamperEnv(t *testing.T) (map[string]string, driver.Conn, string) {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	chDB := "postbox_cli_" + hex.EncodeToString(b)
	addr := storagetest.Service(t, "POSTBOX_TEST_CLICKHOUSE_ADDR")
	env := map[string]string{
		"POSTBOX_DATA_DIR":            t.TempDir(),
		"POSTBOX_SECRET_KEY":          strings.Repeat("cd", 32),
		"POSTBOX_DATABASE_URL":        storagetest.FreshPostgres(t),
		"POSTBOX_CLICKHOUSE_ADDR":     addr,
		"POSTBOX_CLICKHOUSE_DATABASE": chDB,
	}
	conn, err := ch.Open(&ch.Options{Addr: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+chDB)
		}
		conn.Close()
	})
	return env, conn, chDB
}

// waitMutations waits until ALTER ... UPDATE/DELETE has rewritten the parts.
func waitMutations(t *testing.T, conn driver.Conn, db string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var n uint64
		if err := conn.QueryRow(context.Background(), `SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0`, db).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d mutations still running", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAuditVerifyFindsTamperingInClickHouse: an event changed in ClickHouse
// makes "postbox audit verify" fail naming it; the newest event deleted
// there makes it fail through the chain head kept in PostgreSQL.
func TestAuditVerifyFindsTamperingInClickHouse(t *testing.T) {
	ctx := context.Background()
	env, conn, chDB := tamperEnv(t)
	k := kasse.Kasse{ID: "k-tamper", Name: "Testkasse", PortalURL: "https://portal.example", Settings: kasse.DefaultSettings()}
	evs := seedEvents(t, env, k, 15, time.Now().UTC().Add(-time.Hour), "vorgang.status.changed")

	code, out, errOut := runCLI(t, env, "audit", "verify", "--kasse", k.ID) // ships the outbox, then checks
	if code != 0 || !strings.Contains(out, "intact: 15 events") {
		t.Fatalf("before tampering: exit %d %q %q", code, out, errOut)
	}

	victim := evs[8]
	if err := conn.Exec(ctx, "ALTER TABLE "+chDB+".audit_trail UPDATE outcome = 'denied' WHERE id = ?", victim.ID); err != nil {
		t.Fatal(err)
	}
	waitMutations(t, conn, chDB)
	code, _, errOut = runCLI(t, env, "audit", "verify", "--kasse", k.ID)
	if code != 1 || !strings.Contains(errOut, victim.ID) || !strings.Contains(errOut, "was changed") || !strings.Contains(errOut, "seq 9") {
		t.Fatalf("changed event: exit %d, %q", code, errOut)
	}
	t.Logf("changed: %s", strings.TrimSpace(errOut))

	// Undo, then cut off the newest event.
	if err := conn.Exec(ctx, "ALTER TABLE "+chDB+".audit_trail UPDATE outcome = 'success' WHERE id = ?", victim.ID); err != nil {
		t.Fatal(err)
	}
	waitMutations(t, conn, chDB)
	if code, _, errOut := runCLI(t, env, "audit", "verify", "--kasse", k.ID); code != 0 {
		t.Fatalf("after undoing: %q", errOut)
	}
	last := evs[len(evs)-1]
	if err := conn.Exec(ctx, "ALTER TABLE "+chDB+".audit_trail DELETE WHERE id = ?", last.ID); err != nil {
		t.Fatal(err)
	}
	waitMutations(t, conn, chDB)
	code, _, errOut = runCLI(t, env, "audit", "verify", "--kasse", k.ID)
	if code != 1 || !strings.Contains(errOut, "removed") || !strings.Contains(errOut, "seq 14") || !strings.Contains(errOut, "seq 15") {
		t.Fatalf("deleted last event: exit %d, %q", code, errOut)
	}
	t.Logf("removed: %s", strings.TrimSpace(errOut))

	// A row deleted in the middle shows as a gap naming its successor.
	mid := evs[4]
	if err := conn.Exec(ctx, "ALTER TABLE "+chDB+".audit_trail DELETE WHERE id = ?", mid.ID); err != nil {
		t.Fatal(err)
	}
	waitMutations(t, conn, chDB)
	code, _, errOut = runCLI(t, env, "audit", "verify", "--kasse", k.ID)
	if code != 1 || !strings.Contains(errOut, "seq 5 is missing") || !strings.Contains(errOut, evs[5].ID) {
		t.Fatalf("deleted middle event: exit %d, %q", code, errOut)
	}
}

// TestAuditQueryAndRetentionOnClickHouse runs the CLI query and retention
// against the server backends.
func TestAuditQueryAndRetentionOnClickHouse(t *testing.T) {
	env, _, _ := tamperEnv(t)
	k := kasse.Kasse{ID: "k-chret", Name: "Testkasse", PortalURL: "https://portal.example", Settings: kasse.DefaultSettings()}
	now := time.Now().UTC()
	old := seedEvents(t, env, k, 3, now.AddDate(-11, 0, 0), "auth.login")
	mid := seedEvents(t, env, k, 2, now.AddDate(-7, 0, 0), "mailbox.message.sent")
	seedEvents(t, env, k, 2, now.Add(-time.Hour), "vorgang.status.changed")
	code, out, errOut := runCLI(t, env, "audit", "retention")
	if code != 0 || !strings.Contains(out, "chain starts after seq 3; 2 redacted") {
		t.Fatalf("retention: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, env, "audit", "verify", "--kasse", k.ID)
	if code != 0 || !strings.Contains(out, "starting after seq 3") {
		t.Fatalf("verify after retention: exit %d %q %q", code, out, errOut)
	}
	code, out, _ = runCLI(t, env, "audit", "query", "--kasse", k.ID, "--format", "json")
	if code != 0 || strings.Contains(out, old[0].ID) || !strings.Contains(out, mid[0].ID) {
		t.Fatalf("query after retention: exit %d\n%s", code, out)
	}
}
