package web

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"postbox/audit"
	"postbox/auth"
	"postbox/kasse"
	"postbox/mailbox"
	"postbox/notifier"
	"postbox/storage/sqldb"
)

// teamMailWorld adds to the UI world: team leads "leitung" (Krankengeld)
// and "leitung-hilfe" (Hilfsmittel), Max (online delivery, with an e-mail address), and a
// second Kasse with its own person, caseworker "fremd" and team lead
// "fremd-leitung".
type teamMailWorld struct {
	*uiWorld
	max, foreignPerson kasse.Person
}

func newTeamMailWorld(t *testing.T) *teamMailWorld {
	t.Helper()
	w := &teamMailWorld{uiWorld: newUIWorld(t)}
	ctx := context.Background()
	other := kasse.Kasse{ID: "k-" + uuid.NewString()[:8], Name: "Andere Kasse", Settings: kasse.DefaultSettings()}
	w.max = kasse.Person{ID: uuid.NewString(), TenantID: w.kasse.ID, KVNR: kasse.CompleteKVNR("M12345678"), GivenName: "Max", FamilyName: "Muster",
		Street: "Musterweg 2", PostalCode: "30159", City: "Hannover", EGKValidUntil: time.Now().AddDate(2, 0, 0),
		Delivery: kasse.DeliveryOnline, Email: "max@example.org"}
	w.foreignPerson = kasse.Person{ID: uuid.NewString(), TenantID: other.ID, KVNR: kasse.CompleteKVNR("F12345678"), GivenName: "Fremd", FamilyName: "Person",
		Street: "Weg 3", PostalCode: "10115", City: "Berlin", EGKValidUntil: time.Now().AddDate(2, 0, 0), Delivery: kasse.DeliveryPost}
	hilfeTeams, err := w.mail.MyTeams(ctx, mailbox.Actor{Principal: w.people["hilfe"]})
	if err != nil || len(hilfeTeams) != 1 {
		t.Fatalf("teams of hilfe: %v %v", hilfeTeams, err)
	}
	err = w.db.InTx(ctx, func(tx *sqldb.Tx) error {
		if err := tx.CreateKasse(ctx, other); err != nil {
			return err
		}
		for _, p := range []kasse.Person{w.max, w.foreignPerson} {
			if err := tx.CreatePerson(ctx, p); err != nil {
				return err
			}
		}
		foreignTeam, err := tx.CreateTeam(ctx, mailbox.Team{TenantID: other.ID, Name: "Krankengeld", Topic: "krankengeld"})
		if err != nil {
			return err
		}
		for _, a := range []struct {
			name, tenant, team string
			role               auth.Role
		}{{"leitung", w.kasse.ID, w.team.ID, auth.RoleTeamLead}, {"leitung-hilfe", w.kasse.ID, hilfeTeams[0].ID, auth.RoleTeamLead},
			{"fremd-leitung", other.ID, foreignTeam.ID, auth.RoleTeamLead}, {"fremd", other.ID, foreignTeam.ID, auth.RoleCaseworker}} {
			acc := auth.Account{ID: uuid.NewString(), TenantID: a.tenant, Role: a.role, Username: a.name + "-" + a.tenant, DisplayName: a.name, Status: auth.StatusActive}
			if err := tx.CreateAccount(ctx, acc); err != nil {
				return err
			}
			if err := tx.AddTeamMember(ctx, a.tenant, a.team, acc.ID); err != nil {
				return err
			}
			w.people[a.name] = auth.Principal{TenantID: a.tenant, AccountID: acc.ID, Role: a.role}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// A caseworker writes to Erika by KVNR from the team inbox: wrong input is
// named at its field, the thread lands in Erika's Postfach with the
// attachment, and nobody else can use the form to reach her.
func TestTeamComposeNewThread(t *testing.T) {
	w := newTeamMailWorld(t)
	sachb := w.as("sachb")
	_, inbox := sachb.get("/team")
	if !strings.Contains(inbox, `href="/team/neue-nachricht"`) || !strings.Contains(inbox, `href="/team/benachrichtigungen"`) {
		t.Errorf("team inbox does not link the new pages")
	}
	resp, page := sachb.get("/team/neue-nachricht")
	if resp.StatusCode != 200 {
		t.Fatalf("compose page: %d", resp.StatusCode)
	}
	checkPage(t, "Neue Nachricht (Team)", page)
	for _, want := range []string{`<label for="f-kvnr">`, `<option value="krankengeld" selected>Krankengeld</option>`, `<label for="f-anhaenge">`} {
		if !strings.Contains(page, want) {
			t.Errorf("compose page lacks %q", want)
		}
	}
	if strings.Contains(page, "hilfsmittel") {
		t.Errorf("compose page offers a team the caseworker is not in")
	}
	action := multipartAction(t, page)
	for _, tc := range []struct {
		name, kvnr, topic, subject, text string
		field, want                      string
	}{
		{"no KVNR", "", "krankengeld", "Betreff", "Text", "kvnr", "Bitte geben Sie die Krankenversichertennummer"},
		{"bad KVNR", "A1", "krankengeld", "Betreff", "Text", "kvnr", "Die Krankenversichertennummer ist nicht gültig."},
		{"unknown person", kasse.CompleteKVNR("Z12345678"), "krankengeld", "Betreff", "Text", "kvnr", "Zu dieser Krankenversichertennummer gibt es"},
		{"person of another Kasse", w.foreignPerson.KVNR, "krankengeld", "Betreff", "Text", "kvnr", "Zu dieser Krankenversichertennummer gibt es"},
		{"no team", w.erika.KVNR, "", "Betreff", "Text", "thema", "Bitte wählen Sie, aus welchem Ihrer Teams"},
		{"team not mine", w.erika.KVNR, "hilfsmittel", "Betreff", "Text", "thema", "Für dieses Thema sind Sie nicht zuständig."},
		{"no subject", w.erika.KVNR, "krankengeld", "", "Text", "betreff", "Bitte geben Sie einen Betreff ein."},
	} {
		code, _, page := sachb.postMultipart(action, nil, "kvnr", tc.kvnr, "thema", tc.topic, "betreff", tc.subject, "text", tc.text+hostile)
		if code != 422 || !strings.Contains(page, `<a href="#f-`+tc.field+`">`+tc.want) {
			t.Errorf("%s: %d, no message at %s", tc.name, code, tc.field)
		}
		if !strings.Contains(page, "&lt;img src=x onerror=alert(1)&gt;</textarea>") {
			t.Errorf("%s: typed text not kept (escaped)", tc.name)
		}
		assertEscaped(t, tc.name, page)
	}
	// Without the CSRF token nothing is sent.
	if code, _, _ := sachb.postMultipart("/team/neue-nachricht", nil, "kvnr", w.erika.KVNR, "thema", "krankengeld", "betreff", "x", "text", "x"); code != 403 {
		t.Errorf("compose without CSRF: %d", code)
	}
	// Other roles and caseworkers of another Kasse cannot use the page.
	for _, who := range []string{"erika", "pruefer", "lebadmin"} {
		if resp, _ := w.as(who).get("/team/neue-nachricht"); resp.StatusCode != 404 {
			t.Errorf("%s on the team compose page: %d", who, resp.StatusCode)
		}
	}
	fremd := w.as("fremd")
	_, fpage := fremd.get("/team/neue-nachricht")
	code, _, _ := fremd.postMultipart(multipartAction(t, fpage), nil, "kvnr", w.erika.KVNR, "thema", "krankengeld", "betreff", "x", "text", "x")
	if code != 422 {
		t.Errorf("caseworker of another Kasse writing to Erika: %d", code)
	}

	code, loc, _ := sachb.postMultipart(action, []formFile{{"anhaenge", "bescheid.pdf", pdfBytes(2000)}},
		"kvnr", " "+strings.ToLower(w.erika.KVNR)+" ", "thema", "krankengeld", "betreff", "Ihr Krankengeld "+hostile, "text", "Anbei der Bescheid. "+hostile)
	if code != 303 || !strings.HasPrefix(loc, "/team/nachrichten/") {
		t.Fatalf("send: %d %q", code, loc)
	}
	threads, err := w.mail.List(context.Background(), mailbox.Actor{Principal: w.people["erika"]}, mailbox.Filter{Limit: 10})
	if err != nil || len(threads) != 1 {
		t.Fatalf("Erika's Postfach: %v %v", threads, err)
	}
	th, msgs, err := w.mail.Open(context.Background(), mailbox.Actor{Principal: w.people["erika"]}, threads[0].ID)
	if err != nil || th.TeamID != w.team.ID || len(msgs) != 1 || msgs[0].Direction != mailbox.Outbound || len(msgs[0].Attachments) != 1 ||
		msgs[0].Attachments[0].FileName != "bescheid.pdf" || !strings.HasPrefix(msgs[0].Body, "Anbei der Bescheid.") {
		t.Fatalf("thread in Erika's Postfach: %+v %+v %v", th, msgs, err)
	}
	if "/team/nachrichten/"+th.ID+"?hinweis=gesendet" != loc {
		t.Errorf("redirect %q is not the new thread", loc)
	}
	_, page = w.as("erika").get("/postfach/" + th.ID)
	checkPage(t, "Nachricht vom Team (Person)", page)
	assertEscaped(t, "Nachricht vom Team (Person)", page)
	if resp, _ := w.as("fremd").get("/team/nachrichten/" + th.ID); resp.StatusCode != 404 {
		t.Errorf("caseworker of another Kasse sees the thread: %d", resp.StatusCode)
	}
}

// failMails lets the notifier give up on every queued mail of the Kasse.
func (w *teamMailWorld) failMails(t *testing.T) []notifier.Job {
	t.Helper()
	ctx := context.Background()
	jobs, err := w.db.ClaimMails(ctx, notifier.Claim{Token: "t", Lease: time.Minute, Limit: 10, Tenants: []string{w.kasse.ID}})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if err := w.db.FailMail(ctx, j.ID, "t", "550 mailbox unavailable", audit.Event{TenantID: w.kasse.ID, Type: "notifier.mail.failed"}); err != nil {
			t.Fatal(err)
		}
	}
	return jobs
}

// The failed notification of Max shows for his team (masked address), and
// "Erneut senden" queues it again; another team or Kasse neither sees nor
// requeues it.
func TestTeamFailedNotifications(t *testing.T) {
	w := newTeamMailWorld(t)
	ctx := context.Background()
	if _, _, err := w.mail.StartThread(ctx, mailbox.Actor{Principal: w.people["sachb"]}, mailbox.NewThread{Topic: "krankengeld",
		Subject: "Ihr Antrag " + hostile, Body: "Bitte melden Sie sich.", OwnerKind: mailbox.OwnerPerson, OwnerID: w.max.ID}); err != nil {
		t.Fatal(err)
	}
	jobs := w.failMails(t)
	if len(jobs) != 1 {
		t.Fatalf("want one notification of Max, got %d", len(jobs))
	}
	job := jobs[0]
	sachb := w.as("sachb")
	resp, page := sachb.get("/team/benachrichtigungen")
	if resp.StatusCode != 200 {
		t.Fatalf("failed list: %d", resp.StatusCode)
	}
	checkPage(t, "Nicht zugestellte Benachrichtigungen", page)
	action := `action="/team/benachrichtigungen/` + job.ID + `/erneut"`
	for _, want := range []string{"Max Muster", "m***@example.org", "Hinweis auf neue Nachricht", action, "Erneut senden"} {
		if !strings.Contains(page, want) {
			t.Errorf("failed list lacks %q", want)
		}
	}
	if strings.Contains(page, "max@example.org") {
		t.Errorf("failed list shows the whole address")
	}
	// Another team's caseworker and another Kasse see an empty list and
	// cannot requeue; insured persons do not get the page.
	for _, who := range []string{"hilfe", "fremd"} {
		b := w.as(who)
		resp, page := b.get("/team/benachrichtigungen")
		if resp.StatusCode != 200 || strings.Contains(page, job.ID) || !strings.Contains(page, "keine nicht zugestellten") {
			t.Errorf("%s sees Max's notification: %d", who, resp.StatusCode)
		}
		_, home := b.get("/team")
		if resp, _ := b.post("/team/benachrichtigungen/"+job.ID+"/erneut", "_csrf", csrfOf(t, home)); resp.StatusCode != 404 {
			t.Errorf("%s requeues Max's notification: %d", who, resp.StatusCode)
		}
	}
	if resp, _ := w.as("erika").get("/team/benachrichtigungen"); resp.StatusCode != 404 {
		t.Errorf("insured person on the failed list: %d", resp.StatusCode)
	}
	if resp, _ := sachb.post("/team/benachrichtigungen/" + job.ID + "/erneut"); resp.StatusCode != 403 {
		t.Errorf("requeue without CSRF: %d", resp.StatusCode)
	}
	if again, _ := w.db.ClaimMails(ctx, notifier.Claim{Token: "u", Lease: time.Minute, Limit: 10, Tenants: []string{w.kasse.ID}}); len(again) != 0 {
		t.Fatalf("refused requeues queued the mail: %d", len(again))
	}
	resp, _ = sachb.post("/team/benachrichtigungen/"+job.ID+"/erneut", "_csrf", csrfOf(t, page))
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/team/benachrichtigungen?hinweis=erneut-gesendet" {
		t.Fatalf("requeue: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	again, err := w.db.ClaimMails(ctx, notifier.Claim{Token: "v", Lease: time.Minute, Limit: 10, Tenants: []string{w.kasse.ID}})
	if err != nil || len(again) != 1 || again[0].ID != job.ID || again[0].Recipient != "max@example.org" {
		t.Fatalf("requeued mail not in the queue: %+v %v", again, err)
	}
	_, page = sachb.get("/team/benachrichtigungen?hinweis=erneut-gesendet")
	if strings.Contains(page, job.ID) || !strings.Contains(page, "wird erneut gesendet") {
		t.Errorf("list after requeue still shows the notification or lacks the notice")
	}
	checkPage(t, "Nach erneutem Senden", page)
}

// Only a team lead sees and uses the legal hold toggle; it sets and ends
// the hold on the thread.
func TestTeamLegalHold(t *testing.T) {
	w := newTeamMailWorld(t)
	th := w.thread("Widerspruch "+hostile, "Ich widerspreche. "+hostile)
	path := "/team/nachrichten/" + th.ID
	leitung := w.as("leitung")
	resp, page := leitung.get(path)
	if resp.StatusCode != 200 {
		t.Fatalf("thread as team lead: %d", resp.StatusCode)
	}
	checkPage(t, "Unterhaltung (Teamleitung)", page)
	assertEscaped(t, "Unterhaltung (Teamleitung)", page)
	if !strings.Contains(page, `action="`+path+`/aufbewahrung"`) || !strings.Contains(page, `name="aufbewahren" value="ja"`) {
		t.Fatalf("team lead sees no legal hold form")
	}
	_, sachbPage := w.as("sachb").get(path)
	if strings.Contains(sachbPage, "/aufbewahrung") || strings.Contains(sachbPage, "Aufbewahrung wegen rechtlicher Gründe") {
		t.Errorf("caseworker sees the legal hold form")
	}
	held := func() bool {
		t.Helper()
		got, _, err := w.mail.Open(context.Background(), mailbox.Actor{Principal: w.people["leitung"]}, th.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.LegalHold
	}
	// Caseworker, insured person, auditor: 404, even with a valid token.
	// Team leads of another team or Kasse: 404 as for an unknown thread.
	for who, start := range map[string]string{"sachb": "/team", "erika": "/postfach", "pruefer": "/konto", "leitung-hilfe": "/team", "fremd-leitung": "/team"} {
		b := w.as(who)
		_, home := b.get(start)
		if resp, _ := b.post(path+"/aufbewahrung", "_csrf", csrfOf(t, home), "aufbewahren", "ja"); resp.StatusCode != 404 {
			t.Errorf("%s sets the legal hold: %d", who, resp.StatusCode)
		}
	}
	if resp, _ := leitung.post(path+"/aufbewahrung", "aufbewahren", "ja"); resp.StatusCode != 403 {
		t.Errorf("legal hold without CSRF: %d", resp.StatusCode)
	}
	if resp, _ := leitung.post("/team/nachrichten/"+uuid.NewString()+"/aufbewahrung", "_csrf", csrfOf(t, page), "aufbewahren", "ja"); resp.StatusCode != 404 {
		t.Errorf("legal hold on an unknown thread: %d", resp.StatusCode)
	}
	if held() {
		t.Fatal("refused requests set the legal hold")
	}
	resp, _ = leitung.post(path+"/aufbewahrung", "_csrf", csrfOf(t, page), "aufbewahren", "ja")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != path+"?hinweis=aufbewahrung-an" || !held() {
		t.Fatalf("set legal hold: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page = leitung.get(path + "?hinweis=aufbewahrung-an")
	if !strings.Contains(page, `name="aufbewahren" value="nein"`) || !strings.Contains(page, "nicht automatisch gelöscht") {
		t.Errorf("page after setting the hold does not offer to end it")
	}
	checkPage(t, "Unterhaltung aufbewahrt", page)
	resp, _ = leitung.post(path+"/aufbewahrung", "_csrf", csrfOf(t, page), "aufbewahren", "nein")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != path+"?hinweis=aufbewahrung-aus" || held() {
		t.Fatalf("end legal hold: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}
