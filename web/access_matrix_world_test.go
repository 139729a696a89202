package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"postbox/audit"
	"postbox/auth"
	"postbox/intake"
	"postbox/kasse"
	"postbox/mailbox"
	"postbox/notifier"
	"postbox/storage/fsblob"
	"postbox/storage/sqldb"
	"postbox/storage/sqlite"
)

// fullWorld is the whole service wired as cmd/postbox serve wires it in
// embedded mode (SQLite, blobs on disk, events in SQLite): every Mount and
// Use call of serve, in the same order, so the router under test is the
// real one. Two Kassen: A with two insured persons (Erika, Max) and one
// account per staff role, B with an insured person and a caseworker.
// Erika owns the objects (thread, attachment, Vorgang with a file, upload,
// draft) the access matrix tries on everybody.
type fullWorld struct {
	t      testing.TB
	srv    *Server
	db     *sqldb.Store
	dir    string
	auth   *auth.Service
	mail   *mailbox.Service
	pin    *intake.PINService
	desk   *PINIntake
	tus    *intake.TusHandler
	kasseA kasse.Kasse
	kasseB kasse.Kasse
	erika  kasse.Person
	max    kasse.Person
	otto   kasse.Person // insured in Kasse B
	people map[string]auth.Principal
	teams  map[string]mailbox.Team
	key    []byte
}

// fullWiring names the calls fullWorld makes on the web package; a test
// compares it with what cmd/postbox/serve.go calls.
var fullWiring = []string{"UseAuditOrigin", "UseSessions", "NewPINIntake", "Mount", "MountTus", "MountPostfach", "MountUI", "MountAuth", "MountVorgaenge", "MountAudit"}

func newFullWorld(t testing.TB) *fullWorld { return newFullWorldWith(t, Options{}) }

// newFullWorldWith builds the world on a server with these options (the
// logger is always a silent one).
func newFullWorldWith(t testing.TB, o Options) *fullWorld {
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
	letters, err := auth.NewLetterDir(filepath.Join(dir, "letters"))
	if err != nil {
		t.Fatal(err)
	}
	w := &fullWorld{t: t, db: db, dir: dir, key: key, people: map[string]auth.Principal{}, teams: map[string]mailbox.Team{}}
	w.auth, err = auth.NewService(db.Auth(), auth.Options{Argon2: auth.Argon2Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		Key: key, ClientAddrKey: key, SMS: &smsCapture{last: map[string]string{}}, Letters: letters})
	if err != nil {
		t.Fatal(err)
	}
	w.seed(ctx)

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// As cmd/postbox/serve.go, step by step.
	o.Logger = log
	w.srv = New(o)
	w.srv.UseAuditOrigin(audit.NewClientHasher(key))
	w.srv.UseSessions(w.auth, SessionOptions{})
	w.pin = &intake.PINService{Store: db.PINIntake(), Hasher: intake.NewPINHasher(key), Blobs: blobs, BaseURL: "http://example.com"}
	w.desk = NewPINIntake(PINIntakeOptions{Service: w.pin, BaseURL: "http://example.com", ClientKey: key})
	w.desk.Mount(w.srv.App())
	w.tus = intake.NewTusHandler(intake.TusConfig{Store: db, Blobs: blobs, BasePath: TusPath + "/", Logger: log})
	MountTus(w.srv.App(), w.tus, TusOptions{ClientHash: w.desk.ClientHash})
	w.mail = &mailbox.Service{Store: db.Mailbox(), Blobs: uiBlobs{blobs}, Check: intake.CheckContent,
		Limits: mailbox.Limits{MaxBodyRunes: 5000, MaxAttachments: 5}, Logger: log}
	hasher := audit.NewClientHasher(key)
	MountPostfach(w.srv.App(), w.mail, PostfachOptions{Logger: log, ClientHash: func(c *fiber.Ctx) string { return hasher.Hash(c.IP()) }})
	auditor := &audit.AuditorService{Events: sqlite.NewEventStore(db.DB()), Recorder: db.AuditRecorder()}
	if _, err := MountUI(w.srv, UIOptions{Kassen: db, Auth: w.auth, PIN: w.desk, Mailbox: w.mail, MailboxMaxFiles: 5,
		Vorgaenge: &audit.VorgangService{Store: db.Vorgaenge()}, People: db, Audit: auditor, Logger: log}); err != nil {
		t.Fatal(err)
	}
	MountAuth(w.srv.App(), w.auth)
	MountVorgaenge(w.srv.App(), &audit.VorgangService{Store: db.Vorgaenge()}, VorgangOptions{})
	MountAudit(w.srv.App(), auditor, AuditOptions{Logger: log})
	return w
}

// seed creates the two Kassen, their people, accounts and teams.
func (w *fullWorld) seed(ctx context.Context) {
	t := w.t
	w.kasseA = kasse.Kasse{ID: "ka-" + uuid.NewString()[:8], Name: "Testkasse Süd", Settings: kasse.DefaultSettings()}
	w.kasseB = kasse.Kasse{ID: "kb-" + uuid.NewString()[:8], Name: "Andere Kasse", Settings: kasse.DefaultSettings()}
	person := func(k kasse.Kasse, kvnr, given, family string) kasse.Person {
		return kasse.Person{ID: uuid.NewString(), TenantID: k.ID, KVNR: kasse.CompleteKVNR(kvnr), GivenName: given, FamilyName: family,
			Street: "Musterweg 1", PostalCode: "30159", City: "Hannover", Email: strings.ToLower(given) + "@example.org",
			EGKValidUntil: time.Now().AddDate(2, 0, 0), Delivery: kasse.DeliveryOnline}
	}
	w.erika = person(w.kasseA, "E12345678", "Erika", "Mustermann")
	w.max = person(w.kasseA, "M87654321", "Max", "Mustermann")
	w.otto = person(w.kasseB, "O11223344", "Otto", "Normal")
	err := w.db.InTx(ctx, func(tx *sqldb.Tx) error {
		for _, k := range []kasse.Kasse{w.kasseA, w.kasseB} {
			if err := tx.CreateKasse(ctx, k); err != nil {
				return err
			}
		}
		for _, p := range []kasse.Person{w.erika, w.max, w.otto} {
			if err := tx.CreatePerson(ctx, p); err != nil {
				return err
			}
		}
		for _, tm := range []struct{ name, kasse, title, topic string }{
			{"kg", w.kasseA.ID, "Krankengeld", "krankengeld"}, {"hm", w.kasseA.ID, "Hilfsmittel", "hilfsmittel"}, {"kgB", w.kasseB.ID, "Krankengeld", "krankengeld"}} {
			team, err := tx.CreateTeam(ctx, mailbox.Team{TenantID: tm.kasse, Name: tm.title, Topic: tm.topic})
			if err != nil {
				return err
			}
			w.teams[tm.name] = team
		}
		for _, a := range []struct {
			name   string
			kasse  string
			role   auth.Role
			team   string
			person string
		}{
			{"erika", w.kasseA.ID, auth.RoleInsured, "", w.erika.ID},
			{"max", w.kasseA.ID, auth.RoleInsured, "", w.max.ID},
			{"sachb", w.kasseA.ID, auth.RoleCaseworker, "kg", ""},
			{"hilfe", w.kasseA.ID, auth.RoleCaseworker, "hm", ""},
			{"leitung", w.kasseA.ID, auth.RoleTeamLead, "kg", ""},
			{"pruefer", w.kasseA.ID, auth.RoleAuditor, "", ""},
			{"lebadmin", w.kasseA.ID, auth.RoleProviderAdmin, "", ""},
			{"otto", w.kasseB.ID, auth.RoleInsured, "", w.otto.ID},
			{"sachbB", w.kasseB.ID, auth.RoleCaseworker, "kgB", ""},
		} {
			acc := auth.Account{ID: uuid.NewString(), TenantID: a.kasse, Role: a.role, Username: a.name, DisplayName: a.name, Status: auth.StatusActive, PersonID: a.person}
			if a.role == auth.RoleProviderAdmin {
				acc.OrgID, acc.GivenName, acc.FamilyName = "org-"+a.kasse, "Bernd", "Apoll"
			}
			if err := tx.CreateAccount(ctx, acc); err != nil {
				return err
			}
			if a.team != "" {
				if err := tx.AddTeamMember(ctx, a.kasse, w.teams[a.team].ID, acc.ID); err != nil {
					return err
				}
			}
			w.people[a.name] = auth.Principal{TenantID: a.kasse, AccountID: acc.ID, Role: a.role, PersonID: acc.PersonID, OrgID: acc.OrgID}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// session starts a finished login for one of the world's accounts and
// returns the cookie token.
func (w *fullWorld) session(name string) string {
	w.t.Helper()
	p, ok := w.people[name]
	if !ok {
		w.t.Fatalf("no account %q", name)
	}
	token, _, err := w.auth.StartSession(context.Background(), p, auth.StageDone, "")
	if err != nil {
		w.t.Fatal(err)
	}
	return token
}

// pinSession issues an Einmal-PIN for a person and logs in with it; it
// returns the PIN cookie token and its CSRF token.
func (w *fullWorld) pinSession(p kasse.Person) (string, string) {
	w.t.Helper()
	ctx := context.Background()
	issued, err := w.pin.Issue(ctx, intake.Actor{Principal: w.people["sachb"]}, intake.IssueRequest{KVNR: p.KVNR, CaseType: "krankengeld",
		RequestText: "Bitte senden Sie uns Ihre AU-Bescheinigung."})
	if err != nil {
		w.t.Fatal(err)
	}
	res, err := w.pin.Login(ctx, intake.LoginRequest{TenantID: p.TenantID, KVNR: p.KVNR, PIN: issued.PIN, ClientHash: "c-" + uuid.NewString()[:8]})
	if err != nil {
		w.t.Fatal(err)
	}
	return res.Token, res.CSRF
}

// request sends one request to the real router.
type fullRequest struct {
	method, path string
	body         []byte
	ctype        string
	session      string // account session token
	pinToken     string // PIN session token
	csrf         string
	header       map[string]string
	accept       string
}

func (w *fullWorld) do(r fullRequest) (*http.Response, []byte) {
	w.t.Helper()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req := httptest.NewRequest(r.method, r.path, body)
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	if r.accept != "" {
		req.Header.Set("Accept", r.accept)
	}
	if r.session != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookieName(false), Value: r.session})
	}
	if r.pinToken != "" {
		req.AddCookie(&http.Cookie{Name: PINCookieName(false), Value: r.pinToken})
	}
	if r.csrf != "" {
		req.Header.Set("X-CSRF-Token", r.csrf)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := w.srv.App().Test(req, 20000)
	if err != nil {
		w.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, out
}

// tusCreate creates an upload with its whole content through the tus
// endpoint in a PIN session and returns its id.
func (w *fullWorld) tusCreate(pinToken, name string, content []byte) string {
	w.t.Helper()
	resp, body := w.do(fullRequest{method: "POST", path: TusPath, pinToken: pinToken, body: content, ctype: "application/offset+octet-stream",
		header: map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": fmt.Sprint(len(content)),
			"Upload-Metadata": "filename " + base64.StdEncoding.EncodeToString([]byte(name)) + ",filetype " + base64.StdEncoding.EncodeToString([]byte("application/pdf"))}})
	if resp.StatusCode != 201 {
		w.t.Fatalf("tus create: %d %s", resp.StatusCode, body)
	}
	loc := resp.Header.Get("Location")
	return loc[strings.LastIndexByte(loc, '/')+1:]
}

// counts returns the row count of every table that holds what people
// store; a refused request must leave all of them unchanged.
func (w *fullWorld) counts() map[string]int {
	w.t.Helper()
	out := map[string]int{}
	for _, table := range []string{"kassen", "persons", "accounts", "einmal_pins", "mail_outbox", "vorgaenge", "vorgang_status_history", "teams",
		"team_members", "threads", "messages", "attachments", "uploads", "auth_devices", "auth_consents", "auth_tokens",
		"mailbox_uploads", "intake_drafts"} {
		var n int
		if err := w.db.DB().QueryRowContext(context.Background(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
			w.t.Fatalf("count %s: %v", table, err)
		}
		out[table] = n
	}
	return out
}

// tusCreateDeferred creates an upload of 10 000 bytes without content in a
// PIN session and returns its id.
func (w *fullWorld) tusCreateDeferred(pinToken string) string {
	w.t.Helper()
	resp, body := w.do(fullRequest{method: "POST", path: TusPath, pinToken: pinToken,
		header: map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": "10000",
			"Upload-Metadata": "filename " + base64.StdEncoding.EncodeToString([]byte("Befund.pdf")) + ",filetype " + base64.StdEncoding.EncodeToString([]byte("application/pdf"))}})
	if resp.StatusCode != 201 {
		w.t.Fatalf("tus create: %d %s", resp.StatusCode, body)
	}
	loc := resp.Header.Get("Location")
	return loc[strings.LastIndexByte(loc, '/')+1:]
}

// extraAccount adds an active insured account (with its person) to Kasse A
// and returns its id; staff routes that lock or end accounts aim at it.
func (w *fullWorld) extraAccount(name string) string {
	w.t.Helper()
	ctx := context.Background()
	p := kasse.Person{ID: uuid.NewString(), TenantID: w.kasseA.ID, KVNR: kasse.CompleteKVNR(fmt.Sprintf("Z%08d", len(w.people))), GivenName: name, FamilyName: "Ziel",
		Street: "Musterweg 2", PostalCode: "30159", City: "Hannover", Delivery: kasse.DeliveryPost}
	acc := auth.Account{ID: uuid.NewString(), TenantID: w.kasseA.ID, Role: auth.RoleInsured, Username: name, DisplayName: name, Status: auth.StatusActive, PersonID: p.ID}
	if err := w.db.InTx(ctx, func(tx *sqldb.Tx) error {
		if err := tx.CreatePerson(ctx, p); err != nil {
			return err
		}
		return tx.CreateAccount(ctx, acc)
	}); err != nil {
		w.t.Fatal(err)
	}
	w.people[name] = auth.Principal{TenantID: w.kasseA.ID, AccountID: acc.ID, Role: auth.RoleInsured, PersonID: p.ID}
	return acc.ID
}

func auditEvent(tenant string) audit.Event {
	return audit.Event{TenantID: tenant, Type: "notifier.mail.failed"}
}

// failMails claims every queued or requeued mail of Kasse A and lets the
// notifier give up on it, as after its last attempt.
func (w *fullWorld) failMails() []notifier.Job {
	w.t.Helper()
	ctx := context.Background()
	jobs, err := w.db.ClaimMails(ctx, notifier.Claim{Token: "t", Lease: time.Minute, Limit: 10, Tenants: []string{w.kasseA.ID}})
	if err != nil {
		w.t.Fatal(err)
	}
	for _, j := range jobs {
		if err := w.db.FailMail(ctx, j.ID, "t", "550 mailbox unavailable", auditEvent(w.kasseA.ID)); err != nil {
			w.t.Fatal(err)
		}
	}
	return jobs
}

// fullWorld wires what cmd/postbox serve wires: the same Mount and Use
// calls of this package, so a mount added there without being added here
// fails instead of leaving its routes out of the access matrix.
func TestFullWorldWiresLikeServe(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "cmd", "postbox", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("cmd/postbox sources: %v", err)
	}
	re := regexp.MustCompile(`\b(?:web|srv|desk)\.((?:Mount|Use|NewPINIntake)[A-Za-z]*)\(`)
	seen := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(src, -1) {
			seen[string(m[1])] = true
		}
	}
	var got []string
	for k := range seen {
		got = append(got, k)
	}
	want := slices.Clone(fullWiring)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("cmd/postbox calls %v, fullWorld wires %v: make newFullWorld wire the same", got, want)
	}
}
