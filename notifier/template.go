package notifier

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"strings"
	texttemplate "text/template"
	"time"
)

// Keys of Job.Data. These are the only values a template can show: the
// Kasse's name and the portal's addresses. Nothing from a message, a
// Vorgang or the person can reach a mail, because the renderer copies only
// these keys into the template data.
const (
	DataKasseName = "kasse_name"
	DataPortalURL = "portal_url"
	DataLoginURL  = "login_url" // optional, defaults to the portal address
)

//go:embed templates/*.tmpl
var templateFS embed.FS

// subjects are neutral on purpose: a subject line is shown on lock screens
// and in shared inboxes.
var subjects = map[Template]string{
	TemplateNewMessage:        "Neue Nachricht in Ihrem Postfach",
	TemplateStatusChanged:     "Neuigkeiten zu Ihrem Vorgang",
	TemplateEmailConfirm:      "Bitte bestätigen Sie Ihre E-Mail-Adresse",
	TemplateUnlockLetterSent:  "Ihr Freischaltcode ist unterwegs",
	TemplatePasswordReset:     "Neues Passwort festlegen",
	TemplateInvitation:        "Einladung zur Registrierung",
	TemplateEmailChange:       "Bitte bestätigen Sie Ihre neue E-Mail-Adresse",
	TemplateEmailChangeNotice: "Ihre E-Mail-Adresse soll geändert werden",
}

type mailTemplates struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

var templates = mustParseTemplates()

func mustParseTemplates() map[Template]mailTemplates {
	out := map[Template]mailTemplates{}
	for name := range subjects {
		txt := texttemplate.Must(texttemplate.New(string(name)+".txt.tmpl").Option("missingkey=error").
			ParseFS(templateFS, "templates/"+string(name)+".txt.tmpl"))
		html := htmltemplate.Must(htmltemplate.New(string(name)+".html.tmpl").Option("missingkey=error").
			ParseFS(templateFS, "templates/"+string(name)+".html.tmpl"))
		out[name] = mailTemplates{text: txt, html: html}
	}
	return out
}

// ErrTemplate marks a job that can never be rendered (unknown template or
// missing values); retrying it is pointless.
var ErrTemplate = errors.New("mail template")

// mailData is everything a template sees.
type mailData struct {
	Subject   string
	KasseName string
	PortalURL string
	LoginURL  string
}

// Render turns a job into the mail to send, from the embedded German
// templates: plain text and HTML (html/template escapes every value).
func Render(j Job, from string) (Mail, error) {
	t, ok := templates[j.Template]
	if !ok {
		return Mail{}, fmt.Errorf("%w: unknown template %q", ErrTemplate, j.Template)
	}
	d := mailData{
		Subject:   subjects[j.Template],
		KasseName: strings.TrimSpace(j.Data[DataKasseName]),
		PortalURL: strings.TrimSpace(j.Data[DataPortalURL]),
		LoginURL:  strings.TrimSpace(j.Data[DataLoginURL]),
	}
	if d.LoginURL == "" {
		d.LoginURL = d.PortalURL
	}
	if d.KasseName == "" {
		return Mail{}, fmt.Errorf("%w: %s is empty", ErrTemplate, DataKasseName)
	}
	for _, u := range []string{d.PortalURL, d.LoginURL} {
		if !httpURL(u) {
			return Mail{}, fmt.Errorf("%w: portal address is not an http(s) URL", ErrTemplate)
		}
	}
	if j.MessageID == "" || j.Recipient == "" {
		return Mail{}, fmt.Errorf("%w: job without Message-ID or recipient", ErrTemplate)
	}
	var text, html bytes.Buffer
	if err := t.text.Execute(&text, d); err != nil {
		return Mail{}, fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	if err := t.html.Execute(&html, d); err != nil {
		return Mail{}, fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	date := j.CreatedAt
	if date.IsZero() {
		date = time.Now()
	}
	return Mail{
		MessageID: j.MessageID,
		From:      from,
		To:        j.Recipient,
		Subject:   d.Subject,
		Text:      text.String(),
		HTML:      html.String(),
		Date:      date,
	}, nil
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
