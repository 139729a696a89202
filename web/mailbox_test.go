package web_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"path/filepath"
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
	"postbox/web"
)

// blobs adapts an intake.BlobStore to the Postfach (as cmd/postbox does).
type blobs struct{ intake.BlobStore }

func (b blobs) PutStream(ctx context.Context, key string, r io.Reader) error {
	_, err := b.Put(ctx, key, r, -1)
	return err
}

func (b blobs) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, _, err := b.Get(ctx, key)
	return rc, err
}

// postfachWorld is a running Postfach API with two Kassen: in Kasse A two
// teams (Krankengeld, Hilfsmittel) with one caseworker each and a team
// lead in Krankengeld, persons Erika (online delivery) and Max (post), a
// provider user; in Kasse B a person and a caseworker of a team with the
// same topic. Requests name who acts in the header X-Test-As.
type postfachWorld struct {
	t      *testing.T
	store  *sqldb.Store
	blobs  intake.BlobStore
	svc    *mailbox.Service
	app    *fiber.App
	as     map[string]auth.Principal
	ka, kb kasse.Kasse
	people map[string]kasse.Person
}

const asHeader = "X-Test-As"

var pfQuiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newPostfachWorld(t *testing.T, store *sqldb.Store, bs intake.BlobStore, setup ...func(*web.Server, *sqldb.Store)) *postfachWorld {
	t.Helper()
	ctx := context.Background()
	w := &postfachWorld{t: t, store: store, blobs: bs, as: map[string]auth.Principal{}, people: map[string]kasse.Person{}}
	suffix := uuid.NewString()[:8]
	w.ka = kasse.Kasse{ID: "ka-" + suffix, Name: "AOK Test & Söhne <Nord>", PortalURL: "https://portal.example/ka", Settings: kasse.DefaultSettings()}
	w.kb = kasse.Kasse{ID: "kb-" + suffix, Name: "Kasse B", PortalURL: "https://portal.example/kb", Settings: kasse.DefaultSettings()}
	w.ka.Settings.MaxFileBytes = 8 << 20
	w.ka.Settings.MaxSubmissionBytes = 8 << 20
	err := store.InTx(ctx, func(tx *sqldb.Tx) error {
		for _, k := range []kasse.Kasse{w.ka, w.kb} {
			if err := tx.CreateKasse(ctx, k); err != nil {
				return err
			}
		}
		teams := map[string]mailbox.Team{}
		for _, tm := range []struct{ key, tenant, topic, name string }{
			{"kg", w.ka.ID, "krankengeld", "Krankengeld"}, {"hm", w.ka.ID, "hilfsmittel", "Hilfsmittel"}, {"kgB", w.kb.ID, "krankengeld", "Krankengeld"},
		} {
			team, err := tx.CreateTeam(ctx, mailbox.Team{TenantID: tm.tenant, Topic: tm.topic, Name: tm.name})
			if err != nil {
				return err
			}
			teams[tm.key] = team
		}
		for i, p := range []struct {
			name, tenant string
			delivery     kasse.Delivery
		}{{"erika", w.ka.ID, kasse.DeliveryOnline}, {"max", w.ka.ID, kasse.DeliveryPost}, {"bea", w.kb.ID, kasse.DeliveryOnline}} {
			person := kasse.Person{ID: uuid.NewString(), TenantID: p.tenant, KVNR: kasse.CompleteKVNR(fmt.Sprintf("A%08d", i+1)),
				GivenName: p.name, FamilyName: "Test", Email: p.name + "-" + suffix + "@example.org", Delivery: p.delivery}
			if err := tx.CreatePerson(ctx, person); err != nil {
				return err
			}
			w.people[p.name] = person
		}
		for _, a := range []struct {
			name, tenant string
			role         auth.Role
			person, team string
		}{
			{"erika", w.ka.ID, auth.RoleInsured, "erika", ""},
			{"max", w.ka.ID, auth.RoleInsured, "max", ""},
			{"bea", w.kb.ID, auth.RoleInsured, "bea", ""},
			{"sachb-kg", w.ka.ID, auth.RoleCaseworker, "", "kg"},
			{"lead-kg", w.ka.ID, auth.RoleTeamLead, "", "kg"},
			{"sachb-hm", w.ka.ID, auth.RoleCaseworker, "", "hm"},
			{"sachb-b", w.kb.ID, auth.RoleCaseworker, "", "kgB"},
			{"provider", w.ka.ID, auth.RoleProviderUser, "", ""},
			{"auditor", w.ka.ID, auth.RoleAuditor, "", ""},
		} {
			acc := auth.Account{ID: uuid.NewString(), TenantID: a.tenant, Role: a.role, Username: strings.ReplaceAll(a.name, "-", "") + suffix[:4], Status: auth.StatusActive}
			p := auth.Principal{TenantID: a.tenant, Role: a.role, AccountID: acc.ID}
			if a.person != "" {
				acc.PersonID = w.people[a.person].ID
				p.PersonID = acc.PersonID
			}
			if a.role == auth.RoleProviderUser {
				acc.OrgID = "org-" + suffix
				p.OrgID = acc.OrgID
			}
			// The auth store keeps every account field (incl. the organisation).
			if err := tx.Auth().CreateAccount(ctx, acc); err != nil {
				return err
			}
			if a.team != "" {
				if err := tx.AddTeamMember(ctx, a.tenant, teams[a.team].ID, acc.ID); err != nil {
					return err
				}
			}
			w.as[a.name] = p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	w.svc = &mailbox.Service{
		Store: store.Mailbox(), Blobs: blobs{bs}, Check: intake.CheckContent,
		Limits:       mailbox.Limits{MaxBodyRunes: 2000, MaxAttachments: 2},
		NotifyWindow: 15 * time.Minute,
	}
	srv := web.New(web.Options{Logger: pfQuiet})
	for _, f := range setup {
		f(srv, store)
	}
	srv.App().Use(func(c *fiber.Ctx) error {
		if p, ok := w.as[c.Get(asHeader)]; ok {
			web.SetPrincipal(c, p)
		}
		return c.Next()
	})
	web.MountPostfach(srv.App(), w.svc, web.PostfachOptions{})
	w.app = srv.App()
	return w
}

func newSQLiteWorld(t *testing.T, setup ...func(*web.Server, *sqldb.Store)) *postfachWorld {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "postbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	key := make([]byte, fsblob.KeySize)
	rand.Read(key)
	fs, err := fsblob.New(filepath.Join(dir, "blobs"), key)
	if err != nil {
		t.Fatal(err)
	}
	return newPostfachWorld(t, store, fs, setup...)
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (w *postfachWorld) do(who, method, path string, body io.Reader, contentType string) resp {
	w.t.Helper()
	req := httptest.NewRequest(method, path, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if who != "" {
		req.Header.Set(asHeader, who)
	}
	res, err := w.app.Test(req, -1)
	if err != nil {
		w.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		w.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (w *postfachWorld) doJSON(who, method, path string, v any) resp {
	w.t.Helper()
	var body io.Reader
	if v != nil {
		raw, err := json.Marshal(v)
		if err != nil {
			w.t.Fatal(err)
		}
		body = bytes.NewReader(raw)
	}
	return w.do(who, method, path, body, "application/json")
}

func (w *postfachWorld) must(r resp, status int) resp {
	w.t.Helper()
	if r.status != status {
		w.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

// upload sends one file as multipart/form-data and returns the upload id.
func (w *postfachWorld) upload(who, name string, content []byte) resp {
	w.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="datei"; filename="%s"`, name))
	h.Set("Content-Type", "application/octet-stream")
	pw, err := mw.CreatePart(h)
	if err != nil {
		w.t.Fatal(err)
	}
	pw.Write(content)
	mw.Close()
	return w.do(who, "POST", "/api/postfach/attachments", &buf, mw.FormDataContentType())
}

func (w *postfachWorld) uploadID(who, name string, content []byte) string {
	w.t.Helper()
	var out struct {
		Attachment struct {
			ID string `json:"id"`
		} `json:"attachment"`
	}
	w.must(w.upload(who, name, content), 201).json(w.t, &out)
	return out.Attachment.ID
}

// pdf returns n bytes that are a PDF by their signature.
func pdf(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	copy(b, "%PDF-1.7\n")
	return b
}

type threadOut struct {
	Thread struct {
		ID      string `json:"id"`
		Subject string `json:"subject"`
		State   string `json:"state"`
		Unread  int    `json:"unread"`
		Team    *struct {
			AssignedTo  string `json:"assigned_to"`
			Channel     string `json:"channel"`
			PaperStatus string `json:"paper_status"`
			LegalHold   bool   `json:"legal_hold"`
		} `json:"team"`
	} `json:"thread"`
	Message  messageOut   `json:"message"`
	Messages []messageOut `json:"messages"`
}

type messageOut struct {
	ID          string `json:"id"`
	Direction   string `json:"direction"`
	FromMe      bool   `json:"from_me"`
	Kind        string `json:"kind"`
	Body        string `json:"body"`
	Read        bool   `json:"read"`
	Attachments []struct {
		ID       string `json:"id"`
		FileName string `json:"file_name"`
		SHA256   string `json:"sha256"`
		Size     int64  `json:"size"`
		URL      string `json:"url"`
	} `json:"attachments"`
}

// startThread lets Erika write to the Krankengeld team.
func (w *postfachWorld) startThread(subject, body string, attachments ...string) threadOut {
	w.t.Helper()
	var out threadOut
	w.must(w.doJSON("erika", "POST", "/api/postfach/threads", map[string]any{
		"topic": "krankengeld", "subject": subject, "body": body, "attachments": attachments,
	}), 201).json(w.t, &out)
	return out
}

func (w *postfachWorld) listIDs(who, query string) []string {
	w.t.Helper()
	var out struct {
		Threads []struct {
			ID string `json:"id"`
		} `json:"threads"`
	}
	w.must(w.do(who, "GET", "/api/postfach/threads"+query, nil, ""), 200).json(w.t, &out)
	var ids []string
	for _, th := range out.Threads {
		ids = append(ids, th.ID)
	}
	return ids
}

func (w *postfachWorld) jobs(person string) []notifier.Job {
	w.t.Helper()
	jobs, err := w.store.MailJobsOfPerson(context.Background(), w.people[person].TenantID, w.people[person].ID)
	if err != nil {
		w.t.Fatal(err)
	}
	return jobs
}

func (w *postfachWorld) events(tenant string) []audit.Event {
	w.t.Helper()
	all, err := w.store.PendingEvents(context.Background(), 100000)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []audit.Event
	for _, e := range all {
		if e.TenantID == tenant {
			out = append(out, e)
		}
	}
	return out
}

func hasEvent(events []audit.Event, typ, subject string) bool {
	for _, e := range events {
		if e.Type == typ && (subject == "" || e.SubjectID == subject) {
			return true
		}
	}
	return false
}

// A conversation as a user would have it: Erika writes with an attachment,
// the caseworker of the team sees it, answers, Erika reads the answer; the
// answer queues exactly one content-free notification.
func TestPostfachConversation(t *testing.T) {
	w := newSQLiteWorld(t)
	file := pdf(300 << 10)
	up := w.uploadID("erika", "AU-Bescheinigung.pdf", file)
	th := w.startThread("Krankengeld ab Juni", "Anbei meine AU-Bescheinigung.", up)
	if th.Thread.Team != nil || th.Message.Direction != "in" || !th.Message.FromMe || len(th.Message.Attachments) != 1 {
		t.Fatalf("started thread as seen by Erika: %+v", th)
	}
	// The caseworker of the Krankengeld team sees it, unread.
	var list struct {
		Threads []struct {
			ID     string `json:"id"`
			Unread int    `json:"unread"`
		} `json:"threads"`
	}
	w.must(w.do("sachb-kg", "GET", "/api/postfach/threads", nil, ""), 200).json(t, &list)
	if len(list.Threads) != 1 || list.Threads[0].ID != th.Thread.ID || list.Threads[0].Unread != 1 {
		t.Fatalf("team inbox = %+v", list)
	}
	var view threadOut
	w.must(w.do("sachb-kg", "GET", "/api/postfach/threads/"+th.Thread.ID, nil, ""), 200).json(t, &view)
	if len(view.Messages) != 1 || view.Messages[0].Body != "Anbei meine AU-Bescheinigung." || view.Messages[0].Read || view.Thread.Team == nil {
		t.Fatalf("thread for the caseworker: %+v", view)
	}
	w.must(w.do("sachb-kg", "GET", "/api/postfach/threads/"+th.Thread.ID, nil, ""), 200).json(t, &view)
	if !view.Messages[0].Read {
		t.Fatal("message still unread after opening the thread")
	}
	// The caseworker answers; the thread is assigned to whoever answers first.
	const secret = "Ihre Diagnose F32.1 wurde geprüft; Krankengeld wird gezahlt."
	var reply threadOut
	w.must(w.doJSON("sachb-kg", "POST", "/api/postfach/threads/"+th.Thread.ID+"/messages", map[string]any{"body": secret}), 201).json(t, &reply)
	w.must(w.do("sachb-kg", "GET", "/api/postfach/threads/"+th.Thread.ID, nil, ""), 200).json(t, &view)
	if view.Thread.Team.AssignedTo != w.as["sachb-kg"].AccountID {
		t.Fatalf("thread not assigned to the replying caseworker: %+v", view.Thread.Team)
	}
	// Erika sees one unread answer from the Kasse.
	w.must(w.do("erika", "GET", "/api/postfach/threads/"+th.Thread.ID, nil, ""), 200).json(t, &view)
	if len(view.Messages) != 2 || view.Messages[1].Body != secret || view.Messages[1].FromMe || view.Messages[1].Read || view.Thread.Unread != 1 {
		t.Fatalf("Erika's view: %+v", view)
	}
	// One notification, written in the reply's transaction, content-free.
	jobs := w.jobs("erika")
	if len(jobs) != 1 || jobs[0].Status != notifier.StatusPending || jobs[0].Recipient != w.people["erika"].Email {
		t.Fatalf("jobs = %+v", jobs)
	}
	mail, err := notifier.Render(jobs[0], "postfach@kasse.example")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := mail.Bytes()
	for _, leak := range []string{secret, "F32", "Diagnose", "Krankengeld ab Juni", "AU-Bescheinigung"} {
		if strings.Contains(mail.Text+mail.HTML+mail.Subject+string(raw), leak) {
			t.Errorf("notification mail contains %q", leak)
		}
	}
	if mail.Subject != "Neue Nachricht in Ihrem Postfach" || !strings.Contains(mail.Text, "AOK Test & Söhne <Nord>") ||
		!strings.Contains(mail.HTML, "AOK Test &amp; Söhne &lt;Nord&gt;") || !strings.Contains(mail.Text, "https://portal.example/ka/postfach") || !strings.Contains(mail.HTML, `href="https://portal.example/ka/postfach"`) {
		t.Fatalf("mail: %q\n%s\n%s", mail.Subject, mail.Text, mail.HTML)
	}
	// Erika replies: that is a message to the Kasse, no notification to her.
	w.must(w.doJSON("erika", "POST", "/api/postfach/threads/"+th.Thread.ID+"/messages", map[string]any{"body": "Danke!"}), 201)
	if n := len(w.jobs("erika")); n != 1 {
		t.Fatalf("Erika's own reply queued a notification to her: %d jobs", n)
	}
	ev := w.events(w.ka.ID)
	for _, typ := range []string{"mailbox.thread.created", "mailbox.message.sent", "mailbox.upload.stored", "mailbox.thread.viewed"} {
		if !hasEvent(ev, typ, "") {
			t.Errorf("no audit event %s", typ)
		}
	}
	for _, e := range ev {
		if strings.Contains(e.Details, "Danke") || strings.Contains(e.Details, "AU-Bescheinigung") {
			t.Errorf("audit event carries message text or a file name: %+v", e)
		}
	}
}

// Many answers to one person within the window make one mail.
func TestPostfachNotificationsCoalesce(t *testing.T) {
	w := newSQLiteWorld(t)
	th := w.startThread("Frage", "Hallo")
	for i := 0; i < 5; i++ {
		w.must(w.doJSON("sachb-kg", "POST", "/api/postfach/threads/"+th.Thread.ID+"/messages", map[string]any{"body": fmt.Sprint("Antwort ", i)}), 201)
	}
	jobs := w.jobs("erika")
	if len(jobs) != 1 || jobs[0].Coalesced != 4 {
		t.Fatalf("jobs = %+v, want one job standing for 5 messages", jobs)
	}
}

// A person who chose post gets the answer in the Postfach but no mail; a
// letter of the Kasse for that person is kept as paper and is not online.
func TestPostfachDeliveryPreference(t *testing.T) {
	w := newSQLiteWorld(t)
	doc := func(person string) threadOut {
		up := w.uploadID("sachb-kg", "Bescheid.pdf", pdf(4000))
		var out threadOut
		w.must(w.doJSON("sachb-kg", "POST", "/api/postfach/documents", map[string]any{
			"person_id": w.people[person].ID, "topic": "krankengeld", "subject": "Bescheid über Krankengeld", "body": "Ihr Bescheid.", "attachments": []string{up},
		}), 201).json(t, &out)
		return out
	}
	online := doc("erika")
	if online.Thread.Team.Channel != "postfach" || online.Message.Kind != "document" {
		t.Fatalf("document for online delivery: %+v", online)
	}
	if ids := w.listIDs("erika", ""); !slices.Equal(ids, []string{online.Thread.ID}) {
		t.Fatalf("Erika's Postfach: %v", ids)
	}
	if len(w.jobs("erika")) != 1 {
		t.Fatal("no notification for the online document")
	}
	paper := doc("max")
	if paper.Thread.Team.Channel != "paper" || paper.Thread.Team.PaperStatus != "to_print" {
		t.Fatalf("document for post delivery: %+v", paper.Thread.Team)
	}
	if ids := w.listIDs("max", "?archive=all"); len(ids) != 0 {
		t.Fatalf("paper letter in Max's Postfach: %v", ids)
	}
	w.must(w.do("max", "GET", "/api/postfach/threads/"+paper.Thread.ID, nil, ""), 404)
	if len(w.jobs("max")) != 0 {
		t.Fatal("notification for a paper letter")
	}
	if ids := w.listIDs("sachb-kg", ""); !slices.Contains(ids, paper.Thread.ID) {
		t.Fatal("the team does not see the paper letter")
	}
	// A message the caseworker writes to Max (post) lands in his Postfach,
	// without a mail (notifications are for online delivery).
	var started threadOut
	w.must(w.doJSON("sachb-kg", "POST", "/api/postfach/threads", map[string]any{
		"person_id": w.people["max"].ID, "topic": "krankengeld", "subject": "Rückfrage", "body": "Bitte rufen Sie uns an.",
	}), 201).json(t, &started)
	if ids := w.listIDs("max", ""); !slices.Equal(ids, []string{started.Thread.ID}) {
		t.Fatalf("Max's Postfach: %v", ids)
	}
	if len(w.jobs("max")) != 0 {
		t.Fatal("mail to a person with post delivery")
	}
	// A document needs a file.
	w.must(w.doJSON("sachb-kg", "POST", "/api/postfach/documents", map[string]any{
		"person_id": w.people["erika"].ID, "topic": "krankengeld", "subject": "Bescheid", "body": "x",
	}), 422)
}

// Every route with an object, tried by another person, a person and a
// caseworker of another tenant, a caseworker of another team and a
// provider user, answers 404 — the same as a made-up id.
func TestPostfachAccessIsolation(t *testing.T) {
	w := newSQLiteWorld(t)
	up := w.uploadID("erika", "Befund.pdf", pdf(2000))
	th := w.startThread("Meine Anfrage", "Geheimer Text", up)
	attID := th.Message.Attachments[0].ID
	// A failed notification of Erika, for the notification routes.
	w.must(w.doJSON("sachb-kg", "POST", "/api/postfach/threads/"+th.Thread.ID+"/messages", map[string]any{"body": "Antwort"}), 201)
	job := w.jobs("erika")[0]
	claimed, err := w.store.ClaimMails(context.Background(), notifier.Claim{Token: "t", Lease: time.Minute, Limit: 10, Tenants: []string{w.ka.ID}})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	if err := w.store.FailMail(context.Background(), job.ID, "t", "550", audit.Event{TenantID: w.ka.ID, Type: "notifier.mail.failed"}); err != nil {
		t.Fatal(err)
	}
	foreignUpload := w.uploadID("erika", "x.pdf", pdf(100))

	routes := []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/postfach/threads/" + th.Thread.ID, nil},
		{"POST", "/api/postfach/threads/" + th.Thread.ID + "/messages", map[string]any{"body": "eingeschleust"}},
		{"POST", "/api/postfach/threads/" + th.Thread.ID + "/read", map[string]any{"read": false}},
		{"POST", "/api/postfach/threads/" + th.Thread.ID + "/assign", map[string]any{"account_id": ""}},
		{"POST", "/api/postfach/threads/" + th.Thread.ID + "/state", map[string]any{"state": "closed"}},
		{"POST", "/api/postfach/threads/" + th.Thread.ID + "/archive", map[string]any{"archived": true}},
		{"POST", "/api/postfach/threads/" + th.Thread.ID + "/legal-hold", map[string]any{"hold": true}},
		{"GET", "/api/postfach/attachments/" + attID, nil},
		{"POST", "/api/postfach/notifications/" + job.ID + "/retry", nil},
		// Writing into Erika's Postfach from another tenant or team.
		{"POST", "/api/postfach/threads", map[string]any{"person_id": w.people["erika"].ID, "topic": "krankengeld", "subject": "x", "body": "y"}},
		{"POST", "/api/postfach/documents", map[string]any{"person_id": w.people["erika"].ID, "topic": "krankengeld", "subject": "x", "body": "y", "attachments": []string{"none"}}},
	}
	intruders := []string{"max", "bea", "sachb-b", "sachb-hm", "provider", "auditor"}
	for _, who := range intruders {
		for _, r := range routes {
			if who == "sachb-hm" && r.method == "POST" && (r.path == "/api/postfach/threads" || r.path == "/api/postfach/documents") {
				continue // same tenant: Erika exists; the topic check answers (below)
			}
			if (who == "max" || who == "bea" || who == "provider") && (r.path == "/api/postfach/threads" || r.path == "/api/postfach/documents") {
				continue // an owner starting a thread writes to their own Postfach
			}
			name := strings.NewReplacer(th.Thread.ID, ":thread", attID, ":attachment", job.ID, ":job").Replace(r.path)
			t.Run(who+" "+r.method+" "+name, func(t *testing.T) {
				w.t = t
				got := w.doJSON(who, r.method, r.path, r.body)
				if got.status != 404 {
					t.Fatalf("status %d, want 404: %s", got.status, got.body)
				}
				if bytes.Contains(got.body, []byte("Geheimer")) || bytes.Contains(got.body, []byte("Meine Anfrage")) {
					t.Fatal("answer leaks content")
				}
			})
		}
		t.Run(who+" lists", func(t *testing.T) {
			w.t = t
			for _, q := range []string{"", "?archive=all", "?q=Anfrage"} {
				got := w.do(who, "GET", "/api/postfach/threads"+q, nil, "")
				if bytes.Contains(got.body, []byte(th.Thread.ID)) {
					t.Fatalf("list %q shows Erika's thread", q)
				}
			}
			if got := w.do(who, "GET", "/api/postfach/notifications/failed", nil, ""); bytes.Contains(got.body, []byte(job.ID)) {
				t.Fatal("failed notification of Erika visible")
			}
			if got := w.do(who, "GET", "/api/postfach/export", nil, ""); bytes.Contains(got.body, []byte("Geheimer")) {
				t.Fatal("export shows Erika's messages")
			}
		})
	}
	w.t = t
	// A caseworker of another team cannot write to Erika under a topic that
	// is not theirs, and nobody can attach someone else's upload.
	w.must(w.doJSON("sachb-hm", "POST", "/api/postfach/threads", map[string]any{"person_id": w.people["erika"].ID, "topic": "krankengeld", "subject": "x", "body": "y"}), 422)
	w.must(w.doJSON("max", "POST", "/api/postfach/threads", map[string]any{"topic": "krankengeld", "subject": "x", "body": "y", "attachments": []string{foreignUpload}}), 422)
	// A provider organisation's Postfach: the Kasse writes to it, its user
	// reads it; another tenant cannot write to it, and an unknown
	// organisation does not exist.
	org := w.as["provider"].OrgID
	var orgTh threadOut
	w.must(w.doJSON("sachb-hm", "POST", "/api/postfach/threads", map[string]any{"org_id": org, "topic": "hilfsmittel", "subject": "Abrechnung", "body": "Bitte prüfen"}), 201).json(t, &orgTh)
	if ids := w.listIDs("provider", ""); !slices.Equal(ids, []string{orgTh.Thread.ID}) {
		t.Fatalf("provider Postfach: %v", ids)
	}
	w.must(w.doJSON("sachb-b", "POST", "/api/postfach/threads", map[string]any{"org_id": org, "topic": "krankengeld", "subject": "x", "body": "y"}), 404)
	w.must(w.doJSON("sachb-hm", "POST", "/api/postfach/threads", map[string]any{"org_id": "org-gibt-es-nicht", "topic": "hilfsmittel", "subject": "x", "body": "y"}), 404)
	for _, who := range []string{"erika", "max", "sachb-kg", "sachb-b", "bea"} {
		w.must(w.do(who, "GET", "/api/postfach/threads/"+orgTh.Thread.ID, nil, ""), 404)
	}
	// Without a login: 401; made-up ids: 404.
	w.must(w.do("", "GET", "/api/postfach/threads", nil, ""), 401)
	w.must(w.do("erika", "GET", "/api/postfach/threads/"+uuid.NewString(), nil, ""), 404)
	w.must(w.do("erika", "GET", "/api/postfach/attachments/"+uuid.NewString(), nil, ""), 404)
	// Nothing an intruder tried changed the thread.
	var view threadOut
	w.must(w.do("sachb-kg", "GET", "/api/postfach/threads/"+th.Thread.ID, nil, ""), 200).json(t, &view)
	if len(view.Messages) != 2 || view.Thread.State != "open" || view.Thread.Team.LegalHold || view.Thread.Team.AssignedTo != w.as["sachb-kg"].AccountID {
		t.Fatalf("thread changed by intruders: %+v", view)
	}
	// The rightful users reach every route.
	for _, r := range []struct {
		who, method, path string
		body              any
		want              int
	}{
		{"erika", "POST", "/api/postfach/threads/" + th.Thread.ID + "/read", map[string]any{"read": false}, 204},
		{"erika", "POST", "/api/postfach/threads/" + th.Thread.ID + "/archive", map[string]any{"archived": true}, 204},
		{"erika", "GET", "/api/postfach/attachments/" + attID, nil, 200},
		// Routes of the other side's role answer like a missing route.
		{"erika", "POST", "/api/postfach/threads/" + th.Thread.ID + "/assign", map[string]any{"account_id": ""}, 404},
		{"erika", "GET", "/api/postfach/notifications/failed", nil, 404},
		{"sachb-kg", "POST", "/api/postfach/threads/" + th.Thread.ID + "/legal-hold", map[string]any{"hold": true}, 404},
		{"sachb-kg", "POST", "/api/postfach/threads/" + th.Thread.ID + "/archive", map[string]any{"archived": true}, 404},
		{"lead-kg", "POST", "/api/postfach/threads/" + th.Thread.ID + "/legal-hold", map[string]any{"hold": true}, 204},
		{"sachb-kg", "POST", "/api/postfach/threads/" + th.Thread.ID + "/assign", map[string]any{"account_id": w.as["sachb-hm"].AccountID}, 422},
		{"sachb-kg", "POST", "/api/postfach/threads/" + th.Thread.ID + "/assign", map[string]any{"account_id": w.as["lead-kg"].AccountID}, 204},
		{"sachb-kg", "GET", "/api/postfach/attachments/" + attID, nil, 200},
		{"sachb-kg", "GET", "/api/postfach/notifications/failed", nil, 200},
		{"sachb-kg", "POST", "/api/postfach/notifications/" + job.ID + "/retry", nil, 202},
		{"sachb-kg", "POST", "/api/postfach/threads/" + th.Thread.ID + "/state", map[string]any{"state": "closed"}, 204},
		{"erika", "POST", "/api/postfach/threads/" + th.Thread.ID + "/messages", map[string]any{"body": "noch was"}, 409},
	} {
		w.must(w.doJSON(r.who, r.method, r.path, r.body), r.want)
	}
}

// Attachment round trip: the downloaded bytes are the uploaded ones.
func TestPostfachAttachmentRoundTrip(t *testing.T) {
	attachmentRoundTrip(t, newSQLiteWorld(t))
}

// attachmentRoundTrip uploads a file larger than the server's body limit
// and the store's copy buffers, sends it, and downloads it as the other
// side: byte-identical, same SHA-256 in the API, the header and the bytes.
func attachmentRoundTrip(t *testing.T, w *postfachWorld) {
	file := pdf(6<<20 + 12345)
	want := sha256.Sum256(file)
	up := w.uploadID("erika", "Röntgenbild <links>.pdf", file)
	th := w.startThread("Röntgen", "Bild anbei", up)
	att := th.Message.Attachments[0]
	if att.SHA256 != hex.EncodeToString(want[:]) || att.Size != int64(len(file)) || att.FileName != "Röntgenbild <links>.pdf" {
		t.Fatalf("attachment = %+v", att)
	}
	for _, who := range []string{"sachb-kg", "erika"} {
		got := w.must(w.do(who, "GET", att.URL, nil, ""), 200)
		sum := sha256.Sum256(got.body)
		if !bytes.Equal(got.body, file) || sum != want {
			t.Fatalf("%s downloaded %d bytes, sha %x; want %d bytes, sha %x", who, len(got.body), sum, len(file), want)
		}
		if d := got.header.Get("Repr-Digest"); d != "sha-256=:"+base64.StdEncoding.EncodeToString(want[:])+":" {
			t.Fatalf("Repr-Digest = %q", d)
		}
		if cd := got.header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || strings.ContainsAny(cd, "<>") ||
			!strings.Contains(cd, "filename*=UTF-8''R%C3%B6ntgenbild%20%3Clinks%3E.pdf") {
			t.Fatalf("Content-Disposition = %q", cd)
		}
		if ct := got.header.Get("Content-Type"); ct != "application/pdf" {
			t.Fatalf("Content-Type = %q", ct)
		}
	}
}

// Message text and file names reach clients only JSON-escaped.
func TestPostfachEscapesUserText(t *testing.T) {
	w := newSQLiteWorld(t)
	evil := `<script>alert("x")</script>`
	up := w.uploadID("erika", `<img src=x onerror=alert(1)>.pdf`, pdf(1000))
	th := w.startThread(evil, evil, up)
	for _, who := range []string{"erika", "sachb-kg"} {
		for _, path := range []string{"/api/postfach/threads", "/api/postfach/threads/" + th.Thread.ID} {
			got := w.must(w.do(who, "GET", path, nil, ""), 200)
			if bytes.Contains(got.body, []byte("<script")) || bytes.Contains(got.body, []byte("<img")) {
				t.Fatalf("%s %s returns unescaped markup: %s", who, path, got.body)
			}
			if ct := got.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type %q", ct)
			}
		}
	}
	var view threadOut
	w.must(w.do("erika", "GET", "/api/postfach/threads/"+th.Thread.ID, nil, ""), 200).json(t, &view)
	if view.Thread.Subject != evil || view.Messages[0].Body != evil || view.Messages[0].Attachments[0].FileName != `<img src=x onerror=alert(1)>.pdf` {
		t.Fatalf("text changed on the way: %+v", view)
	}
}

func TestPostfachInputErrors(t *testing.T) {
	w := newSQLiteWorld(t)
	th := w.startThread("Frage", "Text")
	long := strings.Repeat("ä", 2001)
	for _, tc := range []struct {
		name, who, method, path string
		body                    any
		status                  int
		detail                  string
	}{
		{"empty text", "erika", "POST", "/api/postfach/threads/" + th.Thread.ID + "/messages", map[string]any{"body": "  \n "}, 422, "Bitte geben Sie einen Text ein."},
		{"text too long", "erika", "POST", "/api/postfach/threads/" + th.Thread.ID + "/messages", map[string]any{"body": long}, 422, "zu lang (2001 Zeichen, höchstens 2000)"},
		{"control character", "erika", "POST", "/api/postfach/threads/" + th.Thread.ID + "/messages", map[string]any{"body": "a\x00b"}, 422, "Steuerzeichen"},
		{"subject with line break", "erika", "POST", "/api/postfach/threads", map[string]any{"topic": "krankengeld", "subject": "a\nb", "body": "x"}, 422, "Zeilenumbrüche"},
		{"no topic", "erika", "POST", "/api/postfach/threads", map[string]any{"subject": "a", "body": "x"}, 422, "Bitte wählen Sie ein Thema."},
		{"unknown topic", "erika", "POST", "/api/postfach/threads", map[string]any{"topic": "zahnersatz", "subject": "a", "body": "x"}, 422, "Dieses Thema gibt es nicht"},
		{"too many attachments", "erika", "POST", "/api/postfach/threads", map[string]any{"topic": "krankengeld", "subject": "a", "body": "x", "attachments": []string{"1", "2", "3"}}, 422, "Zu viele Anlagen (3, höchstens 2"},
		{"unknown field", "erika", "POST", "/api/postfach/threads", map[string]any{"topic": "krankengeld", "subject": "a", "body": "x", "to": "all"}, 400, "JSON"},
		{"bad state", "sachb-kg", "POST", "/api/postfach/threads/" + th.Thread.ID + "/state", map[string]any{"state": "deleted"}, 422, "„open“ oder „closed“"},
		{"bad date filter", "erika", "GET", "/api/postfach/threads?from=gestern", nil, 422, "JJJJ-MM-TT"},
		{"reversed range", "erika", "GET", "/api/postfach/threads?from=2025-02-01&to=2025-01-01", nil, 422, "nach dem Anfang"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.t = t
			got := w.doJSON(tc.who, tc.method, tc.path, tc.body)
			var p web.Problem
			got.json(t, &p)
			if got.status != tc.status || !strings.Contains(p.Detail, tc.detail) || got.header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("status %d, detail %q; want %d containing %q", got.status, p.Detail, tc.status, tc.detail)
			}
		})
	}
	w.t = t
	// Nothing of the refused input was stored.
	var view threadOut
	w.must(w.do("erika", "GET", "/api/postfach/threads/"+th.Thread.ID, nil, ""), 200).json(t, &view)
	if len(view.Messages) != 1 {
		t.Fatalf("refused messages stored: %d", len(view.Messages))
	}
}

func TestPostfachUploadChecks(t *testing.T) {
	w := newSQLiteWorld(t)
	for _, tc := range []struct {
		name    string
		file    string
		content []byte
		status  int
		detail  string
	}{
		{"script", "rechnung.pdf", []byte("#!/bin/sh\nrm -rf /\n"), 415, "nicht erlaubt"},
		{"html", "brief.html", []byte("<html><body>x</body></html>"), 415, "nicht erlaubt"},
		{"extension does not fit", "foto.png", pdf(500), 415, "passt nicht zum Inhalt"},
		{"empty", "leer.pdf", nil, 415, "leer"},
		{"too large", "gross.pdf", pdf(8<<20 + 1), 422, "zu groß (höchstens 8 MB)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.t = t
			got := w.upload("erika", tc.file, tc.content)
			var p web.Problem
			got.json(t, &p)
			if got.status != tc.status || !strings.Contains(p.Detail, tc.detail) {
				t.Fatalf("status %d %q; want %d containing %q", got.status, p.Detail, tc.status, tc.detail)
			}
		})
	}
	w.t = t
	got := w.do("erika", "POST", "/api/postfach/attachments", strings.NewReader(`{"x":1}`), "application/json")
	if got.status != 415 {
		t.Fatalf("JSON instead of multipart: %d", got.status)
	}
	// Refused uploads leave no upload row and an audit event each.
	ev := w.events(w.ka.ID)
	n := 0
	for _, e := range ev {
		if e.Type == "mailbox.upload.rejected" && e.Outcome == audit.OutcomeFailure {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("%d rejection events, want 5", n)
	}
}

// The export holds every message (inbox and archive) with headers and the
// attachments byte for byte.
func TestPostfachExport(t *testing.T) {
	w := newSQLiteWorld(t)
	file := pdf(200 << 10)
	up := w.uploadID("erika", "Befund.pdf", file)
	th := w.startThread("Befund/Juni", "Hier der Befund.", up)
	w.must(w.doJSON("sachb-kg", "POST", "/api/postfach/threads/"+th.Thread.ID+"/messages", map[string]any{"body": "Danke, erhalten."}), 201)
	w.must(w.doJSON("erika", "POST", "/api/postfach/threads/"+th.Thread.ID+"/archive", map[string]any{"archived": true}), 204)
	th2 := w.startThread("Zweite Frage", "Noch etwas.")
	got := w.must(w.do("erika", "GET", "/api/postfach/export", nil, ""), 200)
	if got.header.Get("Content-Type") != "application/zip" || !strings.HasPrefix(got.header.Get("Content-Disposition"), "attachment;") {
		t.Fatalf("headers: %v", got.header)
	}
	zr, err := zip.NewReader(bytes.NewReader(got.body), int64(len(got.body)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		files[f.Name] = b
		if strings.Contains(f.Name, "..") || strings.HasPrefix(f.Name, "/") {
			t.Fatalf("unsafe name %q", f.Name)
		}
	}
	var texts []string
	var pdfs int
	for name, b := range files {
		switch {
		case strings.HasSuffix(name, "Befund.pdf"):
			pdfs++
			if !bytes.Equal(b, file) {
				t.Fatal("exported attachment differs")
			}
		case strings.HasSuffix(name, ".txt") && !strings.HasSuffix(name, "LIESMICH.txt"):
			texts = append(texts, string(b))
		}
	}
	if pdfs != 1 || len(texts) != 3 || files["Postfach/LIESMICH.txt"] == nil {
		t.Fatalf("export holds %v", mapKeys(files))
	}
	all := strings.Join(texts, "\n---\n")
	for _, want := range []string{"Betreff: Befund/Juni", "Von: Sie", "Von: AOK Test & Söhne <Nord>", "Hier der Befund.", "Danke, erhalten.", "Anlagen: Befund.pdf", "Betreff: Zweite Frage", "Art: Nachricht"} {
		if !strings.Contains(all, want) {
			t.Errorf("export lacks %q:\n%s", want, all)
		}
	}
	_ = th2
	if !hasEvent(w.events(w.ka.ID), "mailbox.exported", w.people["erika"].ID) {
		t.Fatal("export not audited")
	}
}

func mapKeys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Retention removes old messages, their attachments and blobs, leaves
// threads under legal hold, and audits each deletion.
func TestPostfachRetention(t *testing.T) {
	w := newSQLiteWorld(t)
	ctx := context.Background()
	past := time.Now().UTC().AddDate(-7, 0, 0)
	w.store.SetClock(func() time.Time { return past })
	oldUp := w.uploadID("erika", "alt.pdf", pdf(3000))
	old := w.startThread("Alt", "Von vor sieben Jahren", oldUp)
	heldUp := w.uploadID("erika", "streit.pdf", pdf(3000))
	held := w.startThread("Streitfall", "Auch alt, aber gesperrt", heldUp)
	w.store.SetClock(func() time.Time { return time.Now().UTC() })
	w.must(w.doJSON("lead-kg", "POST", "/api/postfach/threads/"+held.Thread.ID+"/legal-hold", map[string]any{"hold": true}), 204)
	fresh := w.startThread("Neu", "Von heute")
	// An upload never sent is removed after a day.
	w.store.SetClock(func() time.Time { return time.Now().UTC().Add(-48 * time.Hour) })
	strayUp := w.uploadID("erika", "vergessen.pdf", pdf(100))
	// A notification sent 40 days ago is no longer kept.
	w.store.SetClock(func() time.Time { return time.Now().UTC().AddDate(0, 0, -40) })
	w.must(w.doJSON("sachb-kg", "POST", "/api/postfach/threads/"+fresh.Thread.ID+"/messages", map[string]any{"body": "Antwort"}), 201)
	oldJobs, err := w.store.ClaimMails(ctx, notifier.Claim{Token: "t", Lease: time.Minute, Limit: 10, Tenants: []string{w.ka.ID}})
	if err != nil || len(oldJobs) != 1 {
		t.Fatalf("claim: %v %v", oldJobs, err)
	}
	if err := w.store.MarkMailSent(ctx, oldJobs[0].ID, "t"); err != nil {
		t.Fatal(err)
	}
	w.store.SetClock(func() time.Time { return time.Now().UTC() })

	rep, err := w.svc.RunRetention(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Messages != 1 || rep.Attachments != 1 || rep.Threads != 1 || rep.Uploads != 1 || rep.Blobs != 2 || rep.MailJobs != 1 {
		t.Fatalf("report = %+v", rep)
	}
	w.must(w.do("erika", "GET", "/api/postfach/threads/"+old.Thread.ID, nil, ""), 404)
	w.must(w.do("erika", "GET", old.Message.Attachments[0].URL, nil, ""), 404)
	w.must(w.do("erika", "GET", "/api/postfach/threads/"+held.Thread.ID, nil, ""), 200)
	w.must(w.do("erika", "GET", held.Message.Attachments[0].URL, nil, ""), 200)
	w.must(w.do("erika", "GET", "/api/postfach/threads/"+fresh.Thread.ID, nil, ""), 200)
	if _, _, err := w.blobs.Get(ctx, "postfach/"+w.ka.ID+"/"+oldUp); err == nil {
		t.Fatal("blob of the deleted attachment still stored")
	}
	if _, _, err := w.blobs.Get(ctx, "postfach/"+w.ka.ID+"/"+strayUp); err == nil {
		t.Fatal("blob of the stray upload still stored")
	}
	if _, err := w.store.MailJob(ctx, oldJobs[0].ID); err == nil {
		t.Fatal("old sent notification still kept")
	}
	if _, _, err := w.blobs.Get(ctx, "postfach/"+w.ka.ID+"/"+heldUp); err != nil {
		t.Fatalf("held blob gone: %v", err)
	}
	ev := w.events(w.ka.ID)
	for _, c := range []struct{ typ, subject string }{
		{"mailbox.message.deleted", old.Message.ID},
		{"mailbox.attachment.deleted", old.Message.Attachments[0].ID},
		{"mailbox.thread.deleted", old.Thread.ID},
		{"mailbox.thread.legal_hold", held.Thread.ID},
	} {
		if !hasEvent(ev, c.typ, c.subject) {
			t.Errorf("no audit event %s for %s", c.typ, c.subject)
		}
	}
	// A second run finds nothing more.
	if rep, err := w.svc.RunRetention(ctx); err != nil || rep != (mailbox.RetentionReport{}) {
		t.Fatalf("second run: %+v, %v", rep, err)
	}
}

func TestPostfachListFilters(t *testing.T) {
	w := newSQLiteWorld(t)
	a := w.startThread("Rechnung 100% erstattet?", "a")
	b := w.startThread("Rechnung_2024", "b")
	c := w.startThread("Hilfsmittel", "c")
	w.must(w.doJSON("sachb-kg", "POST", "/api/postfach/threads/"+c.Thread.ID+"/state", map[string]any{"state": "closed"}), 204)
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"?q=" + "100%25", []string{a.Thread.ID}},
		{"?q=_2024", []string{b.Thread.ID}},
		{"?q=RECHNUNG", []string{b.Thread.ID, a.Thread.ID}},
		{"?state=closed", []string{c.Thread.ID}},
		{"?topic=hilfsmittel", nil},
		{"?limit=1", []string{c.Thread.ID}},
	} {
		if got := w.listIDs("erika", tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.query, got, tc.want)
		}
	}
	// Paging with the cursor the API hands out.
	var page struct {
		Threads []struct {
			ID string `json:"id"`
		} `json:"threads"`
		Next string `json:"next"`
	}
	var seen []string
	q := "?limit=2"
	for {
		page.Next = ""
		page.Threads = nil
		w.must(w.do("erika", "GET", "/api/postfach/threads"+q, nil, ""), 200).json(t, &page)
		for _, th := range page.Threads {
			seen = append(seen, th.ID)
		}
		if page.Next == "" {
			break
		}
		q = "?limit=2&before=" + page.Next
	}
	if !slices.Equal(seen, []string{c.Thread.ID, b.Thread.ID, a.Thread.ID}) {
		t.Fatalf("pages: %v", seen)
	}
}

// An insured person can attach files uploaded through the resumable (tus)
// upload path, once they are complete and checked there.
func TestPostfachAttachesResumableUploads(t *testing.T) {
	w := newSQLiteWorld(t)
	ctx := context.Background()
	erika := w.people["erika"]
	tus := func(status intake.UploadStatus, content []byte) intake.Upload {
		t.Helper()
		id := uuid.NewString()
		sum := sha256.Sum256(content)
		now := time.Now().UTC()
		u := intake.Upload{ID: id, TenantID: erika.TenantID, PersonID: erika.ID, Kind: intake.KindSingle, Status: status,
			Length: int64(len(content)), Offset: int64(len(content)), Filename: "Scan vom Arzt.pdf", DetectedType: "application/pdf",
			BlobKey: intake.BlobKey(erika.TenantID, id), SHA256: hex.EncodeToString(sum[:]), ScanStatus: intake.ScanClean,
			CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if _, err := w.blobs.Put(ctx, u.BlobKey, bytes.NewReader(content), int64(len(content))); err != nil {
			t.Fatal(err)
		}
		if err := w.store.CreateUpload(ctx, u, intake.UploadQuota{}); err != nil {
			t.Fatal(err)
		}
		return u
	}
	file := pdf(700 << 10)
	done := tus(intake.StatusComplete, file)
	uploading := tus(intake.StatusUploading, pdf(100))
	start := func(who string, ids ...string) resp {
		return w.doJSON(who, "POST", "/api/postfach/threads", map[string]any{"topic": "krankengeld", "subject": "Scan", "body": "Anbei", "attachments": ids})
	}
	// Not Max's, not the caseworker's, and not before it is complete.
	w.must(start("max", done.ID), 422)
	w.must(w.doJSON("sachb-kg", "POST", "/api/postfach/threads", map[string]any{
		"person_id": erika.ID, "topic": "krankengeld", "subject": "x", "body": "y", "attachments": []string{done.ID}}), 422)
	var p web.Problem
	w.must(start("erika", uploading.ID), 422).json(t, &p)
	if !strings.Contains(p.Detail, "noch nicht vollständig") {
		t.Fatalf("detail %q", p.Detail)
	}
	var th threadOut
	w.must(start("erika", done.ID), 201).json(t, &th)
	att := th.Message.Attachments[0]
	if att.FileName != "Scan vom Arzt.pdf" || att.SHA256 != done.SHA256 || att.Size != int64(len(file)) {
		t.Fatalf("attachment %+v", att)
	}
	got := w.must(w.do("sachb-kg", "GET", att.URL, nil, ""), 200)
	if !bytes.Equal(got.body, file) {
		t.Fatal("downloaded bytes differ from the tus upload")
	}
	// Used once, it is gone for a second message.
	w.must(start("erika", done.ID), 422)
}
