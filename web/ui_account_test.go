package web

import (
	"context"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"postbox/auth"
	"postbox/notifier"
	"postbox/storage/sqldb"
)

// withTOTP gives an account of the world a password and an authenticator
// device, and returns a function that makes the device's current code.
func (w *uiWorld) withTOTP(name, password string) func() string {
	w.t.Helper()
	ctx := context.Background()
	p := w.people[name]
	hash, err := auth.HashSecret(password, auth.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		w.t.Fatal(err)
	}
	if err := w.db.InTx(ctx, func(tx *sqldb.Tx) error { return tx.SetPasswordHash(ctx, p.TenantID, p.AccountID, hash) }); err != nil {
		w.t.Fatal(err)
	}
	dl, err := w.auth.PrepareDemoAccount(ctx, p.TenantID, p.AccountID, "", "")
	if err != nil {
		w.t.Fatal(err)
	}
	u, _ := url.Parse(dl.OTPAuthURI)
	secret := u.Query().Get("secret")
	step := int64(0)
	return func() string {
		// A code of a step already used is refused: take the next step.
		now := time.Now()
		if s := now.Unix() / 30; s <= step {
			now = time.Unix((step+1)*30, 0)
		}
		step = now.Unix() / 30
		code, err := totp.GenerateCode(secret, now)
		if err != nil {
			w.t.Fatal(err)
		}
		return code
	}
}

// The login pages: a wrong password says so without telling whether the
// user exists; the second factor follows; the finished login gets a new
// session and lands on the role's first page.
func TestLoginPages(t *testing.T) {
	w := newUIWorld(t)
	code := w.withTOTP("erika", "Sommer#2026x")
	b := newBrowser(t, w.srv)
	resp, page := b.get("/postfach")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/anmelden?weiter=%2Fpostfach" {
		t.Fatalf("Postfach without login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, page = b.get("/anmelden?weiter=%2Fpostfach")
	if resp.StatusCode != 200 {
		t.Fatalf("login page: %d", resp.StatusCode)
	}
	checkPage(t, "Anmelden", page)
	for _, tc := range []struct{ user, pw string }{{"erika", "falsch#123"}, {"niemand", "Sommer#2026x"}} {
		resp, page = b.post("/anmelden", "kasse", w.kasse.ID, "username", tc.user, "password", tc.pw, "weiter", "/postfach")
		if resp.StatusCode != 401 || !strings.Contains(page, `<a href="#f-password">Benutzername oder Passwort sind nicht richtig`) {
			t.Errorf("%s: %d", tc.user, resp.StatusCode)
		}
		if !strings.Contains(page, `value="`+tc.user+`"`) || strings.Contains(page, tc.pw) {
			t.Errorf("%s: the username should stay, the password not", tc.user)
		}
	}
	resp, page = b.post("/anmelden", "kasse", w.kasse.ID, "username", "", "password", "")
	if resp.StatusCode != 422 || !strings.Contains(page, `<a href="#f-username">`) || !strings.Contains(page, `<a href="#f-password">`) {
		t.Errorf("empty login: %d", resp.StatusCode)
	}
	resp, _ = b.post("/anmelden", "kasse", w.kasse.ID, "username", "erika", "password", "Sommer#2026x", "weiter", "/postfach")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 303 || !strings.HasPrefix(loc, "/anmelden/sicherheitscode?") || !strings.Contains(loc, "verfahren=totp") {
		t.Fatalf("password step: %d %q", resp.StatusCode, loc)
	}
	pending := b.cookies[SessionCookieName(false)]
	// The unfinished login opens nothing.
	if resp, _ := b.get("/postfach"); resp.StatusCode != 303 {
		t.Errorf("Postfach with an unfinished login: %d", resp.StatusCode)
	}
	_, page = b.get(loc)
	checkPage(t, "Sicherheitscode", page)
	csrf := csrfOf(t, page)
	resp, page = b.post("/anmelden/sicherheitscode", "_csrf", csrf, "method", "totp", "code", "000000", "verfahren", "totp", "weiter", "/postfach")
	if resp.StatusCode != 400 || !strings.Contains(page, `<a href="#f-code">Der Sicherheitscode ist nicht richtig`) {
		t.Errorf("wrong code: %d", resp.StatusCode)
	}
	resp, _ = b.post("/anmelden/sicherheitscode", "_csrf", csrf, "method", "totp", "code", code(), "verfahren", "totp", "weiter", "/postfach")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/postfach" {
		t.Fatalf("second factor: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if tok := b.cookies[SessionCookieName(false)]; tok == "" || tok == pending {
		t.Errorf("the finished login kept the session id")
	}
	if resp, _ := b.get("/postfach"); resp.StatusCode != 200 {
		t.Errorf("Postfach after login: %d", resp.StatusCode)
	}
	// Logout ends the session.
	_, page = b.get("/postfach")
	resp, _ = b.post("/abmelden", "_csrf", csrfOf(t, page))
	if resp.StatusCode != 303 || b.cookies[SessionCookieName(false)] != "" {
		t.Errorf("logout: %d", resp.StatusCode)
	}
	if resp, _ := b.get("/postfach"); resp.StatusCode != 303 {
		t.Errorf("Postfach after logout: %d", resp.StatusCode)
	}
	// A redirect target must stay on this site.
	_, page = b.get("/anmelden?weiter=//evil.example/x")
	if strings.Contains(page, "evil.example") {
		t.Errorf("login page carries a foreign redirect target")
	}
}

// Mein Konto: changes need a fresh security code; each form names its
// problems at its field.
func TestAccountPage(t *testing.T) {
	w := newUIWorld(t)
	code := w.withTOTP("erika", "Sommer#2026x")
	erika := w.as("erika")
	resp, page := erika.get("/konto")
	if resp.StatusCode != 200 {
		t.Fatalf("Mein Konto: %d", resp.StatusCode)
	}
	checkPage(t, "Mein Konto", page)
	csrf := csrfOf(t, page)
	resp, page = erika.post("/konto/daten", "_csrf", csrf, "email", "neu@example.org")
	if resp.StatusCode != 403 || !strings.Contains(page, `<a href="#f-code">Bitte bestätigen Sie diese Änderung zuerst`) {
		t.Errorf("change without step-up: %d", resp.StatusCode)
	}
	resp, page = erika.post("/konto/bestaetigen", "_csrf", csrf, "method", "totp", "code", "123")
	if resp.StatusCode != 400 || !strings.Contains(page, `<a href="#f-code">`) {
		t.Errorf("wrong step-up code: %d", resp.StatusCode)
	}
	if resp, _ = erika.post("/konto/bestaetigen", "_csrf", csrf, "method", "totp", "code", code()); resp.StatusCode != 303 {
		t.Fatalf("step-up: %d", resp.StatusCode)
	}
	_, page = erika.get("/konto")
	if !strings.Contains(page, "Bestätigt: Sie können bis") {
		t.Errorf("step-up not shown")
	}
	resp, page = erika.post("/konto/daten", "_csrf", csrf, "email", "keine-adresse "+hostile)
	if resp.StatusCode != 422 || !strings.Contains(page, `<a href="#f-email">`) {
		t.Errorf("bad e-mail: %d", resp.StatusCode)
	}
	assertEscaped(t, "Mein Konto (E-Mail)", page)
	if resp, _ = erika.post("/konto/daten", "_csrf", csrf, "email", "neu@example.org"); resp.StatusCode != 303 ||
		!strings.Contains(resp.Header.Get("Location"), "hinweis=email-link") {
		t.Errorf("e-mail change: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The new address waits for the link sent to it; the page says so.
	_, page = erika.get("/konto")
	if !strings.Contains(page, "Die neue Adresse neu@example.org ist noch nicht bestätigt") || strings.Contains(page, `id="f-email" name="email" value="neu@example.org"`) {
		t.Errorf("waiting e-mail change not shown as waiting")
	}
	checkPage(t, "Mein Konto (neue E-Mail-Adresse wartet)", page)
	link := w.mailLink(notifier.TemplateEmailChange, "neu@example.org")
	// The link works in any browser, without a login; opening it changes
	// nothing until the button is pressed.
	other := w.anonymous()
	resp, page = other.get(link)
	if resp.StatusCode != 200 || !strings.Contains(page, "Neue E-Mail-Adresse bestätigen") {
		t.Fatalf("link page: %d", resp.StatusCode)
	}
	checkPage(t, "Neue E-Mail-Adresse bestätigen", page)
	if _, page = erika.get("/konto"); !strings.Contains(page, "noch nicht bestätigt") {
		t.Errorf("opening the link changed the address")
	}
	token, otherCSRF := strings.SplitN(link, "token=", 2)[1], csrfOf(t, page)
	if resp, page = other.post("/konto/email/bestaetigen", "_csrf", otherCSRF, "token", token+"x"); resp.StatusCode != 400 ||
		!strings.Contains(page, "Der Link oder Code ist nicht richtig") {
		t.Errorf("wrong link: %d", resp.StatusCode)
	}
	if resp, page = other.post("/konto/email/bestaetigen", "_csrf", otherCSRF, "token", token); resp.StatusCode != 200 ||
		!strings.Contains(page, "Ihre neue E-Mail-Adresse ist bestätigt") {
		t.Errorf("confirm: %d", resp.StatusCode)
	}
	_, page = erika.get("/konto")
	if !strings.Contains(page, `id="f-email" name="email" value="neu@example.org"`) || strings.Contains(page, "noch nicht bestätigt") {
		t.Errorf("new e-mail not shown after the link")
	}
	resp, page = erika.post("/konto/geraete", "_csrf", csrf, "device_name", "Tablet <neu>")
	if resp.StatusCode != 201 || !regexp.MustCompile(`id="aktivierungscode">\d{4} \d{4}<`).MatchString(page) {
		t.Errorf("add device: %d", resp.StatusCode)
	}
	checkPage(t, "Gerät beantragt", page)
	if !strings.Contains(page, "Tablet &lt;neu&gt;") || !strings.Contains(page, "beantragt") {
		t.Errorf("new device not listed as requested")
	}
	for _, tc := range []struct {
		fields []string
		status int
		field  string
	}{
		{[]string{"current_password", "", "password", "Neu#2026abc", "password_repeat", "Neu#2026abc"}, 422, "current_password"},
		{[]string{"current_password", "Sommer#2026x", "password", "Neu#2026abc", "password_repeat", "Neu#2026abd"}, 422, "password_repeat"},
		{[]string{"current_password", "falsch", "password", "Neu#2026abc", "password_repeat", "Neu#2026abc"}, 422, "current_password"},
		{[]string{"current_password", "Sommer#2026x", "password", "kurz", "password_repeat", "kurz"}, 422, "password"},
	} {
		resp, page := erika.post("/konto/passwort", append([]string{"_csrf", csrf}, tc.fields...)...)
		if resp.StatusCode != tc.status || !strings.Contains(page, `<a href="#f-`+tc.field+`">`) {
			t.Errorf("password %v: %d, want the message at %s", tc.fields, resp.StatusCode, tc.field)
		}
	}
	resp, page = erika.post("/konto/beenden", "_csrf", csrf)
	if resp.StatusCode != 422 || !strings.Contains(page, `<a href="#f-bestaetigung">`) {
		t.Errorf("end without confirmation: %d", resp.StatusCode)
	}
	if !strings.Contains(page, `href="/api/postfach/export"`) {
		t.Errorf("export not offered before ending the account")
	}
	if resp, _ = erika.post("/konto/beenden", "_csrf", csrf, "bestaetigung", "ja"); resp.StatusCode != 303 {
		t.Fatalf("end account: %d", resp.StatusCode)
	}
	if resp, _ := erika.get("/konto"); resp.StatusCode != 303 {
		t.Errorf("ended account still logged in: %d", resp.StatusCode)
	}
}

// anonymous is a browser without a session.
func (w *uiWorld) anonymous() *browser { return newBrowser(w.t, w.srv) }

// mailLink is the path and query of the link in the newest mail of a
// template to an address (Erika's mails; the worker does not run here).
func (w *uiWorld) mailLink(tmpl notifier.Template, to string) string {
	w.t.Helper()
	jobs, err := w.db.MailJobsOfPerson(context.Background(), w.kasse.ID, w.erika.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, j := range jobs { // newest first
		if j.Template == tmpl && j.Recipient == to {
			u, err := url.Parse(j.Data[notifier.DataLoginURL])
			if err != nil {
				w.t.Fatal(err)
			}
			return u.RequestURI()
		}
	}
	w.t.Fatalf("no %s mail to %s in %+v", tmpl, to, jobs)
	return ""
}
