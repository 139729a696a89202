package web

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"postbox/auth"
	"postbox/kasse"
	"postbox/notifier"
	"postbox/storage/sqldb"
)

// firstLogin registers an insured person, confirms the e-mail address on
// the page the mail links to, reads the Freischaltcode from the letter (as
// text, as the person reads it) and logs in with the password: the browser
// stands on the page that asks for the Freischaltcode and the mTAN.
type firstLogin struct {
	b        *browser
	code     string // the Freischaltcode as printed
	mtan     string
	csrf     string
	username string
}

const firstLoginPassword = "Herbst#2026q"

func startFirstLogin(t *testing.T, w *uiWorld, username string, before func()) firstLogin {
	t.Helper()
	ctx := context.Background()
	kvnr := kasse.CompleteKVNR(strings.ToUpper(username[:1]) + "1234" + strings.Repeat("7", 4))
	email := username + "@example.org"
	mobile := "+4915112345678"
	p := kasse.Person{ID: uuid.NewString(), TenantID: w.kasse.ID, KVNR: kvnr, GivenName: "Lena", FamilyName: "Muster", BirthDate: "1990-05-01",
		Street: "Lindenweg 3", PostalCode: "30159", City: "Hannover", EGKValidUntil: time.Now().AddDate(2, 0, 0), Delivery: kasse.DeliveryOnline, Email: email}
	if err := w.db.InTx(ctx, func(tx *sqldb.Tx) error { return tx.CreatePerson(ctx, p) }); err != nil {
		t.Fatal(err)
	}
	if _, err := w.auth.Register(ctx, auth.Meta{ClientAddr: "192.0.2.10"}, auth.Registration{TenantID: w.kasse.ID, KVNR: kvnr, Username: username,
		Password: firstLoginPassword, Email: email, Mobile: mobile, AcceptTerms: true}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, w.srv)
	if resp, page := b.post("/registrierung/bestaetigen", "token", mailToken(t, w, notifier.TemplateEmailConfirm, email)); resp.StatusCode != 200 ||
		!strings.Contains(page, "Ihre E-Mail-Adresse ist bestätigt") {
		t.Fatalf("e-mail confirmation: %d %s", resp.StatusCode, page)
	}
	code := regexp.MustCompile(`\b[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}\b`).FindString(pdfToText(t, lastLetter(t, w)))
	if code == "" {
		t.Fatal("the letter shows no Freischaltcode")
	}
	if before != nil {
		before()
	}
	resp, _ := b.post("/anmelden", "kasse", w.kasse.ID, "username", username, "password", firstLoginPassword)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 303 || !strings.HasPrefix(loc, "/anmelden/sicherheitscode?") {
		t.Fatalf("password step: %d → %q", resp.StatusCode, loc)
	}
	resp, page := b.get(loc)
	if resp.StatusCode != 200 || !strings.Contains(page, "Erstanmeldung: Freischaltcode und mTAN") || !strings.Contains(page, `name="freischaltcode"`) {
		t.Fatalf("first login page: %d %s", resp.StatusCode, page)
	}
	checkPage(t, "Erstanmeldung", page)
	mtan := regexp.MustCompile(`\b\d{6}\b`).FindString(w.sms.to(mobile))
	if mtan == "" {
		t.Fatalf("no mTAN sent: %q", w.sms.to(mobile))
	}
	return firstLogin{b: b, code: code, mtan: mtan, csrf: csrfOf(t, page), username: username}
}

func (f firstLogin) submit(freischaltcode string) (int, string, string) {
	resp, page := f.b.post("/anmelden/sicherheitscode", "_csrf", f.csrf, "method", "mtan", "code", f.mtan, "freischaltcode", freischaltcode)
	return resp.StatusCode, resp.Header.Get("Location"), page
}

// mailToken is the token of the newest mail link of a template to an address.
func mailToken(t *testing.T, w *uiWorld, tmpl notifier.Template, to string) string {
	t.Helper()
	q := `SELECT data FROM mail_outbox WHERE tenant_id = ? AND template = ? AND recipient = ? ORDER BY created_at DESC LIMIT 1`
	var data string
	if err := w.db.DB().QueryRow(q, w.kasse.ID, string(tmpl), to).Scan(&data); err != nil {
		t.Fatalf("no %s mail: %v", tmpl, err)
	}
	var d map[string]string
	json.Unmarshal([]byte(data), &d)
	u, err := url.Parse(d[notifier.DataLoginURL])
	if err != nil || u.Query().Get("token") == "" {
		t.Fatalf("mail without link: %q", data)
	}
	return u.Query().Get("token")
}

// lastLetter is the newest letter the auth service posted.
func lastLetter(t *testing.T, w *uiWorld) []byte {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(w.letters, "*.pdf"))
	if len(names) == 0 {
		t.Fatal("no letter posted")
	}
	sort.Strings(names)
	pdf, err := os.ReadFile(names[len(names)-1])
	if err != nil {
		t.Fatal(err)
	}
	return pdf
}

func (w *uiWorld) accountStatus(t *testing.T, username string) auth.AccountStatus {
	t.Helper()
	a, err := w.db.AccountByUsername(context.Background(), w.kasse.ID, username)
	if err != nil {
		t.Fatal(err)
	}
	return a.Status
}

// The first login with the Freischaltcode from the letter, as the person
// goes through it.
func TestFirstLoginWithFreischaltcode(t *testing.T) {
	t.Run("the code from the letter activates the account and leads on", func(t *testing.T) {
		w := newUIWorld(t)
		f := startFirstLogin(t, w, "lena", nil)
		// Typed as one would: lower case, with spaces instead of dashes.
		status, loc, page := f.submit(strings.ToLower(strings.ReplaceAll(f.code, "-", " ")))
		if status != 303 || !strings.HasPrefix(loc, "/anmelden/sicherheitsfrage") {
			t.Fatalf("correct code: %d → %q %s", status, loc, page)
		}
		if got := w.accountStatus(t, f.username); got != auth.StatusActive {
			t.Errorf("account after the first login: %s, want active", got)
		}
		if resp, page := f.b.get(loc); resp.StatusCode != 200 || !strings.Contains(page, "Sicherheitsfrage festlegen") {
			t.Errorf("next step: %d", resp.StatusCode)
		}
	})

	t.Run("a wrong code is named at its field and counts toward the lock", func(t *testing.T) {
		w := newUIWorld(t)
		f := startFirstLogin(t, w, "lukas", nil)
		for left := 4; left >= 1; left-- {
			status, _, page := f.submit("AAAA-BBBB-CCCC")
			want := "Noch " + tries(left) + ", danach wird der Freischaltcode gesperrt."
			if status != 400 || !strings.Contains(page, "Der Freischaltcode ist nicht richtig.") || !strings.Contains(page, want) {
				t.Fatalf("wrong code with %d left: %d, page lacks %q", left, status, want)
			}
			if !strings.Contains(page, `<a href="#f-freischaltcode">`) || !strings.Contains(page, `id="f-freischaltcode-fehler"`) {
				t.Errorf("message not linked to the Freischaltcode field")
			}
			checkPage(t, "Erstanmeldung mit Fehler", page)
		}
		status, _, page := f.submit("AAAA-BBBB-CCCC")
		if status != 423 || !strings.Contains(page, "fünfmal falsch eingegeben und ist deshalb gesperrt") {
			t.Fatalf("fifth wrong code: %d", status)
		}
		// Now even the right code is refused: the letter's code is void.
		status, _, page = f.submit(f.code)
		if status != 423 || !strings.Contains(page, "gesperrt") || !strings.Contains(page, "neuen Freischaltcode") {
			t.Fatalf("right code after the lock: %d", status)
		}
		if got := w.accountStatus(t, f.username); got != auth.StatusPending {
			t.Errorf("account after the lock: %s, want still pending", got)
		}
	})

	t.Run("the JSON API gives the same message", func(t *testing.T) {
		w := newUIWorld(t)
		MountAuth(w.srv.App(), w.auth)
		f := startFirstLogin(t, w, "luise", nil)
		req := httptest.NewRequest("POST", "/api/auth/login/second-factor",
			strings.NewReader(`{"method":"mtan","code":"`+f.mtan+`","freischaltcode":"AAAA-BBBB-CCCC"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("X-CSRF-Token", f.csrf)
		resp, body := f.b.do(req)
		if resp.StatusCode != 400 || !strings.Contains(body, "Der Freischaltcode ist nicht richtig.") || !strings.Contains(body, "Noch 4 Versuche") {
			t.Fatalf("JSON wrong code: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("an expired code says so and what to do", func(t *testing.T) {
		w := newUIWorld(t)
		// The Kasse's lifetime (seed default 30 days) has passed when the
		// person logs in.
		f := startFirstLogin(t, w, "lotte", func() {
			later := time.Now().Add(w.kasse.Settings.UnlockCodeLifetime + time.Hour)
			w.db.SetClock(func() time.Time { return later })
		})
		status, _, page := f.submit(f.code)
		if status != 410 || !strings.Contains(page, "Ihr Freischaltcode ist abgelaufen") || !strings.Contains(page, "wenden Sie sich an Ihre Krankenkasse") {
			t.Fatalf("expired code: %d %s", status, page)
		}
		if got := w.accountStatus(t, f.username); got != auth.StatusPending {
			t.Errorf("account after an expired code: %s, want still pending", got)
		}
	})
}
