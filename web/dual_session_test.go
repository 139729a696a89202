package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"postbox/auth"
	"postbox/intake"
	"postbox/kasse"
	"postbox/mailbox"
	"postbox/storage/sqldb"
)

// dualWorld is the whole service (account sessions, the PIN desk, tus, the
// pages) with Max, an insured person with an account, and Erika, who got
// an Einmal-PIN letter: two people sharing one browser, so "who acts" is
// visible in every answer.
type dualWorld struct {
	*uiWorld
	tus       *intake.TusHandler
	max       auth.Principal
	accToken  string // Max's account session
	accCSRF   string
	pinToken  string // Erika's PIN session
	pinCSRF   string
	pinCode   string // Erika's Einmal-PIN
	entryPath string
}

func newDualWorld(t *testing.T) *dualWorld {
	t.Helper()
	ctx := context.Background()
	w := &dualWorld{uiWorld: newUIWorld(t)}
	w.tus = intake.NewTusHandler(intake.TusConfig{Store: w.db, Blobs: w.pin.Blobs, BasePath: TusPath + "/", PartSize: intake.MinPartSize,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	MountTus(w.srv.App(), w.tus, TusOptions{})
	maxP := kasse.Person{ID: uuid.NewString(), TenantID: w.kasse.ID, KVNR: kasse.CompleteKVNR("M98765432"), GivenName: "Max", FamilyName: "Mustermann",
		Street: "Musterweg 1", PostalCode: "30159", City: "Hannover", EGKValidUntil: time.Now().AddDate(2, 0, 0), Delivery: kasse.DeliveryPost}
	acc := auth.Account{ID: uuid.NewString(), TenantID: w.kasse.ID, Role: auth.RoleInsured, Username: "max", DisplayName: "Max",
		Status: auth.StatusActive, PersonID: maxP.ID}
	if err := w.db.InTx(ctx, func(tx *sqldb.Tx) error {
		if err := tx.CreatePerson(ctx, maxP); err != nil {
			return err
		}
		return tx.CreateAccount(ctx, acc)
	}); err != nil {
		t.Fatal(err)
	}
	w.max = auth.Principal{TenantID: w.kasse.ID, AccountID: acc.ID, Role: auth.RoleInsured, PersonID: maxP.ID}
	w.accToken = login(t, w.auth, w.max)
	w.accCSRF = auth.CSRFToken(w.accToken)
	pin, err := w.pin.Issue(ctx, intake.Actor{Principal: w.people["sachb"]}, intake.IssueRequest{KVNR: w.erika.KVNR, CaseType: "krankengeld",
		RequestText: "Bitte senden Sie uns Ihre AU-Bescheinigung."})
	if err != nil {
		t.Fatal(err)
	}
	// The PIN login in a browser that already holds Max's account session:
	// the account session must not stand in its way (no account CSRF token
	// is asked for on the PIN desk).
	w.pinCode = pin.PIN
	w.entryPath = "/einmal-pin/" + w.kasse.ID
	b := w.both()
	delete(b.cookies, PINCookieName(false))
	resp, html := b.form("POST", w.entryPath, "kvnr", w.erika.KVNR, "pin", pin.PIN)
	if resp.StatusCode != 303 || b.cookies[PINCookieName(false)] == "" {
		t.Fatalf("PIN login with an account session in the browser: %d %s", resp.StatusCode, html)
	}
	w.pinToken = b.cookies[PINCookieName(false)]
	w.pinCSRF = intake.CSRFToken(w.pinToken)
	return w
}

// dualBrowser sends requests with a fixed set of cookies, as a browser
// page of the portal does (Sec-Fetch-Site: same-origin).
type dualBrowser struct{ *browser }

func (w *dualWorld) browserWith(account, pin bool) dualBrowser {
	b := newBrowser(w.t, w.srv)
	if account {
		b.cookies[SessionCookieName(false)] = w.accToken
	}
	if pin {
		b.cookies[PINCookieName(false)] = w.pinToken
	}
	return dualBrowser{b}
}

func (w *dualWorld) both() dualBrowser        { return w.browserWith(true, true) }
func (w *dualWorld) accountOnly() dualBrowser { return w.browserWith(true, false) }
func (w *dualWorld) pinOnly() dualBrowser     { return w.browserWith(false, true) }

func (b dualBrowser) form(method, path string, fields ...string) (*http.Response, string) {
	form := url.Values{}
	for i := 0; i+1 < len(fields); i += 2 {
		form.Add(fields[i], fields[i+1])
	}
	req := httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

func (b dualBrowser) json(method, path, csrf string, body any) (*http.Response, string) {
	var r io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		r = strings.NewReader(string(raw))
	}
	req := httptest.NewRequest(method, path, r)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	return b.do(req)
}

// tus sends a tus request as tus-js-client does: Tus-Resumable always, the
// page's CSRF token when it has one.
func (b dualBrowser) tus(method, path, csrf string, header map[string]string, body string) (*http.Response, string) {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Tus-Resumable", "1.0.0")
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return b.do(req)
}

// createUpload starts an upload of 4096 bytes and returns its id.
func (b dualBrowser) createUpload(t *testing.T, csrf string) string {
	t.Helper()
	meta := "filename " + base64.StdEncoding.EncodeToString([]byte("befund.pdf")) + ",filetype " + base64.StdEncoding.EncodeToString([]byte("application/pdf"))
	resp, body := b.tus("POST", TusPath, csrf, map[string]string{"Upload-Length": "4096", "Upload-Metadata": meta}, "")
	if resp.StatusCode != 201 {
		t.Fatalf("create upload: %d %s", resp.StatusCode, body)
	}
	loc := resp.Header.Get("Location")
	return loc[strings.LastIndex(loc, "/")+1:]
}

// offset is how many bytes of an upload arrived, read by its owner.
func (w *dualWorld) offset(t *testing.T, id string) int {
	t.Helper()
	u, err := w.db.UploadByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return int(u.Offset)
}

func TestDualSessionEachRouteAuthorisesItsOwnSession(t *testing.T) {
	w := newDualWorld(t)
	erika := auth.Principal{TenantID: w.kasse.ID, Role: auth.RoleInsured, PersonID: w.erika.ID}
	upload := w.entryPath + "/hochladen"
	for _, tc := range []struct {
		name string
		b    dualBrowser
		do   func(b dualBrowser) (*http.Response, string)
		want int
		// check asserts the effect (who acted); nil: the status says it.
		check func(t *testing.T, body string)
	}{
		{"PIN API with both sessions and the PIN token acts as the PIN session", w.both(),
			func(b dualBrowser) (*http.Response, string) {
				return b.json("PUT", "/api/draft", w.pinCSRF, map[string]string{"case_type": "krankengeld", "subject": "Von der PIN-Sitzung"})
			}, 200,
			func(t *testing.T, _ string) {
				dv, err := w.pin.Draft(context.Background(), intake.Actor{Principal: erika})
				if err != nil || dv.Draft.Subject != "Von der PIN-Sitzung" {
					t.Errorf("Erika's draft (the PIN session's person): %q %v", dv.Draft.Subject, err)
				}
				dv, err = w.pin.Draft(context.Background(), intake.Actor{Principal: w.max})
				if err != nil || dv.Draft.Subject != "" {
					t.Errorf("Max's draft (the account's person) was touched: %q %v", dv.Draft.Subject, err)
				}
			}},
		{"PIN API spelt differently (case, trailing slash) is still the PIN desk", w.both(),
			func(b dualBrowser) (*http.Response, string) {
				return b.json("PUT", "/API/Draft/", w.pinCSRF, map[string]string{"case_type": "krankengeld", "subject": "Anders geschrieben"})
			}, 200,
			func(t *testing.T, _ string) {
				dv, _ := w.pin.Draft(context.Background(), intake.Actor{Principal: erika})
				if dv.Draft.Subject != "Anders geschrieben" {
					t.Errorf("Erika's draft: %q", dv.Draft.Subject)
				}
			}},
		{"PIN API refuses the account's CSRF token", w.both(),
			func(b dualBrowser) (*http.Response, string) {
				return b.json("PUT", "/api/draft", w.accCSRF, map[string]string{"subject": "Vom Konto"})
			}, 403, nil},
		{"PIN session answer names the PIN session's token, not the account's", w.both(),
			func(b dualBrowser) (*http.Response, string) { return b.json("GET", "/api/pin-session", "", nil) }, 200,
			func(t *testing.T, body string) {
				if !strings.Contains(body, w.pinCSRF) || strings.Contains(body, w.accCSRF) {
					t.Errorf("pin-session answer: %s", body)
				}
			}},
		{"PIN API with only the account session: not logged in there", w.accountOnly(),
			func(b dualBrowser) (*http.Response, string) { return b.json("GET", "/api/draft", "", nil) }, 401, nil},
		{"PIN submit with only the account session and its token: not logged in there", w.accountOnly(),
			func(b dualBrowser) (*http.Response, string) { return b.json("POST", "/api/submit", w.accCSRF, nil) }, 401, nil},
		{"PIN upload page hands out the PIN session's token", w.both(),
			func(b dualBrowser) (*http.Response, string) { return b.get(upload) }, 200,
			func(t *testing.T, html string) {
				if !strings.Contains(html, `data-csrf="`+w.pinCSRF+`"`) || strings.Contains(html, w.accCSRF) {
					t.Errorf("upload page does not carry (only) the PIN token")
				}
			}},
		{"PIN upload form with the PIN token saves the PIN session's draft", w.both(),
			func(b dualBrowser) (*http.Response, string) {
				return b.form("POST", upload, "_csrf", w.pinCSRF, "case_type", "krankengeld", "subject", "Formular", "message", "", "phone", "", "aktion", "speichern")
			}, 303,
			func(t *testing.T, _ string) {
				dv, _ := w.pin.Draft(context.Background(), intake.Actor{Principal: erika})
				if dv.Draft.Subject != "Formular" {
					t.Errorf("Erika's draft after the form: %q", dv.Draft.Subject)
				}
			}},
		{"PIN upload form refuses the account's token", w.both(),
			func(b dualBrowser) (*http.Response, string) {
				return b.form("POST", upload, "_csrf", w.accCSRF, "case_type", "krankengeld", "subject", "Konto", "aktion", "speichern")
			}, 403, nil},
		{"account page with both sessions shows the account", w.both(),
			func(b dualBrowser) (*http.Response, string) { return b.get("/postfach") }, 200,
			func(t *testing.T, html string) {
				if !strings.Contains(html, `href="/konto"`) || !strings.Contains(html, w.accCSRF) || strings.Contains(html, w.pinCSRF) {
					t.Errorf("Postfach page is not the account's")
				}
			}},
		{"account form with the account token acts as the account", w.both(),
			func(b dualBrowser) (*http.Response, string) {
				return b.form("POST", "/postfach/neu", "_csrf", w.accCSRF, "thema", "krankengeld", "betreff", "Frage von Max", "text", "Hallo")
			}, 303,
			func(t *testing.T, _ string) {
				list, err := w.mail.List(context.Background(), mailbox.Actor{Principal: w.max}, mailbox.Filter{})
				if err != nil || len(list) != 1 || list[0].Subject != "Frage von Max" {
					t.Errorf("Max's threads: %+v %v", list, err)
				}
			}},
		{"account form refuses the PIN session's token", w.both(),
			func(b dualBrowser) (*http.Response, string) {
				return b.form("POST", "/postfach/neu", "_csrf", w.pinCSRF, "thema", "krankengeld", "betreff", "PIN", "text", "x")
			}, 403, nil},
		{"account API with only the PIN session: not logged in there", w.pinOnly(),
			func(b dualBrowser) (*http.Response, string) { return b.json("GET", PostfachPath+"/threads", "", nil) }, 401, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := tc.do(tc.b)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, tc.want, body)
			}
			if tc.want == 403 && !strings.Contains(body, "CSRF") && !strings.Contains(body, "Sicherheitsmerkmal") {
				t.Errorf("403 without the CSRF explanation: %.300s", body)
			}
			if tc.check != nil {
				tc.check(t, body)
			}
		})
	}

	// Logging out of the account leaves the PIN session alone, and the PIN
	// token cannot log the account out.
	if resp, _ := w.both().form("POST", "/abmelden", "_csrf", w.pinCSRF); resp.StatusCode != 403 {
		t.Fatalf("account logout with the PIN token: %d", resp.StatusCode)
	}
	if resp, _ := w.both().form("POST", "/abmelden", "_csrf", w.accCSRF); resp.StatusCode != 303 {
		t.Fatalf("account logout: %d", resp.StatusCode)
	}
	if resp, _ := w.both().get("/postfach"); resp.StatusCode != 303 {
		t.Errorf("Postfach after the account logout: %d, want the login redirect", resp.StatusCode)
	}
	if resp, body := w.both().json("GET", "/api/pin-session", "", nil); resp.StatusCode != 200 {
		t.Errorf("PIN session after the account logout: %d %s", resp.StatusCode, body)
	}
	// The JSON login, too, answers to the PIN rules only: an account
	// session in the browser asks for no account token there.
	b := w.accountOnly()
	b.cookies[SessionCookieName(false)] = login(t, w.auth, w.max)
	req := httptest.NewRequest("POST", "/api/pin-login", strings.NewReader(`{"kasse":"`+w.kasse.ID+`","kvnr":"`+w.erika.KVNR+`","pin":"`+w.pinCode+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", "null")
	if resp, body := b.do(req); resp.StatusCode != 200 || b.cookies[PINCookieName(false)] == "" {
		t.Errorf("JSON PIN login with an account session in the browser: %d %s", resp.StatusCode, body)
	}
}

// Uploads serve both session kinds; the upload's owner decides who acts,
// and nobody reaches the other person's upload.
func TestDualSessionUploadOwnerDecides(t *testing.T) {
	w := newDualWorld(t)
	pinUp := w.pinOnly().createUpload(t, w.pinCSRF)
	accUp := w.accountOnly().createUpload(t, w.accCSRF)
	for id, want := range map[string]string{pinUp: w.erika.ID, accUp: w.max.PersonID} {
		if _, person, err := w.tus.UploadOwner(context.Background(), id); err != nil || person != want {
			t.Fatalf("upload %s belongs to %q (%v), want %q", id, person, err, want)
		}
	}
	chunk := string(pdfBytes(1024))
	patch := func(b dualBrowser, csrf, id string) (*http.Response, string) {
		return b.tus("PATCH", TusPath+"/"+id, csrf, map[string]string{"Content-Type": "application/offset+octet-stream",
			"Upload-Offset": strconv.Itoa(w.offset(t, id))}, chunk)
	}
	head := func(b dualBrowser, csrf, id string) (*http.Response, string) {
		return b.tus("HEAD", TusPath+"/"+id, csrf, nil, "")
	}
	for _, tc := range []struct {
		name    string
		b       dualBrowser
		csrf    string
		id      string
		do      func(b dualBrowser, csrf, id string) (*http.Response, string)
		want    int
		written bool
	}{
		{"PIN upload, only the account session", w.accountOnly(), w.accCSRF, pinUp, patch, 404, false},
		{"account upload, only the PIN session", w.pinOnly(), w.pinCSRF, accUp, patch, 404, false},
		{"account upload, only the PIN session, Tus-Resumable alone", w.pinOnly(), "", accUp, patch, 404, false},
		{"PIN upload, only the account session, reading", w.accountOnly(), "", pinUp, head, 404, false},
		{"account upload, only the PIN session, reading", w.pinOnly(), "", accUp, head, 404, false},
		{"PIN upload, account session without its token", w.accountOnly(), "", pinUp, patch, 403, false},
		{"PIN upload, both sessions, PIN token", w.both(), w.pinCSRF, pinUp, patch, 204, true},
		{"PIN upload, both sessions, account token: the owner (PIN session) acts", w.both(), w.accCSRF, pinUp, patch, 204, true},
		{"account upload, both sessions, account token", w.both(), w.accCSRF, accUp, patch, 204, true},
		{"account upload, both sessions, PIN token: the account's proof is missing", w.both(), w.pinCSRF, accUp, patch, 404, false},
		{"account upload, both sessions, reading", w.both(), "", accUp, head, 200, false},
		{"PIN upload, both sessions, reading", w.both(), "", pinUp, head, 200, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.offset(t, tc.id)
			resp, body := tc.do(tc.b, tc.csrf, tc.id)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, tc.want, body)
			}
			if after := w.offset(t, tc.id); (after > before) != tc.written {
				t.Errorf("offset %d → %d, bytes written: want %v", before, after, tc.written)
			}
		})
	}

	// A new upload with both sessions belongs to the session whose token
	// the page sent.
	for _, tc := range []struct {
		name, csrf, person string
	}{
		{"PIN token", w.pinCSRF, w.erika.ID},
		{"account token", w.accCSRF, w.max.PersonID},
		{"no token (Tus-Resumable only): the PIN session", "", w.erika.ID},
	} {
		t.Run("create with both sessions, "+tc.name, func(t *testing.T) {
			id := w.both().createUpload(t, tc.csrf)
			if _, person, err := w.tus.UploadOwner(context.Background(), id); err != nil || person != tc.person {
				t.Errorf("new upload belongs to %q (%v), want %q", person, err, tc.person)
			}
		})
	}
}
