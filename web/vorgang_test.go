package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"postbox/audit"
	"postbox/auth"
	"postbox/kasse"
	"postbox/notifier"
	"postbox/storage/sqldb"
	"postbox/storage/sqlite"
	"postbox/web"
)

// vorgangWorld: two Kassen, insured persons with and without online
// delivery, caseworkers of both, an auditor, real sessions with CSRF.
type vorgangWorld struct {
	t      *testing.T
	store  *sqldb.Store
	srv    *web.Server
	auth   *auth.Service
	ka, kb kasse.Kasse
	people map[string]kasse.Person
	accts  map[string]auth.Principal
	tokens map[string]string
	vg     map[string]audit.Vorgang // by key
}

func newVorgangWorld(t *testing.T) *vorgangWorld {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "postbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	w := &vorgangWorld{t: t, store: store, people: map[string]kasse.Person{}, accts: map[string]auth.Principal{},
		tokens: map[string]string{}, vg: map[string]audit.Vorgang{}}
	sfx := uuid.NewString()[:8]
	w.ka = kasse.Kasse{ID: "ka-" + sfx, Name: "AOK Test", PortalURL: "https://portal.example/ka", Settings: kasse.DefaultSettings()}
	w.kb = kasse.Kasse{ID: "kb-" + sfx, Name: "Kasse B", PortalURL: "https://portal.example/kb", Settings: kasse.DefaultSettings()}
	err = store.InTx(ctx, func(tx *sqldb.Tx) error {
		for _, k := range []kasse.Kasse{w.ka, w.kb} {
			if err := tx.CreateKasse(ctx, k); err != nil {
				return err
			}
		}
		for i, p := range []struct {
			name, tenant, email string
			delivery            kasse.Delivery
		}{
			{"erika", w.ka.ID, "erika@example.org", kasse.DeliveryOnline},
			{"max", w.ka.ID, "max@example.org", kasse.DeliveryPost},
			{"ohne", w.ka.ID, "", kasse.DeliveryOnline}, // online, but no address
			{"bea", w.kb.ID, "bea@example.org", kasse.DeliveryOnline},
		} {
			person := kasse.Person{ID: uuid.NewString(), TenantID: p.tenant, KVNR: kasse.CompleteKVNR(fmt.Sprintf("A%08d", i+1)),
				GivenName: p.name, FamilyName: "Test", Email: p.email, Delivery: p.delivery}
			if err := tx.CreatePerson(ctx, person); err != nil {
				return err
			}
			w.people[p.name] = person
		}
		for _, a := range []struct {
			name, tenant, person string
			role                 auth.Role
		}{
			{"erika", w.ka.ID, "erika", auth.RoleInsured},
			{"max", w.ka.ID, "max", auth.RoleInsured},
			{"bea", w.kb.ID, "bea", auth.RoleInsured},
			{"sachb", w.ka.ID, "", auth.RoleCaseworker},
			{"lead", w.ka.ID, "", auth.RoleTeamLead},
			{"sachb-b", w.kb.ID, "", auth.RoleCaseworker},
			{"pruefer", w.ka.ID, "", auth.RoleAuditor},
		} {
			acc := auth.Account{ID: uuid.NewString(), TenantID: a.tenant, Role: a.role, Username: strings.ReplaceAll(a.name, "-", "") + sfx[:4], Status: auth.StatusActive}
			p := auth.Principal{TenantID: a.tenant, Role: a.role, AccountID: acc.ID}
			if a.person != "" {
				acc.PersonID = w.people[a.person].ID
				p.PersonID = acc.PersonID
			}
			if err := tx.CreateAccount(ctx, acc); err != nil {
				return err
			}
			w.accts[a.name] = p
		}
		for _, v := range []struct {
			key, person string
			typ         audit.CaseType
		}{
			{"erika-kg", "erika", "krankengeld"}, {"erika-hm", "erika", "hilfsmittel"},
			{"max-kg", "max", "krankengeld"}, {"ohne-zz", "ohne", "zuzahlungsbefreiung"}, {"bea-kg", "bea", "krankengeld"},
		} {
			p := w.people[v.person]
			created, _, err := tx.CreateVorgang(ctx, audit.Vorgang{TenantID: p.TenantID, PersonID: p.ID, Type: v.typ, Title: "Antrag " + v.key}, "", "system")
			if err != nil {
				return err
			}
			w.vg[v.key] = created
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	w.auth, err = auth.NewService(store.Auth(), auth.Options{Argon2: auth.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		Key: make([]byte, 32), ClientAddrKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range w.accts {
		token, _, err := w.auth.StartSession(ctx, p, auth.StageDone, "")
		if err != nil {
			t.Fatal(err)
		}
		w.tokens[name] = token
	}
	w.srv = web.New(web.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	w.srv.UseSessions(w.auth, web.SessionOptions{})
	w.srv.UseAuditOrigin(audit.NewClientHasher([]byte(strings.Repeat("c", 32))))
	web.MountVorgaenge(w.srv.App(), &audit.VorgangService{Store: store.Vorgaenge()}, web.VorgangOptions{})
	return w
}

type answer struct {
	code      int
	body      []byte
	ctype     string
	requestID string
}

func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("answer %d is not JSON: %v\n%s", a.code, err, a.body)
	}
}

// do sends a request as the named account ("" anonymous); POSTs carry the
// session's CSRF token unless noCSRF.
func (w *vorgangWorld) do(as, method, path, body string, noCSRF ...bool) answer {
	w.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	req.RemoteAddr = "192.0.2.44:40000"
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok := w.tokens[as]; tok != "" {
		req.AddCookie(&http.Cookie{Name: web.SessionCookieName(false), Value: tok})
		if method != http.MethodGet && len(noCSRF) == 0 {
			req.Header.Set("X-CSRF-Token", auth.CSRFToken(tok))
		}
	}
	resp, err := w.srv.App().Test(req, -1)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, b, resp.Header.Get("Content-Type"), resp.Header.Get("X-Request-ID")}
}

func (w *vorgangWorld) events(tenant string) []audit.Event {
	w.t.Helper()
	all, err := w.store.PendingEvents(context.Background(), 100000)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []audit.Event
	for _, e := range all {
		if e.TenantID == tenant && strings.HasPrefix(e.Type, "vorgang.") {
			out = append(out, e)
		}
	}
	return out
}

func (w *vorgangWorld) mails(person string) []notifier.Job {
	w.t.Helper()
	p := w.people[person]
	jobs, err := w.store.MailJobsOfPerson(context.Background(), p.TenantID, p.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	return jobs
}

func (w *vorgangWorld) status(key string) audit.Status {
	w.t.Helper()
	v := w.vg[key]
	got, err := w.store.Vorgang(context.Background(), v.TenantID, v.ID)
	if err != nil {
		w.t.Fatal(err)
	}
	return got.Status
}

func statusBody(to, reason string) string {
	b, _ := json.Marshal(map[string]string{"status": to, "reason": reason})
	return string(b)
}

func TestVorgangInsuredSeesOwnVorgaengeOnly(t *testing.T) {
	w := newVorgangWorld(t)
	var list struct {
		Vorgaenge []struct {
			ID, Type, Status string
			PersonID         string `json:"person_id"`
		} `json:"vorgaenge"`
	}
	a := w.do("erika", "GET", "/api/vorgaenge", "")
	if a.code != 200 {
		t.Fatalf("list: %d %s", a.code, a.body)
	}
	a.json(t, &list)
	var ids []string
	for _, v := range list.Vorgaenge {
		ids = append(ids, v.ID)
		if v.Status != "eingegangen" || v.PersonID != "" {
			t.Errorf("vorgang as the insured sees it: %+v", v)
		}
	}
	slices.Sort(ids)
	want := []string{w.vg["erika-kg"].ID, w.vg["erika-hm"].ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("erika sees %v, want her two %v", ids, want)
	}
	if !strings.Contains(string(a.body), `"type_label":"Krankengeld"`) || !strings.Contains(string(a.body), `"status_label":"Eingegangen"`) {
		t.Errorf("German labels missing: %s", a.body)
	}

	// Another person's and another tenant's Vorgang look exactly like a
	// missing one.
	missing := w.do("erika", "GET", "/api/vorgaenge/"+uuid.NewString(), "")
	for _, key := range []string{"max-kg", "bea-kg"} {
		a := w.do("erika", "GET", "/api/vorgaenge/"+w.vg[key].ID, "")
		if a.code != 404 || a.ctype != "application/problem+json" {
			t.Fatalf("erika opens %s: %d %s", key, a.code, a.body)
		}
		var p1, p2 web.Problem
		a.json(t, &p1)
		missing.json(t, &p2)
		p1.RequestID, p2.RequestID = "", ""
		if p1 != p2 {
			t.Errorf("foreign %s answers %+v, a missing one %+v", key, p1, p2)
		}
	}
	if a := w.do("", "GET", "/api/vorgaenge", ""); a.code != 401 {
		t.Errorf("anonymous list: %d", a.code)
	}
	if a := w.do("pruefer", "GET", "/api/vorgaenge", ""); a.code != 404 {
		t.Errorf("auditor list: %d, want 404 (not a route for the role)", a.code)
	}
}

func TestVorgangStatusChangeTimelineEventAndNotice(t *testing.T) {
	w := newVorgangWorld(t)
	v := w.vg["erika-kg"]
	reason := "AU-Bescheinigung von Dr. Müller liegt vor, Diagnose F32"
	a := w.do("sachb", "POST", "/api/vorgaenge/"+v.ID+"/status", statusBody("in_bearbeitung", reason))
	if a.code != 200 {
		t.Fatalf("change: %d %s", a.code, a.body)
	}
	if got := w.status("erika-kg"); got != audit.StatusInBearbeitung {
		t.Fatalf("status after change: %s", got)
	}

	// The insured person's timeline: both steps, no reason, no actor.
	var detail struct {
		Vorgang  struct{ Status, StatusLabel string } `json:"vorgang"`
		Timeline []map[string]any                     `json:"timeline"`
	}
	a = w.do("erika", "GET", "/api/vorgaenge/"+v.ID, "")
	if a.code != 200 {
		t.Fatalf("erika opens her vorgang: %d %s", a.code, a.body)
	}
	a.json(t, &detail)
	if len(detail.Timeline) != 2 || detail.Timeline[0]["to"] != "eingegangen" || detail.Timeline[1]["to"] != "in_bearbeitung" ||
		detail.Timeline[1]["to_label"] != "In Bearbeitung" || detail.Timeline[1]["from"] != "eingegangen" {
		t.Fatalf("timeline: %+v", detail.Timeline)
	}
	if strings.Contains(string(a.body), "Müller") || strings.Contains(string(a.body), w.accts["sachb"].AccountID) {
		t.Errorf("the insured person's timeline shows the caseworker's reason or id: %s", a.body)
	}
	// The caseworker sees the reason and who.
	a = w.do("sachb", "GET", "/api/vorgaenge/"+v.ID, "")
	if a.code != 200 || !strings.Contains(string(a.body), "Müller") || !strings.Contains(string(a.body), w.accts["sachb"].AccountID) {
		t.Fatalf("caseworker view: %d %s", a.code, a.body)
	}

	// One event with from/to, the actor and the request, no reason text.
	evs := w.events(w.ka.ID)
	if len(evs) != 1 {
		t.Fatalf("vorgang events: %+v", evs)
	}
	e := evs[0]
	if e.Type != "vorgang.status.changed" || e.SubjectType != "vorgang" || e.SubjectID != v.ID || e.Outcome != audit.OutcomeSuccess ||
		e.ActorID != w.accts["sachb"].AccountID || e.ActorRole != "caseworker" || e.Details != `{"from":"eingegangen","to":"in_bearbeitung"}` {
		t.Fatalf("event: %+v", e)
	}
	if e.RequestID == "" || e.ClientHash == "" || len(e.ClientHash) != 32 {
		t.Errorf("event lacks request id or client hash: %+v", e)
	}
	if strings.Contains(fmt.Sprintf("%+v", e), "Müller") || strings.Contains(e.ClientHash, "192.0.2") {
		t.Errorf("event carries the reason or the address: %+v", e)
	}

	// One content-free notice for erika (online, e-mail): Kasse name and
	// portal address only.
	jobs := w.mails("erika")
	if len(jobs) != 1 {
		t.Fatalf("mail jobs for erika: %+v", jobs)
	}
	j := jobs[0]
	if j.Template != notifier.TemplateStatusChanged || j.Recipient != "erika@example.org" || len(j.Data) != 2 ||
		j.Data[notifier.DataKasseName] != "AOK Test" || j.Data[notifier.DataPortalURL] != "https://portal.example/ka" {
		t.Fatalf("mail job: %+v", j)
	}
	// A second change soon after folds into the waiting mail.
	if a := w.do("lead", "POST", "/api/vorgaenge/"+v.ID+"/status", statusBody("rueckfrage", "Unterlagen fehlen")); a.code != 200 {
		t.Fatalf("second change: %d %s", a.code, a.body)
	}
	if jobs := w.mails("erika"); len(jobs) != 1 || jobs[0].Coalesced != 1 {
		t.Fatalf("after a second change: %+v", jobs)
	}

	// Post delivery, or online without an address: no mail, but the change.
	for _, key := range []string{"max-kg", "ohne-zz"} {
		if a := w.do("sachb", "POST", "/api/vorgaenge/"+w.vg[key].ID+"/status", statusBody("in_bearbeitung", "Prüfung")); a.code != 200 {
			t.Fatalf("%s: %d %s", key, a.code, a.body)
		}
		if w.status(key) != audit.StatusInBearbeitung {
			t.Fatalf("%s not changed", key)
		}
	}
	if jobs := w.mails("max"); len(jobs) != 0 {
		t.Errorf("max (post delivery) got mail jobs: %+v", jobs)
	}
	if jobs := w.mails("ohne"); len(jobs) != 0 {
		t.Errorf("a person without address got mail jobs: %+v", jobs)
	}
}

func TestVorgangStatusChangeRefusals(t *testing.T) {
	w := newVorgangWorld(t)
	v := w.vg["erika-kg"]
	path := "/api/vorgaenge/" + v.ID + "/status"
	for _, tc := range []struct {
		name, as, body string
		noCSRF         bool
		code           int
		ptype, detail  string
	}{
		{"forbidden transition", "sachb", statusBody("entschieden", "schnell"), false, 409, "statuswechsel-nicht-erlaubt",
			"Der Status kann nicht von „Eingegangen“ nach „Entschieden“ wechseln. Erlaubt ist: „In Bearbeitung“."},
		{"unknown status", "sachb", statusBody("erfunden", "x"), false, 422, "ungueltige-eingabe", "Unbekannter Status „erfunden“."},
		{"no reason", "sachb", statusBody("in_bearbeitung", "  \n "), false, 422, "ungueltige-eingabe", "Bitte geben Sie eine Begründung für die Statusänderung an."},
		{"reason too long", "sachb", statusBody("in_bearbeitung", strings.Repeat("ä", audit.MaxReasonRunes+1)), false, 422, "ungueltige-eingabe",
			"Die Begründung darf höchstens 500 Zeichen lang sein (jetzt 501)."},
		{"stale view", "sachb", `{"status":"in_bearbeitung","reason":"x","from":"rueckfrage"}`, false, 409, "vorgang-geaendert", "„Eingegangen“"},
		{"not JSON", "sachb", `{"status":`, false, 400, "ungueltiges-json", ""},
		{"no CSRF token", "sachb", statusBody("in_bearbeitung", "ok"), true, 403, "csrf", ""},
		{"insured person", "erika", statusBody("in_bearbeitung", "ok"), false, 404, "http-404", ""},
		{"auditor", "pruefer", statusBody("in_bearbeitung", "ok"), false, 404, "http-404", ""},
		{"caseworker of another Kasse", "sachb-b", statusBody("in_bearbeitung", "ok"), false, 404, "http-404", ""},
		{"anonymous", "", statusBody("in_bearbeitung", "ok"), false, 401, "anmeldung-erforderlich", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a answer
			if tc.noCSRF {
				a = w.do(tc.as, "POST", path, tc.body, true)
			} else {
				a = w.do(tc.as, "POST", path, tc.body)
			}
			if a.code != tc.code || a.ctype != "application/problem+json" {
				t.Fatalf("%d %s %s, want %d problem+json", a.code, a.ctype, a.body, tc.code)
			}
			var p web.Problem
			a.json(t, &p)
			if !strings.HasSuffix(p.Type, "/"+tc.ptype) || !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("problem %+v, want type %s with %q", p, tc.ptype, tc.detail)
			}
			if got := w.status("erika-kg"); got != audit.StatusEingegangen {
				t.Fatalf("refused change moved the status to %s", got)
			}
		})
	}
	if jobs := w.mails("erika"); len(jobs) != 0 {
		t.Errorf("refused changes queued mails: %+v", jobs)
	}
	// Refusals the service saw are on record as denied, with a code, not text.
	var denied []string
	for _, e := range w.events(w.ka.ID) {
		if e.Outcome != audit.OutcomeDenied || e.Type != "vorgang.status.changed" {
			t.Errorf("unexpected event %+v", e)
		}
		denied = append(denied, e.Details)
	}
	for _, e := range w.events(w.kb.ID) {
		if e.SubjectID == v.ID && strings.Contains(e.Details, `"reason":"not_found"`) {
			denied = append(denied, "foreign")
		}
	}
	slices.Sort(denied)
	want := []string{`{"reason":"stale","to":"in_bearbeitung"}`, `{"reason":"transition","to":"entschieden"}`, "foreign"}
	slices.Sort(want)
	if !slices.Equal(denied, want) {
		t.Errorf("denied events %q, want %q", denied, want)
	}
}

// TestVorgangStatusChangeIsOneTransaction breaks the mail outbox: the
// status change, its timeline entry and its event must all stay undone.
func TestVorgangStatusChangeIsOneTransaction(t *testing.T) {
	w := newVorgangWorld(t)
	if _, err := w.store.DB().Exec(`ALTER TABLE mail_outbox RENAME TO mail_outbox_gone`); err != nil {
		t.Fatal(err)
	}
	v := w.vg["erika-kg"]
	a := w.do("sachb", "POST", "/api/vorgaenge/"+v.ID+"/status", statusBody("in_bearbeitung", "ok"))
	if a.code != 500 {
		t.Fatalf("with a broken mail outbox: %d %s", a.code, a.body)
	}
	if w.status("erika-kg") != audit.StatusEingegangen {
		t.Fatal("status changed although the notice could not be queued")
	}
	tl, err := w.store.VorgangTimeline(context.Background(), v.TenantID, v.ID)
	if err != nil || len(tl) != 1 {
		t.Fatalf("timeline after the failed change: %+v %v", tl, err)
	}
	for _, e := range w.events(w.ka.ID) {
		if e.Outcome == audit.OutcomeSuccess {
			t.Fatalf("event of the rolled-back change is in the outbox: %+v", e)
		}
	}
	// Max (post delivery) needs no mail: his change goes through.
	if a := w.do("sachb", "POST", "/api/vorgaenge/"+w.vg["max-kg"].ID+"/status", statusBody("in_bearbeitung", "ok")); a.code != 200 {
		t.Fatalf("change without a notice: %d %s", a.code, a.body)
	}
}

func TestVorgangCaseworkerListFiltersAndPages(t *testing.T) {
	w := newVorgangWorld(t)
	if a := w.do("sachb", "POST", "/api/vorgaenge/"+w.vg["max-kg"].ID+"/status", statusBody("in_bearbeitung", "ok")); a.code != 200 {
		t.Fatal(a.code, string(a.body))
	}
	type listed struct {
		Vorgaenge []struct {
			ID, Status, Type string
			PersonID         string `json:"person_id"`
			Next             []struct{ Status, Label string }
		} `json:"vorgaenge"`
		NextCursor string `json:"next_cursor"`
	}
	ids := func(l listed) []string {
		var out []string
		for _, v := range l.Vorgaenge {
			out = append(out, v.ID)
		}
		slices.Sort(out)
		return out
	}
	keys := func(ks ...string) []string {
		var out []string
		for _, k := range ks {
			out = append(out, w.vg[k].ID)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", keys("erika-kg", "erika-hm", "max-kg", "ohne-zz")}, // never bea's (Kasse B)
		{"?status=in_bearbeitung", keys("max-kg")},
		{"?type=krankengeld", keys("erika-kg", "max-kg")},
		{"?type=krankengeld&status=eingegangen", keys("erika-kg")},
	} {
		var l listed
		a := w.do("sachb", "GET", "/api/vorgaenge"+tc.query, "")
		if a.code != 200 {
			t.Fatalf("%s: %d %s", tc.query, a.code, a.body)
		}
		a.json(t, &l)
		if !slices.Equal(ids(l), tc.want) {
			t.Errorf("list %q: %v, want %v", tc.query, ids(l), tc.want)
		}
	}
	var l listed
	w.do("lead", "GET", "/api/vorgaenge?status=eingegangen&type=krankengeld", "").json(t, &l)
	if len(l.Vorgaenge) != 1 || len(l.Vorgaenge[0].Next) != 1 || l.Vorgaenge[0].Next[0].Status != "in_bearbeitung" ||
		l.Vorgaenge[0].PersonID != w.people["erika"].ID {
		t.Errorf("caseworker entry: %+v", l.Vorgaenge)
	}
	for _, bad := range []string{"?status=kaputt", "?type=kaputt", "?limit=0", "?cursor=%%%"} {
		if a := w.do("sachb", "GET", "/api/vorgaenge"+bad, ""); a.code != 400 && a.code != 422 {
			t.Errorf("list %s: %d %s", bad, a.code, a.body)
		}
	}
	// Pages of one: every Vorgang once, then no cursor.
	var seen []string
	path := "/api/vorgaenge?limit=1"
	for range 10 {
		var p listed
		w.do("sachb", "GET", path, "").json(t, &p)
		seen = append(seen, ids(p)...)
		if p.NextCursor == "" {
			break
		}
		path = "/api/vorgaenge?limit=1&cursor=" + p.NextCursor
	}
	slices.Sort(seen)
	if !slices.Equal(seen, keys("erika-kg", "erika-hm", "max-kg", "ohne-zz")) {
		t.Errorf("pages: %v", seen)
	}
}

// TestVorgangEventsCarryNoContent scans every event the flows above wrote:
// no key or value may carry content, personal data or the reason typed.
func TestVorgangEventsCarryNoContent(t *testing.T) {
	w := newVorgangWorld(t)
	secret := "Patientin berichtet Depression, Tel. 0511 123456"
	for _, step := range []struct{ as, key, to string }{
		{"sachb", "erika-kg", "in_bearbeitung"}, {"lead", "erika-kg", "rueckfrage"}, {"sachb", "erika-kg", "in_bearbeitung"},
		{"sachb", "erika-kg", "entschieden"}, {"sachb", "erika-kg", "abgeschlossen"}, {"sachb", "erika-kg", "in_bearbeitung"},
		{"sachb-b", "erika-kg", "in_bearbeitung"},
	} {
		w.do(step.as, "POST", "/api/vorgaenge/"+w.vg[step.key].ID+"/status", statusBody(step.to, secret))
	}
	all, err := w.store.PendingEvents(context.Background(), 100000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 7 {
		t.Fatalf("only %d events recorded", len(all))
	}
	for _, e := range all {
		if err := audit.CheckEvent(e); err != nil {
			t.Errorf("event %s (%s): %v", e.ID, e.Type, err)
		}
		blob := fmt.Sprintf("%+v", e)
		for _, leak := range []string{"Depression", "Tel.", "erika@", "192.0.2", w.people["erika"].KVNR} {
			if strings.Contains(blob, leak) {
				t.Errorf("event %s carries %q: %s", e.ID, leak, blob)
			}
		}
	}
}

func TestStatusChangerRolesMatchAuth(t *testing.T) {
	want := []string{string(auth.RoleCaseworker), string(auth.RoleTeamLead)}
	if !slices.Equal(audit.StatusChangerRoles, want) {
		t.Fatalf("audit.StatusChangerRoles = %v, auth roles %v", audit.StatusChangerRoles, want)
	}
}
