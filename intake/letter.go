package intake

import (
	"fmt"
	"io"
	"strings"
	"time"
	_ "time/tzdata" // Europe/Berlin for dates on letters, also where the OS has no zoneinfo

	"github.com/go-pdf/fpdf"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/unicode/norm"

	"postbox/audit"
	"postbox/kasse"
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
var berlin = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		return time.UTC
	}
	return loc
}()

// GermanDate formats t as the date a person in Germany reads, e.g. 21.01.2027.
func GermanDate(t time.Time) string { return t.In(berlin).Format("02.01.2006") }

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

// RenderLetter writes the letter as a one-page A4 PDF laid out for a DIN
// 5008 (form B) window envelope: the address field starts 45 mm from the
// top and 20 mm from the left edge (text indented to 25 mm), the
// information block at 125 mm, fold marks at 105 and 210 mm and the hole
// mark at 148.5 mm. Text uses the PDF core fonts in Windows-1252, which
// covers German; letters outside it are printed without their accents.
func RenderLetter(w io.Writer, l Letter) error {
	const (
		left      = 25.0 // DIN 5008: address field at 20 mm plus 5 mm inner margin
		right     = 20.0
		pageWidth = 210.0
		textWidth = pageWidth - left - right
	)
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetMargins(left, 15, right)
	pdf.SetAutoPageBreak(true, 15)
	pdf.SetTitle("Einmal-PIN", false)
	pdf.SetCreator("postbox", false)
	pdf.SetCompression(true)
	pdf.SetCellMargin(0) // text starts exactly at the DIN positions
	pdf.AddPage()
	tr := latin1

	// Letterhead.
	pdf.SetFont("Helvetica", "B", 16)
	pdf.Text(left, 22, tr(l.Kasse.Name))
	pdf.SetFont("Helvetica", "", 9)
	pdf.SetTextColor(80, 80, 80)
	pdf.Text(left, 28, tr("Sicherer Dokumenten-Upload mit Einmal-PIN"))
	pdf.SetTextColor(0, 0, 0)

	// Fold and hole marks at the left edge.
	pdf.SetLineWidth(0.2)
	pdf.Line(4, 105, 9, 105)
	pdf.Line(4, 148.5, 11, 148.5)
	pdf.Line(4, 210, 9, 210)

	// Zusatz- und Vermerkzone (45–62.7 mm): the return address, small, at
	// its bottom line, so it shows in the window above the recipient.
	pdf.SetFont("Helvetica", "U", 7)
	pdf.Text(left, 60.5, tr(l.Kasse.Name+" · Postfach-Service"))
	// Anschriftzone (62.7–90 mm).
	pdf.SetFont("Helvetica", "", 11)
	y := 67.0
	for _, line := range []string{
		strings.TrimSpace(l.Person.GivenName + " " + l.Person.FamilyName),
		l.Person.Street,
		strings.TrimSpace(l.Person.PostalCode + " " + l.Person.City),
	} {
		if line == "" {
			continue
		}
		pdf.Text(left, y, tr(line))
		y += 4.8
	}

	// Information block (form B: from 50 mm, 125 mm from the left).
	pdf.SetFont("Helvetica", "", 8)
	info := [][2]string{
		{"Datum", GermanDate(l.Date)},
		{"Krankenversichertennummer", l.Person.KVNR},
		{"Anliegen", l.CaseType.Label()},
		{"PIN gültig bis einschließlich", LastValidDay(l.ExpiresAt)},
	}
	y = 52
	for _, kv := range info {
		pdf.SetTextColor(80, 80, 80)
		pdf.Text(125, y, tr(kv[0]))
		pdf.SetTextColor(0, 0, 0)
		pdf.SetFont("Helvetica", "B", 9)
		pdf.SetXY(125, y+0.8)
		pdf.MultiCell(pageWidth-right-125, 4, tr(kv[1]), "", "L", false)
		y = pdf.GetY() + 3.2
		pdf.SetFont("Helvetica", "", 8)
	}

	// Subject (form B: 98.46 mm from the top).
	pdf.SetXY(left, 96)
	pdf.SetFont("Helvetica", "B", 11)
	pdf.MultiCell(textWidth, 5.5, tr("Ihre Einmal-PIN: Unterlagen sicher online senden"), "", "L", false)

	days := int(l.ExpiresAt.Sub(l.Date).Hours()/24 + 0.999)
	if lt := l.Kasse.Settings.PINLifetime; lt >= 24*time.Hour {
		days = int(lt / (24 * time.Hour))
	}
	maxTries := l.Kasse.Settings.PINMaxAttempts
	if maxTries == 0 {
		maxTries = kasse.DefaultSettings().PINMaxAttempts
	}
	name := strings.TrimSpace(l.Person.GivenName + " " + l.Person.FamilyName)
	para := func(style string, text string) {
		pdf.SetFont("Helvetica", style, 10)
		pdf.SetX(left)
		pdf.MultiCell(textWidth, 5, tr(text), "", "L", false)
		pdf.Ln(2.5)
	}
	pdf.Ln(5)
	para("", "Guten Tag "+name+",")
	para("", "wir bitten Sie, uns folgende Unterlagen zu senden:")
	pdf.SetX(left + 5)
	pdf.SetFont("Helvetica", "B", 10)
	pdf.MultiCell(textWidth-5, 5, tr(l.RequestText), "", "L", false)
	pdf.Ln(2.5)
	para("", "Sie können die Unterlagen bequem und sicher online senden:\n"+
		"1. Öffnen Sie die Seite "+l.UploadURL+"\n"+
		"2. Melden Sie sich mit Ihrer Krankenversichertennummer "+l.Person.KVNR+" und der Einmal-PIN unten an.\n"+
		"3. Laden Sie Ihre Dokumente hoch (zum Beispiel als PDF oder Foto) und senden Sie sie ab.")

	// The PIN, large, monospace, in blocks of five.
	boxTop := pdf.GetY() + 1
	pdf.SetFillColor(242, 242, 242)
	pdf.Rect(left, boxTop, textWidth, 27, "F")
	pdf.SetFont("Helvetica", "", 9)
	pdf.Text(left+5, boxTop+6, tr("Ihre Einmal-PIN"))
	pdf.SetFont("Courier", "B", 24)
	pdf.Text(left+5, boxTop+16.5, FormatPIN(l.PIN))
	pdf.SetFont("Helvetica", "", 9)
	pdf.Text(left+5, boxTop+23, tr("gültig bis einschließlich "+LastValidDay(l.ExpiresAt)))
	pdf.SetY(boxTop + 27 + 5)

	para("", "Groß- und Kleinschreibung spielen keine Rolle, Leerzeichen und Bindestriche können Sie weglassen. "+
		"In der PIN kommen die Ziffern 0 und 1 sowie die Buchstaben O, I und L nicht vor.")
	para("", fmt.Sprintf("Die PIN ist gültig, bis Sie die Übermittlung Ihrer Unterlagen abgeschlossen haben, höchstens jedoch %d Tage "+
		"(bis einschließlich %s). Mit der Übermittlung verliert sie ihre Gültigkeit. Sie können die Eingabe unterbrechen: "+
		"Ihre Eingaben werden automatisch gespeichert und sind beim nächsten Login wieder sichtbar.", days, LastValidDay(l.ExpiresAt)))
	para("", fmt.Sprintf("Nach %d falschen Eingaben wird die PIN gesperrt. Rufen Sie uns dann einfach an: Wir schicken Ihnen gern eine neue PIN zu. "+
		"Bitte geben Sie die PIN nicht weiter – wir fragen Sie niemals telefonisch oder per E-Mail danach.", maxTries))
	pdf.Ln(2)
	para("", "Mit freundlichen Grüßen\nIhre "+l.Kasse.Name)

	if err := pdf.Error(); err != nil {
		return fmt.Errorf("render letter: %w", err)
	}
	if err := pdf.Output(w); err != nil {
		return fmt.Errorf("write letter: %w", err)
	}
	return nil
}

// latin1 turns UTF-8 into the Windows-1252 bytes the core fonts expect.
// Letters outside that code page lose their accents (Ł → L, ş → s) rather
// than becoming question marks, which keeps names and addresses readable.
func latin1(s string) string {
	var b strings.Builder
	for _, r := range s {
		if c, ok := charmap.Windows1252.EncodeRune(r); ok {
			b.WriteByte(c)
			continue
		}
		replaced := false
		for _, d := range norm.NFD.String(string(r)) {
			if c, ok := charmap.Windows1252.EncodeRune(d); ok && d < 0x300 {
				b.WriteByte(c)
				replaced = true
			}
		}
		if !replaced {
			if r == 'Ł' {
				b.WriteByte('L')
			} else if r == 'ł' {
				b.WriteByte('l')
			} else {
				b.WriteByte('?')
			}
		}
	}
	return b.String()
}
