package auth

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // Europe/Berlin for dates on letters

	"github.com/go-pdf/fpdf"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/unicode/norm"

	"postbox/audit"
	"postbox/kasse"
)

// The Freischaltcode letter. Its layout follows intake's Einmal-PIN letter
// (intake/letter.go, DIN 5008 form B window envelope). It is not shared
// because intake imports auth; a common letter package would remove the
// duplicated helpers below (berlin, latin1).

var berlin = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		return time.UTC
	}
	return loc
}()

func germanDate(t time.Time) string { return t.In(berlin).Format("02.01.2006") }

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

// renderUnlockLetter writes a one-page A4 PDF for a window envelope: the
// address field 45 mm from the top and 20 mm from the left (text at 25 mm),
// fold marks at 105/210 mm, hole mark at 148.5 mm.
func renderUnlockLetter(l unlockLetter) ([]byte, error) {
	const left, right, pageWidth = 25.0, 20.0, 210.0
	textWidth := pageWidth - left - right
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetMargins(left, 15, right)
	pdf.SetAutoPageBreak(true, 15)
	pdf.SetTitle("Freischaltcode", false)
	pdf.SetCreator("postbox", false)
	pdf.SetCompression(true)
	pdf.AddPage()
	tr := latin1

	pdf.SetFont("Helvetica", "B", 16)
	pdf.Text(left, 22, tr(l.Kasse.Name))
	pdf.SetLineWidth(0.2)
	pdf.Line(4, 105, 9, 105)
	pdf.Line(4, 148.5, 11, 148.5)
	pdf.Line(4, 210, 9, 210)
	pdf.SetFont("Helvetica", "U", 7)
	pdf.Text(left, 60.5, tr(l.Kasse.Name+" · Online-Zugang"))
	pdf.SetFont("Helvetica", "", 11)
	y := 67.0
	for _, line := range []string{strings.TrimSpace(l.Person.GivenName + " " + l.Person.FamilyName), l.Person.Street,
		strings.TrimSpace(l.Person.PostalCode + " " + l.Person.City)} {
		if line != "" {
			pdf.Text(left, y, tr(line))
			y += 4.8
		}
	}
	pdf.SetFont("Helvetica", "", 8)
	pdf.Text(125, 52, tr("Datum"))
	pdf.SetFont("Helvetica", "B", 9)
	pdf.Text(125, 56, germanDate(l.Date))

	subject, intro := "Ihr Freischaltcode für den Online-Zugang",
		"Sie haben sich für den Online-Zugang registriert. Mit dem Freischaltcode unten schalten Sie Ihren Zugang bei der ersten Anmeldung frei."
	if l.Purpose == PurposeResetLetter {
		subject, intro = "Ihr Code für ein neues Passwort",
			"Sie haben über „Passwort vergessen“ ein neues Passwort angefordert. Mit dem Code unten legen Sie auf der Anmeldeseite unter „Passwort vergessen“ ein neues Passwort fest."
	}
	pdf.SetXY(left, 96)
	pdf.SetFont("Helvetica", "B", 11)
	pdf.MultiCell(textWidth, 5.5, tr(subject), "", "L", false)
	para := func(text string) {
		pdf.SetFont("Helvetica", "", 10)
		pdf.SetX(left)
		pdf.MultiCell(textWidth, 5, tr(text), "", "L", false)
		pdf.Ln(2.5)
	}
	pdf.Ln(5)
	para("Guten Tag " + strings.TrimSpace(l.Person.GivenName+" "+l.Person.FamilyName) + ",")
	para(intro)
	para("Ihr Benutzername: " + l.Username + "\nAnmeldeseite: " + l.PortalURL)
	top := pdf.GetY() + 1
	pdf.SetFillColor(242, 242, 242)
	pdf.Rect(left, top, textWidth, 27, "F")
	pdf.SetFont("Helvetica", "", 9)
	pdf.Text(left+5, top+6, "Freischaltcode")
	pdf.SetFont("Courier", "B", 22)
	pdf.Text(left+5, top+16.5, FormatUnlockCode(l.Code))
	pdf.SetFont("Helvetica", "", 9)
	pdf.Text(left+5, top+23, tr("gültig bis einschließlich "+germanDate(l.ExpiresAt.Add(-time.Second))))
	pdf.SetY(top + 32)
	para("Groß- und Kleinschreibung spielen keine Rolle, die Bindestriche können Sie weglassen. Nach 5 falschen Eingaben verliert der Code seine Gültigkeit; einen neuen erhalten Sie über „Passwort vergessen“.")
	para("Bitte geben Sie den Code nicht weiter – wir fragen Sie niemals telefonisch oder per E-Mail danach. Haben Sie keinen Zugang angefordert, rufen Sie uns bitte an.")
	para("Mit freundlichen Grüßen\nIhre " + l.Kasse.Name)
	if err := pdf.Error(); err != nil {
		return nil, fmt.Errorf("render letter: %w", err)
	}
	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, fmt.Errorf("write letter: %w", err)
	}
	return buf.Bytes(), nil
}

// latin1 turns UTF-8 into the Windows-1252 bytes of the PDF core fonts;
// other letters lose their accents instead of becoming "?".
func latin1(s string) string {
	var b strings.Builder
	for _, r := range s {
		if c, ok := charmap.Windows1252.EncodeRune(r); ok {
			b.WriteByte(c)
			continue
		}
		done := false
		for _, d := range norm.NFD.String(string(r)) {
			if c, ok := charmap.Windows1252.EncodeRune(d); ok && d < 0x300 {
				b.WriteByte(c)
				done = true
			}
		}
		if !done {
			b.WriteByte('?')
		}
	}
	return b.String()
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
