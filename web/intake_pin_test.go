package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"postbox/audit"
	"postbox/auth"
	"postbox/intake"
	"postbox/kasse"
	"postbox/storage/fsblob"
	"postbox/storage/sqldb"
	"postbox/storage/sqlite"
)

type pinClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *pinClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *pinClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// pinDesk is a server with the PIN routes on SQLite and blobs on disk. A
// request header X-Test-Principal (JSON of auth.Principal) stands in for an
// account login, which another part of the service provides.
type pinDesk struct {
	t      *testing.T
	app    *fiber.App
	store  *sqldb.Store
	blobs  intake.BlobStore
	svc    *intake.PINService
	clock  *pinClock
	kasse  kasse.Kasse
	other  kasse.Kasse
	erika  kasse.Person
	secure bool
}

func newPINDesk(t *testing.T, secure bool) *pinDesk {
	t.Helper()
	dir := t.TempDir()
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, "postbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	key := make([]byte, 32)
	rand.Read(key)
	blobs, err := fsblob.New(filepath.Join(dir, "blobs"), key)
	if err != nil {
		t.Fatal(err)
	}
	return newPINDeskOn(t, secure, s, blobs)
}

// newPINDeskOn builds the desk on a migrated store and a blob store.
func newPINDeskOn(t *testing.T, secure bool, s *sqldb.Store, blobs intake.BlobStore) *pinDesk {
	t.Helper()
	ctx := context.Background()
	key := make([]byte, 32)
	rand.Read(key)
	d := &pinDesk{t: t, store: s, blobs: blobs, clock: &pinClock{now: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}, secure: secure}
	s.SetClock(d.clock.Now)
	d.svc = &intake.PINService{Store: s.PINIntake(), Hasher: intake.NewPINHasher(key), Blobs: blobs}
	d.kasse = kasse.Kasse{ID: "k-" + uuid.NewString()[:8], Name: "Testkasse Nord", PortalURL: "https://postfach.example", Settings: kasse.DefaultSettings()}
	d.other = kasse.Kasse{ID: "k-" + uuid.NewString()[:8], Name: "Andere Kasse", Settings: kasse.DefaultSettings()}
	d.erika = kasse.Person{ID: uuid.NewString(), TenantID: d.kasse.ID, KVNR: kasse.CompleteKVNR("E12345678"), GivenName: "Erika", FamilyName: "Mustermann",
		Street: "Musterweg 1", PostalCode: "30159", City: "Hannover", Email: "erika@example.org", Delivery: kasse.DeliveryOnline}
	if err := s.InTx(ctx, func(tx *sqldb.Tx) error {
		for _, k := range []kasse.Kasse{d.kasse, d.other} {
			if err := tx.CreateKasse(ctx, k); err != nil {
				return err
			}
		}
		return tx.CreatePerson(ctx, d.erika)
	}); err != nil {
		t.Fatal(err)
	}
	srv := quietServer(Options{})
	d.app = srv.App()
	d.app.Use(func(c *fiber.Ctx) error {
		if raw := c.Get("X-Test-Principal"); raw != "" {
			var p auth.Principal
			if err := json.Unmarshal([]byte(raw), &p); err != nil {
				return err
			}
			SetPrincipal(c, p)
		}
		return c.Next()
	})
	NewPINIntake(PINIntakeOptions{Service: d.svc, BaseURL: "https://postfach.example", SecureCookies: secure, ClientKey: key}).Mount(d.app)
	// Shows whom the PIN middleware let in on an upload route.
	d.app.All(TusPath+"/probe", chooseUploadSession(nil), func(c *fiber.Ctx) error {
		p, _ := PrincipalOf(c)
		return c.JSON(p)
	})
	// The real upload engine, mounted after the PIN desk as in serve.
	MountTus(d.app, intake.NewTusHandler(intake.TusConfig{Store: s, Blobs: blobs, Now: d.clock.Now}), TusOptions{})
	return d
}

type pinReq struct {
	method, path string
	body         any
	rawBody      []byte
	cookie       string // PIN session token
	csrf         string
	principal    *auth.Principal
	header       map[string]string
}

func (d *pinDesk) do(r pinReq) (*http.Response, []byte) {
	d.t.Helper()
	var body io.Reader
	if r.body != nil {
		raw, _ := json.Marshal(r.body)
		body = bytes.NewReader(raw)
	}
	if r.rawBody != nil {
		body = bytes.NewReader(r.rawBody)
	}
	req := httptest.NewRequest(r.method, r.path, body)
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.cookie != "" {
		req.AddCookie(&http.Cookie{Name: PINCookieName(d.secure), Value: r.cookie})
	}
	if r.csrf != "" {
		req.Header.Set("X-CSRF-Token", r.csrf)
	}
	if r.principal != nil {
		raw, _ := json.Marshal(r.principal)
		req.Header.Set("X-Test-Principal", string(raw))
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := d.app.Test(req, 10000)
	if err != nil {
		d.t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

func (d *pinDesk) issue(p kasse.Person, ct audit.CaseType) string {
	d.t.Helper()
	got, err := d.svc.Issue(context.Background(), intake.Actor{Principal: auth.Principal{TenantID: p.TenantID, AccountID: "cw1", Role: auth.RoleCaseworker}},
		intake.IssueRequest{KVNR: p.KVNR, CaseType: ct, RequestText: "Bitte senden Sie uns Ihre AU-Bescheinigung."})
	if err != nil {
		d.t.Fatal(err)
	}
	return got.PIN
}

// login logs in over HTTP and returns the cookie token and the CSRF token.
func (d *pinDesk) login(kvnr, pin string) (string, string) {
	d.t.Helper()
	resp, body := d.do(pinReq{method: "POST", path: "/api/pin-login", body: map[string]string{"kasse": d.kasse.ID, "kvnr": kvnr, "pin": pin}})
	if resp.StatusCode != 200 {
		d.t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	var out struct {
		CSRF string `json:"csrf_token"`
	}
	json.Unmarshal(body, &out)
	for _, c := range resp.Cookies() {
		if c.Name == PINCookieName(d.secure) {
			return c.Value, out.CSRF
		}
	}
	d.t.Fatalf("login set no PIN cookie: %v", resp.Header["Set-Cookie"])
	return "", ""
}

func problemOf(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("not JSON: %s", body)
	}
	return m
}

func TestPINLoginAnswersOverHTTP(t *testing.T) {
	for _, tc := range []struct {
		name       string
		prepare    func(d *pinDesk)
		body       func(d *pinDesk, pin string) any
		header     map[string]string
		wantStatus int
		wantType   string
		wantDetail string
	}{
		{name: "wrong PIN: 401 with the tries left", wantStatus: 401, wantType: "pin-wrong-pin",
			wantDetail: "Die PIN ist nicht korrekt. Sie haben noch 4 Versuche.",
			body: func(d *pinDesk, pin string) any {
				return map[string]string{"kasse": d.kasse.ID, "kvnr": d.erika.KVNR, "pin": strings.Repeat("A", 15)}
			}},
		{name: "malformed PIN: 422 naming the field", wantStatus: 422, wantType: "eingaben-pruefen", wantDetail: "15 Zeichen",
			body: func(d *pinDesk, pin string) any {
				return map[string]string{"kasse": d.kasse.ID, "kvnr": d.erika.KVNR, "pin": "12345"}
			}},
		{name: "letter older than 60 days: 401 with its own message", wantStatus: 401, wantType: "pin-expired", wantDetail: "älter als 60 Tage",
			prepare: func(d *pinDesk) { d.clock.Add(61 * 24 * time.Hour) },
			body: func(d *pinDesk, pin string) any {
				return map[string]string{"kasse": d.kasse.ID, "kvnr": d.erika.KVNR, "pin": pin}
			}},
		{name: "locked after five wrong entries: 423", wantStatus: 423, wantType: "pin-locked", wantDetail: "neuen Brief",
			prepare: func(d *pinDesk) {
				for i := 0; i < 5; i++ {
					d.do(pinReq{method: "POST", path: "/api/pin-login", body: map[string]string{"kasse": d.kasse.ID, "kvnr": d.erika.KVNR, "pin": strings.Repeat("B", 15)},
						header: map[string]string{"X-Forwarded-For": "ignored"}})
				}
			},
			body: func(d *pinDesk, pin string) any {
				return map[string]string{"kasse": d.kasse.ID, "kvnr": d.erika.KVNR, "pin": pin}
			}},
		{name: "unknown Kasse: 404", wantStatus: 404, wantType: "kasse-unbekannt",
			body: func(d *pinDesk, pin string) any {
				return map[string]string{"kasse": "nope", "kvnr": d.erika.KVNR, "pin": pin}
			}},
		{name: "foreign Origin: 403", wantStatus: 403, wantType: "fremde-herkunft", header: map[string]string{"Origin": "https://evil.example"},
			body: func(d *pinDesk, pin string) any {
				return map[string]string{"kasse": d.kasse.ID, "kvnr": d.erika.KVNR, "pin": pin}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newPINDesk(t, false)
			pin := d.issue(d.erika, "krankengeld")
			if tc.prepare != nil {
				tc.prepare(d)
			}
			resp, body := d.do(pinReq{method: "POST", path: "/api/pin-login", body: tc.body(d, pin), header: tc.header})
			p := problemOf(t, body)
			if resp.StatusCode != tc.wantStatus || !strings.HasSuffix(fmt.Sprint(p["type"]), "/"+tc.wantType) ||
				!strings.Contains(fmt.Sprint(p["detail"]), tc.wantDetail) || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("got %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			if len(resp.Cookies()) != 0 {
				t.Fatalf("refused login set a cookie: %v", resp.Cookies())
			}
			if strings.Contains(string(body), pin) {
				t.Fatal("answer contains the PIN")
			}
		})
	}
}

func TestPINLoginRateLimitAndCookieFlags(t *testing.T) {
	d := newPINDesk(t, true)
	d.svc.LoginLimit = 2
	pin := d.issue(d.erika, "krankengeld")
	tok, csrf := d.login(d.erika.KVNR, pin)
	if tok == "" || csrf == "" {
		t.Fatal("no session")
	}
	resp, _ := d.do(pinReq{method: "POST", path: "/api/pin-login", body: map[string]string{"kasse": d.kasse.ID, "kvnr": d.erika.KVNR, "pin": pin}})
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		ck = c
	}
	if ck == nil || ck.Name != "__Host-postbox_pin" || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Domain != "" {
		t.Fatalf("cookie = %+v (%v)", ck, resp.Header["Set-Cookie"])
	}
	resp, body := d.do(pinReq{method: "POST", path: "/api/pin-login", body: map[string]string{"kasse": d.kasse.ID, "kvnr": d.erika.KVNR, "pin": pin}})
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "zu viele Anmeldeversuche") {
		t.Fatalf("third login from one address: %d %s %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

func TestPINSessionCSRFAndTimeout(t *testing.T) {
	d := newPINDesk(t, false)
	pin := d.issue(d.erika, "krankengeld")
	tok, csrf := d.login(d.erika.KVNR, intake.FormatPIN(strings.ToLower(pin)))

	if resp, _ := d.do(pinReq{method: "GET", path: "/api/draft"}); resp.StatusCode != 401 {
		t.Fatalf("draft without login: %d", resp.StatusCode)
	}
	resp, body := d.do(pinReq{method: "PUT", path: "/api/draft", cookie: tok, body: map[string]string{"subject": "x"}})
	if resp.StatusCode != 403 || !strings.Contains(string(body), "CSRF") {
		t.Fatalf("PUT without CSRF token: %d %s", resp.StatusCode, body)
	}
	if resp, _ := d.do(pinReq{method: "PUT", path: "/api/draft", cookie: tok, csrf: "forged", body: map[string]string{"subject": "x"}}); resp.StatusCode != 403 {
		t.Fatalf("PUT with a wrong CSRF token: %d", resp.StatusCode)
	}
	// The session answer repeats the token (for a reloaded page).
	resp, body = d.do(pinReq{method: "GET", path: "/api/pin-session", cookie: tok})
	if resp.StatusCode != 200 || !strings.Contains(string(body), csrf) || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("pin-session: %d %s", resp.StatusCode, body)
	}
	// Upload routes: the Tus-Resumable header stands for the CSRF proof.
	resp, body = d.do(pinReq{method: "PATCH", path: TusPath + "/probe", cookie: tok, header: map[string]string{"Tus-Resumable": "1.0.0"}})
	var p auth.Principal
	json.Unmarshal(body, &p)
	if resp.StatusCode != 200 || p.PersonID != d.erika.ID || p.TenantID != d.kasse.ID || p.Role != auth.RoleInsured || p.SessionID == "" || p.SessionID == tok {
		t.Fatalf("upload route principal: %d %s", resp.StatusCode, body)
	}
	if resp, _ := d.do(pinReq{method: "PATCH", path: TusPath + "/probe", cookie: tok}); resp.StatusCode != 403 {
		t.Fatalf("upload PATCH without Tus-Resumable or CSRF: %d", resp.StatusCode)
	}
	d.clock.Add(31 * time.Minute)
	resp, _ = d.do(pinReq{method: "GET", path: "/api/draft", cookie: tok})
	cleared := false
	for _, c := range resp.Cookies() {
		cleared = cleared || (c.Name == "postbox_pin" && c.Value == "" && (c.MaxAge < 0 || c.Expires.Before(time.Now())))
	}
	if resp.StatusCode != 401 || !cleared {
		t.Fatalf("after 31 idle minutes: %d, cookie cleared %v", resp.StatusCode, cleared)
	}
	// Logout ends the session.
	tok, csrf = d.login(d.erika.KVNR, pin)
	if resp, _ := d.do(pinReq{method: "POST", path: "/api/pin-logout", cookie: tok, csrf: csrf}); resp.StatusCode != 204 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := d.do(pinReq{method: "GET", path: "/api/draft", cookie: tok}); resp.StatusCode != 401 {
		t.Fatalf("draft after logout: %d", resp.StatusCode)
	}
}

func TestDraftSubmitAndDownloadOverHTTP(t *testing.T) {
	testDraftSubmitAndDownload(t, newPINDesk(t, false))
}

// testDraftSubmitAndDownload is the whole flow of an insured person and a
// caseworker, on whichever backends d runs.
func testDraftSubmitAndDownload(t *testing.T, d *pinDesk) {
	pin := d.issue(d.erika, "krankengeld")
	tok, csrf := d.login(d.erika.KVNR, pin)

	resp, body := d.do(pinReq{method: "GET", path: "/api/draft", cookie: tok})
	var draft struct {
		Draft struct {
			ID       string `json:"id"`
			CaseType string `json:"case_type"`
			Subject  string `json:"subject"`
			Message  string `json:"message"`
		} `json:"draft"`
		Files    []intake.DraftFile `json:"files"`
		Errors   map[string]string  `json:"errors"`
		Requests []map[string]any   `json:"requests"`
	}
	json.Unmarshal(body, &draft)
	if resp.StatusCode != 200 || draft.Draft.ID == "" || draft.Draft.CaseType != "krankengeld" || len(draft.Requests) != 1 {
		t.Fatalf("GET draft: %d %s", resp.StatusCode, body)
	}
	// Autosave keeps a too long message and names the problem.
	long := strings.Repeat("Ö", intake.MaxMessage+1)
	resp, body = d.do(pinReq{method: "PUT", path: "/api/draft", cookie: tok, csrf: csrf,
		body: map[string]string{"case_type": "krankengeld", "subject": "AU ab 20.11.", "message": long}})
	json.Unmarshal(body, &draft)
	if resp.StatusCode != 200 || draft.Draft.Message != long || !strings.Contains(draft.Errors["message"], "höchstens 2000 Zeichen") {
		t.Fatalf("PUT draft: %d %.300s", resp.StatusCode, body)
	}
	resp, body = d.do(pinReq{method: "POST", path: "/api/submit", cookie: tok, csrf: csrf, body: map[string]string{"draft_id": draft.Draft.ID}})
	if resp.StatusCode != 422 || !strings.Contains(string(body), "höchstens 2000 Zeichen") {
		t.Fatalf("submit with a too long message: %d %.300s", resp.StatusCode, body)
	}
	d.do(pinReq{method: "PUT", path: "/api/draft", cookie: tok, csrf: csrf,
		body: map[string]string{"case_type": "krankengeld", "subject": "AU ab 20.11.", "message": "Anbei die AU."}})
	resp, body = d.do(pinReq{method: "POST", path: "/api/submit", cookie: tok, csrf: csrf, body: map[string]string{"draft_id": draft.Draft.ID}})
	if resp.StatusCode != 422 || !strings.Contains(string(body), "mindestens ein Dokument") {
		t.Fatalf("submit without files: %d %s", resp.StatusCode, body)
	}
	content := []byte("%PDF-1.4 Arbeitsunfähigkeitsbescheinigung " + strings.Repeat("x", 5000))
	// Through the tus engine with the PIN session (creation-with-upload).
	resp, body = d.do(pinReq{method: "POST", path: TusPath, cookie: tok, rawBody: content, header: map[string]string{
		"Tus-Resumable": "1.0.0", "Upload-Length": fmt.Sprint(len(content)), "Content-Type": "application/offset+octet-stream",
		"Upload-Metadata": "filename " + base64.StdEncoding.EncodeToString([]byte("AU \"März\"\r\n.pdf")) + ",filetype " + base64.StdEncoding.EncodeToString([]byte("application/pdf"))}})
	if resp.StatusCode != 201 || resp.Header.Get("Upload-Offset") != fmt.Sprint(len(content)) {
		t.Fatalf("tus upload with the PIN session: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, body = d.do(pinReq{method: "GET", path: "/api/draft", cookie: tok})
	json.Unmarshal(body, &draft)
	if len(draft.Files) != 1 || draft.Files[0].State != intake.FileComplete || draft.Files[0].Size != int64(len(content)) {
		t.Fatalf("draft after the upload: %s", body)
	}
	sum := sha256.Sum256(content)
	up := intake.Upload{SHA256: hex.EncodeToString(sum[:])}

	// Double click: two submissions at once get the same answer.
	var wg sync.WaitGroup
	answers := make([][]byte, 2)
	codes := make([]int, 2)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, b := d.do(pinReq{method: "POST", path: "/api/submit", cookie: tok, csrf: csrf, body: map[string]string{"draft_id": draft.Draft.ID}})
			answers[i], codes[i] = b, r.StatusCode
		}()
	}
	wg.Wait()
	if codes[0] != 200 || codes[1] != 200 || !bytes.Equal(answers[0], answers[1]) {
		t.Fatalf("double click: %d %s\n%d %s", codes[0], answers[0], codes[1], answers[1])
	}
	var rec struct {
		Vorgang struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"vorgang"`
		Files []struct {
			ID       string `json:"id"`
			FileName string `json:"file_name"`
			Size     int64  `json:"size"`
			SHA256   string `json:"sha256"`
		} `json:"files"`
	}
	json.Unmarshal(answers[0], &rec)
	if rec.Vorgang.Status != "eingegangen" || len(rec.Files) != 1 || rec.Files[0].SHA256 != up.SHA256 || rec.Files[0].Size != int64(len(content)) {
		t.Fatalf("receipt: %s", answers[0])
	}
	// A retry with the same cookie (the answer got lost) answers the same.
	resp, body = d.do(pinReq{method: "POST", path: "/api/submit", cookie: tok, csrf: csrf, body: map[string]string{"draft_id": draft.Draft.ID}})
	if resp.StatusCode != 200 || !bytes.Equal(body, answers[0]) {
		t.Fatalf("retry after the session ended: %d %s", resp.StatusCode, body)
	}
	if resp, _ := d.do(pinReq{method: "GET", path: "/api/draft", cookie: tok}); resp.StatusCode != 401 {
		t.Fatalf("draft after submission: %d", resp.StatusCode)
	}
	resp, body = d.do(pinReq{method: "POST", path: "/api/pin-login", body: map[string]string{"kasse": d.kasse.ID, "kvnr": d.erika.KVNR, "pin": pin}})
	if resp.StatusCode != 401 || !strings.Contains(string(body), "bereits verwendet") {
		t.Fatalf("login with the used PIN: %d %s", resp.StatusCode, body)
	}

	// Caseworker download.
	path := "/api/vorgaenge/" + rec.Vorgang.ID + "/files/" + rec.Files[0].ID
	cw := &auth.Principal{TenantID: d.kasse.ID, AccountID: "cw-1", Role: auth.RoleCaseworker}
	resp, body = d.do(pinReq{method: "GET", path: path, principal: cw})
	if resp.StatusCode != 200 || !bytes.Equal(body, content) {
		t.Fatalf("download: %d, %d bytes", resp.StatusCode, len(body))
	}
	cd := resp.Header.Get("Content-Disposition")
	_, params, err := mime.ParseMediaType(cd)
	if err != nil || params["filename"] != "AU \"März\".pdf" || strings.ContainsAny(cd, "\r\n") {
		t.Fatalf("Content-Disposition %q → %v, %v", cd, params, err)
	}
	if resp.Header.Get("Content-Type") != "application/pdf" || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.Contains(resp.Header.Get("Cache-Control"), "no-store") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("download headers: %v", resp.Header)
	}
	for name, who := range map[string]*auth.Principal{
		"caseworker of another Kasse": {TenantID: d.other.ID, AccountID: "cw-2", Role: auth.RoleCaseworker},
		"the insured person":          {TenantID: d.kasse.ID, PersonID: d.erika.ID, Role: auth.RoleInsured},
		"an auditor":                  {TenantID: d.kasse.ID, AccountID: "au-1", Role: auth.RoleAuditor},
	} {
		if resp, body := d.do(pinReq{method: "GET", path: path, principal: who}); resp.StatusCode != 404 || bytes.Contains(body, content[:20]) {
			t.Errorf("%s: %d", name, resp.StatusCode)
		}
	}
	if resp, _ := d.do(pinReq{method: "GET", path: path}); resp.StatusCode != 401 {
		t.Errorf("anonymous download: %d", resp.StatusCode)
	}
	if resp, _ := d.do(pinReq{method: "GET", path: "/api/vorgaenge/" + rec.Vorgang.ID + "/files/" + uuid.NewString(), principal: cw}); resp.StatusCode != 404 {
		t.Errorf("unknown file: %d", resp.StatusCode)
	}
	events, err := d.store.PendingEvents(context.Background(), 10000)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, e := range events {
		counts[e.Type+"/"+string(e.Outcome)]++
	}
	if counts["intake.file.downloaded/success"] != 1 || counts["intake.file.downloaded/denied"] != 2 ||
		counts["intake.submitted/success"] != 1 || counts["intake.file.submitted/success"] != 1 {
		t.Fatalf("audit events: %v", counts)
	}
}

func pdfToText(t *testing.T, pdf []byte) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Fatal("pdftotext not found: install the Debian package poppler-utils (deploy/install does)")
	}
	path := filepath.Join(t.TempDir(), "letter.pdf")
	os.WriteFile(path, pdf, 0o600)
	out, err := exec.Command(bin, "-enc", "UTF-8", path, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v %s", err, out)
	}
	return string(out)
}

func TestIssuePINLetterOverHTTPAndLogInWithIt(t *testing.T) {
	d := newPINDesk(t, false)
	cw := &auth.Principal{TenantID: d.kasse.ID, AccountID: "cw-1", Role: auth.RoleCaseworker}
	req := map[string]string{"kvnr": d.erika.KVNR, "case_type": "hilfsmittel", "request_text": "Bitte senden Sie uns die ärztliche Verordnung für Ihren Rollator."}
	resp, pdf := d.do(pinReq{method: "POST", path: "/api/pins", principal: cw, body: req})
	if resp.StatusCode != 201 || resp.Header.Get("Content-Type") != "application/pdf" || resp.Header.Get("Cache-Control") != "no-store" ||
		resp.Header.Get("X-PIN-Valid-Until") != "21.01.2027" {
		t.Fatalf("issue: %d %v %.200s", resp.StatusCode, resp.Header, pdf)
	}
	text := pdfToText(t, pdf)
	pin := regexp.MustCompile(`[A-Z2-9]{5}-[A-Z2-9]{5}-[A-Z2-9]{5}`).FindString(text)
	if pin == "" || !strings.Contains(text, "Rollator") || !strings.Contains(text, "https://postfach.example/einmal-pin/"+d.kasse.ID) {
		t.Fatalf("letter text:\n%s", text)
	}
	// The PIN on the letter opens a session.
	if tok, _ := d.login(d.erika.KVNR, pin); tok == "" {
		t.Fatal("no session with the letter's PIN")
	}
	for name, tc := range map[string]struct {
		who    *auth.Principal
		body   map[string]string
		status int
	}{
		"no login":                    {nil, req, 401},
		"insured person":              {&auth.Principal{TenantID: d.kasse.ID, PersonID: d.erika.ID, Role: auth.RoleInsured}, req, 404},
		"caseworker of another Kasse": {&auth.Principal{TenantID: d.other.ID, AccountID: "cw-2", Role: auth.RoleCaseworker}, req, 404},
		"unknown Anliegen":            {cw, map[string]string{"kvnr": d.erika.KVNR, "case_type": "urlaub", "request_text": "x"}, 422},
	} {
		resp, body := d.do(pinReq{method: "POST", path: "/api/pins", principal: tc.who, body: tc.body})
		if resp.StatusCode != tc.status || bytes.HasPrefix(body, []byte("%PDF")) {
			t.Errorf("%s: %d %.200s", name, resp.StatusCode, body)
		}
	}
}

func TestPINContentDispositionIsSafeForHostileNames(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Befund.pdf", "Befund.pdf"},
		{"Ärztlicher Befund (März).pdf", "Ärztlicher Befund (März).pdf"},
		{`a"b\c.pdf`, "c.pdf"}, // a backslash is a directory separator on Windows
		{"a\"b.pdf", "a\"b.pdf"},
		{"line\r\nX-Injected: 1.pdf", "lineX-Injected: 1.pdf"},
		{"../../etc/passwd", "passwd"},
		{"C:\\Users\\x\\doc.pdf", "doc.pdf"},
		{"日本語の書類.pdf", "日本語の書類.pdf"},
		{"%22;filename=evil.exe", "%22;filename=evil.exe"},
		{"", "dokument"},
		{"..", "dokument"},
		{"\x00\x1b", "dokument"},
		{"rtl\u202egpj.exe", "rtlgpj.exe"},
		{"a\xffb.pdf", "a_b.pdf"},
	} {
		cd := PINContentDisposition(tc.in)
		if strings.ContainsAny(cd, "\r\n\x00") {
			t.Errorf("%q: header has a control character: %q", tc.in, cd)
		}
		disp, params, err := mime.ParseMediaType(cd)
		if err != nil || disp != "attachment" || params["filename"] != tc.want {
			t.Errorf("%q: %q parses to %q %v (%v), want filename %q", tc.in, cd, disp, params, err, tc.want)
		}
		fallback := regexp.MustCompile(`filename="([^"]*)"`).FindStringSubmatch(cd)
		if fallback == nil || strings.ContainsAny(fallback[1], "\\%;\"/") || strings.IndexFunc(fallback[1], func(r rune) bool { return r > 0x7e }) >= 0 {
			t.Errorf("%q: unsafe ASCII fallback in %q", tc.in, cd)
		}
	}
}
