package auth

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"postbox/audit"
	"postbox/kasse"
	"postbox/letter"
)

// berlin is the time zone of every date a person reads.
var berlin = letter.Berlin

// unlockLetter is what a Freischaltcode letter shows.
type unlockLetter struct {
	Kasse     kasse.Kasse
	Person    kasse.Person
	Username  string
	Code      string
	Purpose   string // PurposeUnlockCode or PurposeResetLetter
	Date      time.Time
	ExpiresAt time.Time
	PortalURL string
}

// renderUnlockLetter writes a one-page A4 PDF for a DIN 5008 window
// envelope (layout: package letter).
func renderUnlockLetter(l unlockLetter) ([]byte, error) {
	subject, intro := "Ihr Freischaltcode für den Online-Zugang",
		"Sie haben sich für den Online-Zugang registriert. Mit dem Freischaltcode unten schalten Sie Ihren Zugang bei der ersten Anmeldung frei."
	if l.Purpose == PurposeResetLetter {
		subject, intro = "Ihr Code für ein neues Passwort",
			"Sie haben über „Passwort vergessen“ ein neues Passwort angefordert. Mit dem Code unten legen Sie auf der Anmeldeseite unter „Passwort vergessen“ ein neues Passwort fest."
	}
	name := strings.TrimSpace(l.Person.GivenName + " " + l.Person.FamilyName)
	var buf bytes.Buffer
	err := letter.Write(&buf, letter.Letter{
		Title:         "Freischaltcode",
		Sender:        l.Kasse.Name,
		ReturnAddress: l.Kasse.Name + " · Online-Zugang",
		Recipient:     []string{name, l.Person.Street, strings.TrimSpace(l.Person.PostalCode + " " + l.Person.City)},
		Info:          []letter.Field{{Label: "Datum", Value: letter.Date(l.Date)}},
		Subject:       subject,
		Body: []letter.Paragraph{
			{Text: "Guten Tag " + name + ","},
			{Text: intro},
			{Text: "Ihr Benutzername: " + l.Username + "\nAnmeldeseite: " + l.PortalURL},
		},
		Code: &letter.Code{Label: "Freischaltcode", Value: FormatUnlockCode(l.Code),
			Note: "gültig bis einschließlich " + letter.Date(l.ExpiresAt.Add(-time.Second))},
		After: []letter.Paragraph{
			{Text: "Groß- und Kleinschreibung spielen keine Rolle, die Bindestriche können Sie weglassen. Nach 5 falschen Eingaben verliert der Code seine Gültigkeit; einen neuen erhalten Sie über „Passwort vergessen“."},
			{Text: "Bitte geben Sie den Code nicht weiter – wir fragen Sie niemals telefonisch oder per E-Mail danach. Haben Sie keinen Zugang angefordert, rufen Sie uns bitte an."},
		},
		Closing: "Mit freundlichen Grüßen\nIhre " + l.Kasse.Name,
	})
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// onLetterCode lets tests read the code a letter carries (the PDF is
// compressed); nil in production.
var onLetterCode func(accountID, purpose, code string)

// issueLetterCode creates a Freischaltcode (registration or password reset)
// valid Settings.UnlockCodeLifetime and renders its letter to the address
// the Kasse has stored for the person — never to an address typed in.
func (s *Service) issueLetterCode(ctx context.Context, tx Tx, m Meta, k kasse.Kasse, a Account, purpose string) (Letter, error) {
	p, err := s.store.Person(ctx, a.TenantID, a.PersonID)
	if err != nil {
		return Letter{}, err
	}
	code, err := newUnlockCode()
	if err != nil {
		return Letter{}, err
	}
	now := tx.Now()
	if err := tx.RevokeTokens(ctx, a.TenantID, a.ID, purpose, now); err != nil {
		return Letter{}, err
	}
	tk := Token{ID: newID(), TenantID: a.TenantID, AccountID: a.ID, Purpose: purpose,
		Hash: s.accountTokenHash(purpose, a.ID, code), CreatedAt: now, ExpiresAt: now.Add(k.Settings.UnlockCodeLifetime)}
	if err := tx.CreateToken(ctx, tk); err != nil {
		return Letter{}, err
	}
	if onLetterCode != nil {
		onLetterCode(a.ID, purpose, code)
	}
	pdf, err := renderUnlockLetter(unlockLetter{Kasse: k, Person: p, Username: a.Username, Code: code, Purpose: purpose,
		Date: now, ExpiresAt: tk.ExpiresAt, PortalURL: s.portal(k)})
	if err != nil {
		return Letter{}, err
	}
	if err := s.record(ctx, tx, m, audit.Event{TenantID: a.TenantID, ActorID: a.ID, ActorRole: string(a.Role),
		Type: "auth.unlock_code.issued", SubjectType: "account", SubjectID: a.ID, Details: fmt.Sprintf(`{"purpose":%q}`, purpose)}); err != nil {
		return Letter{}, err
	}
	return Letter{TenantID: a.TenantID, PersonID: a.PersonID, Kind: "freischaltcode", PDF: pdf}, nil
}

// sendLetter hands a letter to the print sink after the commit. If that
// fails, the code is valid but unknown to anyone; "Passwort vergessen"
// sends a new one.
func (s *Service) sendLetter(ctx context.Context, l Letter) error {
	if s.opts.Letters == nil {
		return fmt.Errorf("no letter sink configured")
	}
	if err := s.opts.Letters.SendLetter(ctx, l); err != nil {
		return fmt.Errorf("send letter: %w", err)
	}
	return nil
}
