package notifier_test

import (
	"strings"
	"testing"

	"postbox/notifier"
)

// The account flows (auth) send these; each must render with its own
// subject and the one link, and nothing else.
func TestAccountMailsRender(t *testing.T) {
	for _, tc := range []struct {
		tmpl    notifier.Template
		subject string
		want    string
	}{
		{notifier.TemplateEmailConfirm, "Bitte bestätigen Sie Ihre E-Mail-Adresse", "vier Wochen gültig"},
		{notifier.TemplateUnlockLetterSent, "Ihr Freischaltcode ist unterwegs", "per Post unterwegs"},
		{notifier.TemplatePasswordReset, "Neues Passwort festlegen", "24 Stunden gültig"},
		{notifier.TemplateInvitation, "Einladung zur Registrierung", "720 Stunden"},
		{notifier.TemplateEmailChange, "Bitte bestätigen Sie Ihre neue E-Mail-Adresse", "24 Stunden gültig"},
		{notifier.TemplateEmailChangeNotice, "Ihre E-Mail-Adresse soll geändert werden", "nicht selbst veranlasst"},
	} {
		t.Run(string(tc.tmpl), func(t *testing.T) {
			link := "https://portal.example/pfad?token=abc%2Bdef"
			j := notifier.Job{ID: "j1", TenantID: "k", Recipient: "a@example.org", Template: tc.tmpl, MessageID: "<j1@postbox>",
				Data: map[string]string{notifier.DataKasseName: "Demo-Kasse", notifier.DataPortalURL: "https://portal.example", notifier.DataLoginURL: link}}
			m, err := notifier.Render(j, "postfach@kasse.example")
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if m.Subject != tc.subject {
				t.Errorf("subject %q, want %q", m.Subject, tc.subject)
			}
			if !strings.Contains(m.Text, link) || !strings.Contains(m.Text, tc.want) || !strings.Contains(m.Text, "Demo-Kasse") {
				t.Errorf("text lacks the link, %q or the Kasse:\n%s", tc.want, m.Text)
			}
			if !strings.Contains(m.HTML, `href="https://portal.example/pfad?token=abc%2Bdef"`) {
				t.Errorf("html lacks the link:\n%s", m.HTML)
			}
		})
	}
}
