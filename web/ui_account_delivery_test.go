package web

import (
	"context"
	"strings"
	"testing"

	"postbox/audit"
	"postbox/storage/sqlite"
)

// Mein Konto, "Versandart" (seed 004): the insured person sees the current
// choice, changes it without a security code, the change needs the CSRF
// token, and the auditor finds the event; other roles neither see the
// section nor reach the form's address.
func TestAccountDelivery(t *testing.T) {
	w := newUIWorld(t)
	ctx := context.Background()
	events := sqlite.NewEventStore(w.db.DB())
	if _, err := MountUI(w.srv, UIOptions{Kassen: w.db, Audit: &audit.AuditorService{Events: events, Recorder: txRecorder{w.db}}}); err != nil {
		t.Fatal(err)
	}
	stored := func() string {
		t.Helper()
		p, err := w.db.Person(ctx, w.kasse.ID, w.erika.ID)
		if err != nil {
			t.Fatal(err)
		}
		return string(p.Delivery)
	}
	erika := w.as("erika")
	resp, page := erika.get("/konto")
	if resp.StatusCode != 200 {
		t.Fatalf("Mein Konto: %d", resp.StatusCode)
	}
	checkPage(t, "Mein Konto (Versandart)", page)
	for _, want := range []string{`<h2 id="versandart">Versandart</h2>`, `<legend>Bevorzugte Versandart</legend>`,
		`name="delivery" value="online">`, `name="delivery" value="post" checked>`, `href="#versandart"`} {
		if !strings.Contains(page, want) {
			t.Errorf("section lacks %s", want)
		}
	}
	csrf := csrfOf(t, page)

	// Without the token nothing changes.
	if resp, _ := erika.post("/konto/versandart", "delivery", "online"); resp.StatusCode != 403 {
		t.Errorf("without CSRF token: %d, want 403", resp.StatusCode)
	}
	if got := stored(); got != "post" {
		t.Fatalf("a request without token changed the delivery to %q", got)
	}
	// Unknown or missing value: a German message at the field.
	for _, bad := range []string{"fax", ""} {
		resp, page := erika.post("/konto/versandart", "_csrf", csrf, "delivery", bad)
		if resp.StatusCode != 422 || !strings.Contains(page, `<a href="#f-delivery">Bitte wählen Sie`) || !strings.Contains(page, "„Online“") {
			t.Errorf("delivery %q: %d", bad, resp.StatusCode)
		}
	}
	// No step-up was done: the change goes through anyway.
	resp, _ = erika.post("/konto/versandart", "_csrf", csrf, "delivery", "online")
	if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || loc != "/konto?hinweis=versand-online#versandart" {
		t.Fatalf("change: %d %q", resp.StatusCode, loc)
	}
	if got := stored(); got != "online" {
		t.Errorf("stored %q, want online", got)
	}
	_, page = erika.get("/konto?hinweis=versand-online")
	if !strings.Contains(page, "Gespeichert: Ihre Briefe kommen ab jetzt ins Postfach") {
		t.Errorf("no success message")
	}
	if !strings.Contains(page, `name="delivery" value="online" checked>`) || strings.Contains(page, `value="post" checked`) {
		t.Errorf("new choice not checked")
	}

	// The auditor finds the change with its from/to.
	sh := &audit.Shipper{Outbox: w.db, Store: events}
	for {
		n, err := sh.ShipOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	got, err := events.Query(ctx, audit.Filter{TenantID: w.kasse.ID, Type: "auth.delivery.changed"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Details != `{"from":"post","to":"online"}` || got[0].ActorID != w.people["erika"].AccountID || got[0].SubjectID != w.erika.ID {
		t.Errorf("events %+v", got)
	}
	resp, page = w.as("pruefer").get("/pruefung?suche=1&typ=auth.delivery.changed")
	if resp.StatusCode != 200 || strings.Count(page, ">auth.delivery.changed<") != 1 {
		t.Errorf("auditor search: %d, %d rows", resp.StatusCode, strings.Count(page, ">auth.delivery.changed<"))
	}

	// Other roles: no section, and the form's address answers 404.
	for _, name := range []string{"sachb", "pruefer", "lebadmin"} {
		b := w.as(name)
		resp, page := b.get("/konto")
		if resp.StatusCode != 200 || strings.Contains(page, "versandart") {
			t.Errorf("%s: Mein Konto %d or shows the Versandart", name, resp.StatusCode)
		}
		if resp, _ := b.post("/konto/versandart", "_csrf", csrfOf(t, page), "delivery", "post"); resp.StatusCode != 404 {
			t.Errorf("%s: POST %d, want 404", name, resp.StatusCode)
		}
	}
	if got := stored(); got != "online" {
		t.Errorf("other roles changed the delivery to %q", got)
	}
}
