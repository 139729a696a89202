package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"postbox/audit"
	"postbox/auth"
	"postbox/intake"
	"postbox/kasse"
	"postbox/storage/fsblob"
	"postbox/storage/sqldb"
	"postbox/storage/sqlite"
)

// browser is a tiny cookie-keeping client over app.Test that sends what a
// browser sends for pages and forms (Accept: text/html, urlencoded forms).
type browser struct {
	t       *testing.T
	s       *Server
	cookies map[string]string
}

func newBrowser(t *testing.T, s *Server) *browser {
	return &browser{t: t, s: s, cookies: map[string]string{}}
}

func (b *browser) do(req *http.Request) (*http.Response, string) {
	b.t.Helper()
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	}
	for k, v := range b.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	resp, err := b.s.App().Test(req, -1)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func (b *browser) get(path string) (*http.Response, string) {
	return b.do(httptest.NewRequest("GET", path, nil))
}

// post sends a form; fields are name, value pairs (a name may repeat).
func (b *browser) post(path string, fields ...string) (*http.Response, string) {
	form := url.Values{}
	for i := 0; i+1 < len(fields); i += 2 {
		form.Add(fields[i], fields[i+1])
	}
	req := httptest.NewRequest("POST", path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var reCSRFField = regexp.MustCompile(`name="_csrf" value="([^"]*)"`)

// csrfOf returns the CSRF token of the first form of a page.
func csrfOf(t *testing.T, html string) string {
	t.Helper()
	m := reCSRFField.FindStringSubmatch(html)
	if m == nil || m[1] == "" {
		t.Fatalf("page has no CSRF token: %s", html)
	}
	return m[1]
}

// hostile is text and file names an attacker controls; the pages must
// show it as text.
const hostile = `<script>alert("x")</script><img src=x onerror=alert(1)>`

// hostileName is a hostile file name (a slash would end at the directory
// part, which uploads drop).
const hostileName = `<img src=x onerror=alert(1)> & "Befund".pdf`

func assertEscaped(t *testing.T, page, html string) {
	t.Helper()
	if strings.Contains(html, "<script>alert") || strings.Contains(html, "<img src=x") {
		t.Errorf("%s: hostile text reached the page unescaped", page)
	}
	if !strings.Contains(html, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("%s: hostile text not shown (escaped) at all", page)
	}
}

// pinUI is a server with the Einmal-PIN desk, tus uploads and the pages,
// on SQLite and blobs on disk.
type pinUI struct {
	srv   *Server
	db    *sqldb.Store
	svc   *intake.PINService
	kasse kasse.Kasse
	erika kasse.Person
}

func newPINUI(t *testing.T) *pinUI {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "postbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key := make([]byte, 32)
	rand.Read(key)
	blobs, err := fsblob.New(filepath.Join(dir, "blobs"), key)
	if err != nil {
		t.Fatal(err)
	}
	f := &pinUI{db: db}
	f.svc = &intake.PINService{Store: db.PINIntake(), Hasher: intake.NewPINHasher(key), Blobs: blobs}
	f.kasse = kasse.Kasse{ID: "k-" + uuid.NewString()[:8], Name: "Testkasse <Nord>", Settings: kasse.DefaultSettings()}
	f.erika = kasse.Person{ID: uuid.NewString(), TenantID: f.kasse.ID, KVNR: kasse.CompleteKVNR("E12345678"), GivenName: "Erika", FamilyName: "Mustermann",
		Street: "Musterweg 1", PostalCode: "30159", City: "Hannover", EGKValidUntil: time.Now().AddDate(2, 0, 0), Delivery: kasse.DeliveryPost}
	if err := db.InTx(ctx, func(tx *sqldb.Tx) error {
		if err := tx.CreateKasse(ctx, f.kasse); err != nil {
			return err
		}
		return tx.CreatePerson(ctx, f.erika)
	}); err != nil {
		t.Fatal(err)
	}
	f.srv = quietServer(Options{})
	desk := NewPINIntake(PINIntakeOptions{Service: f.svc, BaseURL: "http://example.com", ClientKey: key})
	desk.Mount(f.srv.App())
	tus := intake.NewTusHandler(intake.TusConfig{Store: db, Blobs: blobs, BasePath: TusPath + "/", PartSize: intake.MinPartSize, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	MountTus(f.srv.App(), tus, TusOptions{})
	if _, err := MountUI(f.srv, UIOptions{Kassen: db, PIN: desk}); err != nil {
		t.Fatal(err)
	}
	return f
}

// issue creates a PIN for Erika as a caseworker would.
func (f *pinUI) issue(t *testing.T) string {
	t.Helper()
	a := intake.Actor{Principal: auth.Principal{TenantID: f.kasse.ID, AccountID: "a-cw", Role: auth.RoleCaseworker}}
	p, err := f.svc.Issue(context.Background(), a, intake.IssueRequest{KVNR: f.erika.KVNR, CaseType: audit.CaseType("krankengeld"),
		RequestText: "Bitte senden Sie uns Ihre " + hostile})
	if err != nil {
		t.Fatal(err)
	}
	return p.PIN
}

// upload sends a whole file through tus (creation-with-upload) with the
// browser's PIN session, as tus-js-client does.
func (f *pinUI) upload(t *testing.T, b *browser, csrf, name string, content []byte) {
	t.Helper()
	meta := "filename " + base64.StdEncoding.EncodeToString([]byte(name)) + ",filetype " + base64.StdEncoding.EncodeToString([]byte("application/pdf"))
	req := httptest.NewRequest("POST", TusPath, strings.NewReader(string(content)))
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", strconv.Itoa(len(content)))
	req.Header.Set("Upload-Metadata", meta)
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("X-CSRF-Token", csrf)
	req.Header.Set("Accept", "application/json")
	resp, body := b.do(req)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Upload-Offset") != strconv.Itoa(len(content)) {
		t.Fatalf("tus upload: %d offset %q %s", resp.StatusCode, resp.Header.Get("Upload-Offset"), body)
	}
}

func pdfBytes(n int) []byte {
	b := make([]byte, n)
	copy(b, "%PDF-1.7\n")
	for i := 9; i < n; i++ {
		b[i] = byte('a' + i%26)
	}
	return b
}

// The PIN entry page shows the PIN service's own messages at the field, in
// an error summary that links to it.
func TestPINEntryShowsTheServiceMessages(t *testing.T) {
	f := newPINUI(t)
	pin := f.issue(t)
	b := newBrowser(t, f.srv)
	entry := "/einmal-pin/" + f.kasse.ID
	resp, html := b.get(entry)
	if resp.StatusCode != 200 {
		t.Fatalf("entry page: %d", resp.StatusCode)
	}
	checkPage(t, "PIN-Eingabe", html)
	for _, want := range []string{`<label for="f-kvnr">`, `<label for="f-pin">`, "Testkasse &lt;Nord&gt;"} {
		if !strings.Contains(html, want) {
			t.Errorf("entry page lacks %q", want)
		}
	}
	wrong, err := intake.NewPIN()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, kvnr, pin string
		status          int
		field           string
		want            string
	}{
		{"malformed KVNR", "A12", pin, 422, "kvnr", "Die Krankenversichertennummer ist nicht gültig."},
		{"malformed PIN", f.erika.KVNR, "123", 422, "pin", "Die PIN besteht aus 15 Zeichen"},
		{"wrong PIN", f.erika.KVNR, wrong, 401, "pin", "Sie haben noch 4 Versuche."},
	} {
		resp, html := b.post(entry, "kvnr", tc.kvnr, "pin", tc.pin)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		checkPage(t, tc.name, html)
		if !strings.Contains(html, tc.want) {
			t.Errorf("%s: page lacks the message %q", tc.name, tc.want)
		}
		if !strings.Contains(html, `<a href="#f-`+tc.field+`">`) || !strings.Contains(html, `id="f-`+tc.field+`-fehler"`) ||
			!regexp.MustCompile(`id="f-`+tc.field+`"[^>]*aria-describedby="[^"]*f-`+tc.field+`-fehler"[^>]*aria-invalid="true"`).MatchString(html) {
			t.Errorf("%s: error not linked to the field %s: %s", tc.name, tc.field, html)
		}
		if !strings.Contains(html, "<title>Fehler: ") {
			t.Errorf("%s: title does not say there is an error", tc.name)
		}
	}
	// A login posted from another site is refused.
	req := httptest.NewRequest("POST", entry, strings.NewReader(url.Values{"kvnr": {f.erika.KVNR}, "pin": {pin}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if resp, _ := b.do(req); resp.StatusCode != 403 || len(b.cookies) != 0 {
		t.Errorf("cross-site login: %d, cookies %v", resp.StatusCode, b.cookies)
	}
	resp, _ = b.post(entry, "kvnr", strings.ToLower(f.erika.KVNR[:1])+" "+f.erika.KVNR[1:], "pin", intake.FormatPIN(pin))
	if resp.StatusCode != 303 || resp.Header.Get("Location") != entry+"/hochladen" || b.cookies[PINCookieName(false)] == "" {
		t.Fatalf("login: %d → %q, cookies %v", resp.StatusCode, resp.Header.Get("Location"), b.cookies)
	}
	// Logged in, the entry page sends on to the upload page.
	if resp, _ := b.get(entry); resp.StatusCode != 303 {
		t.Errorf("entry page with a session: %d, want 303", resp.StatusCode)
	}
	if resp, _ := b.get("/einmal-pin/gibt-es-nicht"); resp.StatusCode != 404 {
		t.Errorf("unknown Kasse: %d, want 404", resp.StatusCode)
	}
}

// The whole PIN journey without JavaScript except the upload itself: the
// draft is saved by the form, hostile text and file names come back
// escaped, a submission without files names the problem, and the receipt
// lists each file with size and SHA-256.
func TestPINUploadPageDraftAndReceipt(t *testing.T) {
	f := newPINUI(t)
	pin := f.issue(t)
	b := newBrowser(t, f.srv)
	base := "/einmal-pin/" + f.kasse.ID
	if resp, _ := b.get(base + "/hochladen"); resp.StatusCode != 303 || !strings.HasPrefix(resp.Header.Get("Location"), base+"?") {
		t.Fatalf("upload page without login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	b.post(base, "kvnr", f.erika.KVNR, "pin", pin)
	resp, html := b.get(base + "/hochladen")
	if resp.StatusCode != 200 {
		t.Fatalf("upload page: %d %s", resp.StatusCode, html)
	}
	checkPage(t, "Hochladen", html)
	assertEscaped(t, "Hochladen (Bitte der Kasse)", html)
	csrf := csrfOf(t, html)
	if !strings.Contains(html, `data-csrf="`+csrf+`"`) || csrf != intake.CSRFToken(b.cookies[PINCookieName(false)]) {
		t.Errorf("upload page does not hand the PIN session's CSRF token to its script")
	}
	for _, want := range []string{`<input type="file" id="f-dateien" name="dateien" class="file-input" multiple`, `<label for="f-dateien"`,
		`/static/vendor/tus.min.`, `/static/js/upload.`, `<option value="krankengeld" selected>`, "Noch keine Dateien hochgeladen."} {
		if !strings.Contains(html, want) {
			t.Errorf("upload page lacks %q", want)
		}
	}

	// A form without the CSRF token changes nothing.
	if resp, _ := b.post(base+"/hochladen", "subject", "ohne Token", "aktion", "speichern"); resp.StatusCode != 403 {
		t.Errorf("save without CSRF: %d, want 403", resp.StatusCode)
	}
	// Saving without JavaScript keeps what was typed, hostile or not.
	resp, _ = b.post(base+"/hochladen", "_csrf", csrf, "case_type", "krankengeld", "subject", hostile, "message", "Zeile 1\n"+hostile, "phone", "", "aktion", "speichern")
	if resp.StatusCode != 303 {
		t.Fatalf("save: %d", resp.StatusCode)
	}
	_, html = b.get(resp.Header.Get("Location"))
	assertEscaped(t, "Hochladen (Entwurf)", html)
	if !strings.Contains(html, "Ihre Eingaben sind gespeichert.") || !strings.Contains(html, `value="&lt;script&gt;`) {
		t.Errorf("saved draft not shown on return: %s", html)
	}
	// A wrong phone number is saved as typed and named at its field.
	resp, html = b.post(base+"/hochladen", "_csrf", csrf, "case_type", "krankengeld", "subject", "AU", "message", "", "phone", "abc", "aktion", "absenden")
	if resp.StatusCode != 422 || !strings.Contains(html, `<a href="#f-phone">Bitte geben Sie die Telefonnummer nur mit Ziffern`) {
		t.Errorf("wrong phone: %d", resp.StatusCode)
	}
	// Submitting without files says so at the file input.
	resp, html = b.post(base+"/hochladen", "_csrf", csrf, "case_type", "krankengeld", "subject", "AU", "message", "", "phone", "0511 123456", "aktion", "absenden")
	if resp.StatusCode != 422 || !strings.Contains(html, `<a href="#f-dateien">`) {
		t.Errorf("submit without files: %d %s", resp.StatusCode, html)
	}
	checkPage(t, "Absenden ohne Dateien", html)

	content := pdfBytes(20_000)
	f.upload(t, b, csrf, hostileName, content)
	_, html = b.get(base + "/hochladen")
	assertEscaped(t, "Hochladen (Dateiliste)", html)
	if !strings.Contains(html, "Fertig hochgeladen (20 KB)") {
		t.Errorf("uploaded file not listed as done: %s", html)
	}
	resp, _ = b.post(base+"/hochladen", "_csrf", csrf, "case_type", "krankengeld", "subject", "AU <b>Mai</b>", "message", "", "phone", "", "aktion", "absenden")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != base+"/eingangsbestaetigung" {
		t.Fatalf("submit: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, html = b.get(base + "/eingangsbestaetigung")
	if resp.StatusCode != 200 {
		t.Fatalf("receipt: %d %s", resp.StatusCode, html)
	}
	checkPage(t, "Eingangsbestätigung", html)
	assertEscaped(t, "Eingangsbestätigung", html)
	sum := sha256.Sum256(content)
	vs, err := f.db.VorgaengeOfPerson(context.Background(), f.kasse.ID, f.erika.ID)
	if err != nil || len(vs) != 1 {
		t.Fatalf("Vorgänge: %v %v", vs, err)
	}
	for _, want := range []string{hex.EncodeToString(sum[:]), vs[0].ID, "20 KB", "Eingegangen", "AU &lt;b&gt;Mai&lt;/b&gt;", "Krankengeld"} {
		if !strings.Contains(html, want) {
			t.Errorf("receipt lacks %q", want)
		}
	}
	// A second click on "absenden" shows the same receipt, no second Vorgang.
	resp, _ = b.post(base+"/hochladen", "_csrf", csrf, "aktion", "absenden")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != base+"/eingangsbestaetigung" {
		t.Errorf("second submit: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if vs, _ := f.db.VorgaengeOfPerson(context.Background(), f.kasse.ID, f.erika.ID); len(vs) != 1 {
		t.Errorf("%d Vorgänge after a double submit", len(vs))
	}
	// The PIN is used up.
	resp, html = b.post(base, "kvnr", f.erika.KVNR, "pin", pin)
	if resp.StatusCode != 401 || !strings.Contains(html, "Diese PIN wurde bereits verwendet") {
		t.Errorf("used PIN: %d", resp.StatusCode)
	}
}

func TestPINLogout(t *testing.T) {
	f := newPINUI(t)
	pin := f.issue(t)
	b := newBrowser(t, f.srv)
	base := "/einmal-pin/" + f.kasse.ID
	b.post(base, "kvnr", f.erika.KVNR, "pin", pin)
	_, html := b.get(base + "/hochladen")
	if !strings.Contains(html, `action="`+base+`/abmelden"`) {
		t.Fatalf("no logout form on the upload page")
	}
	resp, _ := b.post(base+"/abmelden", "_csrf", csrfOf(t, html))
	if resp.StatusCode != 303 || b.cookies[PINCookieName(false)] != "" {
		t.Fatalf("logout: %d, cookies %v", resp.StatusCode, b.cookies)
	}
	_, html = b.get(resp.Header.Get("Location"))
	if !strings.Contains(html, "Sie haben sich abgemeldet.") {
		t.Errorf("logout not confirmed")
	}
}
