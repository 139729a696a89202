package web

import (
	"bytes"
	"encoding/base64"
	"html"
	"regexp"
	"strings"
	"testing"

	"postbox/kasse"
)

// Issuing a PIN hands the letter over on the answer page; wrong input is
// named at its field.
func TestTeamIssuesPIN(t *testing.T) {
	w := newUIWorld(t)
	sachb := w.as("sachb")
	resp, page := sachb.get("/team/einmal-pin")
	if resp.StatusCode != 200 {
		t.Fatalf("PIN page: %d", resp.StatusCode)
	}
	checkPage(t, "Einmal-PIN ausstellen", page)
	csrf := csrfOf(t, page)
	for _, tc := range []struct {
		name, kvnr, caseType, text, field, want string
	}{
		{"bad KVNR", "A1", "krankengeld", "AU", "kvnr", "Die Krankenversichertennummer ist nicht gültig."},
		{"unknown person", kasse.CompleteKVNR("Z12345678"), "krankengeld", "AU", "kvnr", "Zu dieser Krankenversichertennummer gibt es"},
		{"no case type", w.erika.KVNR, "", "AU", "case_type", "Bitte wählen Sie ein Anliegen aus der Liste."},
		{"no text", w.erika.KVNR, "krankengeld", " ", "request_text", "Bitte geben Sie an, welche Unterlagen Sie benötigen."},
	} {
		resp, page := sachb.post("/team/einmal-pin", "_csrf", csrf, "kvnr", tc.kvnr, "case_type", tc.caseType, "request_text", tc.text)
		if resp.StatusCode != 422 || !strings.Contains(page, `<a href="#f-`+tc.field+`">`+tc.want) {
			t.Errorf("%s: %d, no message at %s", tc.name, resp.StatusCode, tc.field)
		}
		checkPage(t, tc.name, page)
	}
	resp, page = sachb.post("/team/einmal-pin", "_csrf", csrf, "kvnr", w.erika.KVNR, "case_type", "krankengeld", "request_text", "Bitte senden Sie uns Ihre AU.")
	if resp.StatusCode != 201 {
		t.Fatalf("issue: %d %s", resp.StatusCode, page)
	}
	checkPage(t, "PIN ausgestellt", page)
	m := regexp.MustCompile(`href="data:application/pdf;base64,([^"]+)" download="Einmal-PIN-Brief [0-9-]+\.pdf"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no letter download on the answer page")
	}
	pdf, err := base64.StdEncoding.DecodeString(html.UnescapeString(m[1]))
	if err != nil || !bytes.HasPrefix(pdf, []byte("%PDF")) {
		t.Errorf("letter is not a PDF (%v)", err)
	}
	if !strings.Contains(page, "Brief für Erika Mustermann") || !strings.Contains(resp.Header.Get("Cache-Control"), "no-store") {
		t.Errorf("answer page does not name the person or may be cached")
	}
	// Only caseworkers issue PINs.
	if resp, _ := w.as("erika").get("/team/einmal-pin"); resp.StatusCode != 404 {
		t.Errorf("insured person on the PIN page: %d", resp.StatusCode)
	}
}

// The status form offers only the allowed next statuses, requires a
// reason, refuses a change someone else made first, and the insured person
// sees the steps without the caseworkers' reasons.
func TestVorgangPages(t *testing.T) {
	w := newUIWorld(t)
	vg := w.vorgang("AU " + hostile)
	sachb := w.as("sachb")
	resp, page := sachb.get("/team/vorgaenge")
	if resp.StatusCode != 200 || !strings.Contains(page, `href="/team/vorgaenge/`+vg.ID+`"`) || !strings.Contains(page, "Erika Mustermann") {
		t.Fatalf("Vorgang list: %d %s", resp.StatusCode, page)
	}
	checkPage(t, "Vorgänge (Team)", page)
	assertEscaped(t, "Vorgänge (Team)", page)
	if resp, page := sachb.get("/team/vorgaenge?status=quatsch"); resp.StatusCode != 422 || !strings.Contains(page, `<a href="#f-status">Unbekannter Status`) {
		t.Errorf("unknown status filter: %d", resp.StatusCode)
	}
	path := "/team/vorgaenge/" + vg.ID
	_, page = sachb.get(path)
	checkPage(t, "Vorgang (Team)", page)
	assertEscaped(t, "Vorgang (Team)", page)
	radios := regexp.MustCompile(`name="status" value="([a-z_]+)"`).FindAllStringSubmatch(page, -1)
	if len(radios) != 1 || radios[0][1] != "in_bearbeitung" {
		t.Errorf("offered statuses %v, want only in_bearbeitung", radios)
	}
	csrf := csrfOf(t, page)
	resp, page = sachb.post(path+"/status", "_csrf", csrf, "from", "eingegangen", "status", "in_bearbeitung", "reason", " ")
	if resp.StatusCode != 422 || !strings.Contains(page, `<a href="#f-reason">Bitte geben Sie eine Begründung`) {
		t.Errorf("change without reason: %d", resp.StatusCode)
	}
	resp, page = sachb.post(path+"/status", "_csrf", csrf, "from", "eingegangen", "status", "abgeschlossen", "reason", "x")
	if resp.StatusCode != 409 || !strings.Contains(page, "Erlaubt ist: „In Bearbeitung“") {
		t.Errorf("forbidden change: %d", resp.StatusCode)
	}
	resp, _ = sachb.post(path+"/status", "_csrf", csrf, "from", "eingegangen", "status", "in_bearbeitung", "reason", "Prüfung <intern>")
	if resp.StatusCode != 303 {
		t.Fatalf("change: %d", resp.StatusCode)
	}
	// The same form again (seen before the change) is refused as stale.
	resp, page = sachb.post(path+"/status", "_csrf", csrf, "from", "eingegangen", "status", "in_bearbeitung", "reason", "nochmal")
	if resp.StatusCode != 409 || !strings.Contains(page, "inzwischen von jemand anderem") {
		t.Errorf("stale change: %d", resp.StatusCode)
	}
	_, page = sachb.get(path)
	if !strings.Contains(page, "Begründung: Prüfung &lt;intern&gt;") {
		t.Errorf("caseworker does not see the reason in the timeline")
	}

	erika := w.as("erika")
	resp, page = erika.get("/vorgaenge")
	if resp.StatusCode != 200 || !strings.Contains(page, `href="/vorgaenge/`+vg.ID+`"`) {
		t.Fatalf("Meine Vorgänge: %d", resp.StatusCode)
	}
	checkPage(t, "Meine Vorgänge", page)
	_, page = erika.get("/vorgaenge/" + vg.ID)
	checkPage(t, "Vorgang (Versicherte)", page)
	assertEscaped(t, "Vorgang (Versicherte)", page)
	if !strings.Contains(page, "In Bearbeitung") || strings.Contains(page, "intern") || strings.Contains(page, "Status ändern") {
		t.Errorf("insured timeline wrong or shows the reason: %s", page)
	}
	for _, tc := range []struct{ who, path string }{{"erika", path}, {"pruefer", "/vorgaenge/" + vg.ID}, {"sachb", "/vorgaenge/" + vg.ID}} {
		if resp, _ := w.as(tc.who).get(tc.path); resp.StatusCode != 404 {
			t.Errorf("%s on %s: %d, want 404", tc.who, tc.path, resp.StatusCode)
		}
	}
}

func TestTeamLocksAndUnlocksAccount(t *testing.T) {
	w := newUIWorld(t)
	sachb := w.as("sachb")
	erikaID := w.people["erika"].AccountID
	erika := w.as("erika")
	path := "/team/konten/" + erikaID
	resp, page := sachb.get(path)
	if resp.StatusCode != 200 || !strings.Contains(page, "Aktiv") {
		t.Fatalf("account page: %d", resp.StatusCode)
	}
	checkPage(t, "Konto", page)
	resp, _ = sachb.post(path+"/sperren", "_csrf", csrfOf(t, page))
	if resp.StatusCode != 303 {
		t.Fatalf("lock: %d", resp.StatusCode)
	}
	_, page = sachb.get(path)
	if !strings.Contains(page, "Gesperrt (Verdacht auf unbefugte Nutzung)") || !strings.Contains(page, "Zugang entsperren") {
		t.Errorf("locked account not shown as locked")
	}
	// The locked person's session ended.
	if resp, _ := erika.get("/postfach"); resp.StatusCode != 303 || !strings.HasPrefix(resp.Header.Get("Location"), "/anmelden") {
		t.Errorf("locked person still logged in: %d", resp.StatusCode)
	}
	resp, _ = sachb.post(path+"/entsperren", "_csrf", csrfOf(t, page))
	if resp.StatusCode != 303 {
		t.Fatalf("unlock: %d", resp.StatusCode)
	}
	// Unlocking again says why not.
	resp, page = sachb.post(path+"/entsperren", "_csrf", csrfOf(t, page))
	if resp.StatusCode != 422 || !strings.Contains(page, "Der Zugang ist nicht gesperrt.") {
		t.Errorf("unlock of an active account: %d", resp.StatusCode)
	}
	// Staff accounts and unknown ids are not for caseworkers.
	for _, id := range []string{w.people["pruefer"].AccountID, "gibt-es-nicht"} {
		if resp, _ := sachb.get("/team/konten/" + id); resp.StatusCode != 404 {
			t.Errorf("account %s: %d, want 404", id, resp.StatusCode)
		}
	}
}
