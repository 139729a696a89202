package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"postbox/audit"
	"postbox/kasse"
	"postbox/storage/sqldb"
)

// auditEnv is an embedded data dir (SQLite for state and events).
func auditEnv(t *testing.T) map[string]string {
	return map[string]string{"POSTBOX_DATA_DIR": t.TempDir(), "POSTBOX_SECRET_KEY": strings.Repeat("ab", 32)}
}

// seedEvents creates the Kasse if needed and records n events through the
// real outbox with the store's clock at `at`, one minute apart.
func seedEvents(t *testing.T, env map[string]string, k kasse.Kasse, n int, at time.Time, typ string) []audit.Event {
	t.Helper()
	ctx := context.Background()
	cfg, _, err := parseConfig("test", nil, envFrom(env), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := openQuiet(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.db.Kasse(ctx, k.ID); errors.Is(err, kasse.ErrNotFound) {
		if err := a.db.InTx(ctx, func(tx *sqldb.Tx) error { return tx.CreateKasse(ctx, k) }); err != nil {
			t.Fatal(err)
		}
	}
	var out []audit.Event
	for i := 0; i < n; i++ {
		now := at.Add(time.Duration(i) * time.Minute)
		a.db.SetClock(func() time.Time { return now })
		err := a.db.InTx(ctx, func(tx *sqldb.Tx) error {
			e, err := tx.RecordEvent(ctx, audit.Event{TenantID: k.ID, ActorID: fmt.Sprintf("acc-%d", i%3), ActorRole: "caseworker",
				Type: typ, SubjectType: "vorgang", SubjectID: fmt.Sprintf("v-%d", i%5), Details: `{"from":"eingegangen","to":"in_bearbeitung"}`})
			out = append(out, e)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, envFrom(env), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func execSQLite(t *testing.T, env map[string]string, q string, args ...any) {
	t.Helper()
	cfg, _, err := parseConfig("test", nil, envFrom(env), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := openQuiet(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.db.DB().Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

func TestAuditVerifyEmbedded(t *testing.T) {
	env := auditEnv(t)
	k := kasse.Kasse{ID: "k-verify", Name: "Testkasse", PortalURL: "https://portal.example", Settings: kasse.DefaultSettings()}
	evs := seedEvents(t, env, k, 12, time.Now().UTC().Add(-time.Hour), "vorgang.status.changed")
	if code, out, errOut := runCLI(t, env, "audit", "verify", "--kasse", k.ID); code != 0 || !strings.Contains(out, "intact: 12 events") {
		t.Fatalf("intact chain: exit %d, %q %q", code, out, errOut)
	}
	// Someone with database access edits an event.
	victim := evs[6]
	execSQLite(t, env, `UPDATE audit_events SET actor_id = 'someone-else' WHERE id = ?`, victim.ID)
	code, _, errOut := runCLI(t, env, "audit", "verify", "--kasse", k.ID)
	if code != 1 || !strings.Contains(errOut, victim.ID) || !strings.Contains(errOut, "changed") || !strings.Contains(errOut, "seq 7") {
		t.Fatalf("changed event: exit %d, %q", code, errOut)
	}
	execSQLite(t, env, `UPDATE audit_events SET actor_id = ? WHERE id = ?`, victim.ActorID, victim.ID)
	// ... or removes the newest event: only the head in the database knows.
	last := evs[len(evs)-1]
	execSQLite(t, env, `DELETE FROM audit_events WHERE id = ?`, last.ID)
	code, _, errOut = runCLI(t, env, "audit", "verify", "--kasse", k.ID)
	if code != 1 || !strings.Contains(errOut, "removed") || !strings.Contains(errOut, "seq 11") || !strings.Contains(errOut, "seq 12") {
		t.Fatalf("removed last event: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, env, "audit", "verify"); code == 0 || !strings.Contains(errOut, "--kasse") {
		t.Errorf("verify without --kasse: %d %q", code, errOut)
	}
}

func TestAuditQueryCommand(t *testing.T) {
	env := auditEnv(t)
	k := kasse.Kasse{ID: "k-query", Name: "Testkasse", PortalURL: "https://portal.example", Settings: kasse.DefaultSettings()}
	day := time.Date(2026, 3, 30, 22, 0, 0, 0, time.UTC)
	evs := seedEvents(t, env, k, 6, day, "vorgang.status.changed") // 22:00..22:05
	seedEvents(t, env, kasse.Kasse{ID: "k-other", Name: "B", PortalURL: "https://b.example", Settings: kasse.DefaultSettings()}, 3, day, "vorgang.status.changed")

	code, out, errOut := runCLI(t, env, "audit", "query", "--kasse", k.ID, "--from", "2026-03-30", "--to", "2026-03-30", "--subject-type", "vorgang", "--format", "csv")
	if code != 0 {
		t.Fatalf("query: exit %d, %s", code, errOut)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 7 || recs[0][0] != "id" {
		t.Fatalf("csv: %v, %d rows\n%s", err, len(recs), out)
	}
	for i, rec := range recs[1:] {
		if rec[0] != evs[i].ID || rec[1] != k.ID {
			t.Errorf("row %d: %v", i, rec)
		}
	}
	code, out, _ = runCLI(t, env, "audit", "query", "--kasse", k.ID, "--subject", "v-1", "--format", "json")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"id":"`+evs[1].ID+`"`) {
		t.Fatalf("json query for subject v-1 (event 1 of 0..5): exit %d\n%s", code, out)
	}
	for _, bad := range [][]string{
		{"--format", "xml"}, {"--from", "gestern"}, {"--outcome", "vielleicht"}, {"--type", "a b"},
	} {
		code, _, errOut := runCLI(t, env, append([]string{"audit", "query", "--kasse", k.ID}, bad...)...)
		if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("query %v: exit %d, %q", bad, code, errOut)
		}
	}
	if code, _, _ := runCLI(t, env, "audit", "query", "--kasse", "no-such-kasse"); code == 0 {
		t.Error("query of an unknown Kasse succeeded")
	}
	// The command's queries are themselves events of the Kasse.
	_, out, _ = runCLI(t, env, "audit", "query", "--kasse", k.ID, "--type", "audit.query", "--format", "json")
	if strings.Count(out, `"type":"audit.query"`) < 2 || !strings.Contains(out, `"actor_role":"operator"`) {
		t.Errorf("recorded queries:\n%s", out)
	}
}

func TestAuditRetentionCommand(t *testing.T) {
	env := auditEnv(t)
	k := kasse.Kasse{ID: "k-ret", Name: "Testkasse", PortalURL: "https://portal.example", Settings: kasse.DefaultSettings()}
	now := time.Now().UTC()
	old := seedEvents(t, env, k, 3, now.AddDate(-11, 0, 0), "auth.login")            // expired: deleted
	mid := seedEvents(t, env, k, 2, now.AddDate(-7, 0, 0), "vorgang.status.changed") // business, expired: redacted
	young := seedEvents(t, env, k, 2, now.Add(-time.Hour), "vorgang.status.changed") // kept
	code, out, errOut := runCLI(t, env, "audit", "retention")
	if code != 0 {
		t.Fatalf("retention: exit %d %s", code, errOut)
	}
	if !strings.Contains(out, k.ID+": security events 3650 days, business events 2190 days; chain starts after seq 3; 2 redacted") ||
		!strings.Contains(out, "3 expired events deleted") {
		t.Fatalf("retention report:\n%s", out)
	}
	code, out, errOut = runCLI(t, env, "audit", "verify", "--kasse", k.ID)
	if code != 0 || !strings.Contains(out, "starting after seq 3") || !strings.Contains(out, "2 redacted") {
		t.Fatalf("verify after retention: exit %d %q %q", code, out, errOut)
	}
	_, out, _ = runCLI(t, env, "audit", "query", "--kasse", k.ID, "--format", "json")
	lines := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if i := strings.Index(l, `"id":"`); i >= 0 {
			lines[l[i+6:i+6+36]] = l
		}
	}
	for _, e := range old {
		if _, ok := lines[e.ID]; ok {
			t.Errorf("expired event %s still there", e.ID)
		}
	}
	for _, e := range mid {
		if l := lines[e.ID]; !strings.Contains(l, `"redacted":true`) || !strings.Contains(l, `"actor_id":""`) || !strings.Contains(l, `"subject_id":""`) {
			t.Errorf("old business event not redacted: %s", l)
		}
	}
	for _, e := range young {
		if l := lines[e.ID]; strings.Contains(l, "redacted") || !strings.Contains(l, `"subject_id":"`+e.SubjectID+`"`) {
			t.Errorf("young event changed: %s", l)
		}
	}
	if !strings.Contains(out, `"type":"audit.retention.applied"`) {
		t.Errorf("retention run not recorded:\n%s", out)
	}
}

// TestDemoEventsCarryNoPersonalData seeds the demo (accounts of every role,
// a person, an Einmal-PIN) and scans every event the domains recorded:
// CheckEvent passes and no name, KVNR, e-mail, password or PIN appears in
// any field.
func TestDemoEventsCarryNoPersonalData(t *testing.T) {
	env := auditEnv(t)
	cfg, _, err := parseConfig("test", nil, envFrom(env), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := openQuiet(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.auth, err = newAuthService(a); err != nil {
		t.Fatal(err)
	}
	d, err := seedDemo(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := a.db.PendingEvents(ctx, 100000)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < 3 {
		t.Fatalf("the demo recorded only %d events", len(evs))
	}
	leaks := []string{d.person.GivenName, d.person.FamilyName, d.person.KVNR, d.person.Email, d.person.Street, d.person.BirthDate, d.pin}
	for _, l := range d.logins {
		leaks = append(leaks, l.username, l.password)
	}
	types := map[string]bool{}
	for _, e := range evs {
		types[e.Type] = true
		if err := audit.CheckEvent(e); err != nil {
			t.Errorf("event %s (%s): %v", e.ID, e.Type, err)
		}
		all := strings.Join([]string{e.ActorID, e.ActorRole, e.Type, e.SubjectType, e.SubjectID, e.ClientHash, e.RequestID, e.Details}, "|")
		for _, leak := range leaks {
			if leak != "" && strings.Contains(all, leak) {
				t.Errorf("event %s (%s) carries %q: %s", e.ID, e.Type, leak, all)
			}
		}
	}
	t.Logf("scanned %d events of types %v", len(evs), types)
}
