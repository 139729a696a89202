package web

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"postbox/kasse"
	"postbox/storage/sqldb"
)

// Registration: every rule names its field; the mTAN confirms the mobile
// number; the mail links show a form and act only on POST.
func TestRegistrationPages(t *testing.T) {
	w := newUIWorld(t)
	ctx := context.Background()
	max := kasse.Person{ID: uuid.NewString(), TenantID: w.kasse.ID, KVNR: kasse.CompleteKVNR("M12345678"), GivenName: "Max", FamilyName: "Muster",
		BirthDate: "1990-05-01", EGKValidUntil: time.Now().AddDate(2, 0, 0), Delivery: kasse.DeliveryOnline, Email: "max@example.org"}
	if err := w.db.InTx(ctx, func(tx *sqldb.Tx) error { return tx.CreatePerson(ctx, max) }); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, w.srv)
	resp, page := b.get("/registrierung")
	if resp.StatusCode != 200 {
		t.Fatalf("registration page: %d", resp.StatusCode)
	}
	checkPage(t, "Registrieren", page)
	resp, page = b.post("/registrierung", "kasse", w.kasse.ID, "kvnr", "A1", "username", "mäx mu", "password", "kurz", "password_repeat", "kurz",
		"email", "keine", "mobile", "12", "accept_terms", "")
	if resp.StatusCode != 422 {
		t.Fatalf("invalid registration: %d", resp.StatusCode)
	}
	checkPage(t, "Registrieren mit Fehlern", page)
	for _, f := range []string{"kvnr", "username", "password", "email", "mobile", "accept_terms"} {
		if !strings.Contains(page, `<a href="#f-`+f+`">`) || !strings.Contains(page, `id="f-`+f+`-fehler"`) {
			t.Errorf("no message at %s", f)
		}
	}
	if !strings.Contains(page, `value="mäx mu"`) || strings.Contains(page, `value="kurz"`) {
		t.Errorf("typed username should stay, the password not")
	}
	resp, _ = b.post("/registrierung", "kasse", w.kasse.ID, "kvnr", max.KVNR, "username", "maxm", "password", "Herbst#2026q", "password_repeat", "Herbst#2026q",
		"email", "max@example.org", "mobile", "0151 2345678", "accept_terms", "ja")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/registrierung/mobil?sms=1" {
		t.Fatalf("registration: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page = b.get("/registrierung/mobil?sms=1")
	checkPage(t, "Mobilnummer bestätigen", page)
	csrf := csrfOf(t, page)
	resp, page = b.post("/registrierung/mobil", "_csrf", csrf, "code", "000000")
	if resp.StatusCode != 400 || !strings.Contains(page, `<a href="#f-code">`) {
		t.Errorf("wrong mTAN: %d", resp.StatusCode)
	}
	code := regexp.MustCompile(`\b\d{6}\b`).FindString(w.sms.to("+491512345678"))
	if code == "" {
		t.Fatalf("no mTAN sent: %q", w.sms.last)
	}
	resp, page = b.post("/registrierung/mobil", "_csrf", csrf, "code", code)
	if resp.StatusCode != 200 || !strings.Contains(page, "Ihre Mobilnummer ist bestätigt.") {
		t.Errorf("mTAN: %d", resp.StatusCode)
	}
	// The e-mail link: a form first; a wrong token is named.
	resp, page = b.get("/registrierung/bestaetigen?token=" + "falsch")
	if resp.StatusCode != 200 || !strings.Contains(page, `name="token" value="falsch"`) {
		t.Errorf("confirmation link page: %d", resp.StatusCode)
	}
	checkPage(t, "E-Mail bestätigen", page)
	resp, page = b.post("/registrierung/bestaetigen", "token", "falsch")
	if resp.StatusCode != 400 || !strings.Contains(page, "Der Link oder Code ist nicht richtig") {
		t.Errorf("wrong confirmation token: %d", resp.StatusCode)
	}
}

// "Passwort vergessen" answers a known and an unknown username alike.
func TestForgotPasswordPages(t *testing.T) {
	w := newUIWorld(t)
	b := newBrowser(t, w.srv)
	_, page := b.get("/passwort/vergessen")
	checkPage(t, "Passwort vergessen", page)
	var questions []string
	for _, user := range []string{"erika", "gibtsnicht"} {
		resp, page := b.post("/passwort/vergessen", "kasse", w.kasse.ID, "username", user)
		m := regexp.MustCompile(`<strong>Ihre Sicherheitsfrage:</strong> ([^<]+)</p>`).FindStringSubmatch(page)
		if resp.StatusCode != 200 || m == nil {
			t.Fatalf("%s: %d, no question", user, resp.StatusCode)
		}
		checkPage(t, "Sicherheitsfrage", page)
		questions = append(questions, m[1])
		resp, page = b.post("/passwort/vergessen/antwort", "kasse", w.kasse.ID, "username", user, "question", m[1], "answer", "falsch")
		if resp.StatusCode != 200 || !strings.Contains(page, "Wir schicken Ihnen einen Code per Post") {
			t.Errorf("%s: wrong answer: %d", user, resp.StatusCode)
		}
	}
	resp, page := b.post("/passwort/neu", "kasse", w.kasse.ID, "username", "erika", "code", "1234", "password", "Winter#2026z", "password_repeat", "Winter#2026z")
	if resp.StatusCode != 400 || !strings.Contains(page, `<a href="#f-code">Der Link oder Code ist nicht richtig`) {
		t.Errorf("wrong letter code: %d", resp.StatusCode)
	}
	resp, page = b.post("/einladung", "token", "falsch", "given_name", "Petra", "family_name", "P", "username", "petra", "password", "Winter#2026z", "password_repeat", "Winter#2026z", "device_name", "Handy")
	if resp.StatusCode != 400 || !strings.Contains(page, "Der Link oder Code ist nicht richtig") {
		t.Errorf("wrong invitation token: %d", resp.StatusCode)
	}
	checkPage(t, "Einladung", page)
}
