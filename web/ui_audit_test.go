package web

import (
	"context"
	"html"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"postbox/audit"
	"postbox/storage/sqldb"
	"postbox/storage/sqlite"
)

type txRecorder struct{ db *sqldb.Store }

func (r txRecorder) Record(ctx context.Context, e audit.Event) error {
	return r.db.InTx(ctx, func(tx *sqldb.Tx) error { _, err := tx.RecordEvent(ctx, e); return err })
}

// The auditor searches the events of the Kasse: filters with German
// messages, paging, the CSV link for the same filter, and each search
// recorded as an audit.query event.
func TestAuditPages(t *testing.T) {
	w := newUIWorld(t)
	ctx := context.Background()
	events := sqlite.NewEventStore(w.db.DB())
	svc := &audit.AuditorService{Events: events, Recorder: txRecorder{w.db}}
	if _, err := MountUI(w.srv, UIOptions{Kassen: w.db, Audit: svc}); err != nil {
		t.Fatal(err)
	}
	vg := w.vorgang("AU")
	origin := audit.Origin{TenantID: w.kasse.ID, ActorID: w.people["sachb"].AccountID, ActorRole: "caseworker"}
	for i := 0; i < 55; i++ {
		if err := (txRecorder{w.db}).Record(ctx, origin.Event("vorgang.viewed", "vorgang", vg.ID, audit.OutcomeSuccess, nil)); err != nil {
			t.Fatal(err)
		}
	}
	ship := func() {
		sh := &audit.Shipper{Outbox: w.db, Store: events}
		for {
			n, err := sh.ShipOnce(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return
			}
		}
	}
	ship()
	pruefer := w.as("pruefer")
	resp, page := pruefer.get("/pruefung")
	if resp.StatusCode != 200 || strings.Contains(page, "<table") {
		t.Fatalf("search page: %d", resp.StatusCode)
	}
	checkPage(t, "Ereignisse suchen", page)
	resp, page = pruefer.get("/pruefung?suche=1&von=2026-13-01")
	if resp.StatusCode != 422 || !strings.Contains(page, `<a href="#f-von">Bitte geben Sie das Datum`) {
		t.Errorf("bad date: %d", resp.StatusCode)
	}
	resp, page = pruefer.get("/pruefung?suche=1&typ=" + url.QueryEscape("a b<c>"))
	if resp.StatusCode != 422 || !strings.Contains(page, `<a href="#f-typ">`) {
		t.Errorf("bad type: %d", resp.StatusCode)
	}
	// Filter values typed by the auditor come back as text in the form.
	_, page = pruefer.get("/pruefung?suche=1&objektart=vorgang&objekt=" + url.QueryEscape(hostile))
	assertEscaped(t, "Ereignisse mit feindlichem Filter", page)
	checkPage(t, "Ereignisse mit feindlichem Filter", page)
	resp, page = pruefer.get("/pruefung?suche=1&objektart=vorgang&objekt=" + vg.ID + "&typ=vorgang.viewed")
	if resp.StatusCode != 200 {
		t.Fatalf("search: %d %s", resp.StatusCode, page)
	}
	checkPage(t, "Ereignisse (Treffer)", page)
	if n := strings.Count(page, ">vorgang.viewed<"); n != 50 {
		t.Errorf("first page has %d events, want 50", n)
	}
	next := regexp.MustCompile(`<a href="(/pruefung\?[^"]+)">Weitere Ereignisse</a>`).FindStringSubmatch(page)
	if next == nil {
		t.Fatalf("no link to the next page")
	}
	_, page2 := pruefer.get(html.UnescapeString(next[1]))
	if n := strings.Count(page2, ">vorgang.viewed<"); n != 5 || strings.Contains(page2, "Weitere Ereignisse") {
		t.Errorf("second page has %d events", n)
	}
	exp := regexp.MustCompile(`<a href="(/api/audit/export\.csv\?[^"]*)" download>`).FindStringSubmatch(page)
	if exp == nil || !strings.Contains(html.UnescapeString(exp[1]), "subject_id="+vg.ID) || !strings.Contains(exp[1], "type=vorgang.viewed") {
		t.Errorf("export link does not carry the filter: %v", exp)
	}
	// The searches are themselves events.
	ship()
	got, err := events.Query(ctx, audit.Filter{TenantID: w.kasse.ID, Type: "audit.query"})
	if err != nil || len(got) < 2 || got[0].ActorID != w.people["pruefer"].AccountID {
		t.Errorf("auditor searches not recorded: %v %v", got, err)
	}
	for _, who := range []string{"sachb", "erika"} {
		if resp, _ := w.as(who).get("/pruefung"); resp.StatusCode != 404 {
			t.Errorf("%s on the audit page: %d", who, resp.StatusCode)
		}
	}
}
