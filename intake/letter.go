package intake

import (
	"fmt"
	"io"
	"strings"
	"time"

	"postbox/audit"
	"postbox/kasse"
	"postbox/letter"
)

// UploadPagePath is where the insured person logs in with KVNR and PIN; the
// Kasse id follows, so the page knows the tenant (printed on the letter).
const UploadPagePath = "/einmal-pin/"

// UploadPageURL is the web address printed on the letter: the Kasse's
// portal address (or the service's base URL) plus the upload page.
func UploadPageURL(k kasse.Kasse, baseURL string) string {
	root := k.PortalURL
	if root == "" {
		root = baseURL
	}
	return strings.TrimRight(root, "/") + UploadPagePath + k.ID
}

// berlin is the time zone of every date a person reads.
var berlin = letter.Berlin

// GermanDate formats t as the date a person in Germany reads, e.g. 21.01.2027.
func GermanDate(t time.Time) string { return letter.Date(t) }

// pinExpiry is when a PIN issued at now stops working: the lifetime, cut
// back to the midnight (Berlin) before, so the letter can name the last
// whole day ("gültig bis einschließlich …") and the PIN never lives longer
// than the Kasse's setting.
func pinExpiry(now time.Time, lifetime time.Duration) time.Time {
	end := now.Add(lifetime)
	if lifetime < 24*time.Hour {
		return end
	}
	l := end.In(berlin)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, berlin).UTC()
}

// LastValidDay is the date printed as "gültig bis einschließlich": the day
// of the last instant before the expiry.
func LastValidDay(expiresAt time.Time) string {
	return GermanDate(expiresAt.Add(-time.Nanosecond))
}

// Letter is everything printed on an Einmal-PIN letter.
type Letter struct {
	Kasse       kasse.Kasse
	Person      kasse.Person
	PIN         string // plain; exists only in memory and on paper
	CaseType    audit.CaseType
	RequestText string
	Date        time.Time
	ExpiresAt   time.Time
	UploadURL   string
}

// RenderLetter writes the letter as a one-page A4 PDF for a DIN 5008
// window envelope (layout: package letter).
func RenderLetter(w io.Writer, l Letter) error {
	days := int(l.ExpiresAt.Sub(l.Date).Hours()/24 + 0.999)
	if lt := l.Kasse.Settings.PINLifetime; lt >= 24*time.Hour {
		days = int(lt / (24 * time.Hour))
	}
	maxTries := l.Kasse.Settings.PINMaxAttempts
	if maxTries == 0 {
		maxTries = kasse.DefaultSettings().PINMaxAttempts
	}
	lastDay := LastValidDay(l.ExpiresAt)
	name := strings.TrimSpace(l.Person.GivenName + " " + l.Person.FamilyName)
	return letter.Write(w, letter.Letter{
		Title:         "Einmal-PIN",
		Sender:        l.Kasse.Name,
		Tagline:       "Sicherer Dokumenten-Upload mit Einmal-PIN",
		ReturnAddress: l.Kasse.Name + " · Postfach-Service",
		Recipient:     []string{name, l.Person.Street, strings.TrimSpace(l.Person.PostalCode + " " + l.Person.City)},
		Info: []letter.Field{
			{Label: "Datum", Value: GermanDate(l.Date)},
			{Label: "Krankenversichertennummer", Value: l.Person.KVNR},
			{Label: "Anliegen", Value: l.CaseType.Label()},
			{Label: "PIN gültig bis einschließlich", Value: lastDay},
		},
		Subject: "Ihre Einmal-PIN: Unterlagen sicher online senden",
		Body: []letter.Paragraph{
			{Text: "Guten Tag " + name + ","},
			{Text: "wir bitten Sie, uns folgende Unterlagen zu senden:"},
			{Text: l.RequestText, Highlight: true},
			{Text: "Sie können die Unterlagen bequem und sicher online senden:\n" +
				"1. Öffnen Sie die Seite " + l.UploadURL + "\n" +
				"2. Melden Sie sich mit Ihrer Krankenversichertennummer " + l.Person.KVNR + " und der Einmal-PIN unten an.\n" +
				"3. Laden Sie Ihre Dokumente hoch (zum Beispiel als PDF oder Foto) und senden Sie sie ab."},
		},
		Code: &letter.Code{Label: "Ihre Einmal-PIN", Value: FormatPIN(l.PIN), Note: "gültig bis einschließlich " + lastDay},
		After: []letter.Paragraph{
			{Text: "Groß- und Kleinschreibung spielen keine Rolle, Leerzeichen und Bindestriche können Sie weglassen. " +
				"In der PIN kommen die Ziffern 0 und 1 sowie die Buchstaben O, I und L nicht vor."},
			{Text: fmt.Sprintf("Die PIN ist gültig, bis Sie die Übermittlung Ihrer Unterlagen abgeschlossen haben, höchstens jedoch %d Tage "+
				"(bis einschließlich %s). Mit der Übermittlung verliert sie ihre Gültigkeit. Sie können die Eingabe unterbrechen: "+
				"Ihre Eingaben werden automatisch gespeichert und sind beim nächsten Login wieder sichtbar.", days, lastDay)},
			{Text: fmt.Sprintf("Nach %d falschen Eingaben wird die PIN gesperrt. Rufen Sie uns dann einfach an: Wir schicken Ihnen gern eine neue PIN zu. "+
				"Bitte geben Sie die PIN nicht weiter – wir fragen Sie niemals telefonisch oder per E-Mail danach.", maxTries)},
		},
		Closing: "Mit freundlichen Grüßen\nIhre " + l.Kasse.Name,
	})
}
