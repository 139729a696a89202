package web

import (
	"regexp"
	"strings"
	"testing"
)

func TestProviderUserManagement(t *testing.T) {
	w := newUIWorld(t)
	admin := w.as("lebadmin")
	resp, page := admin.get("/verwaltung/benutzer")
	if resp.StatusCode != 200 {
		t.Fatalf("user list: %d", resp.StatusCode)
	}
	checkPage(t, "Benutzerverwaltung", page)
	csrf := csrfOf(t, page)
	resp, page = admin.post("/verwaltung/benutzer", "_csrf", csrf, "salutation", "Frau", "given_name", "", "family_name", hostile, "email", "keine-adresse")
	if resp.StatusCode != 422 || !strings.Contains(page, `<a href="#f-given_name">`) || !strings.Contains(page, `<a href="#f-email">`) {
		t.Errorf("invalid invitation: %d", resp.StatusCode)
	}
	if !strings.Contains(page, `value="&lt;script&gt;`) {
		t.Errorf("typed values not kept")
	}
	resp, _ = admin.post("/verwaltung/benutzer", "_csrf", csrf, "salutation", "Frau", "given_name", "Petra", "family_name", "Praxis "+hostile, "email", "petra@example.org")
	if resp.StatusCode != 303 {
		t.Fatalf("invite: %d", resp.StatusCode)
	}
	_, page = admin.get("/verwaltung/benutzer?hinweis=eingeladen")
	checkPage(t, "Benutzerverwaltung (eingeladen)", page)
	assertEscaped(t, "Benutzerverwaltung", page)
	if !strings.Contains(page, ">Eingeladen</span>") || !strings.Contains(page, "gültig bis") || !strings.Contains(page, "Die Einladung ist verschickt.") {
		t.Errorf("invited user not listed with status and validity")
	}
	m := regexp.MustCompile(`action="(/verwaltung/benutzer/[^"]+)/erneut"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no resend button for the invited user")
	}
	if resp, _ := admin.post(m[1]+"/erneut", "_csrf", csrf); resp.StatusCode != 303 {
		t.Errorf("resend: %d", resp.StatusCode)
	}
	if resp, _ := admin.post(m[1]+"/widerrufen", "_csrf", csrf); resp.StatusCode != 303 {
		t.Errorf("revoke: %d", resp.StatusCode)
	}
	_, page = admin.get("/verwaltung/benutzer")
	if strings.Contains(page, m[1]+"/erneut") {
		t.Errorf("revoked invitation still offers resend")
	}
	for _, who := range []string{"sachb", "erika"} {
		if resp, _ := w.as(who).get("/verwaltung/benutzer"); resp.StatusCode != 404 {
			t.Errorf("%s on the user list: %d", who, resp.StatusCode)
		}
	}
	if resp, _ := admin.post("/verwaltung/benutzer/"+w.people["erika"].AccountID+"/widerrufen", "_csrf", csrf); resp.StatusCode != 404 {
		t.Errorf("revoking another organisation's account: %d, want 404", resp.StatusCode)
	}
}
